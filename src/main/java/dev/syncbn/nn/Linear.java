package dev.syncbn.nn;

import java.util.SplittableRandom;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** y = x W^T + b with W [out, in] as in PyTorch; x is the flattened (C, H, W) sample. */
public final class Linear implements Layer {
    private final int in, outF;
    private final Buf out, dx;
    private INDArray weight, bias, dWeight, dBias;
    private Buf params, grads;
    private int offset;
    private Buf lastInput;

    public Linear(int in, int outF, int maxBatch, org.nd4j.linalg.api.buffer.DataType type) {
        this.in = in;
        this.outF = outF;
        this.out = Buf.zeros(type, (long) maxBatch * outF);
        this.dx = Buf.zeros(type, (long) maxBatch * in);
    }

    @Override
    public int[] outShape() {
        return new int[] {outF};
    }

    @Override
    public int paramCount() {
        return outF * in + outF;
    }

    @Override
    public void bindParams(Buf params, Buf grads, int offset) {
        this.params = params;
        this.grads = grads;
        this.offset = offset;
        weight = params.slice(offset, outF, in);
        bias = params.slice(offset + (long) outF * in, 1, outF);
        dWeight = grads.slice(offset, outF, in);
        dBias = grads.slice(offset + (long) outF * in, 1, outF);
    }

    @Override
    public void initParams(SplittableRandom rng) {
        double bound = 1.0 / Math.sqrt(in);
        for (int i = 0; i < paramCount(); i++) params.set(offset + i, (2 * rng.nextDouble() - 1) * bound);
    }

    @Override
    public Buf forward(Buf x, int n, boolean training) {
        lastInput = x;
        if (n == 0) return out;
        INDArray y = out.view(n, outF);
        Nd4j.gemm(x.view(n, in), weight, y, false, true, 1.0, 0.0);
        y.addiRowVector(bias);
        return out;
    }

    /** The buffer the forward writes its outputs to. */
    public Buf forwardOutput() {
        return out;
    }

    @Override
    public Buf backward(Buf dy, int n) {
        if (n == 0) {
            grads.slice(offset, paramCount()).assign(0);
            return dx;
        }
        INDArray g = dy.view(n, outF);
        Nd4j.gemm(g, lastInput.view(n, in), dWeight, true, false, 1.0, 0.0);
        dBias.assign(g.sum(true, 0));
        Nd4j.gemm(g, weight, dx.view(n, in), false, false, 1.0, 0.0);
        return dx;
    }
}
