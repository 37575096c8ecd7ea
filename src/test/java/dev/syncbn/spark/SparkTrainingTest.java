package dev.syncbn.spark;

import dev.syncbn.coord.StepAggregator;
import dev.syncbn.data.Dataset;
import dev.syncbn.data.ParquetData;
import dev.syncbn.data.Sampler;
import dev.syncbn.nn.BnMode;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.optim.Adam;
import dev.syncbn.train.Engine;
import dev.syncbn.train.LocalEngine;
import dev.syncbn.train.ModelFile;
import dev.syncbn.train.PreciseBn;
import dev.syncbn.train.TestData;
import dev.syncbn.train.Totals;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.Trainer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.LongAdder;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerStageSubmitted;
import org.apache.spark.scheduler.SparkListenerTaskEnd;
import org.apache.spark.sql.SparkSession;
import org.bytedeco.javacpp.Pointer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Spark trainer in local mode against the single-process reference. */
class SparkTrainingTest {
    static JavaSparkContext sc;
    static Dataset train, test;

    @BeforeAll
    static void start() throws Exception {
        sc = LocalSpark.start();
        train = TestData.train();
        test = TestData.test().head(200);
    }

    @AfterAll
    static void stop() {
        if (sc != null) sc.stop();
    }

    record Run(List<Double> stepLosses, float[] params, float[] state) {}

    static Run runSpark(int n, int workers, int batch, String bn, int epochs, int failAtStep) throws Exception {
        return runSpark(n, workers, batch, bn, epochs, failAtStep, false);
    }

    static Run runSpark(int n, int workers, int batch, String bn, int epochs, int failAtStep, boolean shufflePartitions) throws Exception {
        return runSpark(NetSpec.SEED, 1e-3, n, workers, batch, bn, epochs, failAtStep, shufflePartitions);
    }

    static Run runSpark(String net, double lr, int n, int workers, int batch, String bn, int epochs, int failAtStep, boolean shufflePartitions) throws Exception {
        Dataset data = train.head(n);
        List<Double> losses = new ArrayList<>();
        try (SparkEngine e = new SparkEngine(sc, data, test, TrainConfig.builder().net(net).workers(workers).batchPerWorker(batch).bn(bn).lr(lr).seed(7)
                .failAtStep(failAtStep).shuffle(shufflePartitions ? "partition" : "global").build())) {
            for (int epoch = 1; epoch <= epochs; epoch++) {
                e.trainEpoch(epoch, (s, steps, replicas, loss, soFar) -> losses.add(loss));
            }
            ModelFile model = e.snapshot(epochs, Map.of());
            return new Run(losses, model.params(), model.state());
        }
    }

    static Run runLocal(int n, int batch, int epochs) throws Exception {
        return runLocal(NetSpec.SEED, 1e-3, n, batch, epochs);
    }

    static Run runLocal(String net, double lr, int n, int batch, int epochs) throws Exception {
        Dataset data = train.head(n);
        List<Double> losses = new ArrayList<>();
        try (LocalEngine e = new LocalEngine(data, test, net, batch, lr, 7, 2)) {
            for (int epoch = 1; epoch <= epochs; epoch++) {
                e.trainEpoch(epoch, (s, steps, replicas, loss, soFar) -> losses.add(loss));
            }
            ModelFile model = e.snapshot(epochs, Map.of());
            return new Run(losses, model.params(), model.state());
        }
    }

    static void assertClose(Run expected, Run actual, double tolerance) {
        assertClose(expected, actual, tolerance, tolerance);
    }

    /** Every step's loss within lossTolerance of expected's (relative), and the final parameters within paramTolerance. */
    static void assertClose(Run expected, Run actual, double lossTolerance, double paramTolerance) {
        assertEquals(expected.stepLosses().size(), actual.stepLosses().size(), "steps");
        for (int i = 0; i < expected.stepLosses().size(); i++) {
            double a = expected.stepLosses().get(i), b = actual.stepLosses().get(i);
            assertTrue(Math.abs(a - b) <= lossTolerance * Math.abs(a), "step " + i + " loss " + a + " vs " + b);
        }
        assertTrue(relativeError(expected.params(), actual.params()) < paramTolerance,
                "parameter relative error " + relativeError(expected.params(), actual.params()));
    }

