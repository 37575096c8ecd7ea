package dev.syncbn.job;

import dev.syncbn.data.Dataset;
import dev.syncbn.spark.LocalSpark;
import dev.syncbn.spark.SparkData;
import dev.syncbn.train.TestData;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.Trainer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.api.java.JavaSparkContext;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A Spark run resumed with another W and b of the same global batch: in sync BN the same computation
 * as the uninterrupted run (per-step losses and final parameters to float rounding); a changed global
 * batch is refused naming both.
 */
class ResumeOnAnotherShapeTest {
    static JavaSparkContext sc;
    static Dataset train, test;

    @TempDir
    Path dir;

    @BeforeAll
    static void start() throws Exception {
        sc = LocalSpark.start();
        train = TestData.train().head(640);
        test = TestData.test().head(100);
    }

    @AfterAll
    static void stop() {
        if (sc != null) sc.stop();
    }

    private static Trainer.Outcome run(TrainConfig c, List<Double> losses) throws Exception {
        return TrainJob.spark(c, sc, SparkData.of(sc, train, test, c.workers()), new Trainer.Listener() {
            @Override
            public void step(long step, double loss) {
                losses.add(loss);
            }
        });
    }

    @Test
    void syncBnResumedAsTwoReplicasOfSixteenContinuesFourOfEight() throws Exception {
        // a constant learning rate: the cosine schedule's length would differ between a 1-epoch and a 2-epoch run
        TrainConfig base = TrainConfig.builder().workers(4).batchPerWorker(8).bn("sync").lr(1e-3).lrSchedule("constant").seed(7).progressSeconds(0)
                .epochs(2).build();
        List<Double> straight = new ArrayList<>(), resumed = new ArrayList<>();
        Trainer.Outcome whole = run(base, straight);
        String ckpt = dir.resolve("ckpt").toString();
        run(base.toBuilder().epochs(1).checkpointDir(ckpt).build(), resumed);
        Trainer.Outcome after = run(base.toBuilder().checkpointDir(ckpt).resume(true).workers(2).batchPerWorker(16).build(), resumed);
        assertEquals(40, straight.size(), "2 epochs of 20 steps");
        assertEquals(straight.size(), resumed.size());
        for (int i = 0; i < straight.size(); i++) {
            assertEquals(straight.get(i), resumed.get(i), 1e-4 * straight.get(i), "step " + i);
        }
        float[] a = whole.model().params(), b = after.model().params();
        double diff = 0, norm = 0;
        for (int i = 0; i < a.length; i++) {
            diff += (a[i] - b[i]) * (double) (a[i] - b[i]);
            norm += a[i] * (double) a[i];
        }
        System.out.printf("resumed 4 x 8 as 2 x 16: parameters' relative error %.2e%n", Math.sqrt(diff / norm));
        assertTrue(Math.sqrt(diff / norm) < 1e-4, "parameters' relative error " + Math.sqrt(diff / norm));

        IllegalArgumentException refused = assertThrows(IllegalArgumentException.class,
                () -> run(base.toBuilder().epochs(3).checkpointDir(ckpt).resume(true).workers(2).batchPerWorker(8).build(), new ArrayList<>()));
        assertTrue(refused.getMessage().contains("global batch of 32 (--workers 2 x --batch-per-worker 16), this run has 16 (2 x 8)"), refused.getMessage());
    }
}
