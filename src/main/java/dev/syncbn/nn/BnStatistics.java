package dev.syncbn.nn;

import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The bookkeeping of one batch-norm layer, whichever kernel computes it (the double reference
 * BatchNorm2d or the fused float BnReluPool): its parameters gamma and beta, its running statistics, the
 * reductions of its sums over the sync group through a BnReducer, the batch mean and 1/std of the last
 * training forward, and the running statistics' update with PyTorch's conventions (running = (1 -
 * momentum) * running + momentum * batch, with the unbiased variance). One class for both kernels, so
 * that sync BN cannot drift between them:
 *   forward:  S1 = sum x, S2 = sum x^2, N = count      mean = S1/N, var = S2/N - mean^2
 *   backward: D1 = sum dy, D2 = sum dy * x_hat        dx = gamma/sqrt(var+eps) * (dy - D1/N - x_hat * D2/N)
 * dgamma (local D2) and dbeta (local D1) are this replica's own: they travel with the other gradients.
 */
public final class BnStatistics {
    public static final double EPS = 1e-5;
    public static final double MOMENTUM = 0.1;

    private final int[] shape;
    private final int channels, index;
    private BnReducer reducer = BnReducer.LOCAL;
    // False in all but one of the shards of a ConvNet, which share the state buffer: the group's
    // statistics are the same in every shard, and one of them moves the running statistics.
    private boolean updatesRunningStatistics = true;
    private Buf params, grads, state;
    private int offset, stateOffset;
    private final double[] mean, invStd;
    private double count;

    /** shape: C, H, W of the layer's input (and output); index: which batch-norm layer of the network this is (for the reducer). */
    public BnStatistics(int[] shape, int index) {
        this.shape = shape.clone();
        this.channels = shape[0];
        this.index = index;
        this.mean = new double[channels];
        this.invStd = new double[channels];
    }

    /** A network's next BN layer: its statistics numbered after those in batchNorms, and appended there. */
    static BnStatistics next(int[] shape, List<BnStatistics> batchNorms) {
        BnStatistics s = new BnStatistics(shape, batchNorms.size());
        batchNorms.add(s);
        return s;
    }

    int[] shape() {
        return shape.clone();
    }

    public void setReducer(BnReducer reducer) {
        this.reducer = reducer;
    }

    void setUpdatesRunningStatistics(boolean updates) {
        this.updatesRunningStatistics = updates;
    }

    /** gamma, then beta. */
    int paramCount() {
        return 2 * channels;
    }

    /** Running mean, then running variance. */
    public int stateCount() {
        return 2 * channels;
    }

    void bindParams(Buf params, Buf grads, int offset) {
        this.params = params;
        this.grads = grads;
        this.offset = offset;
    }

    public void bindState(Buf state, int stateOffset) {
        this.state = state;
        this.stateOffset = stateOffset;
    }

