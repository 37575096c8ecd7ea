package dev.syncbn.nn;

import java.util.SplittableRandom;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.factory.Nd4j;

/**
 * 2-D convolution, NCHW, weights [out, in, kH, kW] as in PyTorch. Runs on ND4J's conv2d / conv2d_bp,
 * which the oneDNN build executes at tens of GFLOP/s. The first layer of a network has no use for its
 * input gradient: its weight gradient is then one matrix product (see weightGradOnly), because conv2d_bp
 * always computes the input gradient too; on the 1-channel first layer at batch 64 it took 7 to 10 ms.
 */
public final class Conv2d implements Layer {
    private final int inC, inH, inW, outC, k, stride, pad, outH, outW;
    private final boolean inputGradient, hasBias;
    private final Parallel parallel;
    private final Buf out, dx;
    private final Buf dyByChannel, shifted; // weightGradOnly's operands
    private INDArray weight, bias, dWeight, dBias;
    private Buf params, grads;
    private int offset;
    private Buf lastInput;

    /**
     * hasBias: false for a convolution followed by batch norm. BN removes any per-channel constant, so
     * such a bias has a true gradient of exactly zero; what the backward computes for it is rounding
     * noise, which Adam (dividing by its own running magnitude) turns into full-size steps of random
     * sign, and two correct implementations then disagree. PyTorch models use bias=False there too.
     */
    public Conv2d(int[] inShape, int outC, int k, int stride, int pad, boolean hasBias, boolean inputGradient, int maxBatch,
            Parallel parallel, org.nd4j.linalg.api.buffer.DataType type) {
        this.hasBias = hasBias;
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
        this.dyByChannel = inputGradient ? null : Buf.zeros(type, (long) outC * maxBatch * outH * outW);
        this.shifted = inputGradient ? null : Buf.zeros(type, (long) maxBatch * outH * outW * inC * k * k);
    }

    @Override
    public int[] outShape() {
        return new int[] {outC, outH, outW};
    }

    @Override
    public int paramCount() {
        return outC * inC * k * k + (hasBias ? outC : 0);
    }

    @Override
    public void bindParams(Buf params, Buf grads, int offset) {
        this.params = params;
        this.grads = grads;
        this.offset = offset;
        int wn = outC * inC * k * k;
        weight = params.slice(offset, outC, inC, k, k);
        dWeight = grads.slice(offset, outC, inC, k, k);
        if (hasBias) {
            bias = params.slice(offset + wn, outC);
            dBias = grads.slice(offset + wn, outC);
        }
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
                .addInputs(hasBias ? new INDArray[] {x.view(n, inC, inH, inW), weight, bias} : new INDArray[] {x.view(n, inC, inH, inW), weight})
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
                .addInputs(hasBias ? new INDArray[] {lastInput.view(n, inC, inH, inW), weight, bias, dy.view(n, outC, outH, outW)}
                        : new INDArray[] {lastInput.view(n, inC, inH, inW), weight, dy.view(n, outC, outH, outW)})
                .addOutputs(hasBias ? new INDArray[] {dx.view(n, inC, inH, inW), dWeight, dBias} : new INDArray[] {dx.view(n, inC, inH, inW), dWeight})
                .addIntegerArguments(convArgs())
                .build());
        return dx;
    }

    /**
     * dW[o,c,ky,kx] = sum over samples s and output positions q of dy[s,o,q] * x[s,c,q shifted by (ky,kx)],
     * as one matrix product dW = dyByChannel [outC, n*P] x shifted [n*P, inC*k*k], both laid out here
     * (P = output positions per sample; shifted is zero where the window leaves the input). dB[o], if
     * there is a bias, is the row sum of dyByChannel.
     */
    private void weightGradOnly(Buf x, Buf dy, int n) {
        int kk = k * k, taps = inC * kk, outPlane = outH * outW, inPlane = inH * inW, cols = n * outPlane;
        parallel.forRange(outC, (o0, o1) -> {
            for (int o = o0; o < o1; o++) {
                double bias = 0;
                for (int s = 0; s < n; s++) {
                    int src = (s * outC + o) * outPlane, dst = o * cols + s * outPlane;
                    for (int q = 0; q < outPlane; q++) {
                        double g = dy.get(src + q);
                        dyByChannel.set(dst + q, g);
                        bias += g;
                    }
                }
                if (hasBias) grads.set(offset + outC * taps + o, bias);
            }
        });
        parallel.forRange(n, (s0, s1) -> {
            for (int s = s0; s < s1; s++) {
                for (int oy = 0; oy < outH; oy++) {
                    for (int ox = 0; ox < outW; ox++) {
                        int row = (s * outPlane + oy * outW + ox) * taps;
                        for (int t = 0; t < taps; t++) {
                            int c = t / kk, iy = oy * stride - pad + (t % kk) / k, ix = ox * stride - pad + t % k;
                            boolean inside = iy >= 0 && iy < inH && ix >= 0 && ix < inW;
                            shifted.set(row + t, inside ? x.get((s * inC + c) * inPlane + iy * inW + ix) : 0);
                        }
                    }
                }
            }
        });
        Nd4j.gemm(dyByChannel.view(outC, cols), shifted.view(cols, taps), dWeight.reshape(outC, taps), false, false, 1.0, 0.0);
    }
}
