package dev.syncbn.spark;

import dev.syncbn.coord.Coordinator;
import dev.syncbn.coord.RunState;
import dev.syncbn.coord.StepAggregator;
import dev.syncbn.data.Dataset;
import dev.syncbn.data.Sampler;
import dev.syncbn.nn.Backend;
import dev.syncbn.nn.BnMode;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.optim.Adam;
import dev.syncbn.train.Engine;
import dev.syncbn.train.PreciseBn;
import dev.syncbn.train.Totals;
import dev.syncbn.train.TrainConfig;
import java.io.IOException;
import java.io.Serializable;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntSupplier;
import org.apache.spark.ExceptionFailure;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.storage.StorageLevel;
import org.bytedeco.javacpp.Pointer;
import scala.reflect.ClassTag$;

/**
 * Data-parallel training on Spark: W replicas, one per partition, gang-scheduled as one barrier stage
 * per epoch, talking to the driver's Coordinator every step. The driver holds the only authoritative
 * parameters, Adam state, step counter and BN running statistics (in `net` and `adam`).
 *
 * Running statistics: in sync mode the replicas' stay identical. In local and group modes each replica
 * keeps its own during the epoch; the driver gets their average (summed per executor) every
 * StepAggregator.STATISTICS_EVERY steps and at the epoch's end, and that last one is what evaluation and
 * checkpoints use and what every replica starts the next epoch from (so a resumed run continues
 * exactly). A relaunched stage goes back to the driver's last snapshot (Coordinator) and starts every
 * replica from the average: running statistics are linear in the batch statistics, so the epoch ends
 * with the same average, up to float rounding (exactly in sync mode).
 *
 * Elastic (--elastic MIN): the global batch G = W*b is fixed, and the global shuffle gives step j the
 * same samples whatever the number of replicas (Sampler), so in sync BN any W' dividing G computes the
 * same steps. When the task slots stay below the stage's replicas for --elastic-wait seconds (an
 * executor lost for good: Spark's relaunched barrier stage would wait for ever), the driver cancels the
 * stage and goes on from its last snapshot with fewer replicas, as a relaunch does (the new stage's
 * attempts count above every earlier one, so the coordination service drops the old one's parties).
 * Each epoch starts with as many replicas as the slots then hold, up to W. How many: Elasticity.
 */
public final class SparkEngine implements Engine {
    /**
     * Which samples each replica trains on in every step of an epoch. Global shuffle (blockSizes null):
     * DistributedSampler's deal of one seeded permutation of all trainSize samples. Partition shuffle:
     * replica r visits its own block of blockSizes[r] samples in a seeded order of its own, b per step,
     * for as many steps as the largest block needs (a replica whose block is used up contributes empty
     * batches).
     */
    public record Shares(int trainSize, int workers, int batchPerWorker, int[] blockSizes) implements Serializable {
        public int steps() {
            if (blockSizes == null) return Sampler.steps(trainSize, workers * batchPerWorker);
            int largest = 0;
            for (int s : blockSizes) largest = Math.max(largest, s);
            return Math.max(1, Sampler.steps(largest, batchPerWorker));
        }

        /** How many samples replica rank holds for the epoch. */
        public int samplesOf(int rank) {
            return blockSizes == null ? Sampler.countFor(rank, trainSize, workers) : blockSizes[rank];
        }

        /** The global batch of a step: the samples of all replicas together. */
        public int globalBatch(int step) {
            if (blockSizes == null) return Math.min(workers * batchPerWorker, trainSize - step * workers * batchPerWorker);
            int total = 0;
            for (int s : blockSizes) total += Math.max(0, Math.min(batchPerWorker, s - step * batchPerWorker));
            return total;
        }
    }


    private final JavaSparkContext sc;
    private final TrainConfig s;
    private final int threadsPerTask; // spark.task.cpus
    private final NetSpec spec;
    private final int trainSize, testSize;
    private final JavaRDD<Blocks.Block> trainBlocks, testBlocks;
    private final ConvNet net;
    private final Adam adam, adamSnapshot;
    private final Coordinator coordinator;
    private final CoordinatorKey key;
    private final Elasticity elasticity;
    private volatile Shares shares; // the current shape: W and b as asked, or as an elastic run reshaped them

