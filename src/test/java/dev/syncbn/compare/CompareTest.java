package dev.syncbn.compare;

import dev.syncbn.train.Options;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class CompareTest {
    @TempDir
    Path dir;

    @Test
    void theSplitDesignHoldsTheGlobalBatchAndSkipsModesThatEqualLocalOrSync() {
        List<CompareDesign.Cell> cells = CompareDesign.cells(Options.defaults());
        assertEquals(15, cells.size(), cells.toString()); // W=1: sync only; W=2: local, sync; W=4..32: local, sync, group:2
        for (CompareDesign.Cell c : cells) assertEquals(64, c.workers() * c.batch(), c.toString());
        assertTrue(cells.contains(new CompareDesign.Cell(32, 2, "group:2")));
        List<CompareDesign.Cell> grid = CompareDesign.cells(Options.parse(new String[] {"--design", "grid", "--workers-grid", "2,4", "--batch-grid", "8"}));
        assertEquals(5, grid.size(), grid.toString()); // group:2 with W=2 would be sync
        assertThrows(IllegalArgumentException.class, () -> CompareDesign.cells(Options.parse(new String[] {"--global-batch", "7", "--workers-grid", "2,4"})));
    }

    @Test
    void intervalsUseStudentsT() {
        Stats s = Stats.of(new double[] {1, 2, 3});
        assertEquals(2, s.mean(), 1e-12);
        assertEquals(1, s.sd(), 1e-12);
        assertEquals(4.302653 / Math.sqrt(3), s.half(), 1e-6); // t(0.975, 2 df)
        assertEquals(2.042272, Stats.tCritical(30), 1e-6);
        assertEquals(2.008559, Stats.tCritical(50), 1e-6, "no jump to 1.96 past 30 degrees of freedom");
        assertTrue(!s.excludesZero(), "[-0.48, 4.48]");
        assertTrue(Stats.of(new double[] {1.0, 1.1, 1.2}).excludesZero());
        assertTrue(!Stats.of(new double[] {-1, 1, 0.5}).excludesZero());
    }

    @Test
    void smallGridWritesEveryRunIntervalsTheSyncCheckChartsAndReport() throws Exception {
        String out = dir.resolve("cmp").toString();
        CompareRunner.run(Options.parse("compare-bn", new String[] {"--global-batch", "8", "--workers-grid", "1,2,4", "--modes", "local,sync", "--seeds", "2", "--epochs", "1",
            "--max-train", "128", "--max-test", "64", "--precise-bn-batches", "2", "--output", out, "--progress-s", "0", "--max-minutes", "0"}));
        List<String> csv = Files.readAllLines(Path.of(out, "results.csv"));
        assertEquals(1 + 5 * 2, csv.size(), "header and one epoch of 5 cells x 2 seeds");
        assertTrue(csv.get(1).startsWith("1,8,sync,1,1,"), csv.get(1));
        assertTrue(csv.get(1).matches(".*,[0-9.]+,[0-9.]+$"), "precise BN columns: " + csv.get(1));
        for (String png : new String[] {"accuracy-vs-batch.png", "difference-vs-batch.png", "step-time.png"}) {
            byte[] b = Files.readAllBytes(Path.of(out, png));
            assertTrue(b.length > 1000 && b[1] == 'P' && b[2] == 'N' && b[3] == 'G', png);
        }
        String report = Files.readString(Path.of(out, "report.md"));
        Matcher m = Pattern.compile("by at most ([0-9.e+-]+) relative").matcher(report);
        assertTrue(m.find(), report);
        assertTrue(Double.parseDouble(m.group(1)) < 1e-4, "sync BN over 2 and 4 replicas equals one replica of the whole batch: " + m.group(1));
        assertTrue(report.contains("| 4 | 2 | local | 2 |"), report);
        assertTrue(report.contains("## Local minus sync, paired by seed"), report);
        assertTrue(report.contains("test accuracy (precise BN)"), report);
        assertTrue(report.contains("excludes 0") && (report.contains("No split shows") || report.contains("splits show a difference")), report);
        assertTrue(Files.exists(Path.of(out, "runs", "w4-b2-local-s2-steps.csv")));
    }

    @Test
    void aGridThatWouldNotFitIsRefusedBeforeItStarts() {
        String m = assertThrows(IllegalArgumentException.class, () -> CompareRunner.run(Options.parse("compare-bn", new String[] {"--global-batch", "8", "--workers-grid", "1,2",
            "--epochs", "50", "--max-minutes", "1", "--output", dir.resolve("x").toString(), "--progress-s", "0"}))).getMessage();
        assertTrue(m.contains("--max-minutes 1"), m);
        assertTrue(!Files.exists(dir.resolve("x").resolve("results.csv")));
    }
}
