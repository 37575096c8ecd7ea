package dev.syncbn.spark;

import dev.syncbn.data.DataSource;
import dev.syncbn.data.Dataset;
import dev.syncbn.data.ImageRows;
import dev.syncbn.data.ParquetData;
import dev.syncbn.nn.NetSpec;
import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * A run's data as blocks on the executors: trainSize training samples numbered 0..trainSize-1, the
 * evaluation samples, and the image shape and class count that the network is built for.
 */
public record SparkData(JavaRDD<Blocks.Block> train, int trainSize, JavaRDD<Blocks.Block> test, int testSize, int channels, int height, int width,
        int classes) {
    /** The network that net (as --net takes it) names for this data's images and classes. */
    public NetSpec spec(String net) {
        return NetSpec.forData(net, channels, height, width, classes);
    }

    /** The first maxTrain training and maxTest evaluation samples (by number). */
    public SparkData head(int maxTrain, int maxTest) {
        int n = Math.min(trainSize, maxTrain), m = Math.min(testSize, maxTest);
        return new SparkData(train.map(b -> b.below(n)), n, test.map(b -> b.below(m)), m, channels, height, width, classes);
    }

    /** Data in the driver's memory, shipped once as `parts` contiguous blocks of each split. */
    public static SparkData of(JavaSparkContext sc, Dataset train, Dataset test, int parts) {
        int k = Math.max(train.classes(), test.classes());
        return new SparkData(shipped(sc, Blocks.split(train, parts)), train.size(), shipped(sc, Blocks.split(test, parts)), test.size(), train.channels(),
                train.height(), train.width(), k);
    }

    /**
     * Blocks in the driver's memory as an RDD of one block per partition, each block a broadcast of its
     * own: the executor that computes a partition fetches that block through the block manager. (With
     * parallelize the blocks would travel inside the tasks: 47 MB of Fashion-MNIST in W tasks, and a
     * "task of very large size" warning for each stage that reads them.)
     */
    private static JavaRDD<Blocks.Block> shipped(JavaSparkContext sc, List<Blocks.Block> blocks) {
        List<Broadcast<Blocks.Block>> handles = new ArrayList<>();
        for (Blocks.Block b : blocks) handles.add(sc.broadcast(b));
        List<Integer> index = new ArrayList<>();
        for (int i = 0; i < blocks.size(); i++) index.add(i);
        return sc.parallelize(index, blocks.size()).map(i -> handles.get(i).value());
    }

    /**
     * --data as `parts` blocks per split, cut to the first maxTrain and maxTest samples (0: all): prepared
     * Parquet is read by the executors themselves; IDX and CIFAR-10 directories by the driver, then shipped.
     */
    public static SparkData load(SparkSession spark, String dir, int parts, int maxTrain, int maxTest) throws IOException {
        Configuration conf = spark.sparkContext().hadoopConfiguration();
        if (DataSource.isPrepared(dir, conf)) {
            ParquetData.Description d = ParquetData.describe(dir, conf);
            ParquetData.checkWhole(spark, dir, d);
            int trainSize = Dataset.limit(d.trainSize(), maxTrain), testSize = Dataset.limit(d.testSize(), maxTest);
            return new SparkData(Blocks.fromPrepared(spark, dir, "train", parts, trainSize, d), trainSize, Blocks.fromPrepared(spark, dir, "test", parts,
                    testSize, d), testSize, d.channels(), d.height(), d.width(), d.classes());
        }
        Dataset[] splits = DataSource.readSplits(dir, conf, () -> spark);
        return of(JavaSparkContext.fromSparkContext(spark.sparkContext()), splits[0].head(Dataset.limit(splits[0].size(), maxTrain)),
                splits[1].head(Dataset.limit(splits[1].size(), maxTest)), parts);
    }

    /** What a check pass found in one partition of a DataFrame: its row count, its largest label and its first bad row (or null). */
    public record Check(long rows, int maxLabel, String problem) implements Serializable {}

    /**
     * The rows of a training and an evaluation DataFrame (features and label columns; see ImageRows) as
     * blocks on the executors, for images of channels x height x width. A first pass over each frame
     * counts its rows per partition and finds its first bad row without failing a task, so that a bad
     * column is refused here, naming it, before any barrier stage starts; the second pass decodes the
     * rows on the executors straight into blocks, numbering them in the frame's order. The frames must
     * give the same rows in the same order on both passes (as any source read from files does; cache one
     * that is computed nondeterministically). classes: 0 to count them from the labels (largest + 1).
     */
    public static SparkData fromFrames(org.apache.spark.sql.Dataset<Row> train, org.apache.spark.sql.Dataset<Row> eval, String featuresCol, String labelCol,
            int channels, int height, int width, int classes) {
        ImageRows.Kind kind = ImageRows.kindOf(train.schema(), featuresCol);
        ImageRows.checkLabelType(train.schema(), labelCol);
        int size = channels * height * width;
        long[][] counts = new long[2][];
        int maxLabel = -1;
        org.apache.spark.sql.Dataset<Row>[] frames = new org.apache.spark.sql.Dataset[] {train.select(featuresCol, labelCol), eval.select(featuresCol, labelCol)};
        for (int f = 0; f < 2; f++) {
            List<Check> checks = frames[f].javaRDD().mapPartitionsWithIndex((p, rows) -> check(p, rows, kind, size, featuresCol, labelCol), true).collect();
            counts[f] = new long[checks.size()];
            for (int p = 0; p < checks.size(); p++) {
                Check c = checks.get(p);
                if (c.problem() != null) {
                    throw new IllegalArgumentException((f == 0 ? "training" : "validation") + " data: " + c.problem());
                }
                counts[f][p] = c.rows();
                maxLabel = Math.max(maxLabel, c.maxLabel());
            }
        }
        int k = classes > 0 ? classes : maxLabel + 1;
        if (maxLabel >= k) throw new IllegalArgumentException("label column '" + labelCol + "' has the label " + maxLabel + ", but its metadata says " + k + " classes");
        if (k < 2) throw new IllegalArgumentException("label column '" + labelCol + "' has only the label 0: a classifier needs at least 2 classes");
        return new SparkData(decode(frames[0], counts[0], kind, channels, height, width, k), total(counts[0], "training"), decode(frames[1], counts[1], kind,
                channels, height, width, k), total(counts[1], "validation"), channels, height, width, k);
    }

    private static Iterator<Check> check(int partition, Iterator<Row> rows, ImageRows.Kind kind, int size, String featuresCol,
            String labelCol) {
        byte[] scratch = new byte[size];
        long n = 0;
        int maxLabel = -1;
        String problem = null;
        while (rows.hasNext() && problem == null) {
            Row r = rows.next();
            String bad = ImageRows.decode(r.get(0), kind, size, scratch, 0);
            int label = ImageRows.label(r.get(1));
            String row = " of row " + n + " of partition " + partition + " ";
            if (bad != null) problem = "features column '" + featuresCol + "'" + row + bad;
            else if (label < 0) problem = "label column '" + labelCol + "'" + row + "is " + r.get(1) + ", not a class number 0.." + (ImageRows.MAX_CLASSES - 1);
            maxLabel = Math.max(maxLabel, label);
            n++;
        }
        return Collections.singletonList(new Check(n, maxLabel, problem)).iterator();
    }

    private static JavaRDD<Blocks.Block> decode(org.apache.spark.sql.Dataset<Row> frame, long[] counts, ImageRows.Kind kind, int c, int h, int w, int k) {
        long[] first = new long[counts.length];
        for (int p = 1; p < counts.length; p++) first[p] = first[p - 1] + counts[p - 1];
        int size = c * h * w;
        return frame.javaRDD().mapPartitionsWithIndex((p, rows) -> {
            int n = (int) counts[p];
            int[] index = new int[n];
            byte[] pixels = new byte[n * size], labels = new byte[n];
            int i = 0;
            for (; rows.hasNext(); i++) {
                Row r = rows.next();
                if (i == n || ImageRows.decode(r.get(0), kind, size, pixels, i * size) != null) {
                    throw new IllegalStateException("partition " + p + " of the DataFrame changed between the check pass and decoding; cache the DataFrame");
                }
                index[i] = (int) (first[p] + i);
                labels[i] = (byte) ImageRows.label(r.get(1));
            }
            if (i != n) throw new IllegalStateException("partition " + p + " of the DataFrame had " + n + " rows in the check pass and " + i + " now; cache the DataFrame");
            return Collections.singletonList(new Blocks.Block(index, pixels, labels, c, h, w, k)).iterator();
        }, true);
    }

    private static int total(long[] counts, String what) {
        long n = 0;
        for (long c : counts) n += c;
        if (n > Integer.MAX_VALUE) throw new IllegalArgumentException(what + " data has " + n + " rows; at most " + Integer.MAX_VALUE + " are supported");
        return (int) n;
    }
}