    /** A stage's attempts count from launch * ATTEMPTS_PER_LAUNCH (a reshaped epoch's next stage counts above every earlier one). */
    static final int ATTEMPTS_PER_LAUNCH = 1000;

    /** Training and test data from the driver's memory, shipped to the executors as W blocks each. */
    public SparkEngine(JavaSparkContext sc, Dataset train, Dataset test, TrainConfig s) throws IOException {
        this(sc, SparkData.of(sc, train, test, s.workers()), s);
    }

    /** The engine of the run s (of it: workers, batchPerWorker, bn, lr, seed, shuffle, failAtStep), each replica with spark.task.cpus threads. */
    public SparkEngine(JavaSparkContext sc, SparkData data, TrainConfig s) throws IOException {
        this(sc, data, s, SparkSetup.taskCpus(sc.getConf()), () -> SparkSetup.liveTaskSlots(sc));
    }

    /**
     * threadsPerTask: what the replicas are told spark.task.cpus is (tests give them a number they
     * refuse); slots: the task slots a barrier stage could use now (tests of elasticity make them shrink).
     */
    SparkEngine(JavaSparkContext sc, SparkData data, TrainConfig s, int threadsPerTask, IntSupplier slots) throws IOException {
        this.threadsPerTask = threadsPerTask;
        this.elasticity = new Elasticity(s, slots);
        int configuredSlots = SparkSetup.taskSlots(sc);
        if (s.workers() > configuredSlots && !s.elastic()) {
            throw new IllegalArgumentException("--workers " + s.workers() + " needs " + s.workers() + " task slots at once (a barrier stage), but "
                    + sc.master() + " with spark.task.cpus=" + SparkSetup.taskCpus(sc.getConf()) + " has " + configuredSlots);
        }
        if (data.trainSize() < 1) throw new IllegalArgumentException("no training data");
        this.sc = sc;
        this.s = s;
        this.trainSize = data.trainSize();
        this.testSize = data.testSize();
        this.spec = data.spec(s.net());
        this.net = new ConvNet(spec, 1, 1, ConvNet.Kernels.FAST);
        net.init(s.seed());
        this.adam = new Adam(net.params, s.lr());
        this.adamSnapshot = new Adam(net.params, s.lr());
        this.trainBlocks = data.train().persist(StorageLevel.MEMORY_ONLY());
        this.testBlocks = data.test().persist(StorageLevel.MEMORY_ONLY());
        this.key = CoordinatorKey.forRun(sc.getConf());
        if (s.shufflePartitions()) {
            // one cached block per replica, for the whole run
            List<Integer> sizes = trainBlocks.map(Blocks.Block::size).collect();
            if (sizes.size() != s.workers() || trainBlocks.getNumPartitions() != s.workers()) {
                throw new IllegalArgumentException("--shuffle partition needs the training data in " + s.workers() + " blocks (one per replica), it has " + sizes.size());
            }
            this.shares = new Shares(trainSize, s.workers(), s.batchPerWorker(), sizes.stream().mapToInt(Integer::intValue).toArray());
        } else {
            this.shares = new Shares(trainSize, s.workers(), s.batchPerWorker(), null);
        }
        checkMemory(sc, shares, spec, threadsPerTask);
        this.coordinator = new Coordinator(driverHost(sc), s.workers(), s.bn(), net.paramCount(), net.state.length(), spec.bnChannels(), key.key(),
                key.encrypt());
    }