    static double relativeError(float[] a, float[] b) {
        double diff = 0, norm = 0;
        for (int i = 0; i < a.length; i++) {
            diff += (a[i] - b[i]) * (double) (a[i] - b[i]);
            norm += a[i] * (double) a[i];
        }
        return Math.sqrt(diff / norm);
    }

    @Test
    void syncBnOverFourReplicasEqualsOneProcessWithTheWholeBatch() throws Exception {
        Run reference = runLocal(640, 32, 1); // 20 steps of 32
        Run sync = runSpark(640, 4, 8, "sync", 1, -1);
        assertEquals(20, sync.stepLosses().size());
        assertClose(reference, sync, 1e-4);
        Run local = runSpark(640, 4, 8, "local", 1, -1);
        assertTrue(relativeError(reference.params(), local.params()) > 1e-3, "local BN over 4 replicas of 8 must differ from BN over 32");
    }

    @Test
    void augmentedImagesAreTheSameOnAnyNumberOfReplicas() throws Exception {
        Dataset data = train.head(640);
        // lr 1e-4: at 1e-3 Adam lifts the summation order's rounding past 1e-4 in the second epoch (1.1e-4 at step 24)
        TrainConfig c = TrainConfig.builder().workers(4).batchPerWorker(8).batch(32).bn("sync").lr(1e-4).seed(7).threads(2).augment(true).build();
        List<Double> oneProcess = new ArrayList<>(), replicas = new ArrayList<>();
        float[] expected, actual;
        try (LocalEngine e = new LocalEngine(data, test, c)) {
            for (int epoch = 1; epoch <= 2; epoch++) e.trainEpoch(epoch, (s, steps, r, loss, soFar) -> oneProcess.add(loss));
            expected = e.net.params.toFloats();
        }
        try (SparkEngine e = new SparkEngine(sc, data, test, c)) {
            for (int epoch = 1; epoch <= 2; epoch++) e.trainEpoch(epoch, (s, steps, r, loss, soFar) -> replicas.add(loss));
            actual = e.net().params.toFloats();
        }
        assertClose(new Run(oneProcess, expected, null), new Run(replicas, actual, null), 1e-4);
        Run plain = runLocal(NetSpec.SEED, 1e-4, 640, 32, 2);
        assertTrue(relativeError(plain.params(), expected) > 1e-3, "augmentation changes the training");
    }

    @Test
    void inLocalModeTheReplicasCallTheDriversServiceWithoutASocket() throws Exception {
        try (SparkEngine e = new SparkEngine(sc, train.head(128), test, TrainConfig.builder().workers(4).batchPerWorker(8).bn("group:2").lr(1e-3).seed(7).build())) {
            Engine.EpochResult r = e.trainEpoch(1, (s, steps, replicas, loss, soFar) -> {});
            assertEquals(4, e.stepsPerEpoch());
            assertArrayEquals(new long[] {0, 0}, e.coordinatorBytes(), "bytes through the coordination service's sockets");
            // 4 replicas on 2 cores never compute in equal times; the wait for the slowest is part of the time outside compute
            assertTrue(r.straggleMs() > 0 && r.straggleMs() <= r.bnSyncMs() + r.exchangeMs() + 1e-3, r.toString());
            assertTrue(r.overheadMsMedian() >= 0 && r.overheadMsMedian() <= r.outsideComputeMsMedian(), r.toString());
        }
    }

    @Test
    void aReplicaWithoutSamplesInTheLastStepStillTakesPart() throws Exception {
        // 66 = 2 steps of 32 and a last step of 2: replicas 2 and 3 have no sample in it
        assertClose(runLocal(66, 32, 1), runSpark(66, 4, 8, "sync", 1, -1), 1e-4);
    }

