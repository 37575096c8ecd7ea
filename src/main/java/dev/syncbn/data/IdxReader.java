package dev.syncbn.data;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.util.zip.GZIPInputStream;
import java.util.zip.ZipException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Reads MNIST-format IDX files (gzip-compressed or plain) from any Hadoop file system: images
 * (magic 0x00000803, unsigned bytes, N x rows x cols) and labels (magic 0x00000801, N). Every error
 * names the file.
 */
public final class IdxReader {
    public static final int IMAGES_MAGIC = 0x00000803, LABELS_MAGIC = 0x00000801;
    /** No real IDX file comes near this; a larger claim is a corrupt header, refused before allocating. */
    static final long MAX_BYTES = 1L << 30;

    private IdxReader() {}

    /** Reads the train or test split ("train" or "t10k") of an MNIST-layout directory. */
    public static Dataset readSplit(String dir, String split, Configuration conf) throws IOException {
        Path d = new Path(dir);
        return read(find(d, split + "-images-idx3-ubyte", conf), find(d, split + "-labels-idx1-ubyte", conf), conf);
    }

    private static Path find(Path dir, String name, Configuration conf) throws IOException {
        FileSystem fs = dir.getFileSystem(conf);
        for (String candidate : new String[] {name + ".gz", name}) {
            Path p = new Path(dir, candidate);
            if (fs.exists(p)) return p;
        }
        throw new IOException("no " + name + "(.gz) in " + dir);
    }

    /** The images and labels of two IDX files; the class count is the largest label + 1 (the data carries it). */
    public static Dataset read(Path images, Path labels, Configuration conf) throws IOException {
        ByteBuffer img = load(images, conf);
        ByteBuffer lab = load(labels, conf);
        int n = header(img, images, IMAGES_MAGIC, 3);
        int rows = dim(img, images, "rows"), cols = dim(img, images, "columns");
        if (rows == 0 || cols == 0) throw new IOException(images + ": empty image size " + rows + "x" + cols);
        int nl = header(lab, labels, LABELS_MAGIC, 1);
        if (n != nl) throw new IOException(images + " has " + n + " images but " + labels + " has " + nl + " labels");
        long pixelCount;
        try {
            pixelCount = Math.multiplyExact(Math.multiplyExact((long) n, (long) rows), (long) cols);
        } catch (ArithmeticException e) {
            throw new IOException(images + ": header dimensions " + n + " x " + rows + " x " + cols + " overflow");
        }
        byte[] pixels = body(img, images, pixelCount);
        byte[] labelBytes = body(lab, labels, nl);
        return new Dataset(pixels, labelBytes, 1, rows, cols, Dataset.classesOf(labelBytes));
    }

    /** The whole (decompressed) file, read without trusting any size it claims. */
    private static ByteBuffer load(Path path, Configuration conf) throws IOException {
        FileSystem fs = path.getFileSystem(conf);
        try (InputStream raw = fs.open(path)) {
            InputStream in = new BufferedInputStream(raw);
            in.mark(2);
            boolean gzip = in.read() == 0x1f && in.read() == 0x8b;
            in.reset();
            if (gzip) in = new GZIPInputStream(in, 1 << 16);
            ByteArrayOutputStream out = new ByteArrayOutputStream(1 << 20);
            byte[] chunk = new byte[1 << 16];
            for (int r; (r = in.read(chunk)) > 0; ) {
                out.write(chunk, 0, r);
                if (out.size() > MAX_BYTES) throw new IOException(path + ": larger than " + MAX_BYTES + " bytes, not an IDX file of this kind");
            }
            return ByteBuffer.wrap(out.toByteArray());
        } catch (ZipException | EOFException e) {
            throw new IOException(path + ": corrupt or truncated gzip data (" + e.getMessage() + ")", e);
        }
    }

    private static int header(ByteBuffer b, Path path, int magic, int dims) throws IOException {
        if (b.remaining() < 4 + 4 * dims) throw new IOException(path + ": truncated header (" + b.remaining() + " bytes)");
        int got = b.getInt();
        if (got != magic) {
            throw new IOException(String.format("%s: wrong magic number 0x%08x, expected 0x%08x (%s)", path, got, magic,
                    magic == IMAGES_MAGIC ? "unsigned-byte images, 3 dimensions" : "unsigned-byte labels, 1 dimension"));
        }
        return dim(b, path, "item count");
    }

    private static int dim(ByteBuffer b, Path path, String what) throws IOException {
        int v = b.getInt();
        if (v < 0) throw new IOException(path + ": negative " + what + " " + v);
        return v;
    }

    private static byte[] body(ByteBuffer b, Path path, long expected) throws IOException {
        if (b.remaining() < expected) throw new IOException(path + ": truncated: header promises " + expected + " data bytes, file has " + b.remaining());
        if (b.remaining() > expected) throw new IOException(path + ": " + (b.remaining() - expected) + " bytes after the data the header describes");
        byte[] out = new byte[(int) expected];
        b.get(out);
        return out;
    }
}
