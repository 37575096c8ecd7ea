package dev.syncbn.nn;

import java.nio.FloatBuffer;
import java.util.Arrays;

/**
 * Batch norm in float, optionally followed by the residual add of a shortcut and by ReLU, each way in
 * two passes over the input: the residual networks' BN + ReLU and BN + add + ReLU. The same function as
 * BatchNorm2d followed by the add and ReLU, which stay the reference (the double path of the gradient
 * checks, against which a test checks this layer); BN's bookkeeping is BnStatistics', as theirs.
 *
 * Backward, with g = dy where the output is positive (dy without ReLU), D1 = sum g and D2 = sum g * xhat
 * over the group: dx = gamma * invStd * (g - D1/N - xhat * D2/N), and the shortcut's gradient is g
 * itself (residualGradient).
 *
 * The activations are NCHW (lanes 1) or nChw8c (lanes 8: OneDnnConv.BLOCK channels interleaved, the
 * residual networks' float path). Either way the loops run over rows, a plane of one channel (lanes 1)
 * or of one block of channels (lanes 8), copied into float[]s a chunk at a time (BnStatistics.chunk) with
 * bulk gets, against per-channel values laid out as one chunk (expand); the element loops are small
 * static methods over arrays indexed from 0, which HotSpot vectorizes (see Conv2d.axpy).
 */
public final class FusedBn implements BnLayer {
    private final BnStatistics bn;
    private final boolean relu, residual;
    private final int channels, plane, lanes, rows, rowLength, chunk; // rows per sample, of rowLength values, taken chunk at a time
    private final Parallel parallel;
    private final Buf out, dx, dShortcut;
    private Buf lastInput;
    private float[][] lastScales, lastShifts; // the training forward's, per row: backward's ReLU mask without reading the output

    /**
     * relu: apply ReLU last; residual: forward takes a shortcut to add before it (forward(x, shortcut, n,
     * training)); lanes: 1 for NCHW activations, OneDnnConv.BLOCK for blocked ones.
     */
    public FusedBn(BnStatistics bn, boolean relu, boolean residual, int lanes, int maxBatch, Parallel parallel) {
        int[] shape = bn.shape();
        this.bn = bn;
        this.relu = relu;
        this.residual = residual;
        this.channels = shape[0];
        this.plane = shape[1] * shape[2];
        if (channels % lanes != 0) throw new IllegalArgumentException(channels + " channels in blocks of " + lanes);
        if (residual && !relu) throw new IllegalArgumentException("a BN that adds a shortcut here ends in ReLU");
        this.lanes = lanes;
        this.rows = channels / lanes;
        this.rowLength = plane * lanes;
        this.chunk = BnStatistics.chunk(rowLength, lanes);
        this.parallel = parallel;
        long size = (long) maxBatch * channels * plane;
        this.out = Buf.aligned(size);
        this.dx = Buf.aligned(size);
        this.dShortcut = residual ? Buf.aligned(size) : null;
    }

    @Override
    public BnStatistics statistics() {
        return bn;
    }

    @Override
    public int[] outShape() {
        return bn.shape();
    }

    @Override
    public Buf forward(Buf x, int n, boolean training) {
        if (residual) throw new IllegalStateException("this BN adds a shortcut: forward(x, shortcut, n, training)");
        return normalize(x, null, n, training);
    }

    /** BN of x, plus shortcut, then ReLU if this layer has it. */
    public Buf forward(Buf x, Buf shortcut, int n, boolean training) {
        if (!residual) throw new IllegalStateException("this BN adds no shortcut");
        return normalize(x, shortcut, n, training);
    }

