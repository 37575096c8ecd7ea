package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

/**
 * The arithmetic of one training step, with no sockets (as Spark MLlib's aggregators). Its inputs come
 * from parties: a party speaks for a set of ranks (one replica, or all replicas of an executor, which
 * summed their parts in their JVM first). Per BN layer and direction, the parties' partial sums of each
 * sync group that spans parties are summed; the parties' gradient reports are summed over all ranks. A
 * sum is taken only when every rank it covers is in, in the order of the parties' lowest ranks, so the
 * result does not depend on the order in which the parts arrived. Not thread-safe: the Coordinator calls
 * it holding its lock.
 */
public final class StepAggregator {
    /**
     * A party's hand-in for a step, summed over its replicas: sample count, loss sum, correct count, times
     * (and the compute time of its slowest replica), gradient, running statistics (NO_STATISTICS at a step
     * where they are not due).
     */
    public record Contribution(long count, double lossSum, long correct, double computeS, double slowestComputeS, double bnWaitS, float[] grad,
            float[] stateSum) {
        /** One replica's: it is its own slowest. */
        public static Contribution ofReplica(long count, double lossSum, long correct, double computeS, double bnWaitS, float[] grad, float[] stateSum) {
            return new Contribution(count, lossSum, correct, computeS, computeS, bnWaitS, grad, stateSum);
        }
    }

    /**
     * What all parties of one step handed in, summed (gradSum is the aggregator's own array, valid until
     * its next sum); times and running statistics averaged over the replicas (meanState null at a step
     * where they are not due), and the slowest replica's compute time. (Running statistics are linear in
     * the batch statistics, so their average over the replicas is what the epoch ends with, and what a
     * relaunched replica starts from.)
     */
    public record StepReport(int epoch, int step, double[] gradSum, long count, double lossSum, long correct, float[] meanState,
            double computeS, double slowestComputeS, double bnWaitS) {}

    /**
     * Running statistics are needed by no step, only at the epoch's end and by a relaunched stage, which
     * starts from the driver's last snapshot (Coordinator): so they are handed in only at the steps that
     * end a snapshot interval of this many steps, and at the epoch's last. A relaunch recomputes at most
     * this many steps.
     */
    public static final int STATISTICS_EVERY = 32;
    public static final float[] NO_STATISTICS = new float[0];

    /** Whether the hand-in of step (0-based) of an epoch of stepsInEpoch steps carries the running statistics. */
    public static boolean statisticsDue(int step, int stepsInEpoch) {
        return (step + 1) % STATISTICS_EVERY == 0 || step == stepsInEpoch - 1;
    }

    private final int workers, paramCount, stateCount;
    private final double[] gradSum;
    private final BnMode bn;
    private final int[] bnChannels;
    private final TreeMap<Integer, Contribution> contributions = new TreeMap<>(); // by the party's lowest rank
    private final boolean[] handedIn;
    private int ranksIn;
    private final Map<String, TreeMap<Integer, double[]>> bnParts = new HashMap<>();
    private final Map<String, Integer> bnRanksIn = new HashMap<>();
    private final Map<String, double[]> bnSums = new HashMap<>();

    /** bnChannels: the channel count of each BN layer, in order. */
    public StepAggregator(int workers, BnMode bn, int paramCount, int stateCount, int[] bnChannels) {
        this.workers = workers;
        this.bn = bn;
        this.paramCount = paramCount;
        this.stateCount = stateCount;
        this.gradSum = new double[paramCount];
        this.bnChannels = bnChannels.clone();
        this.handedIn = new boolean[workers];
    }

    /** Length of a BN vector: forward Σx, Σx² per channel and the count; backward Σdy, Σdy·x̂ per channel. */
    public int bnLength(int layer, boolean forward) throws Wire.ProtocolException {
        if (layer < 0 || layer >= bnChannels.length) throw new Wire.ProtocolException("BN layer " + layer + " (the network has " + bnChannels.length + ")");
        return forward ? 2 * bnChannels[layer] + 1 : 2 * bnChannels[layer];
    }

    /**
     * The sync groups a party of these ranks shares with other parties, ascending: those it has members of
     * but not all. (A group wholly inside one party is summed there and never sent.)
     */
    public static int[] sharedGroups(BnMode bn, int[] ranks) {
        if (!bn.synced()) return new int[0];
        TreeMap<Integer, Integer> members = new TreeMap<>();
        for (int r : ranks) members.merge(bn.groupOf(r), 1, Integer::sum);
        return members.entrySet().stream().filter(e -> e.getValue() < bn.groupSize()).mapToInt(Map.Entry::getKey).toArray();
    }

    /** Checks a party's ranks: at least one, ascending, each in [0, workers). */
    public void checkParty(int[] ranks) throws Wire.ProtocolException {
        if (ranks.length == 0) throw new Wire.ProtocolException("a party of no ranks");
        for (int i = 0; i < ranks.length; i++) {
            if (ranks[i] < 0 || ranks[i] >= workers) throw new Wire.ProtocolException("rank " + ranks[i] + " of " + workers);
            if (i > 0 && ranks[i] <= ranks[i - 1]) throw new Wire.ProtocolException("ranks not ascending: " + Arrays.toString(ranks));
        }
    }

    private static String bnKey(int step, int layer, boolean forward, int group) {
        return step + "/" + layer + "/" + forward + "/" + group;
    }

