package dev.syncbn.nn;

import java.util.SplittableRandom;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.factory.Nd4j;

/**
 * 2-D convolution, NCHW, weights [out, in, kH, kW] as in PyTorch. Runs on ND4J's conv2d / conv2d_bp,
 * which the oneDNN build executes at tens of GFLOP/s. The first layer of a network has no use for its
 * input gradient: its weight gradient is then computed directly (see weightGradOnly), because conv2d_bp
 * always computes the input gradient too and on a 1-channel input spends most of its time there.
 */
public final class Conv2d implements Layer {
    private final int inC, inH, inW, outC, k, stride, pad, outH, outW;
    private final boolean inputGradient;
    private final Parallel parallel;
    private final Buf out, dx;
    private INDArray weight, bias, dWeight, dBias;
    private Buf params, grads;
    private int offset;
    private Buf lastInput;

    public Conv2d(int[] inShape, int outC, int k, int stride, int pad, boolean inputGradient, int maxBatch,
            Parallel parallel, org.nd4j.linalg.api.buffer.DataType type) {
        this.inC = inShape[0];
        this.inH = inShape[1];
        this.inW = inShape[2];
        this.outC = outC;
        this.k = k;
        this.stride = stride;
        this.pad = pad;
        this.outH = (inH + 2 * pad - k) / stride + 1;
        this.outW = (inW + 2 * pad - k) / stride + 1;
        if (outH < 1 || outW < 1) {
            throw new IllegalArgumentException("conv " + k + "x" + k + " stride " + stride + " padding " + pad
                    + " does not fit input " + inH + "x" + inW);
        }
        this.inputGradient = inputGradient;
        this.parallel = parallel;
        this.out = Buf.zeros(type, (long) maxBatch * outC * outH * outW);
        this.dx = inputGradient ? Buf.zeros(type, (long) maxBatch * inC * inH * inW) : null;
    }

    @Override
    public int[] outShape() {
        return new int[] {outC, outH, outW};
    }

    @Override
    public int paramCount() {
        return outC * inC * k * k + outC;
    }

    @Override
    public void bindParams(Buf params, Buf grads, int offset) {
        this.params = params;
        this.grads = grads;
        this.offset = offset;
        int wn = outC * inC * k * k;
        weight = params.slice(offset, outC, inC, k, k);
        bias = params.slice(offset + wn, outC);
        dWeight = grads.slice(offset, outC, inC, k, k);
        dBias = grads.slice(offset + wn, outC);
    }

    @Override
    public void initParams(SplittableRandom rng) {
        // PyTorch: kaiming_uniform_(a=sqrt(5)) gives bound 1/sqrt(fan_in); the bias uses the same bound.
        double bound = 1.0 / Math.sqrt(inC * k * k);
        for (int i = 0; i < paramCount(); i++) params.set(offset + i, (2 * rng.nextDouble() - 1) * bound);
    }

    private int[] convArgs() {
        // kH, kW, sH, sW, pH, pW, dilation H, W, padding mode 0 (explicit), NCHW, weights [out, in, kH, kW]
        return new int[] {k, k, stride, stride, pad, pad, 1, 1, 0, 0, 1};
    }

    @Override
    public Buf forward(Buf x, int n, boolean training) {
        lastInput = x;
        if (n == 0) return out;
        Nd4j.exec(DynamicCustomOp.builder("conv2d")
                .addInputs(x.view(n, inC, inH, inW), weight, bias)
                .addOutputs(out.view(n, outC, outH, outW))
                .addIntegerArguments(convArgs())
                .build());
        return out;
    }

    @Override
    public Buf backward(Buf dy, int n) {
        if (n == 0) {
            grads.slice(offset, paramCount()).assign(0);
            return dx;
        }
        if (!inputGradient) {
            weightGradOnly(lastInput, dy, n);
            return null;
        }
        Nd4j.exec(DynamicCustomOp.builder("conv2d_bp")
                .addInputs(lastInput.view(n, inC, inH, inW), weight, bias, dy.view(n, outC, outH, outW))
                .addOutputs(dx.view(n, inC, inH, inW), dWeight, dBias)
                .addIntegerArguments(convArgs())
                .build());
        return dx;
    }

    /**
     * dW[o,c,ky,kx] = sum over samples and output positions of dy[o] * x[c] shifted by (ky,kx); dB[o] = sum of dy[o].
     * One task per output channel, accumulating in double.
     */
    private void weightGradOnly(Buf x, Buf dy, int n) {
        int kk = k * k, wn = outC * inC * kk, inPlane = inH * inW, outPlane = outH * outW;
        parallel.forEach(outC, o -> {
            double[] acc = new double[inC * kk];
            double biasAcc = 0;
            for (int s = 0; s < n; s++) {
                int dyBase = (s * outC + o) * outPlane;
                for (int oy = 0; oy < outH; oy++) {
                    for (int ox = 0; ox < outW; ox++) {
                        double g = dy.get(dyBase + oy * outW + ox);
                        if (g == 0) continue;
                        biasAcc += g;
                        int iy0 = oy * stride - pad, ix0 = ox * stride - pad;
                        for (int c = 0; c < inC; c++) {
                            int xBase = (s * inC + c) * inPlane;
                            for (int ky = 0; ky < k; ky++) {
                                int iy = iy0 + ky;
                                if (iy < 0 || iy >= inH) continue;
                                for (int kx = 0; kx < k; kx++) {
                                    int ix = ix0 + kx;
                                    if (ix < 0 || ix >= inW) continue;
                                    acc[(c * k + ky) * k + kx] += g * x.get(xBase + iy * inW + ix);
                                }
                            }
                        }
                    }
                }
            }
            for (int i = 0; i < acc.length; i++) grads.set(offset + o * inC * kk + i, acc[i]);
            grads.set(offset + wn + o, biasAcc);
        });
    }
}
