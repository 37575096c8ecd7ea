package dev.syncbn.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** What a user sees on the console of `syncbn train` (a JVM of its own, with the project's log configuration). */
class ConsoleOutputTest {
    @TempDir
    Path dir;

    private List<String> run(Path log, int exitCode, String... args) throws Exception {
        Process p = DriverRestartTest.start(log, args);
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "the run ended");
        List<String> lines = Files.readAllLines(log);
        assertEquals(exitCode, p.exitValue(), String.join("\n", lines));
        return lines;
    }

    /** A diverging run ends in a few lines that name the step and the value, with no stack trace. */
    @Test
    void aDivergingRunEndsInAFewLinesNamingTheStepAndTheValue() throws Exception {
        List<String> lines = run(dir.resolve("diverge.log"), 1, "--master", "local[2]", "--max-train", "2000", "--max-test", "1000", "--epochs", "2", "--lr",
                "1e30", "--progress-s", "0");
        String all = String.join("\n", lines);
        assertTrue(lines.size() <= 20, lines.size() + " lines:\n" + all);
        assertTrue(lines.stream().noneMatch(l -> l.startsWith("\tat ")), all);
        assertTrue(lines.get(lines.size() - 1).matches("error: training stopped: the loss of epoch 1 step \\d+ is (NaN|Infinity|-Infinity).*"), all);
    }

    /** One line says where the replicas of a stage attempt ran (one per executor), not one per replica. */
    @Test
    void theReplicasOfAStageAttemptTakeOneLine() throws Exception {
        List<String> lines = run(dir.resolve("four.log"), 0, "--master", "local[4]", "--workers", "4", "--batch-per-worker", "8", "--max-train", "256",
                "--max-test", "64", "--epochs", "2", "--progress-s", "0");
        List<String> replicas = lines.stream().filter(l -> l.startsWith("syncbn replicas")).toList();
        assertEquals(List.of("syncbn replicas 0-3 of 4, epoch 1, stage attempt 0, on executor driver",
                "syncbn replicas 0-3 of 4, epoch 2, stage attempt 0, on executor driver"), replicas, String.join("\n", lines));
    }
}
