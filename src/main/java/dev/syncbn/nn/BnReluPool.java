package dev.syncbn.nn;

import java.nio.FloatBuffer;
import java.util.Arrays;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Batch norm, ReLU and k x k max pooling (stride k, floor mode) in float, as two passes over the input
 * forward and two backward; the same function as BatchNorm2d (with ReLU) followed by MaxPool2d, which
 * stay the reference and the double-precision path (the gradient checks run there; a test checks this
 * layer against them). BN's bookkeeping (reductions over the sync group, running statistics, parameter
 * gradients) is BnStatistics', as the reference layer's.
 *
 * Why it is faster (batch 64, first block: 6.4 MB per tensor): the normalized and the ReLU'd tensors are
 * never written. Max commutes with ReLU and with an increasing affine map, so the forward finds each
 * window's winner on the normalized values and writes only the pooled output and the winner's index.
 * Backward, only winners with a positive output receive a gradient g; with D1 = sum g and
 * D2 = sum g * xhat over the group,
 *   dx = gamma * invStd * (g - D1/N - xhat * D2/N),
 * an affine map of x for every element plus gamma * invStd * g at the winners. Each plane is copied into
 * a float[] with one bulk get, so that HotSpot vectorizes the element loops.
 */
public final class BnReluPool implements BnLayer {
    private final BnStatistics bn;
    private final int channels, inH, inW, plane, k, outH, outW, outPlane;
    private final Parallel parallel;
    private final Buf out, dx;
    private final int[] winner; // per pooled output: the index, within its input plane, of the window's winner
    private Buf lastInput;

    public BnReluPool(BnStatistics bn, int k, int maxBatch, Parallel parallel) {
        int[] shape = bn.shape();
        if (k < 1 || k > 15) throw new IllegalArgumentException("pool window " + k + " (1 to 15)");
        this.bn = bn;
        this.channels = shape[0];
        this.inH = shape[1];
        this.inW = shape[2];
        this.plane = inH * inW;
        this.k = k;
        this.outH = inH / k;
        this.outW = inW / k;
        if (outH < 1 || outW < 1) throw new IllegalArgumentException("pool " + k + "x" + k + " does not fit input " + inH + "x" + inW);
        this.outPlane = outH * outW;
        this.parallel = parallel;
        this.out = Buf.zeros(DataType.FLOAT, (long) maxBatch * channels * outPlane);
        this.dx = Buf.zeros(DataType.FLOAT, (long) maxBatch * channels * plane);
        this.winner = new int[maxBatch * channels * outPlane];
    }

    @Override
    public BnStatistics statistics() {
        return bn;
    }

    @Override
    public int[] outShape() {
        return new int[] {channels, outH, outW};
    }

    @Override
    public Buf forward(Buf input, int n, boolean training) {
        lastInput = input;
        FloatBuffer x = input.floats();
        float[] mean = new float[channels], scale = new float[channels], beta = new float[channels];
        if (training) {
            double[] sums = bn.floatSums(x, n, 1, parallel);
            if (!bn.reduceStatistics(sums)) return out;
        }
        for (int c = 0; c < channels; c++) {
            mean[c] = (float) (training ? bn.mean(c) : bn.runningMean(c));
            scale[c] = (float) (bn.gamma(c) * (training ? bn.invStd(c) : bn.runningInvStd(c)));
            beta[c] = (float) bn.beta(c);
        }
        FloatBuffer y = out.floats();
        int window = k * k;
        parallel.forRange(n * channels, (p0, p1) -> {
            float[] row = new float[plane], pooled = new float[outPlane];
            for (int p = p0; p < p1; p++) {
                int c = p % channels;
                float m = mean[c], sc = scale[c], b = beta[c];
                x.get(p * plane, row, 0, plane);
                for (int i = 0; i < plane; i++) row[i] = (row[i] - m) * sc + b;
                for (int oy = 0; oy < outH; oy++) {
                    for (int ox = 0; ox < outW; ox++) {
                        int corner = oy * k * inW + ox * k;
                        // The winner by Math.max over keys that order like the values and, among equals, put
                        // the window's first element first: no data-dependent branch (see MaxPool2d).
                        long best = Long.MIN_VALUE;
                        if (k == 2) { // the network's window, unrolled: the general loop took twice as long
                            int below = corner + inW;
                            best = max(max(key(row[corner], 3), key(row[corner + 1], 2)), max(key(row[below], 1), key(row[below + 1], 0)));
                        } else {
                            for (int wy = 0; wy < k; wy++) {
                                for (int wx = 0; wx < k; wx++) best = max(best, key(row[corner + wy * inW + wx], window - 1 - (wy * k + wx)));
                            }
                        }
                        int slot = window - 1 - (int) (best & 0xff), w = corner + (slot / k) * inW + slot % k;
                        float v = row[w];
                        pooled[oy * outW + ox] = (v + Math.abs(v)) * 0.5f; // ReLU without a branch
                        winner[p * outPlane + oy * outW + ox] = w;
                    }
                }
                y.put(p * outPlane, pooled, 0, outPlane);
            }
        });
        return out;
    }

