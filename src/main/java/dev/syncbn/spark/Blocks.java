package dev.syncbn.spark;

import dev.syncbn.data.Dataset;
import dev.syncbn.data.ParquetData;
import dev.syncbn.data.Sampler;
import dev.syncbn.nn.NetSpec;
import java.io.ByteArrayOutputStream;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import org.apache.hadoop.fs.Path;
import org.apache.spark.Partitioner;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import scala.Tuple2;

/** The training data on the executors, and its per-epoch assignment to replicas. */
public final class Blocks {
    private Blocks() {}

    /** Samples in one contiguous block (not one object per image); index[i] is sample i's number in the whole set. */
    public record Block(int[] index, byte[] pixels, byte[] labels, int channels, int height, int width, int classes) implements Serializable {
        public int size() {
            return labels.length;
        }

        public Dataset dataset() {
            return new Dataset(pixels, labels, channels, height, width, classes);
        }

        /** The samples numbered below n. */
        public Block below(int n) {
            int size = channels * height * width, kept = 0;
            for (int i : index) if (i < n) kept++;
            int[] keptIndex = new int[kept];
            byte[] keptPixels = new byte[kept * size], keptLabels = new byte[kept];
            for (int i = 0, k = 0; i < index.length; i++) {
                if (index[i] >= n) continue;
                keptIndex[k] = index[i];
                keptLabels[k] = labels[i];
                System.arraycopy(pixels, i * size, keptPixels, k * size, size);
                k++;
            }
            return new Block(keptIndex, keptPixels, keptLabels, channels, height, width, classes);
        }
    }

    /**
     * The samples one block sends to one replica for an epoch: their positions in the replica's epoch
     * list (local index), and their pixels and labels in that order.
     */
    public record Part(int replica, int[] localIndex, byte[] pixels, byte[] labels) implements Serializable {}

    /**
     * The first `count` images of a prepared split (DIR/train or DIR/test), read by the executors
     * straight from the Parquet files into `parts` blocks: the data never passes through the driver.
     * Images of another shape or a label out of range fail the job with the file's directory named.
     */
    public static JavaRDD<Block> fromPrepared(SparkSession spark, String dir, String part, int parts, int count, ParquetData.Description d) {
        String path = new Path(dir, part).toString();
        int channels = d.channels(), height = d.height(), width = d.width(), classes = d.classes(), size = channels * height * width;
        // repartitioned as a DataFrame: Spark SQL's own row shuffle, not Kryo over Row objects
        return spark.read().schema(ParquetData.SCHEMA).parquet(path).filter(functions.col("index").lt(count)).repartition(parts).javaRDD()
                .mapPartitions(rows -> {
                    ByteArrayOutputStream pixels = new ByteArrayOutputStream(), labels = new ByteArrayOutputStream();
                    List<Integer> index = new ArrayList<>();
                    while (rows.hasNext()) {
                        Row r = rows.next();
                        byte[] image = (byte[]) r.get(2);
                        int label = r.getInt(1);
                        if (r.getInt(3) != channels || r.getInt(4) != height || r.getInt(5) != width || image.length != size || label < 0 || label >= classes) {
                            throw new IllegalArgumentException(path + ": image " + r.getInt(0) + " does not fit the prepared shape " + channels + "x" + height + "x"
                                    + width + " and labels 0.." + (classes - 1));
                        }
                        index.add(r.getInt(0));
                        pixels.write(image);
                        labels.write(label);
                    }
                    return Collections.singletonList(new Block(index.stream().mapToInt(Integer::intValue).toArray(), pixels.toByteArray(),
                            labels.toByteArray(), channels, height, width, classes)).iterator();
                });
    }