    /** The same with group BN: the empty group's replicas still meet the other group's in the executor's hub (they failed the step before). */
    @Test
    void aGroupWithoutSamplesInTheLastStepStillTakesPart() throws Exception {
        // 66 = 2 steps of 32 and a last step of 2, for replicas 0 and 1: the group of replicas 2 and 3 has none
        Run group = runSpark(66, 4, 8, "group:2", 1, -1);
        assertEquals(3, group.stepLosses().size());
        for (double loss : group.stepLosses()) assertTrue(Double.isFinite(loss), group.stepLosses().toString());
    }

    @Test
    void localBnWithOneReplicaEqualsSyncBnWithOne() throws Exception {
        Run local = runSpark(96, 1, 32, "local", 1, -1), sync = runSpark(96, 1, 32, "sync", 1, -1);
        assertArrayEquals(local.params(), sync.params());
        assertClose(runLocal(96, 32, 1), local, 1e-5);
    }

    @Test
    void groupSyncEqualsIndependentSyncGroups() throws Exception {
        int w = 4, b = 8, n = w * b; // one step
        Run group = runSpark(n, w, b, "group:2", 1, -1);
        // the reference: each group's 2b samples through one network (normalized by the global batch), gradients summed, one Adam step
        int[] order = Sampler.order(n, 7, 1);
        NetSpec spec = NetSpec.defaultFor(1, 28, 28, 10);
        try (ConvNet net = new ConvNet(spec, 2 * b, 2, ConvNet.Kernels.FAST)) {
            net.init(7);
            Adam adam = new Adam(net.params, 1e-3);
            double[] sum = new double[net.paramCount()];
            Dataset data = train.head(n);
            int[] labels = new int[2 * b];
            for (int g = 0; g < 2; g++) {
                int[] mine = new int[2 * b];
                int k = 0;
                for (int p = 0; p < n; p++) if ((p % w) / 2 == g) mine[k++] = order[p];
                data.fill(mine, 0, 2 * b, net.input, labels);
                net.trainStep(2 * b, labels, n);
                for (int i = 0; i < sum.length; i++) sum[i] += net.grads.get(i);
            }
            for (int i = 0; i < sum.length; i++) net.grads.set(i, sum[i]);
            adam.apply(net.params, net.grads);
            float[] expected = new float[net.paramCount()];
            for (int i = 0; i < expected.length; i++) expected[i] = (float) net.params.get(i);
            assertTrue(relativeError(expected, group.params()) < 1e-5, "group sync vs two groups: " + relativeError(expected, group.params()));
            Run sync = runSpark(n, w, b, "sync", 1, -1);
            assertTrue(relativeError(sync.params(), group.params()) > 1e-6, "group:2 must differ from sync over all 4");
        }
    }

    /**
     * A task that fails after the epoch's first snapshot (step 36 of 40): the relaunched stage goes back to
     * step 32 (where the running statistics last came in), recomputes 32..35, and the epoch ends as an
     * undisturbed one: the same parameters, the same statistics (sync BN: the same bits; local BN: the
     * replicas restart from their average, the same up to rounding), each step reported once.
     */
    @Test
    void aTaskFailingMidEpochIsRecoveredWithTheSameResult() throws Exception {
        int n = 2 * 16 * 40, failAt = StepAggregator.STATISTICS_EVERY + 4;
        Run straight = runSpark(n, 2, 16, "sync", 1, -1);
        Run failed = runSpark(n, 2, 16, "sync", 1, failAt);
        assertEquals(40, straight.stepLosses().size());
        assertEquals(straight.stepLosses(), failed.stepLosses(), "every step once, none twice");
        assertArrayEquals(straight.params(), failed.params());
        assertArrayEquals(straight.state(), failed.state(), "running statistics");
        assertArrayEquals(straight.params(), runSpark(n, 2, 16, "sync", 1, -1).params(), "two identical runs");
        Run local = runSpark(n, 2, 16, "local", 1, -1), localFailed = runSpark(n, 2, 16, "local", 1, failAt);
        assertEquals(local.stepLosses(), localFailed.stepLosses());
        assertArrayEquals(local.params(), localFailed.params());
        assertTrue(relativeError(local.state(), localFailed.state()) < 1e-6, "running statistics, restarted from the replicas' average: "
                + relativeError(local.state(), localFailed.state()));
    }

