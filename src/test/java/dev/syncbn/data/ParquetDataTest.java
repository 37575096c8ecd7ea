package dev.syncbn.data;

import dev.syncbn.spark.SparkData;
import dev.syncbn.spark.SparkSetup;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CopyOnWriteArrayList;
import org.apache.logging.log4j.Level;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.LoggerContext;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Property;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ParquetDataTest {
    static SparkSession spark;

    @TempDir
    Path dir;

    @BeforeAll
    static void start() {
        spark = SparkSession.builder().config(SparkSetup.configure(new SparkConf().setMaster("local[2]").setAppName("parquet-test"))).getOrCreate();
    }

    @AfterAll
    static void stop() {
        spark.stop();
    }

    static Dataset generated(int n, int seed) {
        Random r = new Random(seed);
        byte[] pixels = new byte[n * 3 * 4 * 5], labels = new byte[n];
        r.nextBytes(pixels);
        for (int i = 0; i < n; i++) labels[i] = (byte) r.nextInt(10);
        return new Dataset(pixels, labels, 3, 4, 5, 10);
    }

    /** The driver's images reach the executors as broadcasts, not inside a task (Spark warns of tasks over 1,000 KiB). */
    @Test
    void preparingDataFromTheDriverSendsNoLargeTask() throws IOException {
        LoggerContext logs = (LoggerContext) LogManager.getContext(false);
        List<String> warnings = new CopyOnWriteArrayList<>();
        AbstractAppender capture = new AbstractAppender("capture-warnings", null, null, true, Property.EMPTY_ARRAY) {
            @Override
            public void append(LogEvent e) {
                warnings.add(e.getMessage().getFormattedMessage());
            }
        };
        capture.start();
        logs.getConfiguration().getRootLogger().addAppender(capture, Level.WARN, null);
        logs.updateLoggers();
        try {
            Dataset big = generated(60_000, 7); // 3.6 MB of pixels, as many images as Fashion-MNIST's training set
            String out = dir.resolve("big").toString();
            ParquetData.prepare(spark, big, generated(10, 8), out, 2, false);
            assertEquals(60_000, ParquetData.describe(out, spark.sparkContext().hadoopConfiguration()).trainSize());
            var rows = spark.read().schema(ParquetData.SCHEMA).parquet(out + "/train").orderBy("index").limit(4097).collectAsList();
            assertArrayEquals(Arrays.copyOfRange(big.pixels(), 4096 * 60, 4097 * 60), (byte[]) rows.get(4096).get(2), "image 4096, the second chunk's first");
            assertEquals(big.label(4096), rows.get(4096).getInt(1));
        } finally {
            logs.getConfiguration().getRootLogger().removeAppender("capture-warnings");
            logs.updateLoggers();
        }
        assertTrue(warnings.stream().noneMatch(w -> w.contains("very large size")), warnings.toString());
    }

    /** A prepared split missing a file, or holding another count of rows, is refused before training, naming it. */
    @Test
    void anIncompletePreparedSplitIsNamedBeforeAnyTrainingStage() throws IOException {
        String out = dir.resolve("whole").toString();
        ParquetData.prepare(spark, generated(40, 5), generated(12, 6), out, 3, false);
        var conf = spark.sparkContext().hadoopConfiguration();
        ParquetData.Description d = ParquetData.describe(out, conf);
        assertEquals(3, d.files().get("train").size());
        ParquetData.checkWhole(spark, out, d); // whole: no complaint
        assertEquals(40, SparkData.load(spark, out, 2, 0, 0).trainSize());

        Path gone;
        try (var parts = Files.list(dir.resolve("whole/train"))) {
            gone = parts.filter(p -> p.toString().endsWith(".parquet")).sorted().toList().get(1);
        }
        Path kept = dir.resolve("kept.parquet");
        Files.move(gone, kept);
        String m = assertThrows(IOException.class, () -> SparkData.load(spark, out, 2, 0, 0)).getMessage();
        assertTrue(m.contains("1 of the 3 files prepare wrote are missing") && m.contains(gone.getFileName().toString()), m);

        // The file back, but one of the test split's files duplicated under another name: the count no longer adds up.
        Files.move(kept, gone);
        try (var parts = Files.list(dir.resolve("whole/test"))) {
            Path first = parts.filter(p -> p.toString().endsWith(".parquet")).sorted().findFirst().orElseThrow();
            Files.copy(first, dir.resolve("whole/test/part-99999-copy.snappy.parquet"));
        }
        m = assertThrows(IOException.class, () -> ParquetData.checkWhole(spark, out, ParquetData.describe(out, conf))).getMessage();
        assertTrue(m.contains("whole/test") && m.contains("but prepare wrote 12") && m.contains("run prepare again"), m);
    }

    @Test
    void preparedDataReadsBackInOrderAndIsNotOverwrittenUnlessAsked() throws IOException {
        Dataset train = generated(50, 1), test = generated(20, 2);
        String out = dir.resolve("prepared").toString();
        ParquetData.prepare(spark, train, test, out, 3, false);
        try (var files = Files.list(dir)) {
            assertEquals(List.of("prepared"), files.map(p -> p.getFileName().toString()).toList(), "no temporary directory is left");
        }
        try (var parts = Files.list(dir.resolve("prepared/train"))) {
            assertEquals(3, parts.filter(p -> p.toString().endsWith(".parquet")).count());
        }
        var conf = spark.sparkContext().hadoopConfiguration();
        assertTrue(DataSource.isPrepared(out, conf));
        Dataset back = DataSource.read(out, "train", conf, () -> spark);
        assertArrayEquals(train.pixels(), back.pixels());
        assertArrayEquals(train.labels(), back.labels());
        assertEquals(5, back.width());
        assertArrayEquals(test.labels(), DataSource.read(out, "t10k", conf, () -> spark).labels());

        String m = assertThrows(IOException.class, () -> ParquetData.prepare(spark, test, test, out, 1, false)).getMessage();
        assertTrue(m.contains("exists") && m.contains("--overwrite"), m);
        assertArrayEquals(train.labels(), DataSource.read(out, "train", conf, () -> spark).labels(), "the refused run changed nothing");
        ParquetData.prepare(spark, test, test, out, 1, true);
        assertArrayEquals(test.labels(), DataSource.read(out, "train", conf, () -> spark).labels());
    }

    @Test
    void overwriteReplacesOnlyPreparedDataAndStaleTemporariesAreRemoved() throws IOException {
        Path mine = dir.resolve("notes");
        Files.createDirectories(mine);
        Files.writeString(mine.resolve("thesis.txt"), "years of work");
        String m = assertThrows(IOException.class, () -> ParquetData.prepare(spark, generated(10, 1), generated(5, 2), mine.toString(), 1, true)).getMessage();
        assertTrue(m.contains(mine.toString()) && m.contains(ParquetData.MARKER), m);
        assertEquals("years of work", Files.readString(mine.resolve("thesis.txt")));

        Path stale = dir.resolve(".out.tmp-dead"), fresh = dir.resolve(".out.tmp-busy");
        for (Path t : new Path[] {stale, fresh}) {
            Files.createDirectories(t.resolve("train"));
            Files.writeString(t.resolve("train/part"), "half");
        }
        FileTime old = FileTime.fromMillis(System.currentTimeMillis() - 3_600_000);
        for (Path p : new Path[] {stale.resolve("train/part"), stale.resolve("train"), stale}) Files.setLastModifiedTime(p, old);
        ParquetData.prepare(spark, generated(10, 1), generated(5, 2), dir.resolve("out").toString(), 1, false);
        assertFalse(Files.exists(stale), "a temporary nobody wrote to for an hour is removed");
        assertTrue(Files.exists(fresh), "a temporary being written may belong to a run in progress");
    }

    @Test
    void corruptParquetIsAClearError() throws IOException {
        String out = dir.resolve("p").toString();
        ParquetData.prepare(spark, generated(10, 3), generated(5, 4), out, 1, false);
        try (var parts = Files.list(dir.resolve("p/train"))) {
            Path part = parts.filter(p -> p.toString().endsWith(".parquet")).findFirst().orElseThrow();
            byte[] bytes = Files.readAllBytes(part);
            Files.write(part, Arrays.copyOf(bytes, bytes.length / 2));
        }
        String m = assertThrows(IOException.class, () -> ParquetData.read(spark, out, "train")).getMessage();
        assertTrue(m.contains("train"), m);
        assertFalse(m.isBlank());
    }
}
