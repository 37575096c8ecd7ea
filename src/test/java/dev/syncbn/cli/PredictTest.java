package dev.syncbn.cli;

import dev.syncbn.data.Dataset;
import dev.syncbn.data.ParquetData;
import dev.syncbn.examples.FashionMnistPipeline;
import dev.syncbn.job.TrainJob;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.spark.SparkSetup;
import dev.syncbn.train.LocalEngine;
import dev.syncbn.train.ModelFile;
import dev.syncbn.train.Options;
import dev.syncbn.train.TestData;
import dev.syncbn.train.TrainConfig;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.SparkConf;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The predict command and the Spark ML example, end to end on real data. */
class PredictTest {
    @TempDir
    Path dir;

    @Test
    void predictWritesOneRowPerImageWithTheModelsPredictions() throws Exception {
        String model = dir.resolve("model.bin").toString(), out = dir.resolve("predictions").toString();
        Configuration conf = new Configuration();
        TrainJob.local(TrainConfig.from(Options.defaults().set("epochs", "1").set("max-train", "1024").set("model-out", model).set("progress-s", "0")),
                TestData.train(), TestData.test().head(100), conf);
        String[] args = {"--model", model, "--data", TestData.DIR, "--output", out, "--master", "local[2]"};
        Main.dispatch("predict", Options.parse("predict", args));

        ModelFile m = ModelFile.load(model, conf);
        Dataset test = TestData.test();
        long expectedCorrect;
        try (ConvNet net = new ConvNet(m.spec(), 256, 2, ConvNet.Kernels.FAST)) {
            m.restore(net, null);
            expectedCorrect = LocalEngine.evaluate(net, test, new int[256], null).correct();
        }
        try (SparkSession spark = SparkSession.builder().config(SparkSetup.configure(new SparkConf().setMaster("local[1]").setAppName("read"))).getOrCreate()) {
            List<Row> rows = spark.read().parquet(out).orderBy("index").collectAsList();
            assertEquals(10_000, rows.size());
            assertEquals(List.of("index", "label", "prediction", "probability"), List.of(rows.get(0).schema().fieldNames()));
            long correct = 0;
            for (Row r : rows) {
                List<Float> p = r.getList(3);
                int best = 0;
                for (int j = 1; j < p.size(); j++) if (p.get(j) > p.get(best)) best = j;
                assertEquals(best, r.getInt(2), "prediction = argmax of probability");
                assertEquals(1.0, p.stream().mapToDouble(Float::doubleValue).sum(), 1e-4);
                assertEquals(test.label(r.getInt(0)), r.getInt(1));
                if (r.getInt(1) == r.getInt(2)) correct++;
            }
            assertEquals(expectedCorrect, correct, "the same predictions as the single-process evaluation");
        }
        String m2 = assertThrows(IOException.class, () -> Main.dispatch("predict", Options.parse("predict", args))).getMessage();
        assertTrue(m2.contains(out) && m2.contains("--overwrite"), m2);
    }

    @Test
    void theSparkMlExampleRunsOnPreparedData() throws Exception {
        String prepared = dir.resolve("prepared").toString(), pipeline = dir.resolve("pipeline").toString();
        // a user's own session: Spark's defaults, not this project's spark-defaults.conf
        SparkSession spark = SparkSession.builder().master("local[2,4]").appName("example-test").getOrCreate();
        ParquetData.prepare(spark, TestData.train().head(1200), TestData.test().head(300), prepared, 2, false);
        FashionMnistPipeline.main(new String[] {prepared, pipeline, "1"}); // stops the session at its end
        SparkSession again = SparkSession.builder().master("local[2,4]").appName("example-test").getOrCreate();
        try {
            PipelineModel loaded = PipelineModel.load(pipeline);
            assertEquals(300, loaded.transform(again.read().parquet(prepared + "/test")).count());
        } finally {
            again.stop();
        }
    }
}
