package dev.syncbn.data;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** CIFAR-10 cannot be downloaded here: its binary format is tested on generated files. */
class CifarReaderTest {
    @TempDir
    Path dir;

    static byte[] records(int n, int badLabelAt) {
        byte[] b = new byte[n * CifarReader.RECORD];
        for (int r = 0; r < n; r++) {
            b[r * CifarReader.RECORD] = (byte) (r == badLabelAt ? 10 : r % 10);
            for (int i = 1; i < CifarReader.RECORD; i++) b[r * CifarReader.RECORD + i] = (byte) (r + i);
        }
        return b;
    }

    @Test
    void readsTrainingBatchesAndTheTestBatch() throws IOException {
        Files.write(dir.resolve("data_batch_1.bin"), records(3, -1));
        Files.write(dir.resolve("data_batch_2.bin"), records(2, -1));
        Files.write(dir.resolve("test_batch.bin"), records(4, -1));
        Configuration conf = new Configuration();
        assertTrue(CifarReader.looksLike(dir.toString(), conf));
        Dataset train = DataSource.read(dir.toString(), "train", conf, () -> null);
        assertEquals(5, train.size());
        assertEquals(3, train.channels());
        assertEquals(32, train.width());
        assertEquals(1, train.label(4)); // record 1 of the second batch
        assertEquals((byte) (1 + 1), train.pixels()[4 * 3072]); // its first (red) pixel
        assertEquals(4, DataSource.read(dir.toString(), "t10k", conf, () -> null).size());
    }

    @Test
    void badBatchesAreRefusedWithTheirName() throws IOException {
        Configuration conf = new Configuration();
        Files.write(dir.resolve("test_batch.bin"), Arrays.copyOf(records(2, -1), 2 * CifarReader.RECORD - 5));
        String m = assertThrows(IOException.class, () -> CifarReader.readSplit(dir.toString(), "test", conf)).getMessage();
        assertTrue(m.contains("test_batch.bin") && m.contains("whole number"), m);
        Files.write(dir.resolve("test_batch.bin"), records(3, 1));
        m = assertThrows(IOException.class, () -> CifarReader.readSplit(dir.toString(), "test", conf)).getMessage();
        assertTrue(m.contains("test_batch.bin") && m.contains("label 10"), m);
        m = assertThrows(IOException.class, () -> CifarReader.readSplit(dir.toString(), "train", conf)).getMessage();
        assertTrue(m.contains("data_batch"), m);
    }
}