    /**
     * Adds a party's BN partial sums of a step's layer: for each of its shared groups in order, the sum of
     * its members' parts, one after the other in sums. When every part of a group is in, the group's sum
     * becomes available through bnSums.
     */
    public void addBn(int step, int layer, boolean forward, int[] ranks, double[] sums) throws Wire.ProtocolException {
        if (!bn.synced()) throw new Wire.ProtocolException("BN statistics sent in local BN mode");
        checkParty(ranks);
        int length = bnLength(layer, forward);
        int[] groups = sharedGroups(bn, ranks);
        if (groups.length == 0) throw new Wire.ProtocolException("BN statistics from a party that shares no sync group: " + Arrays.toString(ranks));
        if (sums.length != groups.length * length) {
            throw new Wire.ProtocolException("BN vector of " + sums.length + " values for layer " + layer + ", expected " + groups.length * length);
        }
        for (int k = 0; k < groups.length; k++) {
            String key = bnKey(step, layer, forward, groups[k]);
            TreeMap<Integer, double[]> parts = bnParts.computeIfAbsent(key, x -> new TreeMap<>());
            if (parts.containsKey(ranks[0])) throw new Wire.ProtocolException("second BN contribution of rank " + ranks[0] + " for " + key);
            parts.put(ranks[0], Arrays.copyOfRange(sums, k * length, (k + 1) * length));
            int group = groups[k], members = (int) Arrays.stream(ranks).filter(r -> bn.groupOf(r) == group).count();
            int in = bnRanksIn.merge(key, members, Integer::sum);
            if (in < bn.groupSize()) continue;
            double[] total = new double[length];
            for (double[] part : parts.values()) for (int i = 0; i < length; i++) total[i] += part[i];
            bnSums.put(key, total);
        }
    }

    /** The sums of a party's shared groups for that layer and direction, one after the other, or null while parts are missing. */
    public double[] bnSums(int step, int layer, boolean forward, int[] ranks) throws Wire.ProtocolException {
        int[] groups = sharedGroups(bn, ranks);
        int length = bnLength(layer, forward);
        double[] out = new double[groups.length * length];
        for (int k = 0; k < groups.length; k++) {
            double[] total = bnSums.get(bnKey(step, layer, forward, groups[k]));
            if (total == null) return null;
            System.arraycopy(total, 0, out, k * length, length);
        }
        return out;
    }

    /** Adds a party's gradient report (with running statistics if they are due); returns true when every rank's is in. */
    public boolean addGradient(int[] ranks, Contribution c, boolean statisticsDue) throws Wire.ProtocolException {
        checkParty(ranks);
        int expectedState = statisticsDue ? stateCount : 0;
        if (c.grad().length != paramCount || c.stateSum().length != expectedState) {
            throw new Wire.ProtocolException("gradient of " + c.grad().length + " and state of " + c.stateSum().length + " values, expected " + paramCount
                    + " and " + expectedState);
        }
        if (c.count() < 0 || c.correct() < 0 || c.correct() > c.count() || !Double.isFinite(c.computeS())
                || !Double.isFinite(c.slowestComputeS()) || !Double.isFinite(c.bnWaitS())) {
            throw new Wire.ProtocolException("implausible gradient report (count " + c.count() + ", correct " + c.correct() + ")");
        }
        for (int r : ranks) if (handedIn[r]) throw new Wire.ProtocolException("second gradient of rank " + r);
        for (int r : ranks) handedIn[r] = true;
        contributions.put(ranks[0], c);
        ranksIn += ranks.length;
        return ranksIn == workers;
    }

    /** The step's sums, once every rank's gradient is in, summed in the order of the parties' lowest ranks. */
    public StepReport sum(int epoch, int step) {
        if (ranksIn != workers) throw new IllegalStateException(ranksIn + " of " + workers + " gradients are in");
        boolean withStatistics = contributions.firstEntry().getValue().stateSum().length > 0; // all parties alike (addGradient)
        double[] state = new double[withStatistics ? stateCount : 0];
        Sums t = fold(contributions.values(), gradSum, state);
        float[] meanState = withStatistics ? new float[stateCount] : null;
        for (int i = 0; i < state.length; i++) meanState[i] = (float) (state[i] / workers);
        return new StepReport(epoch, step, gradSum, t.count(), t.lossSum(), t.correct(), meanState, t.computeS() / workers, t.slowestComputeS(),
                t.bnWaitS() / workers);
    }

    /** Contributions' figures summed (the slowest replica's compute: the largest). */
    record Sums(long count, double lossSum, long correct, double computeS, double slowestComputeS, double bnWaitS) {}

    /**
     * Sums contributions, in the order given, into grad and state (overwritten; state empty at a step
     * without statistics) in double precision, the same way for an executor's replicas (ExecutorHub) and
     * for the parties of a step.
     */
    static Sums fold(Iterable<Contribution> parts, double[] grad, double[] state) {
        Arrays.fill(grad, 0);
        Arrays.fill(state, 0);
        long count = 0, correct = 0;
        double loss = 0, compute = 0, slowest = 0, bnWait = 0;
        for (Contribution c : parts) {
            float[] g = c.grad(), st = c.stateSum();
            if (st.length != state.length) throw new IllegalStateException("running statistics of " + st.length + " values among parts of " + state.length);
            for (int i = 0; i < grad.length; i++) grad[i] += g[i];
            for (int i = 0; i < state.length; i++) state[i] += st[i];
            count += c.count();
            correct += c.correct();
            loss += c.lossSum();
            compute += c.computeS();
            slowest = Math.max(slowest, c.slowestComputeS());
            bnWait += c.bnWaitS();
        }
        return new Sums(count, loss, correct, compute, slowest, bnWait);
    }

    /** Forgets every part of the step in progress (a new step, or a relaunched stage attempt). */
    public void clear() {
        contributions.clear();
        Arrays.fill(handedIn, false);
        ranksIn = 0;
        bnParts.clear();
        bnRanksIn.clear();
        bnSums.clear();
    }
}