    /**
     * Refuses, before any stage starts, replicas that cannot fit in their executor's off-heap memory
     * (ND4J's buffers; JavaCPP's limit, which is the JVM's -Xmx unless org.bytedeco.javacpp.maxbytes says
     * otherwise): each replica is sized by the samples it can get, at most b.
     */
    static void checkMemory(JavaSparkContext sc, Shares shares, NetSpec spec, int threadsPerTask) {
        int largest = 0, w = shares.workers(), b = shares.batchPerWorker();
        for (int r = 0; r < w; r++) largest = Math.max(largest, shares.samplesOf(r));
        long perReplica = ConvNet.bytesFor(spec, replicaBatch(b, largest), threadsPerTask);
        // replicas that share an executor JVM: all of them in local mode; else as many as its cores hold (if
        // spark.executor.cores is not set, one: this check refuses only what surely cannot fit)
        int together = sc.isLocal() ? w : Math.min(w, Math.max(1, sc.getConf().getInt("spark.executor.cores", 1) / Math.max(1, threadsPerTask)));
        long limit = sc.isLocal() ? Pointer.maxBytes() : sc.getConf().getSizeAsBytes("spark.executor.memory", "1g");
        if ((double) perReplica * together > limit) {
            throw new IllegalArgumentException(String.format(Locale.ROOT,
                    "--batch-per-worker %d: a replica of up to %d samples needs at least %.0f MB of off-heap memory, %d replica(s) per executor %.0f MB, "
                            + "but the %s allows %.0f MB; lower --batch-per-worker or give it more memory (%s)",
                    b, replicaBatch(b, largest), perReplica / 1e6, together, (double) perReplica * together / 1e6,
                    sc.isLocal() ? "driver (local mode)" : "executor", limit / 1e6, sc.isLocal() ? "--driver-memory" : "spark.executor.memory"));
        }
    }

    /** A replica's buffers hold this many samples: b, or fewer if it can never get b. */
    static int replicaBatch(int batchPerWorker, int samples) {
        return Math.max(1, Math.min(batchPerWorker, samples));
    }

    private static String driverHost(JavaSparkContext sc) {
        return sc.getConf().get("spark.driver.host", "127.0.0.1");
    }

    /** How the coordination channel is protected, for the run's log. */
    public String channelDescription() {
        return "coordination service on " + coordinator.host() + ":" + coordinator.port() + ": frames " + (key.encrypt() ? "encrypted and sealed" : "sealed")
                + " (AES-GCM), key " + (key.fromSparkSecret() ? "derived from Spark's secret (spark.authenticate)" : "shipped in the task closure");
    }

    public int paramCount() {
        return net.paramCount();
    }

    /** Bytes the coordination service received and sent so far: none in local mode, where the replicas call it directly. */
    long[] coordinatorBytes() {
        return coordinator.bytesMoved();
    }

    @Override
    public Adam adam() {
        return adam;
    }

    @Override
    public int stepsPerEpoch() {
        return shares.steps();
    }

    @Override
    public EpochResult trainEpoch(int epoch, Progress progress) throws Exception {
        if (s.elastic()) reshape(elasticity.workersForEpoch(epoch, shares.workers()));
        int steps = stepsPerEpoch();
        double[] split = new double[5];
        Totals[] soFar = {Totals.NONE};
        // by step (stepDone hears of each step once, even of those a relaunched stage recomputes)
        double[] stepS = new double[steps], outsideS = new double[steps], overheadS = new double[steps];
        coordinator.runState().startEpoch(epoch, steps, 0, net.params.toFloats(), net.state.toFloats(), shares.workers(), bn(), new RunState.StepHandler() {
            @Override
            public void apply(StepAggregator.StepReport report, float[] params) {
                Engine.checkFinite(report.lossSum(), epoch, report.step());
                // the replicas' gradients are already scaled by 1/(global batch): their sum is the global gradient
                adam.apply(net.params, report.gradSum());
                net.params.copyTo(params);
            }

            @Override
            public void snapshot() {
                adam.copyStateTo(adamSnapshot);
            }

            @Override
            public void rollback(float[] params) {
                adamSnapshot.copyStateTo(adam);
                net.params.copyFrom(params);
            }

            @Override
            public void stepDone(StepAggregator.StepReport r, RunState.StepTimes t) {
                soFar[0] = soFar[0].plus(new Totals(r.lossSum(), r.correct(), r.count()));
                split[0] += t.computeS();
                split[1] += t.bnWaitS();
                split[2] += t.exchangeS();
                split[3] += t.updateS();
                split[4] += t.straggleS();
                outsideS[r.step()] = t.bnWaitS() + t.exchangeS() + t.updateS();
                overheadS[r.step()] = Math.max(0, outsideS[r.step()] - t.straggleS());
                stepS[r.step()] = t.computeS() + outsideS[r.step()];
                progress.step(r.step(), steps, shares.workers(), r.lossSum() / r.count(), soFar[0]);
            }
        });
        for (int launch = 0; ; launch++) {
            try {
                runStage(epoch, launch);
                break;
            } catch (Elasticity.SlotsLost lost) {
                int w = elasticity.workersAfterLoss(epoch, shares.workers(), lost.slots, coordinator.runState(), steps);
                reshape(w);
                coordinator.runState().reshape(w, bn(), (launch + 1) * ATTEMPTS_PER_LAUNCH);
            }
        }
        if (coordinator.runState().step() != steps) throw new IllegalStateException("epoch " + epoch + " ended at step " + coordinator.runState().step() + " of " + steps);
        net.state.copyFrom(coordinator.runState().state());
        return new EpochResult(soFar[0], split[0] * 1e3 / steps, split[1] * 1e3 / steps,
                split[2] * 1e3 / steps, split[3] * 1e3 / steps, Engine.medianMs(stepS, steps), Engine.medianMs(outsideS, steps), split[4] * 1e3 / steps,
                Engine.medianMs(overheadS, steps), shares.workers()); // the shape of the stage that ended the epoch
    }

