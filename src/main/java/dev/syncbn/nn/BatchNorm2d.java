package dev.syncbn.nn;

import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * Batch normalization over N, H, W per channel, optionally followed by ReLU, with PyTorch's conventions: training normalizes with
 * the (biased) batch variance and updates running stats as running = (1 - momentum) * running +
 * momentum * batch, with the unbiased variance; evaluation normalizes with the running stats.
 *
 * The two per-channel reductions go through a BnReducer, so that with sync BN the "batch" is the
 * union of every replica's batch:
 *   forward:  S1 = sum x, S2 = sum x^2, N = count      mean = S1/N, var = S2/N - mean^2
 *   backward: D1 = sum dy, D2 = sum dy * x_hat        dx = gamma/sqrt(var+eps) * (dy - D1/N - x_hat * D2/N)
 * The sums are accumulated in double, which keeps S2/N - mean^2 accurate for float activations.
 * dgamma (local D2) and dbeta (local D1) are this replica's own: they travel with the other gradients.
 */
public final class BatchNorm2d implements Layer {
    public static final double EPS = 1e-5;
    public static final double MOMENTUM = 0.1;

    private final int[] shape;
    private final int channels, plane, index, maxBatch;
    private final boolean relu;
    private final Parallel parallel;
    private final DataType type;
    private Buf out, dx; // allocated by the first forward: unused when BnReluPool runs this layer's statistics
    private BnReducer reducer = BnReducer.LOCAL;
    // False in all but one of the shards of a ConvNet, which share the state buffer: the group's
    // statistics are the same in every shard, and one of them moves the running statistics.
    private boolean updatesRunningStatistics = true;
    private Buf params, grads, state;
    private int offset, stateOffset;
    // Saved by the training forward for the backward.
    private Buf lastInput;
    private final double[] mean, invStd;
    private double count;

    /**
     * index: which batch-norm layer of the network this is (for the reducer); relu: apply ReLU to the
     * output in the same pass (and mask the gradient in the backward), saving two passes over memory.
     */
    public BatchNorm2d(int[] shape, int index, boolean relu, int maxBatch, Parallel parallel, DataType type) {
        this.relu = relu;
        this.shape = shape.clone();
        this.channels = shape[0];
        this.plane = shape[1] * shape[2];
        this.index = index;
        this.parallel = parallel;
        this.maxBatch = maxBatch;
        this.type = type;
        this.mean = new double[channels];
        this.invStd = new double[channels];
    }

    public void setReducer(BnReducer reducer) {
        this.reducer = reducer;
    }

    void setUpdatesRunningStatistics(boolean updates) {
        this.updatesRunningStatistics = updates;
    }

    @Override
    public int[] outShape() {
        return shape.clone();
    }

    @Override
    public int paramCount() {
        return 2 * channels; // gamma, then beta
    }

    /** Running mean, then running variance. */
    public int stateCount() {
        return 2 * channels;
    }

    @Override
    public void bindParams(Buf params, Buf grads, int offset) {
        this.params = params;
        this.grads = grads;
        this.offset = offset;
    }

    public void bindState(Buf state, int stateOffset) {
        this.state = state;
        this.stateOffset = stateOffset;
    }

    @Override
    public void initParams(SplittableRandom rng) {
        for (int c = 0; c < channels; c++) {
            params.set(offset + c, 1);
            params.set(offset + channels + c, 0);
        }
    }

    public void initState() {
        for (int c = 0; c < channels; c++) {
            state.set(stateOffset + c, 0);
            state.set(stateOffset + channels + c, 1);
        }
    }

    @Override
    public Buf forward(Buf x, int n, boolean training) {
        lastInput = x;
        if (out == null) {
            out = Buf.zeros(type, (long) maxBatch * channels * plane);
            dx = Buf.zeros(type, (long) maxBatch * channels * plane);
        }
        if (!training) {
            parallel.forRange(channels, (c0, c1) -> {
                for (int c = c0; c < c1; c++) normalize(x, n, c, runningMean(c), runningInvStd(c));
            });
            return out;
        }
        double[] sums = new double[2 * channels + 1];
        parallel.forRange(channels, (c0, c1) -> {
            for (int c = c0; c < c1; c++) {
                double s1 = 0, s2 = 0;
                for (int s = 0; s < n; s++) {
                    int base = (s * channels + c) * plane;
                    for (int i = base; i < base + plane; i++) {
                        double v = x.get(i);
                        s1 += v;
                        s2 += v * v;
                    }
                }
                sums[c] = s1;
                sums[channels + c] = s2;
            }
        });
        sums[2 * channels] = (double) n * plane;
        if (!reduceStatistics(sums)) return out;
        parallel.forRange(channels, (c0, c1) -> {
            for (int c = c0; c < c1; c++) normalize(x, n, c, mean[c], invStd[c]);
        });
        return out;
    }