    /**
     * A residual network (resnet-8: 7 BN layers, 14 meetings a step) through the same engine: sync BN over
     * 4 replicas of 8 equals one process with batches of 32, and a task failing after the snapshot at
     * step 32 ends with the undisturbed run's parameters and running statistics, bit for bit. At lr 1e-4:
     * at 1e-3 the losses agree to 1e-8 for 13 steps, after which Adam (which divides each gradient by its
     * own magnitude) lifts the rounding of the other summation order by about 2.5x a step (measured:
     * 6e-7 at step 13, 1e-4 at step 20); at 1e-4 the 36 steps' losses stay within 5e-5. The parameters
     * after 36 steps carry the convolutions' rounding lifted the same way: 1.5e-4 here, as much as
     * between two float implementations of the same 1 x 32 run (oneDNN 3's convolutions against ND4J's:
     * 1.5e-4), against 5.1e-3 for local BN over 4 x 8 (whose losses are 3e-3 off from the first step).
     */
    @Test
    void aResidualNetworkTrainsExactlyInSyncBnAndRecovers() throws Exception {
        int n = 32 * 36, failAt = StepAggregator.STATISTICS_EVERY + 2;
        Run reference = runLocal("resnet-8", 1e-4, n, 32, 1);
        Run sync = runSpark("resnet-8", 1e-4, n, 4, 8, "sync", 1, -1, false);
        assertEquals(36, sync.stepLosses().size());
        assertClose(reference, sync, 1e-4, 5e-4);
        System.out.printf("resnet-8, sync BN 4 x 8 against 1 x 32: parameters' relative error %.2e%n", relativeError(reference.params(), sync.params()));
        Run failed = runSpark("resnet-8", 1e-4, n, 4, 8, "sync", 1, failAt, false);
        assertEquals(sync.stepLosses(), failed.stepLosses(), "every step once, none twice");
        assertArrayEquals(sync.params(), failed.params());
        assertArrayEquals(sync.state(), failed.state(), "running statistics");
    }

    /** Runs body with listener hearing of Spark's events, and only of the events body causes. */
    static void listening(SparkListener listener, Executable body) throws Throwable {
        sc.sc().listenerBus().waitUntilEmpty(30_000);
        sc.sc().addSparkListener(listener);
        try {
            body.execute();
            sc.sc().listenerBus().waitUntilEmpty(30_000); // the listener hears of events asynchronously
        } finally {
            sc.sc().removeSparkListener(listener);
        }
    }

    /** Shuffle bytes written by the tasks body starts (what crosses the network between executors). */
    static long shuffleBytesDuring(Executable body) throws Throwable {
        LongAdder bytes = new LongAdder();
        listening(new SparkListener() {
            @Override
            public void onTaskEnd(SparkListenerTaskEnd task) {
                if (task.taskMetrics() != null) bytes.add(task.taskMetrics().shuffleWriteMetrics().bytesWritten());
            }
        }, body);
        return bytes.sum();
    }

    /**
     * --shuffle partition: the training blocks stay where they are cached (no shuffle of samples, only the
     * stage's few result bytes), every sample is visited once per epoch, the epochs differ in order, and a
     * relaunched stage ends exactly as an undisturbed run.
     */
    @Test
    void partitionShuffleMovesNoSamplesAndIsRecoveredExactly() throws Throwable {
        int n = 330, epochs = 2; // blocks of 165: the last step of 16 per replica is short (5 each)
        Run[] runs = new Run[2];
        long global = shuffleBytesDuring(() -> runs[0] = runSpark(n, 2, 16, "sync", epochs, -1, false));
        long partition = shuffleBytesDuring(() -> runs[1] = runSpark(n, 2, 16, "sync", epochs, -1, true));
        System.out.printf("shuffle bytes written in %d epochs of %d samples: global %d, partition %d%n", epochs, n, global, partition);
        assertTrue(global > (long) epochs * n * 100, "the global shuffle moves every sample each epoch: " + global);
        assertTrue(partition < global / 50, "partition shuffle moved " + partition + " bytes against " + global);
        Run straight = runs[1];
        assertEquals(epochs * 11, straight.stepLosses().size(), "11 steps per epoch: ceil(165 / 16)");
        assertTrue(relativeError(runs[0].params(), straight.params()) > 1e-4, "other batches than the global shuffle's");
        Run failed = runSpark(n, 2, 16, "sync", epochs, 4, true);
        assertEquals(straight.stepLosses(), failed.stepLosses(), "every step once, none twice");
        assertArrayEquals(straight.params(), failed.params());
        Run local = runSpark(n, 2, 16, "local", 1, -1, true);
        assertEquals(11, local.stepLosses().size());
    }

