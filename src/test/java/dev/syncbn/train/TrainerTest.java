package dev.syncbn.train;

import dev.syncbn.data.Dataset;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainerTest {
    @TempDir
    java.nio.file.Path dir;

    private final Configuration conf = new Configuration();

    private List<Metrics.Epoch> run(Dataset train, Dataset test, int epochs, long seed, String ckpt, boolean resume, String metrics,
            float[][] paramsOut) throws Exception {
        try (LocalEngine engine = new LocalEngine(train, test, 32, 1e-3, seed, 2)) {
            TrainConfig cfg = TrainConfig.builder().epochs(epochs).metricsOut(metrics).checkpointDir(ckpt).resume(resume).progressSeconds(0).build();
            List<Metrics.Epoch> rows = new Trainer(cfg, Map.of("seed", Long.toString(seed), "batch", "32"), engine, conf).run().epochs();
            if (paramsOut != null) paramsOut[0] = engine.snapshot(epochs, Map.of()).params();
            return rows;
        }
    }

    @Test
    void learnsRealFashionMnistFarAboveChance() throws Exception {
        Dataset train = TestData.train().head(4000), test = TestData.test().head(2000);
        String metrics = dir.resolve("m.csv").toString();
        List<Metrics.Epoch> rows = run(train, test, 2, 1, "", false, metrics, null);
        assertEquals(2, rows.size());
        assertTrue(rows.get(1).testAcc() > 0.70, "test accuracy after 2 short epochs: " + rows.get(1).testAcc() + " (chance 0.10)");
        assertTrue(rows.get(1).trainLoss() < rows.get(0).trainLoss());
        List<String> lines = Files.readAllLines(java.nio.file.Path.of(metrics));
        assertEquals(Metrics.HEADER, lines.get(0));
        assertEquals(3, lines.size());
        assertTrue(lines.get(2).startsWith("2,"));
        assertEquals(Metrics.HEADER.split(",").length, lines.get(2).split(",").length);
        Metrics.Epoch last = rows.get(1);
        assertTrue(last.stepMsMedian() > 0 && last.outsideComputeMsMedian() > 0 && last.outsideComputeMsMedian() < last.stepMsMedian(),
                "median step " + last.stepMsMedian() + " ms, outside compute " + last.outsideComputeMsMedian() + " ms");
        assertEquals(0, last.straggleMs(), "one process: no replica waits for another");
        assertEquals(last.outsideComputeMsMedian(), last.overheadMsMedian());
    }

    /** Each version appended columns to the metrics file: a file with any earlier header is resumed, its rows kept as they were. */
    @Test
    void metricsFilesOfEarlierVersionsAreResumed() throws Exception {
        String[] columns = Metrics.HEADER.split(",");
        for (int n = Metrics.FIRST_HEADER.split(",").length; n < columns.length; n++) {
            java.nio.file.Path file = dir.resolve("m" + n + ".csv");
            String header = String.join(",", Arrays.copyOf(columns, n)), row = "1" + ",0.5".repeat(n - 1);
            Files.write(file, List.of(header, row, "2" + ",0.5".repeat(n - 1)));
            Metrics m = new Metrics(file.toString(), Metrics.HEADER, new Configuration(), 2);
            m.flush();
            assertEquals(List.of(Metrics.HEADER, row), Files.readAllLines(file), n + " columns");
        }
        java.nio.file.Path other = dir.resolve("other.csv");
        Files.write(other, List.of(Metrics.FIRST_HEADER + ",something_else", "1,2"));
        String m = assertThrows(IOException.class, () -> new Metrics(other.toString(), Metrics.HEADER, new Configuration(), 2))
                .getMessage();
        assertTrue(m.contains("other.csv") && m.contains("not a log of this kind"), m);
    }

    /**
     * A second run on the same outputs is refused while the first runs (here: a lock whose owner is this
     * live process), naming the holder; a lock whose process has ended is taken over; a finished run
     * leaves no lock.
     */
    @Test
    void aRunLocksItsOutputs() throws Exception {
        Dataset train = TestData.train().head(64), test = TestData.test().head(32);
        String metrics = dir.resolve("m.csv").toString(), ckpt = dir.resolve("ckpt").toString();
        java.nio.file.Path lock = dir.resolve("m.csv.lock");
        String host = InetAddress.getLocalHost().getHostName();
        Files.writeString(lock, host + " " + ProcessHandle.current().pid() + " 2026-11-30T00:00:00Z\n");
        String m = assertThrows(IOException.class, () -> run(train, test, 1, 1, ckpt, false, metrics, null)).getMessage();
        assertTrue(m.contains("another run holds") && m.contains("m.csv.lock") && m.contains(Long.toString(ProcessHandle.current().pid())), m);
        assertTrue(Files.exists(lock), "the other run's lock stays");
        assertTrue(!Files.exists(dir.resolve("ckpt.lock")), "a refused run leaves none of its own locks");
        assertTrue(!Files.exists(dir.resolve("m.csv")), "and writes nothing");

        Process ended = new ProcessBuilder("true").start();
        ended.waitFor();
        Files.writeString(lock, host + " " + ended.pid() + " 2026-11-30T00:00:00Z\n");
        assertEquals(1, run(train, test, 1, 1, ckpt, false, metrics, null).size());
        assertTrue(!Files.exists(lock) && !Files.exists(dir.resolve("ckpt.lock")), "no lock after the run");
    }

    @Test
    void resumedRunEqualsUninterruptedRun() throws Exception {
        Dataset train = TestData.train().head(300), test = TestData.test().head(100);
        float[][] straight = new float[1][], resumed = new float[1][];
        run(train, test, 3, 9, dir.resolve("a").toString(), false, "", straight);
        String ckpt = dir.resolve("b").toString(), metrics = dir.resolve("b.csv").toString();
        run(train, test, 1, 9, ckpt, false, metrics, null);
        // as a version before the median columns wrote it: such a file is resumed too, its rows kept as they are
        List<String> written = Files.readAllLines(java.nio.file.Path.of(metrics));
        String epoch1 = String.join(",", Arrays.copyOf(written.get(1).split(","), 11));
        Files.write(java.nio.file.Path.of(metrics), List.of(Metrics.FIRST_HEADER, epoch1));
        List<Metrics.Epoch> rows = run(train, test, 3, 9, ckpt, true, metrics, resumed);
        assertEquals(2, rows.size(), "the resumed run trains epochs 2 and 3 only");
        assertArrayEquals(straight[0], resumed[0]);
        List<String> lines = Files.readAllLines(java.nio.file.Path.of(metrics));
        assertEquals(List.of(Metrics.HEADER, epoch1), lines.subList(0, 2), "header now with medians, epoch 1's row as it was");
        assertEquals(4, lines.size(), "header and epochs 1..3");
        String m = assertThrows(IllegalArgumentException.class, () -> run(train, test, 4, 10, ckpt, true, "", null)).getMessage();
        assertTrue(m.contains("--seed 9") && m.contains("--seed 10"), m);
    }

    @Test
    void aNonFiniteLossStopsTrainingNamingTheStepAndKeepsTheLastCheckpoint() throws Exception {
        Dataset train = TestData.train().head(640), test = TestData.test().head(50);
        String ckpt = dir.resolve("c").toString();
        run(train, test, 1, 5, ckpt, false, "", null);
        String good = Trainer.latestCheckpoint(ckpt, conf);
        byte[] before = Files.readAllBytes(java.nio.file.Path.of(new org.apache.hadoop.fs.Path(good).toUri().getPath()));
        try (LocalEngine engine = new LocalEngine(train, test, 32, 1e30, 5, 2)) { // an absurd learning rate blows up within a few steps
            TrainConfig cfg = TrainConfig.builder().epochs(3).checkpointDir(ckpt).resume(true).progressSeconds(0).build();
            String m = assertThrows(IllegalStateException.class, () -> new Trainer(cfg, Map.of(), engine, conf).run()).getMessage();
            assertTrue(m.matches(".*epoch 2 step \\d+ is (NaN|Infinity|-Infinity).*"), m);
        }
        assertEquals(good, Trainer.latestCheckpoint(ckpt, conf));
        assertArrayEquals(before, Files.readAllBytes(java.nio.file.Path.of(new org.apache.hadoop.fs.Path(good).toUri().getPath())));
    }

    @Test
    void sameSeedSameResultOtherSeedOtherResult() throws Exception {
        Dataset train = TestData.train().head(200), test = TestData.test().head(50);
        float[][] a = new float[1][], b = new float[1][], c = new float[1][];
        run(train, test, 1, 3, "", false, "", a);
        run(train, test, 1, 3, "", false, "", b);
        run(train, test, 1, 4, "", false, "", c);
        assertArrayEquals(a[0], b[0]);
        assertTrue(!Arrays.equals(a[0], c[0]));
    }

    @Test
    void logsHaveNoChecksumSideFilesAndResumeToleratesEditedLines() throws Exception {
        Dataset train = TestData.train().head(128), test = TestData.test().head(50);
        String ckpt = dir.resolve("ck").toString(), metrics = dir.resolve("m.csv").toString();
        run(train, test, 1, 3, ckpt, false, metrics, null);
        try (Stream<java.nio.file.Path> files = Files.walk(dir)) {
            assertTrue(files.noneMatch(f -> f.getFileName().toString().endsWith(".crc")), "no .crc side files");
        }
        Files.writeString(java.nio.file.Path.of(metrics), "\n\ngarbage line\n", StandardOpenOption.APPEND);
        List<Metrics.Epoch> rows = run(train, test, 2, 3, ckpt, true, metrics, null);
        assertEquals(1, rows.size(), "epoch 2 only");
        List<String> lines = Files.readAllLines(java.nio.file.Path.of(metrics));
        assertEquals(3, lines.size(), "header and two epochs: " + lines);
        assertTrue(lines.get(1).startsWith("1,") && lines.get(2).startsWith("2,"), lines.toString());
    }
}
