package dev.syncbn.spark;

import dev.syncbn.job.TrainJob;
import dev.syncbn.train.ModelFile;
import dev.syncbn.train.TestData;
import dev.syncbn.train.TrainConfig;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The job on a real standalone cluster (Master and two Workers as separate JVMs), submitted with
 * spark-submit: closures and Kryo cross process boundaries, ND4J loads in fresh executor JVMs, the
 * coordination service is reached over real sockets, and an executor is killed mid-epoch; the second
 * cluster runs with spark.authenticate and spark.network.crypto.enabled, so Spark's own RPC is
 * authenticated and encrypted and the coordination channel derives its key from Spark's secret and
 * encrypts its frames.
 */
@Tag("slow")
class StandaloneClusterTest {
    @TempDir
    Path dir;

    static final String[] SECURE = {"spark.authenticate=true", "spark.authenticate.secret=syncbn-test-secret-4d1f", "spark.network.crypto.enabled=true",
        "spark.master.rest.enabled=false"}; // Spark's REST submission server cannot authenticate

    private Process submit(StandaloneCluster cluster, Path run, Path log, String... settings) throws Exception {
        return submit(cluster, run, log, List.of(), settings);
    }

    /** moreArgs: train options after the test's own (the last of an option given twice counts). */
    private Process submit(StandaloneCluster cluster, Path run, Path log, List<String> moreArgs, String... settings) throws Exception {
        List<String> cmd = cluster.javaCommand("org.apache.spark.deploy.SparkSubmit");
        for (String setting : settings) cmd.addAll(List.of("--conf", setting));
        cmd.addAll(List.of("--master", cluster.master(), "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.executor.cores=1",
                "--conf", "spark.executor.memory=2g", "--conf", "spark.executorEnv.OMP_WAIT_POLICY=PASSIVE", "--conf", "spark.ui.enabled=false",
                "--class", "dev.syncbn.cli.Main", cluster.appJar.toString(),
                "train", "--workers", "2", "--batch-per-worker", "32", "--bn", "sync", "--epochs", "1", "--max-train", "4096", "--max-test", "1000",
                "--seed", "3", "--progress-s", "0", "--checkpoint-dir", run.resolve("ckpt").toString(), "--model-out", run.resolve("model.bin").toString(),
                "--metrics-out", run.resolve("metrics.csv").toString()));
        cmd.addAll(moreArgs);
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("SPARK_HOME", cluster.home.toString());
        pb.environment().put("OMP_WAIT_POLICY", "PASSIVE");
        return pb.start();
    }

    @Test
    void trainsWithSyncBnAcrossTwoExecutorsAndSurvivesAKilledExecutorOnAnAuthenticatedEncryptedCluster() throws Exception {
        Path a = dir.resolve("a"), b = dir.resolve("b");
        try (StandaloneCluster cluster = new StandaloneCluster(dir.resolve("plain"), 2)) {
            Process first = submit(cluster, a, dir.resolve("a.log"));
            assertTrue(first.waitFor(10, TimeUnit.MINUTES) && first.exitValue() == 0, Files.readString(dir.resolve("a.log")));
            List<String> lines = cluster.executorLines("syncbn replica");
            assertEquals(2, lines.stream().map(l -> l.substring(l.indexOf("on executor"))).distinct().count(), "both executors trained: " + lines);
            List<String> metrics = Files.readAllLines(a.resolve("metrics.csv"));
            double testAcc = Double.parseDouble(metrics.get(1).split(",")[4]);
            assertTrue(testAcc > 0.70, "test accuracy after one epoch on 4,096 images: " + testAcc);
            assertTrue(Files.exists(a.resolve("ckpt/epoch-0001.model")));
            assertTrue(Files.readString(dir.resolve("a.log")).contains("frames sealed (AES-GCM), key shipped in the task closure"));
        }
        // the same run on a cluster with Spark's authentication and RPC encryption, with one executor JVM
        // killed (SIGKILL) in the middle of the epoch
        try (StandaloneCluster cluster = new StandaloneCluster(dir.resolve("secure"), 2, SECURE)) {
            int linesBefore = cluster.executorLines("syncbn replica").size();
            Process second = submit(cluster, b, dir.resolve("b.log"), SECURE);
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(5);
            while (cluster.executorLines("syncbn replica").size() < linesBefore + 2 && System.nanoTime() < deadline) Thread.sleep(50);
            Thread.sleep(1500); // into the epoch's steps
            List<ProcessHandle> executors = new ArrayList<>(cluster.executors());
            assertTrue(!executors.isEmpty(), "no executor to kill");
            executors.get(0).destroyForcibly();
            assertTrue(second.waitFor(10, TimeUnit.MINUTES) && second.exitValue() == 0, Files.readString(dir.resolve("b.log")));
            assertTrue(cluster.executorLines("stage attempt 1").size() >= 1, "the barrier stage was relaunched: " + cluster.executorLines("syncbn replica"));
            assertTrue(Files.readString(dir.resolve("b.log")).contains("frames encrypted and sealed (AES-GCM), key derived from Spark's secret"),
                    Files.readString(dir.resolve("b.log")));
            Configuration conf = new Configuration();
            assertArrayEquals(ModelFile.load(a.resolve("model.bin").toString(), conf).params(), ModelFile.load(b.resolve("model.bin").toString(), conf).params());
        }
    }