    /**
     * One barrier stage of the epoch's replicas, from where the driver's run state stands. launch: the how
     * many-th stage of this epoch (its attempts count from launch * ATTEMPTS_PER_LAUNCH). In an elastic run,
     * a watcher ends the stage when the task slots stay below its replicas for --elastic-wait seconds.
     */
    private void runStage(int epoch, int launch) throws Exception {
        Shares shape = shares;
        int w = shape.workers();
        JavaRDD<Blocks.Part> parts = replicaParts(epoch, w);
        ReplicaTask worker = new ReplicaTask(new ReplicaTask.Job(coordinator.host(), coordinator.port(), key, shape, spec, bn(), threadsPerTask, epoch,
                launch * ATTEMPTS_PER_LAUNCH, s.failAtStep(), s.augment(), s.seed()));
        // A failure the driver knows to be deterministic (a non-finite loss) cancels the epoch's job at once:
        // Spark would otherwise relaunch the barrier stage spark.stage.maxConsecutiveAttempts times in vain.
        String group = "syncbn-" + coordinator.port() + "-epoch-" + epoch + "-" + launch;
        sc.setJobGroup(group, "syncbn epoch " + epoch + " (" + w + " replicas, barrier stage)", true); // sets the job description too
        coordinator.runState().onFailure(() -> sc.cancelJobGroup(group));
        // Likewise a replica's deterministic failure, which Spark only reports as a failed task.
        AtomicReference<String> replicaFailure = new AtomicReference<>();
        SparkListener deterministic = new SparkListener() {
            @Override
            public void onTaskEnd(SparkListenerTaskEnd end) {
                if (end.reason() instanceof ExceptionFailure f && f.className().equals(ReplicaTask.DeterministicFailure.class.getName())
                        && replicaFailure.compareAndSet(null, f.description())) {
                    sc.cancelJobGroup(group);
                }
            }
        };
        sc.sc().addSparkListener(deterministic);
        Elasticity.Watch watch = s.elastic() ? elasticity.watch(w, () -> sc.cancelJobGroup(group)) : null;
        // A failed barrier stage is retried only if it is a shuffle-map stage (Spark cannot retry a result
        // stage whose output may already be partly taken), hence the one-partition shuffle after it.
        try {
            JavaRDD.fromRDD(parts.rdd().barrier().mapPartitions(worker, false, ClassTag$.MODULE$.apply(Integer.class)),
                    ClassTag$.MODULE$.apply(Integer.class)).repartition(1).count();
        } catch (Exception e) { // the driver's own failure (say, a NaN loss) is the one to report, not the replicas' it caused
            if (coordinator.runState().failure() == null && watch != null && watch.fired()) throw new Elasticity.SlotsLost(watch.slotsSeen(), e);
            if (coordinator.runState().failure() == null && replicaFailure.get() != null) {
                throw new IllegalArgumentException(replicaFailure.get() + " (not retried: it would fail again)", e);
            }
            throw driverFailureOr(e);
        } finally {
            if (watch != null) watch.close();
            sc.sc().removeSparkListener(deterministic);
            sc.clearJobGroup(); // a thread's job group and description stick to every later job of the thread
            sc.setJobDescription(null);
        }
        if (coordinator.runState().failure() != null) throw driverFailureOr(null);
    }

