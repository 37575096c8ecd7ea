package dev.syncbn.spark;

import dev.syncbn.coord.Coordinator;
import dev.syncbn.coord.CoordinatorClient;
import dev.syncbn.coord.DriverLink;
import dev.syncbn.coord.ExecutorHub;
import dev.syncbn.coord.StepAggregator;
import dev.syncbn.data.Augment;
import dev.syncbn.data.Dataset;
import dev.syncbn.data.Sampler;
import dev.syncbn.nn.Backend;
import dev.syncbn.nn.BnMode;
import dev.syncbn.nn.BnReducer;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.nn.Rendezvous;
import dev.syncbn.nn.SoftmaxCrossEntropy;
import java.io.Serializable;
import java.util.Arrays;
import java.util.Collections;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.IntStream;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.BarrierTaskInfo;
import org.apache.spark.SparkEnv;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractFunction1;

/**
 * One replica's epoch, run as a task of the barrier stage: it gathers its share of the epoch's samples,
 * joins its executor's hub (the replicas of one JVM are one party of the coordination protocol, with one
 * link to the driver: a connection, or a direct call in local mode), and from the step the driver
 * starts it at (the epoch's first, or a relaunched stage's last snapshot) on, per step computes the
 * forward and backward pass of its part of the global batch (BN statistics all-reduced through the hub
 * and the driver's coordinator in sync modes), hands in its gradient (and its running statistics where
 * they are due) and takes the new parameters.
 */
public final class ReplicaTask extends AbstractFunction1<Iterator<Blocks.Part>, Iterator<Integer>> implements Serializable {
    /**
     * Everything a replica needs to know about the run; shipped in the task closure. firstAttempt: what
     * the stage's first attempt is called in the coordination protocol (a stage of a reshaped epoch counts
     * above every attempt of the stages before it).
     */
    public record Job(String host, int port, CoordinatorKey key, SparkEngine.Shares shares, NetSpec spec, BnMode bn, int threads, int epoch,
            int firstAttempt, int failAtStep, boolean augment, long seed) implements Serializable {}

    private final Job job;

    public ReplicaTask(Job job) {
        this.job = job;
    }

    @Override
    public Iterator<Integer> apply(Iterator<Blocks.Part> parts) {
        BarrierTaskContext ctx = BarrierTaskContext.get();
        int rank = ctx.partitionId();
        // where the replicas ran: one line per executor and stage attempt (its lowest rank's), in the executor's
        // log, which in local mode is the console: a line per replica was 32 lines an epoch at W=32
        int[] together = ranksOfThisExecutor(ctx);
        if (rank == together[0]) {
            System.out.println("syncbn replicas " + ranges(together) + " of " + job.shares().workers() + ", epoch " + job.epoch() + ", stage attempt "
                    + ctx.stageAttemptNumber() + ", on executor " + SparkEnv.get().executorId());
        }
        try {
            run(rank, job.firstAttempt() + ctx.stageAttemptNumber(), CollectionConverters.asJava(parts), ctx);
        } catch (IllegalArgumentException e) { // bad data or a refused configuration: every attempt would fail alike
            throw new DeterministicFailure("replica " + rank + " failed in epoch " + job.epoch() + ": " + e.getMessage(), e);
        } catch (Exception e) {
            if (causedBy(e, Rendezvous.Released.class)) awaitKill(ctx);
            throw new IllegalStateException("replica " + rank + " failed in epoch " + job.epoch() + ": " + e.getMessage(), e);
        }
        return CollectionConverters.asScala(Collections.singletonList(rank).iterator());
    }

    private static boolean causedBy(Throwable e, Class<? extends Throwable> kind) {
        for (Throwable t = e; t != null; t = t.getCause()) if (kind.isInstance(t)) return true;
        return false;
    }

