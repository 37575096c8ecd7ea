package dev.syncbn.spark;

import dev.syncbn.data.DataSource;
import dev.syncbn.data.Dataset;
import dev.syncbn.data.IdxReader;
import dev.syncbn.data.ParquetData;
import dev.syncbn.train.TestData;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.Trainer;
import java.nio.file.Path;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Prepare to, train from, checkpoint to and resume from HDFS (an in-process MiniDFSCluster). */
@Tag("slow")
class HdfsTest {
    @TempDir
    Path dir;

    @Test
    void prepareTrainCheckpointAndResumeOnHdfs() throws Exception {
        Configuration hconf = new Configuration();
        MiniDFSCluster hdfs = new MiniDFSCluster.Builder(hconf, dir.resolve("dfs").toFile()).numDataNodes(1).build();
        SparkSession spark = null;
        try {
            hdfs.waitActive();
            String root = hdfs.getURI().toString();
            FileSystem fs = hdfs.getFileSystem();
            // the raw IDX files through HDFS too
            for (String f : new String[] {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
                fs.copyFromLocalFile(new org.apache.hadoop.fs.Path(TestData.DIR, f), new org.apache.hadoop.fs.Path(root + "/raw/" + f));
            }
            assertEquals(10_000, IdxReader.readSplit(root + "/raw", "t10k", hconf).size());

            spark = SparkSession.builder().config(SparkSetup.configure(new SparkConf().setMaster("local[2,4]").setAppName("hdfs-test"))).getOrCreate();
            SparkSession s = spark;
            Dataset train = TestData.train().head(256), test = TestData.test().head(100);
            String data = root + "/data/fashion";
            ParquetData.prepare(spark, train, test, data, 2, false);
            Configuration conf = spark.sparkContext().hadoopConfiguration();
            assertTrue(DataSource.isPrepared(data, conf));
            Dataset fromHdfs = DataSource.read(data, "train", conf, () -> s);
            assertArrayEquals(train.pixels(), fromHdfs.pixels());

            JavaSparkContext sc = new JavaSparkContext(spark.sparkContext());
            float[] straight = train(sc, fromHdfs, test, 3, root + "/runs/a", false, conf);
            String ckpt = root + "/runs/b";
            train(sc, fromHdfs, test, 1, ckpt, false, conf);
            assertTrue(fs.exists(new org.apache.hadoop.fs.Path(ckpt + "/epoch-0001.model")));
            assertArrayEquals(straight, train(sc, fromHdfs, test, 3, ckpt, true, conf));
            assertTrue(fs.exists(new org.apache.hadoop.fs.Path(root + "/runs/b-metrics.csv")));
        } finally {
            if (spark != null) spark.stop();
            hdfs.shutdown();
        }
    }

    private static float[] train(JavaSparkContext sc, Dataset train, Dataset test, int epochs, String ckpt, boolean resume, Configuration conf) throws Exception {
        try (SparkEngine e = new SparkEngine(sc, train, test, TrainConfig.builder().workers(2).batchPerWorker(16).bn("sync").lr(1e-3).seed(3).build())) {
            new Trainer(TrainConfig.builder().epochs(epochs).metricsOut(ckpt + "-metrics.csv").checkpointDir(ckpt).resume(resume).progressSeconds(0).build(),
                    Map.of(), e, conf).run();
            return e.snapshot(epochs, Map.of()).params();
        }
    }
}
