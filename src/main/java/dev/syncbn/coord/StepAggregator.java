package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;
import java.util.HashMap;
import java.util.Map;

/**
 * The arithmetic of one training step, with no sockets (as Spark MLlib's aggregators): the replicas' BN
 * partial sums, per layer and direction, summed within each sync group; and their gradient reports,
 * summed over all replicas. A sum is taken only when all its parts are in, in rank order, so the
 * result does not depend on the order in which the parts arrived. Not thread-safe: the Coordinator
 * calls it holding its lock.
 */
public final class StepAggregator {
    /** One replica's hand-in for a step: its sample count, loss sum and correct count, times, gradient and running statistics. */
    public record Contribution(long count, double lossSum, long correct, double computeS, double bnWaitS, float[] grad, float[] state) {}

    /** What the replicas of one step handed in, summed (times averaged over the replicas). */
    public record StepReport(int epoch, int step, double[] gradSum, long count, double lossSum, long correct, float[][] states,
            double computeS, double bnWaitS) {}

    private final int workers, paramCount, stateCount;
    private final BnMode bn;
    private final int[] bnChannels;
    private final Contribution[] contributions;
    private int contributionsIn;
    private final Map<String, double[][]> bnParts = new HashMap<>();
    private final Map<String, double[]> bnSums = new HashMap<>();

    /** bnChannels: the channel count of each BN layer, in order. */
    public StepAggregator(int workers, BnMode bn, int paramCount, int stateCount, int[] bnChannels) {
        this.workers = workers;
        this.bn = bn;
        this.paramCount = paramCount;
        this.stateCount = stateCount;
        this.bnChannels = bnChannels.clone();
        this.contributions = new Contribution[workers];
    }

    /** Length of a BN vector: forward Σx, Σx² per channel and the count; backward Σdy, Σdy·x̂ per channel. */
    public int bnLength(int layer, boolean forward) throws Wire.ProtocolException {
        if (layer < 0 || layer >= bnChannels.length) throw new Wire.ProtocolException("BN layer " + layer + " (the network has " + bnChannels.length + ")");
        return forward ? 2 * bnChannels[layer] + 1 : 2 * bnChannels[layer];
    }

    private String bnKey(int step, int layer, boolean forward, int rank) {
        return step + "/" + layer + "/" + forward + "/" + bn.groupOf(rank);
    }

    /** Adds rank's BN partial sums of a step's layer; when its group is complete, the group's sum becomes available through bnSum. */
    public void addBn(int step, int layer, boolean forward, int rank, double[] sums) throws Wire.ProtocolException {
        if (!bn.synced()) throw new Wire.ProtocolException("BN statistics sent in local BN mode");
        checkRank(rank);
        int length = bnLength(layer, forward);
        if (sums.length != length) throw new Wire.ProtocolException("BN vector of " + sums.length + " values for layer " + layer + ", expected " + length);
        String key = bnKey(step, layer, forward, rank);
        double[][] parts = bnParts.computeIfAbsent(key, k -> new double[bn.groupSize()][]);
        int inGroup = rank - bn.groupOf(rank) * bn.groupSize();
        if (parts[inGroup] != null) throw new Wire.ProtocolException("second BN contribution of rank " + rank + " for " + key);
        parts[inGroup] = sums;
        for (double[] part : parts) if (part == null) return;
        double[] total = new double[length];
        for (double[] part : parts) for (int i = 0; i < length; i++) total[i] += part[i]; // rank order within the group
        bnSums.put(key, total);
    }

    /** The sum of rank's group for that layer and direction, or null while parts are missing. */
    public double[] bnSum(int step, int layer, boolean forward, int rank) {
        return bnSums.get(bnKey(step, layer, forward, rank));
    }

    /** Adds rank's gradient report; returns true when all replicas' are in. */
    public boolean addGradient(int rank, Contribution c) throws Wire.ProtocolException {
        checkRank(rank);
        if (c.grad().length != paramCount || c.state().length != stateCount) {
            throw new Wire.ProtocolException("gradient of " + c.grad().length + " and state of " + c.state().length + " values, expected " + paramCount + " and "
                    + stateCount);
        }
        if (c.count() < 0 || c.correct() < 0 || c.correct() > c.count() || !Double.isFinite(c.computeS()) || !Double.isFinite(c.bnWaitS())) {
            throw new Wire.ProtocolException("implausible gradient report (count " + c.count() + ", correct " + c.correct() + ")");
        }
        if (contributions[rank] != null) throw new Wire.ProtocolException("second gradient of rank " + rank);
        contributions[rank] = c;
        return ++contributionsIn == workers;
    }

    /** The step's sums, once every replica's gradient is in; the replicas' gradients are summed in rank order. */
    public StepReport sum(int epoch, int step) {
        if (contributionsIn != workers) throw new IllegalStateException(contributionsIn + " of " + workers + " gradients are in");
        double[] sum = new double[paramCount];
        float[][] states = new float[workers][];
        long count = 0, right = 0;
        double loss = 0, compute = 0, bnWait = 0;
        for (int r = 0; r < workers; r++) {
            Contribution c = contributions[r];
            float[] g = c.grad();
            for (int i = 0; i < paramCount; i++) sum[i] += g[i];
            states[r] = c.state();
            count += c.count();
            right += c.correct();
            loss += c.lossSum();
            compute += c.computeS() / workers;
            bnWait += c.bnWaitS() / workers;
        }
        return new StepReport(epoch, step, sum, count, loss, right, states, compute, bnWait);
    }

    /** Forgets every part of the step in progress (a new step, or a relaunched stage attempt). */
    public void clear() {
        java.util.Arrays.fill(contributions, null);
        contributionsIn = 0;
        bnParts.clear();
        bnSums.clear();
    }

    private void checkRank(int rank) throws Wire.ProtocolException {
        if (rank < 0 || rank >= workers) throw new Wire.ProtocolException("rank " + rank + " of " + workers);
    }
}