    /**
     * max(a, b) for |a - b| < 2^63, in arithmetic: Java 17's Math.max(long, long) compiles to a compare
     * and jump here, mispredicted on about half of the windows.
     */
    private static long max(long a, long b) {
        long d = a - b;
        return a - (d & (d >> 63));
    }

    private static long key(float v, int rank) {
        return MaxPool2d.windowKey(v, rank);
    }

    @Override
    public Buf backward(Buf dyBuf, int n) {
        if (bn.skipsBackward()) return dx;
        FloatBuffer x = lastInput.floats(), dy = dyBuf.floats(), y = out.floats();
        double[] sums = new double[2 * channels];
        parallel.forRange(channels, (c0, c1) -> {
            float[] row = new float[plane], g = new float[outPlane], pooled = new float[outPlane];
            for (int c = c0; c < c1; c++) {
                double d1 = 0, d2 = 0;
                float m = (float) bn.mean(c);
                for (int s = 0; s < n; s++) {
                    int p = s * channels + c;
                    x.get(p * plane, row, 0, plane);
                    dy.get(p * outPlane, g, 0, outPlane);
                    y.get(p * outPlane, pooled, 0, outPlane);
                    float g1 = 0, gx = 0;
                    for (int o = 0; o < outPlane; o++) {
                        float go = g[o] * positive(pooled[o]);
                        g1 += go;
                        gx += go * (row[winner[p * outPlane + o]] - m);
                    }
                    d1 += g1;
                    d2 += gx;
                }
                sums[c] = d1;
                sums[channels + c] = d2 * bn.invStd(c);
            }
        });
        bn.reduceGradientSums(sums);
        BnStatistics.InputGradient k = bn.inputGradient(sums);
        float[] mean = k.mean(), slope = k.slope(), shift = k.shift(), gScale = k.gScale();
        FloatBuffer d = dx.floats();
        parallel.forRange(n * channels, (p0, p1) -> {
            float[] row = new float[plane];
            for (int p = p0; p < p1; p++) {
                int c = p % channels;
                float m = mean[c], a = slope[c], b = shift[c], gs = gScale[c];
                x.get(p * plane, row, 0, plane);
                for (int i = 0; i < plane; i++) row[i] = (row[i] - m) * a + b;
                for (int o = p * outPlane; o < (p + 1) * outPlane; o++) row[winner[o]] += gs * dy.get(o) * positive(y.get(o));
                d.put(p * plane, row, 0, plane);
            }
        });
        return dx;
    }

    /** 1 if v > 0 else 0, for v >= 0 (a ReLU output), without a branch: half the outputs are zeros. */
    private static float positive(float v) {
        return (-Float.floatToRawIntBits(v)) >>> 31;
    }
}
