package dev.syncbn.cli;

import dev.syncbn.train.Options;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CompareBnTest {
    @TempDir
    Path dir;

    @Test
    void gridSkipsGroupModesThatEqualLocalOrSync() {
        List<CompareBn.Run> runs = CompareBn.grid("2,4", "8", "local,sync,group:2");
        assertEquals(5, runs.size(), runs.toString()); // group:2 with W=2 would be sync
        assertTrue(runs.contains(new CompareBn.Run(4, 8, "group:2")));
    }

    @Test
    void smallGridWritesResultsChartsAndReport() throws Exception {
        String out = dir.resolve("cmp").toString();
        CompareBn.run(Options.parse(new String[] {"--workers-grid", "2", "--batch-grid", "4,16", "--modes", "local,sync", "--epochs", "1", "--max-train",
            "128", "--max-test", "64", "--output", out, "--progress-s", "0"}));
        List<String> csv = Files.readAllLines(Path.of(out, "results.csv"));
        assertEquals(1 + 4, csv.size(), "header and one epoch of 4 runs");
        assertTrue(csv.get(1).startsWith("2,4,local,1,"), csv.get(1));
        for (String png : new String[] {"accuracy-per-epoch.png", "accuracy-vs-batch.png", "epoch-time.png"}) {
            byte[] b = Files.readAllBytes(Path.of(out, png));
            assertTrue(b.length > 1000 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G', png);
        }
        String report = Files.readString(Path.of(out, "report.md"));
        assertTrue(report.contains("W=2, 4 per worker: sync BN's final test accuracy is"), report);
        assertTrue(report.contains("| 2 | 16 | sync |"), report);
        assertTrue(report.contains("Across this grid, sync BN's final test accuracy minus local BN's ranges from"), report);
    }
}