    /**
     * Replicas are sized by the samples they can get (a huge b on little data runs), and replicas that
     * cannot fit their executor's off-heap memory are refused before anything starts, saying how much.
     */
    @Test
    void replicasAreSizedByTheirDataAndRefusedWhenTheyCannotFit() throws Exception {
        Run small = runSpark(64, 2, 100_000, "sync", 1, -1); // one step of 32 + 32: buffers for 32, not 100,000
        assertEquals(1, small.stepLosses().size());
        assertClose(runLocal(64, 64, 1), small, 1e-4);
        NetSpec spec = NetSpec.defaultFor(1, 28, 28, 10);
        long perSample = ConvNet.bytesFor(spec, 2, 1) - ConvNet.bytesFor(spec, 1, 1);
        assertTrue(perSample > 28 * 28 * 32 * 4, "at least the first convolution's output: " + perSample);
        int b = (int) Math.min(Integer.MAX_VALUE / 2, Pointer.maxBytes() / perSample + 1);
        SparkEngine.Shares shares = new SparkEngine.Shares(2 * b, 2, b, null);
        String m = assertThrows(IllegalArgumentException.class, () -> SparkEngine.checkMemory(sc, shares, spec, 1)).getMessage();
        assertTrue(m.startsWith("--batch-per-worker " + b + ": a replica of up to " + b + " samples needs at least") && m.contains("MB of off-heap memory")
                && m.contains("--driver-memory"), m);
        SparkEngine.checkMemory(sc, new SparkEngine.Shares(64, 2, b, null), spec, 1); // 32 samples each: fits
    }

    @org.junit.jupiter.api.io.TempDir
    Path dir;

    private float[] trainWithTrainer(int epochs, String ckpt, boolean resume) throws Exception {
        try (SparkEngine e = new SparkEngine(sc, train.head(192), test, TrainConfig.builder().workers(2).batchPerWorker(16).bn("local").lr(1e-3).seed(7).build())) {
            e.adam().withCosineDecay(3L * e.stepsPerEpoch());
            new Trainer(TrainConfig.builder().epochs(epochs).checkpointDir(ckpt).resume(resume).progressSeconds(0).build(), Map.of("bn", "local"), e,
                    new Configuration()).run();
            return e.snapshot(epochs, Map.of()).params();
        }
    }

    @Test
    void resumedRunEqualsUninterruptedRun() throws Exception {
        // local BN, so the end-of-epoch averaging of running statistics is part of what must carry over
        float[] straight = trainWithTrainer(3, dir.resolve("a").toString(), false);
        String ckpt = dir.resolve("b").toString();
        trainWithTrainer(1, ckpt, false);
        assertArrayEquals(straight, trainWithTrainer(3, ckpt, true));
    }

    @Test
    void blocksReadByTheExecutorsFromParquetTrainExactlyLikeDataFromTheDriver() throws Exception {
        Dataset small = train.head(300), smallTest = test.head(100);
        SparkSession spark = SparkSession.builder().sparkContext(sc.sc()).getOrCreate();
        String dir = this.dir.resolve("prepared").toString();
        ParquetData.prepare(spark, train.head(400), smallTest, dir, 3, false);
        TrainConfig settings = TrainConfig.builder().workers(2).batchPerWorker(16).bn("sync").lr(1e-3).seed(7).build();
        float[] fromDriver, fromParquet;
        try (SparkEngine e = new SparkEngine(sc, small, smallTest, settings)) {
            e.trainEpoch(1, (s, steps, replicas, loss, soFar) -> {});
            fromDriver = e.snapshot(1, Map.of()).params();
        }
        NetSpec spec = NetSpec.defaultFor(1, 28, 28, 10);
        try (SparkEngine e = new SparkEngine(sc, new SparkData(Blocks.fromPrepared(spark, dir, "train", 2, 300, ParquetData.describe(dir, sc.hadoopConfiguration())), 300,
                Blocks.fromPrepared(spark, dir, "test", 2, 100, ParquetData.describe(dir, sc.hadoopConfiguration())), 100, 1, 28, 28, 10), settings)) {
            e.trainEpoch(1, (s, steps, replicas, loss, soFar) -> {});
            fromParquet = e.snapshot(1, Map.of()).params();
            assertEquals(100, e.evaluate().count());
        }
        assertArrayEquals(fromDriver, fromParquet);
    }