    /**
     * An elastic run (--elastic 1) loses a Worker for good in its first epoch: after --elastic-wait it goes
     * on from the driver's last snapshot as 1 replica of 64 on the remaining Worker; a new Worker joins and
     * a later epoch grows back to 2 replicas of 32. In sync BN that is the same computation as one process
     * with batch 64 (the test's own JVM, run after the cluster is gone): final parameters within 1e-4. At
     * lr 1e-4 and 160 steps because Adam lifts the summation order's rounding for any split: an
     * uninterrupted 2 x 32 in local mode against one process of 64 differs by 4.0e-5 after these 160 steps
     * (this run: 3.2e-5), by 1.1e-4 after 320 steps of 4,096 images, and at lr 1e-3 by 1.6e-2 after 512.
     */
    @Test
    void anElasticRunLosesAWorkerForGoodGoesOnWithOneReplicaAndGrowsBackComputingTheSameSteps() throws Exception {
        Path c = dir.resolve("c");
        // many short epochs: the new Worker's executor has several epoch starts to arrive by
        List<String> elastic = List.of("--epochs", "10", "--max-train", "1024", "--lr", "1e-4", "--elastic", "1", "--elastic-wait", "2", "--step-log",
                c.resolve("steps.csv").toString());
        try (StandaloneCluster cluster = new StandaloneCluster(dir.resolve("elastic"), 2)) {
            Process run = submit(cluster, c, dir.resolve("c.log"), elastic);
            long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(5);
            while (cluster.executorLines("syncbn replica").size() < 2 && System.nanoTime() < deadline) Thread.sleep(50);
            Thread.sleep(1500); // into the epoch's steps
            cluster.killWorker(1);
            while (!Files.readString(dir.resolve("c.log")).contains("1 replica x 64") && run.isAlive() && System.nanoTime() < deadline) Thread.sleep(100);
            cluster.startWorker(); // the slots come back: a later epoch grows back to 2 replicas
            assertTrue(run.waitFor(10, TimeUnit.MINUTES) && run.exitValue() == 0, Files.readString(dir.resolve("c.log")));
        }
        String log = Files.readString(dir.resolve("c.log"));
        log.lines().filter(l -> l.startsWith("elastic:")).forEach(System.out::println);
        assertTrue(log.contains("1 replica x 64 (global batch 64, the same steps in sync BN)"), log);
        assertTrue(log.contains("runs as 2 replicas x 32"), "grew back: " + log);
        List<String> epochs = Files.readAllLines(c.resolve("metrics.csv"));
        assertTrue(epochs.get(epochs.size() - 1).endsWith(",2"), "the last epoch ran as 2 replicas: " + epochs);
        assertTrue(epochs.stream().anyMatch(row -> row.endsWith(",1")) || Files.readAllLines(c.resolve("steps.csv")).stream().anyMatch(row -> row.endsWith(",1")),
                "steps ran as 1 replica: " + epochs);

        TrainConfig oneProcess = TrainConfig.builder().epochs(10).lr(1e-4).maxTrain(1024).maxTest(1000).batch(64).seed(3).progressSeconds(0).build();
        float[] reference = TrainJob.local(oneProcess, TestData.train(), TestData.test(), new Configuration()).model().params();
        double error = SparkTrainingTest.relativeError(reference, ModelFile.load(c.resolve("model.bin").toString(), new Configuration()).params());
        System.out.printf("elastic cluster run (2 x 32, a Worker lost, 1 x 64, grown back) against one process of batch 64: parameters' relative error %.2e%n",
                error);
        assertTrue(error < 1e-4, "parameters' relative error " + error);
    }
}
