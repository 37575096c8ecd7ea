package dev.syncbn.data;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Reads CIFAR-10's binary batches (data_batch_1.bin .. data_batch_5.bin, test_batch.bin): records of one
 * label byte and 3 x 32 x 32 pixel bytes (red, green, blue planes), which is already NCHW.
 */
public final class CifarReader {
    public static final int CHANNELS = 3, SIZE = 32, RECORD = 1 + CHANNELS * SIZE * SIZE, CLASSES = 10;
    /** Five training batches of 10,000 records: a larger file is not a CIFAR-10 batch. */
    static final long MAX_BYTES = 10_000L * RECORD * 6;

    private CifarReader() {}

    public static boolean looksLike(String dir, Configuration conf) throws IOException {
        Path d = new Path(dir);
        return d.getFileSystem(conf).exists(new Path(d, "test_batch.bin"));
    }

    /** "train": data_batch_1..5.bin (as many as exist, at least one); "t10k"/"test": test_batch.bin. */
    public static Dataset readSplit(String dir, String split, Configuration conf) throws IOException {
        Path d = new Path(dir);
        FileSystem fs = d.getFileSystem(conf);
        List<Path> files = new ArrayList<>();
        if (split.equals("train")) {
            for (int i = 1; i <= 5; i++) {
                Path p = new Path(d, "data_batch_" + i + ".bin");
                if (fs.exists(p)) files.add(p);
            }
        } else {
            files.add(new Path(d, "test_batch.bin"));
        }
        if (files.isEmpty() || !fs.exists(files.get(0))) throw new IOException("no CIFAR-10 " + split + " batches (" + (split.equals("train") ? "data_batch_N.bin" : "test_batch.bin") + ") in " + dir);
        ByteArrayOutputStream pixels = new ByteArrayOutputStream(), labels = new ByteArrayOutputStream();
        for (Path p : files) read(p, fs, pixels, labels);
        return new Dataset(pixels.toByteArray(), labels.toByteArray(), CHANNELS, SIZE, SIZE, CLASSES);
    }

    static void read(Path p, FileSystem fs, ByteArrayOutputStream pixels, ByteArrayOutputStream labels) throws IOException {
        long length = fs.getFileStatus(p).getLen();
        if (length == 0 || length % RECORD != 0 || length > MAX_BYTES) {
            throw new IOException(p + ": " + length + " bytes is not a whole number of " + RECORD + "-byte CIFAR-10 records");
        }
        byte[] record = new byte[RECORD];
        try (InputStream in = new BufferedInputStream(fs.open(p), 1 << 16)) {
            for (long r = 0; r < length / RECORD; r++) {
                int got = in.readNBytes(record, 0, RECORD);
                if (got != RECORD) throw new IOException(p + ": truncated in record " + r);
                int label = record[0] & 0xff;
                if (label >= CLASSES) throw new IOException(p + ": label " + label + " of record " + r + " is out of range 0.." + (CLASSES - 1));
                labels.write(label);
                pixels.write(record, 1, RECORD - 1);
            }
        }
    }
}
