package dev.syncbn.data;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SaveMode;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * Prepared data: DIR/train and DIR/test, each a set of Parquet files with one row per image
 * (index, label, image bytes, channels, height, width), and a marker file DIR/_SYNCBN_PREPARED written
 * last. The whole directory is written under a temporary name and renamed into place.
 */
public final class ParquetData {
    public static final String MARKER = "_SYNCBN_PREPARED";
    public static final StructType SCHEMA = new StructType()
            .add("index", DataTypes.IntegerType, false)
            .add("label", DataTypes.IntegerType, false)
            .add("image", DataTypes.BinaryType, false)
            .add("channels", DataTypes.IntegerType, false)
            .add("height", DataTypes.IntegerType, false)
            .add("width", DataTypes.IntegerType, false);

    private ParquetData() {}

    /** Writes train and test into `files` Parquet files each under out; refuses an existing out unless overwrite. */
    public static void prepare(SparkSession spark, Dataset train, Dataset test, String out, int files, boolean overwrite) throws IOException {
        if (files < 1) throw new IllegalArgumentException("--files must be at least 1, got " + files);
        Configuration conf = spark.sparkContext().hadoopConfiguration();
        AtomicWrite.writeDirectory(out, overwrite, MARKER, conf, tmp -> {
            write(spark, train, new Path(tmp, "train").toString(), files);
            write(spark, test, new Path(tmp, "test").toString(), files);
            try (var marker = tmp.getFileSystem(conf).create(new Path(tmp, MARKER))) {
                marker.write(("train " + train.size() + "\ntest " + test.size() + "\nshape " + train.channels() + "x" + train.height() + "x" + train.width()
                        + "\nclasses " + Math.max(train.classes(), test.classes()) + "\nfiles.train " + String.join(",", partFiles(new Path(tmp, "train"), conf))
                        + "\nfiles.test " + String.join(",", partFiles(new Path(tmp, "test"), conf)) + "\n").getBytes(StandardCharsets.UTF_8));
            }
        });
    }

    private static void write(SparkSession spark, Dataset d, String path, int files) {
        frame(spark, d).repartition(files).write().mode(SaveMode.ErrorIfExists).parquet(path);
    }

    /** Images per chunk of frame(spark, d): 3 MB of Fashion-MNIST, each a broadcast of its own. */
    private static final int CHUNK = 4096;

    /**
     * A data set in the driver's memory as rows of prepared data (SCHEMA: index, label, image bytes,
     * shape). The pixels travel as broadcasts of CHUNK images each, which the tasks turn into rows: as
     * rows of a local relation they travelled inside one task (Spark's "task of very large size" warning,
     * 25 MB for Fashion-MNIST's training set).
     */
    public static org.apache.spark.sql.Dataset<Row> frame(SparkSession spark, Dataset d) {
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        int size = d.sampleSize(), channels = d.channels(), height = d.height(), width = d.width();
        List<Broadcast<byte[]>> pixels = new ArrayList<>(), labels = new ArrayList<>();
        List<Integer> chunks = new ArrayList<>();
        for (int from = 0; from < d.size(); from += CHUNK) {
            int to = Math.min(d.size(), from + CHUNK);
            pixels.add(sc.broadcast(Arrays.copyOfRange(d.pixels(), from * size, to * size)));
            labels.add(sc.broadcast(Arrays.copyOfRange(d.labels(), from, to)));
            chunks.add(chunks.size());
        }
        JavaRDD<Row> rows = sc.parallelize(chunks, Math.max(1, chunks.size())).flatMap(c -> {
            byte[] p = pixels.get(c).value(), l = labels.get(c).value();
            List<Row> out = new ArrayList<>(l.length);
            for (int i = 0; i < l.length; i++) {
                out.add(RowFactory.create(c * CHUNK + i, l[i] & 0xff, Arrays.copyOfRange(p, i * size, (i + 1) * size), channels, height, width));
            }
            return out.iterator();
        });
        return spark.createDataFrame(rows, SCHEMA);
    }

    /** A split ("train" or "test") of --data as rows of prepared data: read from the Parquet files, or made from IDX or CIFAR-10 files on the driver. */
    public static org.apache.spark.sql.Dataset<Row> frame(SparkSession spark, String dir, String split) throws IOException {
        Configuration conf = spark.sparkContext().hadoopConfiguration();
        if (DataSource.isPrepared(dir, conf)) return spark.read().schema(SCHEMA).parquet(new Path(dir, split).toString());
        return frame(spark, DataSource.readSplits(dir, conf, () -> spark)[split.equals("train") ? 0 : 1]);
    }

    /** The Parquet files of a split directory, by name, sorted. */
    static List<String> partFiles(Path splitDir, Configuration conf) throws IOException {
        List<String> names = new ArrayList<>();
        for (var st : splitDir.getFileSystem(conf).listStatus(splitDir)) {
            if (st.isFile() && st.getPath().getName().endsWith(".parquet")) names.add(st.getPath().getName());
        }
        Collections.sort(names);
        return names;
    }

    /**
     * What the marker of a prepared directory says: image counts, shape, class count, and the files of
     * each split (empty for data prepared before the marker listed them).
     */
    public record Description(int trainSize, int testSize, int channels, int height, int width, int classes, Map<String, List<String>> files) {}