    @Test
    void configurationsThatCannotRunAreRefusedBeforeStarting() {
        Dataset d = train.head(64);
        String m = assertThrows(IllegalArgumentException.class,
                () -> new SparkEngine(sc, d, test, TrainConfig.builder().workers(5).batchPerWorker(8).bn("sync").lr(1e-3).seed(1).build())).getMessage();
        assertTrue(m.contains("--workers 5") && m.contains("4"), m);
        m = assertThrows(IllegalArgumentException.class, () -> BnMode.parse("group:3", 4)).getMessage();
        assertTrue(m.contains("group:3") && m.contains("divide"), m);
        m = assertThrows(IllegalArgumentException.class,
                () -> new SparkEngine(sc, d, test, TrainConfig.builder().workers(2).batchPerWorker(0).bn("sync").lr(1e-3).seed(1).build())).getMessage();
        assertTrue(m.contains("--batch-per-worker"), m);
        assertThrows(IllegalArgumentException.class, () -> BnMode.parse("global", 4));
    }

    @Test
    void evaluationIsDistributedAndMatchesTheLocalOne() throws Exception {
        try (SparkEngine e = new SparkEngine(sc, train.head(64), test, TrainConfig.builder().workers(2).batchPerWorker(16).bn("sync").lr(1e-3).seed(7).build());
                LocalEngine l = new LocalEngine(train.head(64), test, 32, 1e-3, 7, 2)) {
            Totals a = e.evaluate(), b = l.evaluate();
            Evaluator.Evaluation withConfusion = SparkEngine.evaluate(sc.parallelize(Blocks.split(test, 3), 3), NetSpec.defaultFor(1, 28, 28, 10),
                    e.snapshot(0, Map.of()).params(), e.snapshot(0, Map.of()).state(), 1);
            long total = 0, diagonal = 0;
            for (int i = 0; i < 100; i++) total += withConfusion.confusion()[i];
            for (int i = 0; i < 10; i++) diagonal += withConfusion.confusion()[i * 11];
            assertEquals(test.size(), total);
            assertEquals(withConfusion.totals().correct(), diagonal);
            assertEquals(b.correct(), withConfusion.totals().correct());
            assertEquals(test.size(), a.count());
            assertEquals(b.correct(), a.correct());
            assertEquals(b.lossSum(), a.lossSum(), 1e-3 * Math.abs(b.lossSum()));
        }
    }

    @Test
    void preciseBnAveragesTheBatchStatisticsOfTheFinalNetwork() throws Exception {
        Dataset data = train.head(64);
        NetSpec spec = NetSpec.defaultFor(1, 28, 28, 10);
        try (SparkEngine e = new SparkEngine(sc, data, test.head(50), TrainConfig.builder().workers(2).batchPerWorker(32).bn("local").lr(1e-3).seed(7).build());
                ConvNet whole = new ConvNet(spec, 64, 1, ConvNet.Kernels.FAST)) {
            e.trainEpoch(1, (s, steps, replicas, loss, soFar) -> {});
            whole.params.copyFrom(e.snapshot(1, Map.of()).params());
            e.preciseBn(2);
            float[] precise = e.net().state.toFloats();
            // each replica's one batch of 32: together all 64 samples, so the first layer's mean is theirs
            int[] order = new int[64];
            for (int i = 0; i < 64; i++) order[i] = i;
            double[] all = PreciseBn.batchStatistics(whole, data, order, 64, 1);
            for (int c = 0; c < 32; c++) assertEquals(all[c], precise[c], 1e-5 * Math.max(1, Math.abs(all[c])), "layer 0 mean of channel " + c);
            assertTrue(e.evaluate().count() == 50);
        }
    }

