package dev.syncbn.nn;

import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** y = x W^T + b with W [out, in] as in PyTorch; x is the flattened (C, H, W) sample. */
public final class Linear implements Layer {
    private final int in, outF;
    private final Buf out, dx;
    private INDArray weight, dWeight;
    private Buf params, grads;
    private int offset;
    private Buf lastInput;

    public Linear(int in, int outF, int maxBatch, DataType type) {
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
    public double trainingFlops() {
        return 2.0 * in * outF * 3;
    }

    @Override
    public void bindParams(Buf params, Buf grads, int offset) {
        this.params = params;
        this.grads = grads;
        this.offset = offset;
        weight = params.slice(offset, outF, in);
        dWeight = grads.slice(offset, outF, in);
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
        // The bias written first and the product added to it (beta 1): ND4J's addiRowVector after the
        // product cost as much as the product itself (0.3 ms at batch 64).
        for (int s = 0; s < n; s++) {
            for (int j = 0; j < outF; j++) out.set(s * outF + j, params.get(offset + outF * in + j));
        }
        Nd4j.gemm(x.view(n, in), weight, out.view(n, outF), false, true, 1.0, 1.0);
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
        for (int j = 0; j < outF; j++) {
            double sum = 0;
            for (int s = 0; s < n; s++) sum += dy.get(s * outF + j);
            grads.set(offset + outF * in + j, sum);
        }
        Nd4j.gemm(g, weight, dx.view(n, in), false, false, 1.0, 0.0);
        return dx;
    }
}