    /**
     * A replica released from a meeting by another replica's failure in this executor only echoes that
     * failure, and Spark kills every task of a failed barrier stage (or of a job the driver cancels): it
     * waits up to 10 s for that kill instead of failing first, which made Spark log the echo's stack trace
     * before the real cause (a diverging run's console showed 71 lines).
     */
    private static void awaitKill(BarrierTaskContext ctx) {
        try {
            for (int waited = 0; waited < 10_000 && !ctx.isInterrupted(); waited += 10) Thread.sleep(10);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        ctx.killTaskIfInterrupted();
    }

    /**
     * A replica's failure that a relaunched stage would meet again (bad data, a refused configuration).
     * The driver sees its class name in the task's failure and ends the epoch's job at once instead of
     * letting Spark relaunch the barrier stage spark.stage.maxConsecutiveAttempts times.
     */
    public static final class DeterministicFailure extends IllegalStateException {
        DeterministicFailure(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** The hubs of this JVM's replicas, one per coordinator, epoch and stage attempt. */
    private static final ConcurrentHashMap<String, ExecutorHub> HUBS = new ConcurrentHashMap<>();

    /** Ascending ranks as "3" or "0-31" where they run without a gap, else listed: "[0, 2, 5]". */
    static String ranges(int[] ranks) {
        if (ranks.length == 1) return Integer.toString(ranks[0]);
        if (ranks[ranks.length - 1] - ranks[0] == ranks.length - 1) return ranks[0] + "-" + ranks[ranks.length - 1];
        return Arrays.toString(ranks);
    }

    /** The ranks of the barrier stage whose tasks run in this executor (the same address), ascending. */
    static int[] ranksOfThisExecutor(BarrierTaskContext ctx) {
        // indexed by partition, which is the rank; address: the executor's RPC host:port, one per executor JVM
        BarrierTaskInfo[] tasks = ctx.getTaskInfos();
        String mine = tasks[ctx.partitionId()].address();
        return IntStream.range(0, tasks.length).filter(r -> tasks[r].address().equals(mine)).toArray();
    }

    private void run(int rank, int attempt, java.util.Iterator<Blocks.Part> parts, BarrierTaskContext ctx) throws Exception {
        Dataset mine = Blocks.merge(parts, job.shares().samplesOf(rank), job.spec());
        Backend.init();
        String hubKey = job.host() + ":" + job.port() + "/" + job.epoch() + "/" + attempt;
        try (ConvNet net = new ConvNet(job.spec(), SparkEngine.replicaBatch(job.shares().batchPerWorker(), mine.size()), job.threads(), ConvNet.Kernels.FAST)) {
            int paramCount = net.paramCount(), stateCount = net.state.length();
            ExecutorHub hub = HUBS.computeIfAbsent(hubKey, k -> new ExecutorHub(ranksOfThisExecutor(ctx), job.bn(), (ranks, killed) -> {
                Coordinator driver = Coordinator.inThisJvm(job.port(), job.key().key()); // local mode: the driver is this JVM
                return driver != null ? driver.localParty(ranks, job.epoch(), attempt, killed)
                        : new CoordinatorClient(job.host(), job.port(), job.key().key(), job.key().encrypt(), ranks, job.epoch(), attempt, paramCount,
                                stateCount, job.spec().bnChannels(), killed);
            }));
            try (ExecutorHub.Replica client = hub.replica(rank, ctx::isInterrupted)) {
                train(rank, attempt, mine, net, client);
            } finally {
                // The first replica out unlists the hub (its mates hold it already: every step needs them all,
                // so all have joined before any can leave normally); a hub of a failed attempt does not linger.
                HUBS.remove(hubKey, hub);
            }
        }
    }

    private void train(int rank, int attempt, Dataset mine, ConvNet net, ExecutorHub.Replica client) throws Exception {
        int b = job.shares().batchPerWorker();
        DriverLink.Welcome welcome = client.welcome();
        net.params.copyFrom(welcome.params());
        net.state.copyFrom(welcome.state());
        net.setReducer(job.bn().synced() ? client : BnReducer.LOCAL);
        int steps = job.shares().steps(), workers = job.shares().workers();
        int[] order = new int[mine.size()];
        for (int i = 0; i < order.length; i++) order[i] = i;
        int[] labels = new int[net.maxBatch];
        float[] grads = new float[net.paramCount()], state = new float[net.state.length()];
        for (int step = welcome.startStep(); step < steps; step++) {
            if (step == job.failAtStep() && rank == 0 && attempt == 0) {
                throw new IllegalStateException("injected failure at step " + step + " (--fail-at-step, for tests)");
            }
            int from = Math.min(step * b, mine.size()), n = Math.min(b, mine.size() - from);
            int global = job.shares().globalBatch(step);
            long t0 = System.nanoTime();
            if (job.augment()) Augment.fill(mine, order, from, n, net.input, labels, job.seed(), job.epoch(), Sampler.position(rank, from, workers), workers);
            else mine.fill(order, from, n, net.input, labels);
            SoftmaxCrossEntropy.Result r;
            if (n == 0 && !job.bn().synced()) {
                // nothing to compute and no statistics to share: a zero gradient
                net.grads.fill(0);
                r = new SoftmaxCrossEntropy.Result(0, 0);
            } else {
                r = net.trainStep(n, labels, global);
            }
            double bnWait = client.takeBnWaitSeconds();
            double compute = (System.nanoTime() - t0) / 1e9 - bnWait;
            net.grads.copyTo(grads);
            boolean statisticsDue = StepAggregator.statisticsDue(step, steps);
            if (statisticsDue) net.state.copyTo(state);
            net.params.copyFrom(client.exchange(StepAggregator.Contribution.ofReplica(n, r.lossSum(), r.correct(), compute, bnWait, grads,
                    statisticsDue ? state : StepAggregator.NO_STATISTICS)));
        }
    }
}
