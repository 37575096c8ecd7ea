package dev.syncbn.data;

import java.io.IOException;
import java.util.function.Supplier;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.sql.SparkSession;

/**
 * Where training data comes from: a directory prepared by the prepare command (Parquet, read with
 * Spark), a directory of MNIST-format IDX files, or one of CIFAR-10 binary batches.
 */
public final class DataSource {
    private DataSource() {}

    /** True if dir holds prepared Parquet data (train/ and test/ below it). */
    public static boolean isPrepared(String dir, Configuration conf) throws IOException {
        Path d = new Path(dir);
        return d.getFileSystem(conf).exists(new Path(d, ParquetData.MARKER));
    }

    /** The train and test splits, declared with the same class count (the larger of the two). spark is needed only for prepared (Parquet) data. */
    public static Dataset[] readSplits(String dir, Configuration conf, Supplier<SparkSession> spark) throws IOException {
        Dataset train = read(dir, "train", conf, spark), test = read(dir, "t10k", conf, spark);
        int k = Math.max(train.classes(), test.classes());
        return new Dataset[] {train.withClasses(k), test.withClasses(k)};
    }

    /** Reads split "train" or "t10k" (test). spark is needed only for prepared (Parquet) data. */
    public static Dataset read(String dir, String split, Configuration conf, Supplier<SparkSession> spark) throws IOException {
        if (isPrepared(dir, conf)) return ParquetData.read(spark.get(), dir, split.equals("train") ? "train" : "test");
        if (CifarReader.looksLike(dir, conf)) return CifarReader.readSplit(dir, split, conf);
        return IdxReader.readSplit(dir, split, conf);
    }

}
