package dev.syncbn.spark;

import dev.syncbn.train.ModelFile;
import java.io.File;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The job on YARN, as Spark's own YARN tests run it: a MiniYARNCluster (ResourceManager and a
 * NodeManager in this JVM, containers as separate processes) with HDFS (a MiniDFSCluster), the
 * application submitted with spark-submit in client and in cluster deploy mode (in cluster mode the
 * driver, and so the coordination service, lives in the ApplicationMaster's container, which the
 * executors must reach), then once more with one executor container killed (SIGKILL) mid-epoch. All three
 * end with the same parameters.
 */
@Tag("slow")
class YarnClusterTest {
    @TempDir
    Path dir;

    @Test
    void trainsWithSyncBnInClientAndClusterModeAndSurvivesAKilledExecutorContainer() throws Exception {
        Configuration conf = new YarnConfiguration();
        conf.set("yarn.resourcemanager.scheduler.class", "org.apache.hadoop.yarn.server.resourcemanager.scheduler.fifo.FifoScheduler"); // no queues to configure
        conf.set("yarn.minicluster.yarn.nodemanager.resource.memory-mb", "12288"); // MiniYARNCluster's own key; it overrides the NodeManager's (4 GB)
        conf.set("yarn.nodemanager.resource.cpu-vcores", "8");
        conf.set("yarn.scheduler.minimum-allocation-mb", "256");
        conf.setBoolean("yarn.nodemanager.pmem-check-enabled", false);
        conf.setBoolean("yarn.nodemanager.vmem-check-enabled", false);
        conf.set("yarn.nodemanager.disk-health-checker.max-disk-utilization-per-disk-percentage", "100.0");
        String name = "syncbn-yarn-" + ProcessHandle.current().pid();
        MiniDFSCluster hdfs = new MiniDFSCluster.Builder(conf, dir.resolve("dfs").toFile()).numDataNodes(1).build();
        MiniYARNCluster yarn = new MiniYARNCluster(name, 1, 1, 1);
        try {
            conf.set("fs.defaultFS", hdfs.getURI().toString());
            yarn.init(conf);
            yarn.start();
            Configuration running = yarn.getConfig();
            // start() can return before the ResourceManager has written its real port into the configuration
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (running.get(YarnConfiguration.RM_ADDRESS).endsWith(":0") && System.nanoTime() < deadline) Thread.sleep(100);
            Path confDir = dir.resolve("hadoop-conf");
            Files.createDirectories(confDir);
            try (OutputStream out = Files.newOutputStream(confDir.resolve("yarn-site.xml"))) {
                running.writeXml(out);
            }
            Path home = dir.resolve("spark-home");
            StandaloneCluster.makeHome(home);
            Path appJar = StandaloneCluster.appJar(dir);
            String fs = hdfs.getURI().toString();

            Process client = submit(home, appJar, confDir, "client", fs + "/runs/client", dir.resolve("client.log"));
            assertTrue(client.waitFor(4, TimeUnit.MINUTES) && client.exitValue() == 0, Files.readString(dir.resolve("client.log")));
            List<String> replicas = containerLines(name, "syncbn replica");
            assertEquals(2, replicas.stream().map(l -> l.substring(l.indexOf("on executor"))).distinct().count(), "two executors trained: " + replicas);
            Configuration hconf = new Configuration();
            hconf.set("fs.defaultFS", fs);
            String metrics = new String(FileSystem.get(hconf).open(new org.apache.hadoop.fs.Path(fs + "/runs/client/metrics.csv"))
                    .readAllBytes());
            double testAcc = Double.parseDouble(metrics.split("\n")[1].split(",")[4]);
            assertTrue(testAcc > 0.70, "test accuracy after one epoch on 4,096 images: " + testAcc);

            Process cluster = submit(home, appJar, confDir, "cluster", fs + "/runs/cluster", dir.resolve("cluster.log"));
            assertTrue(cluster.waitFor(4, TimeUnit.MINUTES) && cluster.exitValue() == 0, Files.readString(dir.resolve("cluster.log")));
            assertTrue(containerLines(name, "coordination service on").size() >= 1, "the driver ran in the ApplicationMaster's container");

            int before = containerLines(name, "syncbn replica").size();
            Process killed = submit(home, appJar, confDir, "client", fs + "/runs/killed", dir.resolve("killed.log"));
            deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(5);
            while (containerLines(name, "syncbn replica").size() < before + 2 && System.nanoTime() < deadline) Thread.sleep(50);
            Thread.sleep(1500); // into the epoch's steps
            List<ProcessHandle> executors = executors(name);
            assertTrue(!executors.isEmpty(), "no executor container to kill");
            executors.get(0).destroyForcibly();
            assertTrue(killed.waitFor(4, TimeUnit.MINUTES) && killed.exitValue() == 0, Files.readString(dir.resolve("killed.log")));
            assertTrue(containerLines(name, "stage attempt 1").size() >= 1, "the barrier stage was relaunched: " + containerLines(name, "syncbn replica"));

            float[] params = ModelFile.load(fs + "/runs/client/model.bin", hconf).params();
            assertArrayEquals(params, ModelFile.load(fs + "/runs/cluster/model.bin", hconf).params(), "cluster mode trains what client mode trains");
            assertArrayEquals(params, ModelFile.load(fs + "/runs/killed/model.bin", hconf).params(), "a killed executor changes nothing");
        } finally {
            for (ProcessHandle e : executors(name)) e.destroyForcibly();
            yarn.stop();
            hdfs.shutdown();
        }
    }

