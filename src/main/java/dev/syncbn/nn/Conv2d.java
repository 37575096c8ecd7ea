package dev.syncbn.nn;

import java.nio.FloatBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.factory.Nd4j;

/**
 * 2-D convolution, NCHW, weights [out, in, kH, kW] as in PyTorch. In float, a convolution with an input
 * gradient and no bias (every one a network has but the first) runs on oneDNN 3's primitives, kept
 * across steps (OneDnnConv); the others, and every one in double, on ND4J's conv2d / conv2d_bp. The first layer of a network has no use for its
 * input gradient: its weight gradient is then one matrix product (see weightGradOnly), because conv2d_bp
 * always computes the input gradient too; on the 1-channel first layer at batch 64 it took 7 to 10 ms.
 */
public final class Conv2d implements Layer {
    private final int inC, inH, inW, outC, k, stride, pad, outH, outW;
    private final boolean inputGradient, hasBias;
    private final Parallel parallel;
    private final Buf out, dx;
    // The first layer's weight-gradient operands: dy by channel, and the input shifted by each tap (by
    // weightGradOnly [n*P, taps], or by forwardDirect [taps, n*P])
    private final Buf dyByChannel, shifted;
    private final boolean direct; // a first layer in float, stride 1, "same" padding: see forwardDirect
    private final INDArray weightGradT; // the direct path's dW^T [taps, outC]
    private final boolean oneDnn, blocked;
    private final Map<Integer, OneDnnConv> oneDnnByBatch = new HashMap<>();
    private final Map<Integer, Buf> oneDnnScratch = new HashMap<>(); // the i-th copy, as large as the largest batch's
    // Every copy ever made: the primitives of a smaller batch keep the address of the one a larger batch
    // replaced, so it must stay reachable (ND4J frees an unreachable buffer) until close frees them all.
    private final List<Buf> oneDnnScratchMade = new ArrayList<>();
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
            Parallel parallel, DataType type) {
        this(inShape, outC, k, stride, pad, hasBias, inputGradient, maxBatch, parallel, type, false);
    }

    /** blocked: input and output (and their gradients) in nChw8c (see OneDnnConv.BLOCK); only for the oneDNN path. */
    public Conv2d(int[] inShape, int outC, int k, int stride, int pad, boolean hasBias, boolean inputGradient, int maxBatch,
            Parallel parallel, DataType type, boolean blocked) {
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
        this.oneDnn = inputGradient && !hasBias && type == DataType.FLOAT;
        this.out = activations(type, (long) maxBatch * outC * outH * outW);
        this.dx = inputGradient ? activations(type, (long) maxBatch * inC * inH * inW) : null;
        this.dyByChannel = inputGradient ? null : Buf.zeros(type, (long) outC * maxBatch * outH * outW);
        this.shifted = inputGradient ? null : Buf.zeros(type, (long) maxBatch * outH * outW * inC * k * k);
        this.direct = !inputGradient && stride == 1 && 2 * pad == k - 1 && type == DataType.FLOAT;
        this.weightGradT = direct ? Nd4j.create(type, inC * k * k, outC) : null;
        this.blocked = blocked;
        if (blocked && (!oneDnn || inC % OneDnnConv.BLOCK != 0 || outC % OneDnnConv.BLOCK != 0)) {
            throw new IllegalArgumentException("a blocked convolution runs on oneDNN, with channels in multiples of " + OneDnnConv.BLOCK
                    + ": got " + inC + " -> " + outC);
        }
    }

    /** The oneDNN primitives for batches of n, made at the first such batch. */
    private OneDnnConv oneDnn(int n) {
        return oneDnnByBatch.computeIfAbsent(n, size -> new OneDnnConv(size, inC, inH, inW, outC, k, stride, pad, blocked, this::scratch));
    }

    /** A buffer of activations or their gradients: aligned where oneDNN reads and writes it in place. */
    private Buf activations(DataType type, long length) {
        return oneDnn ? Buf.aligned(length) : Buf.zeros(type, length);
    }

    /** The oneDNN primitives' blocked copies made so far (for a test that close frees them). */
    List<Buf> oneDnnScratch() {
        return List.copyOf(oneDnnScratchMade);
    }

    @Override
    public void close() {
        oneDnnByBatch.values().forEach(OneDnnConv::close);
        oneDnnByBatch.clear();
        Buf.closeAll(oneDnnScratchMade);
        oneDnnScratchMade.clear();
        oneDnnScratch.clear();
    }

    /** The i-th of the oneDNN primitives' blocked copies, at least bytes long: one set serves every batch size. */
    private Buf scratch(int i, long bytes) {
        Buf b = oneDnnScratch.get(i);
        if (b == null || 4L * b.length() < bytes) {
            b = Buf.aligned((bytes + 3) / 4);
            oneDnnScratch.put(i, b);
            oneDnnScratchMade.add(b);
        }
        return b;
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
    public double trainingFlops() {
        return 2.0 * outC * outH * outW * inC * k * k * (inputGradient ? 3 : 2);
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

    private long weightAddress() {
        return params.address() + 4L * offset;
    }

    private int[] convArgs() {
        // kH, kW, sH, sW, pH, pW, dilation H, W, padding mode 0 (explicit), NCHW, weights [out, in, kH, kW]
        return new int[] {k, k, stride, stride, pad, pad, 1, 1, 0, 0, 1};
    }

    @Override
    public Buf forward(Buf x, int n, boolean training) {
        lastInput = x;
        if (n == 0) return out;
        if (direct) {
            forwardDirect(x, n);
            return out;
        }
        if (oneDnn) {
            oneDnn(n).forward(x.address(), weightAddress(), out.address());
            return out;
        }
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
        if (direct) {
            weightGradDirect(dy, n);
            return null;
        }
        if (!inputGradient) {
            weightGradOnly(lastInput, dy, n);
            return null;
        }
        if (oneDnn) {
            oneDnn(n).backward(weightAddress(), dy.address(), dx.address(), grads.address() + 4L * offset);
            return dx;
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
     * The first layer's forward in float, without ND4J: with one input channel a 3x3 convolution is 9
     * multiply-adds per output, too little work per call for oneDNN's conv2d (1.4 to 4 ms at batch 64,
     * 10 to 20 GFLOP/s). Stride 1 and "same" padding (outW == inW): output i = y * W + x of tap (c, ky, kx)
     * reads input row y + ky - pad, column x + kx - pad, which in a copy of the plane with pad zero rows
     * above and below (and pad zeros before) is element i + ky * W + kx; where the column leaves the row
     * that element is the neighbouring row's edge instead of a zero, so each kx reads its own copy with
     * those edge columns zeroed. Each tap's input plane is then one contiguous run (taps[s][t], kept for
     * the weight gradient), and out[s][o] = sum over t of w[o][t] * that run, whole planes at a time.
     */
    private void forwardDirect(Buf x, int n) {
        int taps = inC * k * k, plane = inH * inW, copySize = (inH + 2 * pad) * inW + 2 * pad, cols = n * plane;
        float[] w = new float[outC * taps];
        params.floats().get(offset, w, 0, w.length);
        FloatBuffer in = x.floats(), y = out.floats(), tapsOut = shifted.floats();
        parallel.forRange(n, (s0, s1) -> {
            float[] copies = new float[inC * k * copySize], acc = new float[plane];
            float[][] tap = new float[taps][plane];
            for (int s = s0; s < s1; s++) {
                for (int c = 0; c < inC; c++) {
                    for (int kx = 0; kx < k; kx++) {
                        int base = (c * k + kx) * copySize, first = pad + pad * inW;
                        in.get((s * inC + c) * plane, copies, base + first, plane);
                        // Columns j < kx - pad and j > W - 1 + kx - pad are only ever read across a row's edge.
                        for (int iy = 0; iy < inH; iy++) {
                            for (int j = 0; j < kx - pad; j++) copies[base + first + iy * inW + j] = 0;
                            for (int j = inW + kx - pad; j < inW; j++) copies[base + first + iy * inW + j] = 0;
                        }
                    }
                }
                for (int t = 0; t < taps; t++) {
                    int c = t / (k * k), ky = t / k % k, kx = t % k;
                    System.arraycopy(copies, (c * k + kx) * copySize + ky * inW + kx, tap[t], 0, plane);
                    tapsOut.put(t * cols + s * plane, tap[t], 0, plane);
                }
                for (int o = 0; o < outC; o++) {
                    Arrays.fill(acc, 0f);
                    for (int t = 0; t < taps; t++) axpy(w[o * taps + t], tap[t], acc);
                    y.put((s * outC + o) * plane, acc, 0, plane);
                }
            }
        });
    }

    /**
     * y[i] += a * x[i]. HotSpot (17) vectorizes this loop only as it stands: in a method of its own, with
     * both arrays indexed from 0 (with an offset into x it does not: 0.29 against 0.03 ns per element).
     */
    private static void axpy(float a, float[] x, float[] y) {
        for (int i = 0; i < y.length; i++) y[i] += a * x[i];
    }

    /** The direct forward's weight gradient: dW [outC, taps] = dyByChannel [outC, n*P] x (taps [taps, n*P])^T. */
    private void weightGradDirect(Buf dy, int n) {
        int taps = inC * k * k, plane = outH * outW, cols = n * plane;
        FloatBuffer from = dy.floats(), to = dyByChannel.floats();
        parallel.forRange(outC, (o0, o1) -> {
            float[] row = new float[plane];
            for (int o = o0; o < o1; o++) {
                for (int s = 0; s < n; s++) {
                    from.get((s * outC + o) * plane, row, 0, plane);
                    to.put(o * cols + s * plane, row, 0, plane);
                }
            }
        });
        // As dW^T = taps x dyByChannel^T, then transposed: this orientation of the same product took 0.7
        // against 1.3 ms (batch 64, ND4J's gemm with 9 rows against 9 columns).
        Nd4j.gemm(shifted.view(taps, cols), dyByChannel.view(outC, cols), weightGradT, false, true, 1.0, 0.0);
        dWeight.reshape(outC, taps).assign(weightGradT.transpose());
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