    /** The run's BN mode over the current replicas. */
    private BnMode bn() {
        return s.bn().forWorkers(shares.workers());
    }

    /** W' replicas of G/W' samples each (if W' is not the current W); refused before it starts if such replicas do not fit the executors' memory. */
    private void reshape(int w) {
        if (w == shares.workers()) return;
        Shares next = new Shares(trainSize, w, s.workers() * s.batchPerWorker() / w, null);
        checkMemory(sc, next, spec, threadsPerTask);
        shares = next;
    }

    /**
     * Each replica's samples of an epoch, one partition per replica, in the order it visits them. Global
     * shuffle: every block sends each sample to the replica that visits it this epoch (a shuffle of all
     * blocks); partition shuffle: replica r takes cached block r as it is, in an order of its own.
     */
    private JavaRDD<Blocks.Part> replicaParts(int epoch, int workers) {
        long n = trainSize, seed = s.seed();
        return s.shufflePartitions()
                ? trainBlocks.mapPartitionsWithIndex((rank, blocks) -> List.of(Blocks.shuffledWithin(blocks.next(), rank, seed, epoch)).iterator(), true)
                : trainBlocks.flatMapToPair(block -> Blocks.assign(block, (int) n, seed, epoch, workers)).partitionBy(new Blocks.ReplicaPartitioner(workers))
                        .values();
    }

    /**
     * Precise BN on the executors: each replica's first whole batches of b of its epoch-0 samples (the
     * batches it would train on), ceil(batches / W) each, however the data happen to be split into blocks.
     */
    @Override
    public void preciseBn(int batches) {
        Shares shares = this.shares;
        int b = shares.batchPerWorker(), threads = threadsPerTask, perReplica = (batches + shares.workers() - 1) / shares.workers();
        NetSpec spec = this.spec;
        float[] params = net.params.toFloats(), state = net.state.toFloats();
        double[] sums = replicaParts(0, shares.workers()).mapPartitionsWithIndex((rank, parts) -> {
            Dataset mine = Blocks.merge(parts, shares.samplesOf(rank), spec);
            Backend.init();
            try (ConvNet replica = new ConvNet(spec, replicaBatch(b, mine.size()), threads, ConvNet.Kernels.FAST)) {
                replica.params.copyFrom(params);
                replica.state.copyFrom(state);
                int[] order = new int[mine.size()];
                for (int i = 0; i < order.length; i++) order[i] = i;
                return List.of(PreciseBn.batchStatistics(replica, mine, order, b, perReplica)).iterator();
            }
        }, true).reduce((x, y) -> {
            double[] z = x.clone();
            for (int i = 0; i < z.length; i++) z[i] += y[i];
            return z;
        });
        setAveragedStatistics(sums);
    }

    /** The coordinator's own failure, with the stage's failure attached, or else the stage's failure. */
    private Exception driverFailureOr(Exception stageFailure) {
        Throwable driver = coordinator.runState().failure();
        if (driver == null) return stageFailure;
        RuntimeException e = driver instanceof RuntimeException re ? re : new IllegalStateException(driver.getMessage(), driver);
        if (stageFailure != null) e.addSuppressed(stageFailure);
        return e;
    }

    @Override
    public Totals evaluate() {
        if (testSize == 0) return Totals.NONE; // nothing to evaluate on (an Estimator without a validation set)
        return evaluate(testBlocks, spec, net.params.toFloats(), net.state.toFloats(), threadsPerTask).totals();
    }

    /** Evaluation of a model over blocks of samples, one task per block, summed on the driver. */
    public static Evaluator.Evaluation evaluate(JavaRDD<Blocks.Block> blocks, NetSpec spec, float[] params, float[] state, int threads) {
        return blocks.mapPartitions(new Evaluator(spec, params, state, threads)).reduce(Evaluator.Evaluation::plus);
    }

    @Override
    public ConvNet net() {
        return net;
    }

    @Override
    public void close() {
        try {
            coordinator.close();
        } catch (IOException ignored) {
            // the server socket is gone either way
        }
        trainBlocks.unpersist(false);
        testBlocks.unpersist(false);
        net.close();
    }
}
