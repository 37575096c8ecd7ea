package dev.syncbn.spark;

import dev.syncbn.train.ModelFile;
import java.io.File;
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
 * The driver process killed (SIGKILL) in the middle of training and started again with --resume: the run
 * continues from the last checkpoint and ends with the same parameters as an uninterrupted run.
 */
@Tag("slow")
class DriverRestartTest {
    @TempDir
    Path dir;

    static Process start(Path log, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx2g"));
        for (String opt : System.getProperty("syncbn.spark.jvm.options", "").split(" ")) if (!opt.isBlank()) cmd.add(opt);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), "dev.syncbn.cli.Main", "train"));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("OMP_WAIT_POLICY", "PASSIVE");
        return pb.start();
    }

    static String[] args(Path run, String... more) {
        List<String> a = new ArrayList<>(List.of("--master", "local[2]", "--workers", "2", "--batch-per-worker", "16", "--bn", "sync", "--epochs", "4",
                "--max-train", "1024", "--max-test", "100", "--seed", "5", "--progress-s", "0", "--checkpoint-dir", run.resolve("ckpt").toString(),
                "--model-out", run.resolve("model.bin").toString()));
        a.addAll(List.of(more));
        return a.toArray(new String[0]);
    }

    @Test
    void aKilledDriverResumesFromTheLastCheckpointWithTheSameResult() throws Exception {
        Path a = dir.resolve("a"), b = dir.resolve("b");
        Process straight = start(dir.resolve("a.log"), args(a));
        assertTrue(straight.waitFor(5, TimeUnit.MINUTES) && straight.exitValue() == 0, Files.readString(dir.resolve("a.log")));

        Process doomed = start(dir.resolve("b1.log"), args(b));
        File firstCheckpoint = b.resolve("ckpt/epoch-0001.model").toFile();
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
        while (!firstCheckpoint.exists() && doomed.isAlive() && System.nanoTime() < deadline) Thread.sleep(20);
        assertTrue(firstCheckpoint.exists(), "no first checkpoint: " + Files.readString(dir.resolve("b1.log")));
        doomed.destroyForcibly(); // SIGKILL, somewhere in epoch 2
        doomed.waitFor(1, TimeUnit.MINUTES);
        assertTrue(!b.resolve("model.bin").toFile().exists(), "the killed run must not have finished");

        Process resumed = start(dir.resolve("b2.log"), args(b, "--resume"));
        assertTrue(resumed.waitFor(5, TimeUnit.MINUTES) && resumed.exitValue() == 0, Files.readString(dir.resolve("b2.log")));
        assertTrue(Files.readString(dir.resolve("b2.log")).contains("resumed from"), Files.readString(dir.resolve("b2.log")));
        Configuration conf = new Configuration();
        ModelFile expected = ModelFile.load(a.resolve("model.bin").toString(), conf), got = ModelFile.load(b.resolve("model.bin").toString(), conf);
        assertEquals(expected.step(), got.step());
        assertArrayEquals(expected.params(), got.params());
        assertArrayEquals(expected.state(), got.state());
    }
}