    /**
     * Checks, before any training stage, that each split of prepared data is whole: every file the
     * marker lists is there, and the rows add up to the marker's count. A deterministic fault found
     * here ends the run with one message instead of failing the barrier stage and its relaunches.
     */
    public static void checkWhole(SparkSession spark, String dir, Description d) throws IOException {
        Configuration conf = spark.sparkContext().hadoopConfiguration();
        for (String split : List.of("train", "test")) {
            Path path = new Path(dir, split);
            List<String> listed = d.files().getOrDefault(split, List.of()), present = partFiles(path, conf);
            List<String> missing = new ArrayList<>(listed);
            missing.removeAll(present);
            if (!missing.isEmpty()) {
                throw new IOException(path + ": " + missing.size() + " of the " + listed.size() + " files prepare wrote are missing (" + String.join(", ", missing)
                        + "); run prepare again");
            }
            long rows;
            try {
                rows = spark.read().schema(SCHEMA).parquet(path.toString()).count();
            } catch (Exception e) { // Spark's SparkException is checked in Java and undeclared by Scala
                throw new IOException(path + ": not readable as prepared Parquet data: " + e.getMessage(), e);
            }
            long expected = split.equals("train") ? d.trainSize() : d.testSize();
            if (rows != expected) {
                throw new IOException(path + ": " + rows + " images in " + present.size() + " files, but prepare wrote " + expected
                        + " (" + new Path(dir, MARKER) + "); a file is missing, extra or damaged: run prepare again");
            }
        }
    }

    public static Description describe(String dir, Configuration conf) throws IOException {
        Path marker = new Path(dir, MARKER);
        Map<String, String> fields = new HashMap<>();
        try (var in = new BufferedReader(new InputStreamReader(marker.getFileSystem(conf).open(marker), StandardCharsets.UTF_8))) {
            for (String line; (line = in.readLine()) != null; ) {
                String[] kv = line.trim().split(" ", 2);
                if (kv.length == 2) fields.put(kv[0], kv[1]);
            }
        }
        try {
            String[] shape = fields.get("shape").split("x");
            if (!fields.containsKey("classes")) throw new IOException(marker + ": written by an older prepare, without the class count; run prepare again");
            Map<String, List<String>> files = new HashMap<>();
            for (String split : List.of("train", "test")) {
                String listed = fields.get("files." + split);
                if (listed != null && !listed.isBlank()) files.put(split, List.of(listed.trim().split(",")));
            }
            return new Description(Integer.parseInt(fields.get("train")), Integer.parseInt(fields.get("test")), Integer.parseInt(shape[0]),
                    Integer.parseInt(shape[1]), Integer.parseInt(shape[2]), Integer.parseInt(fields.get("classes")), files);
        } catch (RuntimeException e) {
            throw new IOException(marker + ": not a marker written by prepare (" + fields + ")", e);
        }
    }

    /** Reads DIR/part ("train" or "test"); rows are put back in index order and checked. */
    public static Dataset read(SparkSession spark, String dir, String part) throws IOException {
        String path = new Path(dir, part).toString();
        List<Row> rows;
        try {
            rows = spark.read().schema(SCHEMA).parquet(path).collectAsList();
        } catch (Exception e) { // Spark throws its checked SparkException from Scala code, undeclared
            throw new IOException(path + ": not readable as prepared Parquet data: " + e.getMessage(), e);
        }
        if (rows.isEmpty()) throw new IOException(path + ": no images");
        int classes = describe(dir, spark.sparkContext().hadoopConfiguration()).classes();
        try {
            return fromRows(rows, path, classes);
        } catch (RuntimeException e) { // nulls, wrong types: whatever a foreign file holds
            throw new IOException(path + ": not prepared data of this program: " + e, e);
        }
    }

    private static Dataset fromRows(List<Row> rows, String path, int classes) throws IOException {
        Row first = rows.get(0);
        int c = first.getInt(3), h = first.getInt(4), w = first.getInt(5), size = c * h * w, n = rows.size();
        if (c < 1 || h < 1 || w < 1 || (long) c * h * w > 1 << 20) throw new IOException(path + ": implausible image shape " + c + "x" + h + "x" + w);
        byte[] pixels = new byte[n * size], labels = new byte[n];
        boolean[] seen = new boolean[n];
        for (Row r : rows) {
            int index = r.getInt(0), label = r.getInt(1);
            byte[] image = (byte[]) r.get(2);
            if (index < 0 || index >= n || seen[index]) throw new IOException(path + ": image index " + index + " is out of range or repeated (" + n + " rows)");
            if (r.getInt(3) != c || r.getInt(4) != h || r.getInt(5) != w || image.length != size) {
                throw new IOException(path + ": image " + index + " has shape " + r.getInt(3) + "x" + r.getInt(4) + "x" + r.getInt(5) + " and " + image.length
                        + " bytes; the others are " + c + "x" + h + "x" + w);
            }
            if (label < 0 || label >= classes) throw new IOException(path + ": label " + label + " of image " + index + " is out of range 0.." + (classes - 1));
            seen[index] = true;
            labels[index] = (byte) label;
            System.arraycopy(image, 0, pixels, index * size, size);
        }
        return new Dataset(pixels, labels, c, h, w, classes);
    }
}