    /** spark-submit to the MiniYARNCluster; outputs on HDFS under out. */
    private static Process submit(Path home, Path appJar, Path confDir, String deployMode, String out, Path log) throws Exception {
        String jvm = System.getProperty("syncbn.spark.jvm.options", "");
        List<String> cmd = new ArrayList<>(StandaloneCluster.javaCommand(home, "org.apache.spark.deploy.SparkSubmit"));
        int cp = cmd.indexOf("-cp") + 1;
        cmd.set(cp, confDir + File.pathSeparator + cmd.get(cp)); // as bin/spark-class puts HADOOP_CONF_DIR first
        cmd.addAll(List.of("--master", "yarn", "--deploy-mode", deployMode,
                "--conf", "spark.yarn.jars=local:" + home.resolve("jars") + "/*", // the jars are on the (only) node: nothing to upload
                "--conf", "spark.executor.instances=2", "--conf", "spark.executor.cores=1", "--conf", "spark.executor.memory=1g",
                "--conf", "spark.driver.memory=1g", "--conf", "spark.ui.enabled=false",
                "--conf", "spark.executor.extraJavaOptions=" + jvm, "--conf", "spark.driver.extraJavaOptions=" + jvm, "--conf", "spark.yarn.am.extraJavaOptions=" + jvm,
                "--conf", "spark.executorEnv.OMP_WAIT_POLICY=PASSIVE", "--conf", "spark.yarn.appMasterEnv.OMP_WAIT_POLICY=PASSIVE",
                "--class", "dev.syncbn.cli.Main", appJar.toString(),
                "train", "--data", "file:///usr/share/datasets/fashion-mnist", "--workers", "2", "--batch-per-worker", "32", "--bn", "sync", "--epochs", "1", "--max-train", "4096", "--max-test", "1000",
                "--seed", "3", "--progress-s", "0", "--checkpoint-dir", out + "/ckpt", "--model-out", out + "/model.bin", "--metrics-out", out + "/metrics.csv"));
        if (deployMode.equals("client")) cmd.addAll(cmd.indexOf("--class"), List.of("--conf", "spark.driver.host=127.0.0.1"));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("SPARK_HOME", home.toString());
        pb.environment().put("HADOOP_CONF_DIR", confDir.toString());
        pb.environment().put("OMP_WAIT_POLICY", "PASSIVE");
        pb.environment().put("SPARK_SCALA_VERSION", "2.13");
        return pb.start();
    }

    /**
     * Lines of the containers' stdout files, in the NodeManager's log directories (under
     * target/test/data/NAME, in directories named NAME-logDir-nm-...). Only those are walked: the rest of the tree holds
     * files that containers create and delete while the walk runs.
     */
    private static List<String> containerLines(String name, String containing) throws Exception {
        List<String> lines = new ArrayList<>();
        Path root = Path.of("target", "test", "data", name);
        if (!Files.exists(root)) return lines;
        List<Path> logDirs;
        try (Stream<Path> dirs = Files.find(root, 2, (p, a) -> a.isDirectory() && p.getFileName().toString().contains("-logDir-nm-"))) {
            logDirs = dirs.toList();
        }
        for (Path logDir : logDirs) lines.addAll(StandaloneCluster.stdoutLines(logDir, containing));
        return lines;
    }

    /** The executor containers' JVMs of this MiniYARNCluster. */
    private static List<ProcessHandle> executors(String name) {
        return ProcessHandle.allProcesses().filter(p -> p.info().commandLine().map(c -> c.contains("YarnCoarseGrainedExecutorBackend") && c.contains(name))
                .orElse(false)).toList();
    }
}