    private Buf normalize(Buf input, Buf shortcut, int n, boolean training) {
        lastInput = input;
        FloatBuffer x = input.floats();
        if (training) {
            double[] sums = bn.floatSums(x, n, lanes, parallel);
            if (!bn.reduceStatistics(sums)) return out;
        }
        float[] scale = new float[channels], shift = new float[channels];
        for (int c = 0; c < channels; c++) {
            double sc = bn.gamma(c) * (training ? bn.invStd(c) : bn.runningInvStd(c));
            scale[c] = (float) sc;
            shift[c] = (float) (bn.beta(c) - sc * (training ? bn.mean(c) : bn.runningMean(c)));
        }
        float[][] scales = expand(scale), shifts = expand(shift);
        if (training) {
            lastScales = scales;
            lastShifts = shifts;
        }
        FloatBuffer y = out.floats(), r = shortcut == null ? null : shortcut.floats();
        parallel.forRange(n * rows, (p0, p1) -> {
            float[] part = new float[chunk], add = new float[chunk];
            for (int p = p0; p < p1; p++) {
                int k = p % rows;
                for (int from = 0; from < rowLength; from += chunk) {
                    int at = p * rowLength + from, length = Math.min(chunk, rowLength - from);
                    x.get(at, part, 0, length);
                    if (r != null) {
                        r.get(at, add, 0, length);
                        affineAddRelu(part, add, scales[k], shifts[k], length);
                    } else if (relu) {
                        affineRelu(part, scales[k], shifts[k], length);
                    } else {
                        affine(part, scales[k], shifts[k], length);
                    }
                    y.put(at, part, 0, length);
                }
            }
        });
        return out;
    }

    /** The gradient of the shortcut added in the last forward, after backward: the gradient at the sum. */
    public Buf residualGradient() {
        return dShortcut;
    }

    @Override
    public Buf backward(Buf dyBuf, int n) {
        if (bn.skipsBackward()) {
            if (residual) dShortcut.view((long) n * channels * plane).assign(0);
            return dx;
        }
        // The first pass leaves g (dy masked by ReLU) for the second: in the shortcut's gradient, which it
        // is, or in dx, which the second pass then overwrites in place (one write instead of a second mask).
        FloatBuffer x = lastInput.floats(), dy = dyBuf.floats(), y = out.floats();
        FloatBuffer gOut = residual ? dShortcut.floats() : relu ? dx.floats() : null;
        float[][] scales = lastScales, shifts = lastShifts;
        float[] batchMean = new float[channels];
        for (int c = 0; c < channels; c++) batchMean[c] = (float) bn.mean(c);
        float[][] means = expand(batchMean);
        double[] sums = new double[2 * channels];
        parallel.forRange(rows, (k0, k1) -> {
            float[] part = new float[chunk], g = new float[chunk], output = new float[chunk], d1 = new float[chunk], d2 = new float[chunk];
            for (int k = k0; k < k1; k++) {
                for (int from = 0; from < rowLength; from += chunk) {
                    int length = Math.min(chunk, rowLength - from);
                    Arrays.fill(d1, 0f);
                    Arrays.fill(d2, 0f);
                    for (int s = 0; s < n; s++) {
                        int at = (s * rows + k) * rowLength + from;
                        dy.get(at, g, 0, length);
                        x.get(at, part, 0, length);
                        if (relu && residual) {
                            y.get(at, output, 0, length);
                            mask(g, output, length);
                        } else if (relu) {
                            maskByInput(g, part, scales[k], shifts[k], length);
                        }
                        if (gOut != null) gOut.put(at, g, 0, length);
                        gradientSums(g, part, means[k], d1, d2, length);
                    }
                    BnStatistics.addPerChannel(d1, length, lanes, k, sums, 0);
                    BnStatistics.addPerChannel(d2, length, lanes, k, sums, channels);
                }
            }
        });
        for (int c = 0; c < channels; c++) sums[channels + c] *= bn.invStd(c);
        bn.reduceGradientSums(sums);
        BnStatistics.InputGradient ig = bn.inputGradient(sums);
        float[][] mean = expand(ig.mean()), slope = expand(ig.slope()), shift = expand(ig.shift()), gScale = expand(ig.gScale());
        FloatBuffer d = dx.floats();
        parallel.forRange(n * rows, (p0, p1) -> {
            float[] part = new float[chunk], g = new float[chunk];
            for (int p = p0; p < p1; p++) {
                int k = p % rows;
                for (int from = 0; from < rowLength; from += chunk) {
                    int at = p * rowLength + from, length = Math.min(chunk, rowLength - from);
                    x.get(at, part, 0, length);
                    (gOut != null ? gOut : dy).get(at, g, 0, length);
                    inputGradient(part, g, mean[k], slope[k], shift[k], gScale[k], length);
                    d.put(at, part, 0, length);
                }
            }
        });
        return dx;
    }

