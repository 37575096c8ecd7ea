package dev.syncbn.data;

import dev.syncbn.nn.Buf;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.util.Arrays;
import java.util.zip.GZIPOutputStream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class IdxReaderTest {
    @TempDir
    java.nio.file.Path dir;

    static byte[] images(int magic, int n, int rows, int cols, int dataBytes) {
        ByteBuffer b = ByteBuffer.allocate(16 + dataBytes).putInt(magic).putInt(n).putInt(rows).putInt(cols);
        for (int i = 0; i < dataBytes; i++) b.put((byte) (i * 7));
        return b.array();
    }

    static byte[] labels(int magic, int n, byte... values) {
        ByteBuffer b = ByteBuffer.allocate(8 + values.length).putInt(magic).putInt(n).put(values);
        return b.array();
    }

    static byte[] gzip(byte[] data) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (GZIPOutputStream gz = new GZIPOutputStream(out)) {
            gz.write(data);
        }
        return out.toByteArray();
    }

    private Dataset read(byte[] img, byte[] lab) throws IOException {
        java.nio.file.Path i = dir.resolve("img"), l = dir.resolve("lab");
        Files.write(i, img);
        Files.write(l, lab);
        return IdxReader.read(new Path(i.toUri()), new Path(l.toUri()), new Configuration());
    }

    private String error(byte[] img, byte[] lab) {
        return assertThrows(IOException.class, () -> read(img, lab)).getMessage();
    }

    @Test
    void readsPlainAndGzipFilesWithPixelsInOrder() throws IOException {
        byte[] img = images(0x803, 3, 2, 2, 12), lab = labels(0x801, 3, (byte) 0, (byte) 9, (byte) 4);
        for (boolean gz : new boolean[] {false, true}) {
            Dataset d = gz ? read(gzip(img), gzip(lab)) : read(img, lab);
            assertEquals(3, d.size());
            assertEquals(2, d.height());
            assertEquals(9, d.label(1));
            assertEquals(10, d.classes(), "the class count comes from the labels");
            assertEquals((byte) (5 * 7), d.pixels()[5]);
            Buf input = Buf.zeros(DataType.DOUBLE, 8);
            int[] labelsOut = new int[2];
            d.fill(new int[] {2, 0, 1}, 0, 2, input, labelsOut);
            assertEquals(((8 * 7) & 0xff) / 255.0, input.get(0), 1e-12); // sample 2's first pixel
            assertEquals(4, labelsOut[0]);
            assertEquals(0, labelsOut[1]);
        }
    }

    @Test
    void badFilesGiveClearErrorsNamingTheFile() throws IOException {
        byte[] goodLab = labels(0x801, 2, (byte) 1, (byte) 2);
        String m = error(images(0x803, 2, 2, 2, 7), goodLab);
        assertTrue(m.contains("img") && m.contains("truncated"), m);
        m = error(images(0x803, 2, 2, 2, 9), goodLab);
        assertTrue(m.contains("img") && m.contains("after the data"), m);
        m = error(images(0x802, 2, 2, 2, 8), goodLab);
        assertTrue(m.contains("img") && m.contains("wrong magic"), m);
        assertEquals(11, read(images(0x803, 2, 2, 2, 8), labels(0x801, 2, (byte) 1, (byte) 10)).classes(), "a label of 10 means 11 classes");
        m = error(images(0x803, 3, 2, 2, 12), goodLab);
        assertTrue(m.contains("3 images") && m.contains("2 labels"), m);
        m = error(new byte[] {0, 0, 8}, goodLab);
        assertTrue(m.contains("img") && m.contains("truncated header"), m);
        m = error(images(0x803, Integer.MAX_VALUE, 1000, 1000, 4), goodLab); // absurd header: no huge allocation
        assertTrue(m.contains("img"), m);
        byte[] gz = gzip(images(0x803, 2, 2, 2, 8));
        m = error(Arrays.copyOf(gz, gz.length - 12), goodLab);
        assertTrue(m.contains("img") && m.contains("gzip"), m);
    }

    @Test
    void realFashionMnistWhenInstalled() throws IOException {
        String dirName = "/usr/share/datasets/fashion-mnist";
        Assumptions.assumeTrue(Files.isDirectory(java.nio.file.Path.of(dirName)) || System.getenv("CI") != null,
                "dataset-fashion-mnist is not installed");
        Dataset test = IdxReader.readSplit(dirName, "t10k", new Configuration());
        assertEquals(10_000, test.size());
        assertEquals(28, test.width());
        int[] perClass = new int[10];
        for (int i = 0; i < test.size(); i++) perClass[test.label(i)]++;
        for (int c : perClass) assertEquals(1000, c);
    }
}
