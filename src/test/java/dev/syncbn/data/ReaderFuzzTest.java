package dev.syncbn.data;

import dev.syncbn.spark.SparkSetup;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Random;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Every reader fed generated bad files: random bytes, truncations, headers with random (also huge)
 * sizes. Each read must end, quickly, either with a consistent dataset or with an IOException that
 * names the file: never another exception, an out-of-memory error or a hang.
 */
class ReaderFuzzTest {
    @TempDir
    Path dir;

    private final Configuration conf = new Configuration();

    interface Read {
        Dataset read() throws IOException;
    }

    private static void expectCleanOutcome(Read read, String name, String what) {
        try {
            Dataset d = read.read();
            assertTrue(d.size() >= 0 && d.pixels().length == (long) d.size() * d.sampleSize(), what);
        } catch (IOException e) {
            assertTrue(e.getMessage() != null && e.getMessage().contains(name), what + ": the error does not name the file: " + e.getMessage());
        } catch (RuntimeException | OutOfMemoryError e) {
            fail(what + ": " + e, e);
        }
    }

    private static byte[] idxImages(Random r) {
        int n = r.nextInt(4), rows = 1 + r.nextInt(4), cols = 1 + r.nextInt(4);
        ByteBuffer b = ByteBuffer.allocate(16 + n * rows * cols).putInt(IdxReader.IMAGES_MAGIC).putInt(n).putInt(rows).putInt(cols);
        while (b.hasRemaining()) b.put((byte) r.nextInt());
        return b.array();
    }

    private static byte[] mutate(byte[] good, Random r) {
        byte[] b;
        switch (r.nextInt(4)) {
            case 0 -> { // truncated
                b = Arrays.copyOf(good, r.nextInt(good.length));
            }
            case 1 -> { // a header field replaced by a random, often huge, value
                b = good.clone();
                if (b.length >= 16) ByteBuffer.wrap(b).putInt(4 * (1 + r.nextInt(3)), r.nextBoolean() ? r.nextInt() : Integer.MAX_VALUE - r.nextInt(10));
            }
            case 2 -> { // random bytes
                b = new byte[r.nextInt(64)];
                r.nextBytes(b);
            }
            default -> { // random bytes after a valid magic number
                b = new byte[4 + r.nextInt(64)];
                r.nextBytes(b);
                ByteBuffer.wrap(b).putInt(IdxReader.IMAGES_MAGIC);
            }
        }
        return b;
    }

    @Test
    void idxAndCifarReadersSurviveThousandsOfBadFiles() {
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            Random r = new Random(42);
            Path labels = dir.resolve("labels");
            for (int i = 0; i < 2000; i++) {
                byte[] img = mutate(idxImages(r), r);
                if (r.nextInt(4) == 0) img = IdxReaderTest.gzip(img);
                if (r.nextInt(8) == 0 && img.length > 10) img = Arrays.copyOf(img, img.length - 1 - r.nextInt(8)); // broken gzip too
                Path images = dir.resolve("images-" + (i % 10));
                Files.write(images, img);
                int n = img.length >= 8 ? Math.max(0, ByteBuffer.wrap(img).getInt(4)) % 5 : 0;
                byte[] lab = ByteBuffer.allocate(8 + n).putInt(IdxReader.LABELS_MAGIC).putInt(n).array();
                Files.write(labels, lab);
                expectCleanOutcome(() -> IdxReader.read(new org.apache.hadoop.fs.Path(images.toUri()), new org.apache.hadoop.fs.Path(labels.toUri()), conf),
                        images.getFileName().toString(), "IDX case " + i);
            }
            Path cifar = dir.resolve("cifar");
            Files.createDirectories(cifar);
            for (int i = 0; i < 1000; i++) {
                byte[] b = new byte[r.nextInt(3) == 0 ? CifarReader.RECORD * (1 + r.nextInt(2)) : r.nextInt(2 * CifarReader.RECORD)];
                r.nextBytes(b);
                Files.write(cifar.resolve("test_batch.bin"), b);
                expectCleanOutcome(() -> CifarReader.readSplit(cifar.toString(), "test", conf), "test_batch.bin", "CIFAR case " + i);
            }
        });
    }

    @Test
    void parquetReaderSurvivesBadFiles() throws Exception {
        SparkSession spark = SparkSession.builder().config(SparkSetup.configure(new SparkConf().setMaster("local[2]").setAppName("fuzz"))).getOrCreate();
        try {
            String good = dir.resolve("good").toString();
            ParquetData.prepare(spark, ParquetDataTest.generated(20, 1), ParquetDataTest.generated(5, 2), good, 1, false);
            Path part;
            try (var parts = Files.list(Path.of(good, "train"))) {
                part = parts.filter(p -> p.toString().endsWith(".parquet")).findFirst().orElseThrow();
            }
            byte[] original = Files.readAllBytes(part);
            Random r = new Random(7);
            long t0 = System.nanoTime();
            for (int i = 0; i < 60; i++) {
                byte[] bad = original.clone();
                switch (i % 3) {
                    case 0 -> bad = Arrays.copyOf(bad, r.nextInt(bad.length));
                    case 1 -> {
                        for (int k = 0; k < 8; k++) bad[r.nextInt(bad.length)] = (byte) r.nextInt();
                    }
                    default -> r.nextBytes(bad);
                }
                Files.write(part, bad);
                Files.deleteIfExists(part.resolveSibling("." + part.getFileName() + ".crc")); // so the bytes reach the Parquet reader
                expectCleanOutcome(() -> ParquetData.read(spark, good, "train"), "train", "Parquet case " + i);
            }
            assertTrue((System.nanoTime() - t0) / 1e9 < 60, "60 bad Parquet files took more than a minute");
        } finally {
            spark.stop();
        }
    }
}