    /** Per row of a sample, a per-channel value at every position of a chunk of the row (the same for every chunk). */
    private float[][] expand(float[] perChannel) {
        float[][] out = new float[rows][chunk];
        for (int k = 0; k < rows; k++) {
            System.arraycopy(perChannel, k * lanes, out[k], 0, lanes);
            for (int filled = lanes; filled < chunk; filled *= 2) {
                System.arraycopy(out[k], 0, out[k], filled, Math.min(filled, chunk - filled));
            }
        }
        return out;
    }

    private static void affine(float[] x, float[] scale, float[] shift, int length) {
        for (int i = 0; i < length; i++) x[i] = x[i] * scale[i] + shift[i];
    }

    /** ReLU as (v + |v|) / 2, without a branch: half the values are negative. */
    private static void affineRelu(float[] x, float[] scale, float[] shift, int length) {
        for (int i = 0; i < length; i++) {
            float v = x[i] * scale[i] + shift[i];
            x[i] = (v + Math.abs(v)) * 0.5f;
        }
    }

    private static void affineAddRelu(float[] x, float[] add, float[] scale, float[] shift, int length) {
        for (int i = 0; i < length; i++) {
            float v = x[i] * scale[i] + shift[i] + add[i];
            x[i] = (v + Math.abs(v)) * 0.5f;
        }
    }

    /**
     * g[i] = 0 where the ReLU output is 0. The factor is 0 for an output of 0 and 1 for any positive
     * float (2^127 * 2^24 lifts even the smallest subnormal, 2^-149, past 1): Math.min vectorizes, the
     * sign-bit mask of BnReluPool.positive does not here (0.11 against 0.48 ns per element).
     */
    private static void mask(float[] g, float[] output, int length) {
        for (int i = 0; i < length; i++) g[i] *= Math.min(output[i] * 0x1p127f * 0x1p24f, 1f);
    }

    /**
     * mask(g, y) where y = relu(x * scale + shift), the forward's output without the shortcut, computed
     * as the forward did (the same float operations, so the same mask) instead of read back from memory.
     */
    private static void maskByInput(float[] g, float[] x, float[] scale, float[] shift, int length) {
        for (int i = 0; i < length; i++) {
            float v = x[i] * scale[i] + shift[i];
            g[i] *= Math.min((v + Math.abs(v)) * 0x1p127f * 0x1p23f, 1f); // 2v instead of relu(v) = v: 2^-148 * 2^150 > 1
        }
    }

    /** Per position: d1 += g, d2 += g * (x - m); summed over the plane afterwards (a chain of additions would not vectorize). */
    private static void gradientSums(float[] g, float[] x, float[] m, float[] d1, float[] d2, int length) {
        for (int i = 0; i < length; i++) {
            d1[i] += g[i];
            d2[i] += g[i] * (x[i] - m[i]);
        }
    }

    /** x becomes dx = (x - m) * slope + shift + gScale * g. */
    private static void inputGradient(float[] x, float[] g, float[] m, float[] slope, float[] shift, float[] gScale, int length) {
        for (int i = 0; i < length; i++) x[i] = (x[i] - m[i]) * slope[i] + shift[i] + gScale[i] * g[i];
    }
}
