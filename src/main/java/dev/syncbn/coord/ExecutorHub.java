package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;
import dev.syncbn.nn.BnReducer;
import dev.syncbn.nn.Rendezvous;
import java.io.IOException;
import java.util.Arrays;
import java.util.List;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.BooleanSupplier;

/**
 * The replicas that share an executor JVM, as one party of the coordination protocol (a hierarchical
 * all-reduce, as Horovod and NCCL do inside a node). At each BN reduction and at each gradient hand-in
 * the replicas meet here; their parts are summed in rank order; sync groups wholly inside this JVM are
 * finished here and never sent; one link to the driver (a connection, or a direct call in local mode,
 * where the driver is this JVM) carries the rest and brings back one copy of the parameters for all. A
 * replica that fails, or whose task is killed, breaks the hub: the others fail too and the link closes,
 * so the stage fails as it would with a connection per replica.
 */
public final class ExecutorHub {
    /** Opens the party's link to the driver (called once, by the first replica that asks for the welcome). */
    public interface Connector {
        DriverLink connect(int[] ranks, BooleanSupplier killed) throws IOException;
    }

    private final int[] ranks;
    private final BnMode bn;
    private final Connector connector;
    private final Rendezvous rendezvous;
    private final List<BooleanSupplier> killed = new CopyOnWriteArrayList<>();
    // What each replica (by its index in ranks) brought to the current meeting; its BN sums are replaced by the totals there.
    private final double[][] bnSums;
    private final StepAggregator.Contribution[] handIns;
    // the hand-in's sums, reused every step (the link has sent or summed them before the hand-in returns)
    private double[] gradSum, stateSum;
    private static final double[] NO_SUMS = new double[0];
    private float[] gradOut, stateOut;
    private float[] params;
    private DriverLink link;
    private DriverLink.Welcome welcome;
    private int closedReplicas;

    /** ranks: the replicas of this JVM, ascending. */
    public ExecutorHub(int[] ranks, BnMode bn, Connector connector) {
        this.ranks = ranks.clone();
        for (int i = 1; i < ranks.length; i++) if (ranks[i] <= ranks[i - 1]) throw new IllegalArgumentException("ranks not ascending: " + Arrays.toString(ranks));
        this.bn = bn;
        this.connector = connector;
        this.rendezvous = new Rendezvous(ranks.length);
        this.bnSums = new double[ranks.length][];
        this.handIns = new StepAggregator.Contribution[ranks.length];
    }

    /** The handle of replica rank (one of this hub's ranks); killed tells whether its task was killed. */
    public Replica replica(int rank, BooleanSupplier killed) {
        int index = Arrays.binarySearch(ranks, rank);
        if (index < 0) throw new IllegalArgumentException("rank " + rank + " is not one of this executor's " + Arrays.toString(ranks));
        this.killed.add(killed);
        return new Replica(index);
    }

    private synchronized DriverLink.Welcome welcome() throws IOException {
        if (welcome == null) {
            if (rendezvous.failed()) throw new IllegalStateException("another replica of this executor failed");
            link = connector.connect(ranks, () -> rendezvous.failed() || killed.stream().anyMatch(BooleanSupplier::getAsBoolean));
            welcome = link.welcome();
        }
        return welcome;
    }

    /** A BN reduction, once every replica's part is in bnSums: sum per group in rank order, ask the driver for shared groups, hand out the totals. */
    private void reduceBn(int layer, boolean forward, int length) {
        TreeMap<Integer, double[]> byGroup = new TreeMap<>();
        for (int i = 0; i < ranks.length; i++) {
            double[] total = byGroup.computeIfAbsent(bn.groupOf(ranks[i]), g -> new double[length]);
            for (int j = 0; j < length; j++) total[j] += bnSums[i][j];
        }
        int[] shared = StepAggregator.sharedGroups(bn, ranks);
        if (shared.length > 0) {
            double[] packed = new double[shared.length * length];
            for (int k = 0; k < shared.length; k++) System.arraycopy(byGroup.get(shared[k]), 0, packed, k * length, length);
            link.allReduce(layer, forward, packed);
            for (int k = 0; k < shared.length; k++) System.arraycopy(packed, k * length, byGroup.get(shared[k]), 0, length);
        }
        for (int i = 0; i < ranks.length; i++) System.arraycopy(byGroup.get(bn.groupOf(ranks[i])), 0, bnSums[i], 0, length);
    }

    /** A gradient hand-in, once every replica's report is in: sum them in rank order, hand in the sum, keep the new parameters. */
    private void handIn() throws IOException {
        StepAggregator.Contribution first = handIns[0];
        int p = first.grad().length, s = first.stateSum().length; // s: 0 at a step without running statistics
        if (gradSum == null) {
            gradSum = new double[p];
            gradOut = new float[p];
        }
        if (s > 0 && stateSum == null) {
            stateSum = new double[s];
            stateOut = new float[s];
        }
        StepAggregator.Sums t = StepAggregator.fold(Arrays.asList(handIns), gradSum, s > 0 ? stateSum : NO_SUMS);
        for (int i = 0; i < p; i++) gradOut[i] = (float) gradSum[i];
        for (int i = 0; i < s; i++) stateOut[i] = (float) stateSum[i];
        params = link.exchange(new StepAggregator.Contribution(t.count(), t.lossSum(), t.correct(), t.computeS(), t.slowestComputeS(), t.bnWaitS(), gradOut,
                s > 0 ? stateOut : StepAggregator.NO_STATISTICS));
    }

    /** One replica's side of the hub: its BN reducer, its welcome and its gradient hand-in. */
    public final class Replica implements BnReducer, AutoCloseable {
        private final int index;
        private long bnWaitNanos;
        private boolean closed;

        private Replica(int index) {
            this.index = index;
        }

        /** Where the run stands: the driver's step, parameters and running statistics (the same for every replica of the hub). */
        public DriverLink.Welcome welcome() throws IOException {
            try {
                return ExecutorHub.this.welcome();
            } catch (IOException | RuntimeException e) {
                rendezvous.fail();
                throw e;
            }
        }

        @Override
        public void allReduce(int layer, boolean forward, double[] sums) {
            long t0 = System.nanoTime();
            try {
                bnSums[index] = sums;
                rendezvous.await(() -> reduceBn(layer, forward, sums.length));
            } catch (RuntimeException e) {
                rendezvous.fail();
                throw e;
            }
            bnWaitNanos += System.nanoTime() - t0;
        }

        /** Seconds spent in BN reductions since the last call. */
        public double takeBnWaitSeconds() {
            double s = bnWaitNanos / 1e9;
            bnWaitNanos = 0;
            return s;
        }

        /**
         * Hands in this replica's contribution to the step (with its running statistics where
         * StepAggregator.statisticsDue, else NO_STATISTICS; its slowest compute is its own); returns the
         * parameters after the driver's update, an array shared by the hub's replicas: copy it before the
         * next step.
         */
        public float[] exchange(StepAggregator.Contribution contribution) throws IOException {
            try {
                handIns[index] = contribution;
                rendezvous.await(ExecutorHub.this::handIn);
                return params; // replaced by the next hand-in, which needs every replica back, so after each has copied it
            } catch (IOException | RuntimeException e) {
                rendezvous.fail();
                throw e;
            }
        }

        /**
         * Leaves the hub. Breaks it for replicas still inside (a replica that leaves early has failed);
         * the last one out closes the connection.
         */
        @Override
        public void close() {
            rendezvous.fail();
            synchronized (ExecutorHub.this) {
                if (closed) return;
                closed = true;
                if (++closedReplicas == ranks.length && link != null) link.close();
            }
        }
    }
}
