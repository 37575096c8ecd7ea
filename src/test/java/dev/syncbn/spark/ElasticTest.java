package dev.syncbn.spark;

import dev.syncbn.data.Dataset;
import dev.syncbn.train.Metrics;
import dev.syncbn.train.TestData;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.Trainer;
import dev.syncbn.train.TrainingStopped;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntSupplier;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An elastic run in local mode, its task slots made to shrink mid-epoch and to come back (the real loss
 * of an executor is StandaloneClusterTest's): sync BN goes on as 2 x 16 from the driver's last snapshot
 * and grows back to 4 x 8 at the next epoch, computing what 4 x 8 throughout computes; below --elastic
 * MIN the run stops naming the checkpoint to resume from.
 */
class ElasticTest {
    static JavaSparkContext sc;
    static Dataset train, test;

    @TempDir
    Path dir;

    @BeforeAll
    static void start() throws Exception {
        sc = LocalSpark.start();
        train = TestData.train().head(1280); // 40 steps of 32: a snapshot at step 32
        test = TestData.test().head(100);
    }

    @AfterAll
    static void stop() {
        if (sc != null) sc.stop();
    }

    static final TrainConfig BASE = TrainConfig.builder().workers(4).batchPerWorker(8).bn("sync").lr(1e-3).lrSchedule("constant").seed(7)
            .progressSeconds(0).epochs(2).minWorkers(2).elasticWaitSeconds(0.3).build();

    /** A run whose task slots the listener may change; the step losses go to losses. */
    private static Trainer.Outcome run(TrainConfig c, IntSupplier slots, Trainer.Listener listener) throws Exception {
        try (SparkEngine engine = new SparkEngine(sc, SparkData.of(sc, train, test, c.workers()), c, 1, slots)) {
            return new Trainer(c, Map.of(), engine, new Configuration()).listener(listener).run();
        }
    }

    private static Trainer.Listener losses(List<Double> into) {
        return new Trainer.Listener() {
            @Override
            public void step(long step, double loss) {
                into.add(loss);
            }
        };
    }

    @Test
    void syncBnShrinksMidEpochGrowsBackAndComputesTheSameSteps() throws Exception {
        List<Double> straight = new ArrayList<>(), elastic = new ArrayList<>();
        float[] whole = run(BASE, () -> 4, losses(straight)).model().params();

        AtomicInteger slots = new AtomicInteger(4);
        String metrics = dir.resolve("metrics.csv").toString(), stepLog = dir.resolve("steps.csv").toString();
        Trainer.Outcome shrunk = run(BASE.toBuilder().metricsOut(metrics).stepLog(stepLog).build(), slots::get, new Trainer.Listener() {
            @Override
            public void step(long step, double loss) {
                elastic.add(loss);
                if (step == 36) { // two executors' slots gone: the stage stalls here (the driver's step is held) until the watch ends it
                    slots.set(2);
                    sleep(1500);
                }
            }

            @Override
            public void epoch(Metrics.Epoch row) {
                slots.set(4); // back before epoch 2 starts
            }
        });
        assertEquals(80, straight.size(), "2 epochs of 40 steps");
        assertEquals(straight.size(), elastic.size(), "every step reported once, the 4 recomputed after the step-32 snapshot too");
        for (int i = 0; i < straight.size(); i++) assertEquals(straight.get(i), elastic.get(i), 1e-4 * straight.get(i), "step " + (i + 1));
        double error = SparkTrainingTest.relativeError(whole, shrunk.model().params());
        System.out.printf("4 x 8 shrunk to 2 x 16 at step 36 (from the step-32 snapshot), grown back at epoch 2: parameters' relative error %.2e%n", error);
        assertTrue(error < 1e-4, "parameters' relative error " + error);

        List<String> rows = Files.readAllLines(Path.of(metrics)), steps = Files.readAllLines(Path.of(stepLog));
        assertTrue(rows.get(1).endsWith(",2") && rows.get(2).endsWith(",4"), "replicas of each epoch's last step: " + rows);
        assertEquals("step,loss,replicas", steps.get(0));
        for (int step = 1; step <= 80; step++) {
            int replicas = step > 36 && step <= 40 ? 2 : 4; // steps 33-36 were reported as 4 computed them first; 2 recomputed them
            assertTrue(steps.get(step).startsWith(step + ",") && steps.get(step).endsWith("," + replicas), "step log line " + step + ": " + steps.get(step));
        }
    }

    @Test
    void belowTheMinimumTheRunStopsNamingTheCheckpointToResumeFrom() throws Exception {
        AtomicInteger slots = new AtomicInteger(4);
        String ckpt = dir.resolve("ckpt").toString();
        TrainingStopped stopped = assertThrows(TrainingStopped.class, () -> run(BASE.toBuilder().checkpointDir(ckpt).build(), slots::get,
                new Trainer.Listener() {
                    @Override
                    public void step(long step, double loss) {
                        if (step == 50) {
                            slots.set(1);
                            sleep(1500);
                        }
                    }
                }));
        assertTrue(stopped.getMessage().contains("training stopped in epoch 2: 1 task slot(s) left, but --elastic 2 needs at least 2 replicas")
                && stopped.getMessage().contains("resume from the checkpoint of epoch 1 in " + ckpt + " with --resume"), stopped.getMessage());
        assertTrue(Files.exists(Path.of(ckpt, "epoch-0001.model")));
    }

    @Test
    void aShapeThatCannotSpanTheGroupsIsNotChosen() {
        Elasticity groups = new Elasticity(BASE.toBuilder().workers(8).batchPerWorker(6).bn("group:4").minWorkers(1).build(), () -> 8);
        assertEquals(8, groups.workersFor(8));
        assertEquals(4, groups.workersFor(7), "7 and 5 do not divide 48, 6 is no multiple of the groups of 4");
        assertEquals(0, groups.workersFor(3), "no multiple of 4");
        Elasticity sync = new Elasticity(BASE.toBuilder().workers(8).batchPerWorker(6).minWorkers(3).build(), () -> 8);
        assertEquals(6, sync.workersFor(7));
        assertEquals(4, sync.workersFor(5));
        assertEquals(3, sync.workersFor(3));
        assertEquals(0, sync.workersFor(2), "below --elastic 3");
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