    /**
     * Precise BN takes each replica's own batches of its epoch-0 samples, as it trains on them, whatever the
     * blocks: one replica of 64 over data held in 4 blocks of 50 (compare-bn loads its data in as many blocks as
     * its largest W) averages the same batches as one process.
     */
    @Test
    void preciseBnTakesTheReplicasBatchesNotTheBlocks() throws Exception {
        Dataset data = train.head(200);
        TrainConfig one = TrainConfig.builder().workers(1).batchPerWorker(64).bn("sync").lr(1e-3).seed(7).build();
        try (SparkEngine e = new SparkEngine(sc, SparkData.of(sc, data, test.head(50), 4), one);
                LocalEngine l = new LocalEngine(data, test.head(50), 64, 1e-3, 7, 1)) {
            l.net.params.copyFrom(e.snapshot(0, Map.of()).params());
            e.preciseBn(3);
            l.preciseBn(3);
            float[] spark = e.net().state.toFloats(), local = l.net.state.toFloats();
            for (int i = 0; i < local.length; i++) assertEquals(local[i], spark[i], 1e-5 * Math.max(1, Math.abs(local[i])), "state " + i);
        }
        TrainConfig wide = one.toBuilder().batchPerWorker(256).build();
        try (SparkEngine e = new SparkEngine(sc, SparkData.of(sc, data, test.head(50), 4), wide)) {
            String m = assertThrows(IllegalArgumentException.class, () -> e.preciseBn(3)).getMessage();
            assertTrue(m.contains("--precise-bn-batches") && m.contains("--max-train"), m);
        }
    }

    /** How many stage attempts after the first (relaunches) Spark submits while body runs. */
    static int relaunchesDuring(Executable body) throws Throwable {
        AtomicInteger relaunches = new AtomicInteger();
        listening(new SparkListener() {
            @Override
            public void onStageSubmitted(SparkListenerStageSubmitted stage) {
                if (stage.stageInfo().attemptNumber() > 0) relaunches.incrementAndGet();
            }
        }, body);
        return relaunches.get();
    }

    /** A replica's deterministic failure (here a refused configuration that only the task meets) ends the epoch's job at once, with its message. */
    @Test
    void aReplicasDeterministicFailureIsNotRetried() throws Throwable {
        int relaunches = relaunchesDuring(() -> {
            try (SparkEngine e = new SparkEngine(sc, SparkData.of(sc, train.head(640), test, 2),
                    TrainConfig.builder().workers(2).batchPerWorker(16).bn("sync").lr(1e-3).seed(7).build(), 0, () -> 2)) {
                String m = assertThrows(IllegalArgumentException.class, () -> e.trainEpoch(1, (s, steps, replicas, loss, soFar) -> {})).getMessage();
                assertTrue(m.contains("failed in epoch 1: threads must be at least 1, got 0") && m.contains("not retried"), m);
            }
        });
        assertTrue(relaunches <= 1, "cancelled at once, not relaunched until Spark gives up: " + relaunches + " relaunches");
    }

    @Test
    void aNonFiniteLossEndsTheEpochAtOnceWithoutRelaunchingTheStage() throws Throwable {
        int relaunches = relaunchesDuring(() -> {
            try (SparkEngine e = new SparkEngine(sc, train.head(640), test, TrainConfig.builder().workers(2).batchPerWorker(16).bn("sync").lr(1e30).seed(7).build())) {
                String m = assertThrows(IllegalStateException.class, () -> e.trainEpoch(1, (s, steps, replicas, loss, soFar) -> {})).getMessage();
                assertTrue(m.matches(".*epoch 1 step \\d+ is (NaN|Infinity|-Infinity).*"), m);
            }
        });
        assertEquals(0, relaunches, "a deterministic failure is not retried");
    }
}