    /**
     * The training forward's bookkeeping, shared with the fused float kernel (BnReluPool): reduces this
     * replica's sums (S1, S2 per channel, then the count) over the group, sets the batch mean and
     * 1/std, and updates the running statistics. False if the group had no sample in this step.
     */
    boolean reduceStatistics(double[] sums) {
        reducer.allReduce(index, true, sums);
        count = sums[2 * channels];
        if (count == 0) return false; // a sync group without a sample in this step: nothing to normalize or learn
        if (count < 2) {
            throw new IllegalStateException("batch norm needs more than one value per channel in training, got " + count);
        }
        for (int c = 0; c < channels; c++) {
            double m = sums[c] / count;
            double var = Math.max(0, sums[channels + c] / count - m * m);
            mean[c] = m;
            invStd[c] = 1 / Math.sqrt(var + EPS);
            if (!updatesRunningStatistics) continue;
            int rm = stateOffset + c, rv = stateOffset + channels + c;
            state.set(rm, (1 - MOMENTUM) * state.get(rm) + MOMENTUM * m);
            state.set(rv, (1 - MOMENTUM) * state.get(rv) + MOMENTUM * var * count / (count - 1));
        }
        return true;
    }

    /**
     * The backward's bookkeeping, shared with BnReluPool: from this replica's D1, D2 per channel, writes
     * dgamma and dbeta and replaces sums with the group's sums.
     */
    void reduceGradientSums(double[] sums) {
        for (int c = 0; c < channels; c++) {
            grads.set(offset + c, sums[channels + c]);
            grads.set(offset + channels + c, sums[c]);
        }
        reducer.allReduce(index, false, sums);
    }

    /** After a training forward whose group had no sample: zero parameter gradients, and no reduction (the whole group skips alike). */
    boolean skipsBackward() {
        if (count != 0) return false;
        for (int i = 0; i < 2 * channels; i++) grads.set(offset + i, 0);
        return true;
    }

    double runningMean(int c) {
        return state.get(stateOffset + c);
    }

    double runningInvStd(int c) {
        return 1 / Math.sqrt(state.get(stateOffset + channels + c) + EPS);
    }

    /** The last training forward's batch mean, 1/std and element count (over the group). */
    double mean(int c) {
        return mean[c];
    }

    double invStd(int c) {
        return invStd[c];
    }

    double count() {
        return count;
    }

    double gamma(int c) {
        return params.get(offset + c);
    }

    double beta(int c) {
        return params.get(offset + channels + c);
    }

    /**
     * Adds the last training forward's batch statistics into acc, laid out as this layer's running
     * statistics are in the state buffer: the batch mean, then the unbiased batch variance (what the
     * running statistics are averaged from), per channel.
     */
    public void addBatchStatistics(double[] acc) {
        for (int c = 0; c < channels; c++) {
            double biased = 1 / (invStd[c] * invStd[c]) - EPS;
            acc[stateOffset + c] += mean[c];
            acc[stateOffset + channels + c] += biased * count / (count - 1);
        }
    }

    /** out = gamma * (x - m) * invStd + beta for channel c, then ReLU if fused. */
    private void normalize(Buf x, int n, int c, double m, double is) {
        double scale = params.get(offset + c) * is;
        double shift = params.get(offset + channels + c) - m * scale;
        Buf out = this.out;
        for (int s = 0; s < n; s++) {
            int base = (s * channels + c) * plane;
            if (relu) {
                for (int i = base; i < base + plane; i++) {
                    double v = x.get(i) * scale + shift;
                    out.set(i, (v + Math.abs(v)) * 0.5); // max(v, 0) without a branch (see upstream)
                }
            } else {
                for (int i = base; i < base + plane; i++) out.set(i, x.get(i) * scale + shift);
            }
        }
    }

    /**
     * The gradient reaching the normalized value: dy, or with the fused ReLU dy where the output is
     * positive. The output is >= 0, so its bit pattern is positive exactly when the value is, and
     * (-bits) >>> 63 is that mask without a branch: on activations half of which are zero a branch
     * here is mispredicted half the time, which measured 5x slower.
     */
    private double upstream(Buf dy, int i) {
        return relu ? dy.get(i) * ((-Double.doubleToRawLongBits(out.get(i))) >>> 63) : dy.get(i);
    }

    @Override
    public Buf backward(Buf dy, int n) {
        Buf x = lastInput;
        if (skipsBackward()) return dx;
        double[] sums = new double[2 * channels];
        parallel.forRange(channels, (c0, c1) -> {
            for (int c = c0; c < c1; c++) {
                double d1 = 0, d2 = 0, m = mean[c], is = invStd[c];
                for (int s = 0; s < n; s++) {
                    int base = (s * channels + c) * plane;
                    for (int i = base; i < base + plane; i++) {
                        double g = upstream(dy, i);
                        d1 += g;
                        d2 += g * (x.get(i) - m) * is;
                    }
                }
                sums[c] = d1;
                sums[channels + c] = d2;
            }
        });
        reduceGradientSums(sums);
        parallel.forRange(channels, (c0, c1) -> {
            for (int c = c0; c < c1; c++) {
                double m = mean[c], is = invStd[c];
                double gScale = params.get(offset + c) * is;
                double meanDy = sums[c] / count, meanDyXhat = sums[channels + c] / count;
                for (int s = 0; s < n; s++) {
                    int base = (s * channels + c) * plane;
                    for (int i = base; i < base + plane; i++) {
                        double xhat = (x.get(i) - m) * is;
                        dx.set(i, gScale * (upstream(dy, i) - meanDy - xhat * meanDyXhat));
                    }
                }
            }
        });
        return dx;
    }
}