    void initParams(SplittableRandom rng) {
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

    /**
     * The training forward's bookkeeping: reduces this replica's sums (S1, S2 per channel, then the
     * count) over the group, sets the batch mean and 1/std, and updates the running statistics. False if
     * the group had no sample in this step.
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
     * The forward's sums of a float input of n samples, as reduceStatistics takes them: S1 and S2 per
     * channel, then the count. Summed per position over the samples in float (at most a few hundred
     * values each), then over the plane in double: a sum across one plane would be a chain of dependent
     * additions that HotSpot does not vectorize; the per-position loop it does (see Conv2d.axpy).
     * Channels interleaved in blocks of lanes (nChw8c for 8; NCHW for 1).
     */
    double[] floatSums(FloatBuffer x, int n, int lanes, Parallel parallel) {
        int rows = channels / lanes, rowLength = shape[1] * shape[2] * lanes, chunk = chunk(rowLength, lanes);
        double[] sums = new double[2 * channels + 1];
        parallel.forRange(rows, (k0, k1) -> {
            float[] part = new float[chunk], sum = new float[chunk], sumOfSquares = new float[chunk];
            for (int k = k0; k < k1; k++) {
                for (int from = 0; from < rowLength; from += chunk) {
                    int length = Math.min(chunk, rowLength - from);
                    Arrays.fill(sum, 0f);
                    Arrays.fill(sumOfSquares, 0f);
                    for (int s = 0; s < n; s++) {
                        x.get((s * rows + k) * rowLength + from, part, 0, length);
                        accumulate(part, sum, sumOfSquares, length);
                    }
                    addPerChannel(sum, length, lanes, k, sums, 0);
                    addPerChannel(sumOfSquares, length, lanes, k, sums, channels);
                }
            }
        });
        sums[2 * channels] = (double) n * shape[1] * shape[2];
        return sums;
    }

    /**
     * How many values of a row (a plane of one channel, or of one block of lanes channels) the float
     * kernels take at a time: a multiple of lanes, up to 1,024 (4 KB), so that their working arrays stay
     * in the L1 cache (a stage-1 row of resnet-20 in nChw8c is 25 KB).
     */
    static int chunk(int rowLength, int lanes) {
        return Math.min(rowLength, Math.max(lanes, 1024 / lanes * lanes));
    }

    /**
     * Adds (in double) the first length values of part, the next piece of row k, to into[first + c] per
     * channel c of the row (lane j of row k is channel k * lanes + j; for lanes 1 the row is channel k's
     * plane). Each channel's sum goes on as one chain, in the row's order, whatever the pieces: the same
     * result as summing the whole row at once. Each chain in a register (an array indexed i % lanes was a
     * tenth of the fused BN's time), four channels' chains side by side where lanes allow, so that their
     * additions overlap instead of each waiting for the one before.
     */
    static void addPerChannel(float[] part, int length, int lanes, int k, double[] into, int first) {
        int j = 0, at = first + k * lanes;
        for (; j + 4 <= lanes; j += 4) {
            double s0 = into[at + j], s1 = into[at + j + 1], s2 = into[at + j + 2], s3 = into[at + j + 3];
            for (int i = j; i < length; i += lanes) {
                s0 += part[i];
                s1 += part[i + 1];
                s2 += part[i + 2];
                s3 += part[i + 3];
            }
            into[at + j] = s0;
            into[at + j + 1] = s1;
            into[at + j + 2] = s2;
            into[at + j + 3] = s3;
        }
        for (; j < lanes; j++) {
            double sum = into[at + j];
            for (int i = j; i < length; i += lanes) sum += part[i];
            into[at + j] = sum;
        }
    }

    private static void accumulate(float[] x, float[] sum, float[] sumOfSquares, int length) {
        for (int i = 0; i < length; i++) {
            sum[i] += x[i];
            sumOfSquares[i] += x[i] * x[i];
        }
    }

    /**
     * The float kernels' input gradient per channel, from the group's D1 and D2 (sums after
     * reduceGradientSums): dx = (x - mean) * slope + shift + gScale * g, where g is the gradient reaching
     * the normalized value (dy, masked by ReLU where there is one).
     */
    record InputGradient(float[] mean, float[] slope, float[] shift, float[] gScale) {}

    InputGradient inputGradient(double[] sums) {
        float[] m = new float[channels], slope = new float[channels], shift = new float[channels], gScale = new float[channels];
        for (int c = 0; c < channels; c++) {
            double gs = gamma(c) * invStd[c];
            m[c] = (float) mean[c];
            slope[c] = (float) (-gs * invStd[c] * sums[channels + c] / count); // -gScale * D2/N per unit of (x - mean)
            shift[c] = (float) (-gs * sums[c] / count); // -gScale * D1/N
            gScale[c] = (float) gs;
        }
        return new InputGradient(m, slope, shift, gScale);
    }

    /** The backward's bookkeeping: from this replica's D1, D2 per channel, writes dgamma and dbeta and replaces sums with the group's sums. */
    void reduceGradientSums(double[] sums) {
        for (int c = 0; c < channels; c++) {
            grads.set(offset + c, sums[channels + c]);
            grads.set(offset + channels + c, sums[c]);
        }
        reducer.allReduce(index, false, sums);
    }

    /**
     * After a training forward whose group had no sample: zero parameter gradients, and nothing to
     * compute. The backward's reduction still takes place, with zero sums: the replicas of other groups
     * may meet in the same place (an executor's hub holds every group of its replicas), and every replica
     * must take part in the same meetings in the same order.
     */
    boolean skipsBackward() {
        if (count != 0) return false;
        for (int i = 0; i < 2 * channels; i++) grads.set(offset + i, 0);
        reducer.allReduce(index, false, new double[2 * channels]);
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
}