    /** Splits a dataset into `parts` contiguous blocks of nearly equal size. */
    public static List<Block> split(Dataset d, int parts) {
        List<Block> out = new ArrayList<>();
        int size = d.sampleSize();
        for (int p = 0; p < parts; p++) {
            int from = (int) ((long) d.size() * p / parts), to = (int) ((long) d.size() * (p + 1) / parts);
            int[] index = new int[to - from];
            for (int i = 0; i < index.length; i++) index[i] = from + i;
            out.add(new Block(index, Arrays.copyOfRange(d.pixels(), from * size, to * size), Arrays.copyOfRange(d.labels(), from, to),
                    d.channels(), d.height(), d.width(), d.classes()));
        }
        return out;
    }

    /** This block's share of the epoch's assignment (Sampler): each sample goes to its replica with its place there. */
    public static Iterator<Tuple2<Integer, Part>> assign(Block block, int n, long seed, int epoch, int workers) {
        int[] order = Sampler.order(n, seed, epoch);
        int[] position = new int[n];
        for (int p = 0; p < n; p++) position[order[p]] = p;
        for (int i : block.index()) if (i < 0 || i >= n) throw new IllegalStateException("sample number " + i + " in a set of " + n);
        int size = block.pixels().length / Math.max(1, block.size());
        int[] perReplica = new int[workers];
        for (int i = 0; i < block.size(); i++) perReplica[Sampler.replicaOf(position[block.index()[i]], workers)]++;
        List<Tuple2<Integer, Part>> out = new ArrayList<>();
        int[][] local = new int[workers][];
        byte[][] pix = new byte[workers][], lab = new byte[workers][];
        for (int r = 0; r < workers; r++) {
            local[r] = new int[perReplica[r]];
            pix[r] = new byte[perReplica[r] * size];
            lab[r] = new byte[perReplica[r]];
        }
        int[] filled = new int[workers];
        for (int i = 0; i < block.size(); i++) {
            int p = position[block.index()[i]], r = Sampler.replicaOf(p, workers), k = filled[r]++;
            local[r][k] = Sampler.localIndex(p, workers);
            System.arraycopy(block.pixels(), i * size, pix[r], k * size, size);
            lab[r][k] = block.labels()[i];
        }
        for (int r = 0; r < workers; r++) out.add(new Tuple2<>(r, new Part(r, local[r], pix[r], lab[r])));
        return out.iterator();
    }

    /**
     * A replica's own block for an epoch of --shuffle partition: all its samples, visited in a seeded
     * order of its own (seed, rank and epoch; the same on a relaunch).
     */
    public static Part shuffledWithin(Block block, int rank, long seed, int epoch) {
        int[] order = Sampler.order(block.size(), seed + 0x632BE59BD9B4E019L * (rank + 1), epoch);
        int[] localIndex = new int[block.size()];
        for (int p = 0; p < order.length; p++) localIndex[order[p]] = p; // sample order[p] is visited p-th
        return new Part(rank, localIndex, block.pixels(), block.labels());
    }

    /** Replica r's samples for the epoch, in the order it visits them. */
    public static Dataset merge(Iterator<Part> parts, int count, NetSpec shape) {
        int size = shape.inputSize();
        byte[] pixels = new byte[count * size], labels = new byte[count];
        int seen = 0;
        while (parts.hasNext()) {
            Part part = parts.next();
            for (int k = 0; k < part.localIndex().length; k++) {
                int li = part.localIndex()[k];
                System.arraycopy(part.pixels(), k * size, pixels, li * size, size);
                labels[li] = part.labels()[k];
                seen++;
            }
        }
        if (seen != count) throw new IllegalArgumentException("replica received " + seen + " samples, expected " + count + ": the training data changed during the run?");
        return new Dataset(pixels, labels, shape.channels(), shape.height(), shape.width(), shape.classes());
    }

    /** Sends key r to partition r. */
    public static final class ReplicaPartitioner extends Partitioner {
        private final int workers;

        public ReplicaPartitioner(int workers) {
            this.workers = workers;
        }

        @Override
        public int numPartitions() {
            return workers;
        }

        @Override
        public int getPartition(Object key) {
            return (Integer) key;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof ReplicaPartitioner p && p.workers == workers;
        }

        @Override
        public int hashCode() {
            return workers;
        }
    }
}
