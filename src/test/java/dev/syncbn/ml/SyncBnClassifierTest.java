package dev.syncbn.ml;

import dev.syncbn.data.Dataset;
import dev.syncbn.job.TrainJob;
import dev.syncbn.spark.SparkData;
import dev.syncbn.spark.SparkEngine;
import dev.syncbn.spark.SparkSetup;
import dev.syncbn.train.ModelFile;
import dev.syncbn.train.Options;
import dev.syncbn.train.TestData;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.Trainer;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.ml.Pipeline;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.PipelineStage;
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.linalg.VectorUDT;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.scheduler.SparkListener;
import org.apache.spark.scheduler.SparkListenerJobStart;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Spark ML Estimator and Model on real Fashion-MNIST rows, in Spark local mode. */
class SyncBnClassifierTest {
    static SparkSession spark;
    static JavaSparkContext sc;
    static Dataset train, test;
    /** Jobs of a barrier stage (an epoch) started so far. */
    static final AtomicInteger epochJobs = new AtomicInteger();

    @TempDir
    Path dir;

    @BeforeAll
    static void start() throws Exception {
        spark = SparkSession.builder().config(SparkSetup.configure(new SparkConf().setMaster("local[2,4]").setAppName("syncbn-ml-test"))).getOrCreate();
        sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        sc.setLogLevel("WARN");
        sc.sc().addSparkListener(new SparkListener() {
            @Override
            public void onJobStart(SparkListenerJobStart job) {
                String d = job.properties().getProperty("spark.job.description", "");
                if (d.startsWith("syncbn epoch")) epochJobs.incrementAndGet();
            }
        });
        train = TestData.train();
        test = TestData.test();
    }

    @AfterAll
    static void stop() {
        if (spark != null) spark.stop();
    }

    enum Column { VECTOR, FLOATS, BYTES }

    /** Samples from..from+n of d as rows (label double, features of the given kind, valid flag). */
    static org.apache.spark.sql.Dataset<Row> frame(Dataset d, int from, int n, Column kind, int validFrom) {
        int size = d.sampleSize();
        List<Row> rows = new ArrayList<>();
        for (int i = from; i < from + n; i++) {
            Object features;
            if (kind == Column.BYTES) {
                features = Arrays.copyOfRange(d.pixels(), i * size, (i + 1) * size);
            } else if (kind == Column.VECTOR) {
                double[] v = new double[size];
                for (int j = 0; j < size; j++) v[j] = (d.pixels()[i * size + j] & 0xff) / 255.0;
                features = Vectors.dense(v);
            } else {
                Float[] v = new Float[size];
                for (int j = 0; j < size; j++) v[j] = (d.pixels()[i * size + j] & 0xff) / 255f;
                features = Arrays.asList(v);
            }
            rows.add(RowFactory.create((double) d.label(i), features, i - from >= validFrom));
        }
        StructType schema = new StructType().add("label", DataTypes.DoubleType).add("features", kind == Column.BYTES ? DataTypes.BinaryType
                : kind == Column.VECTOR ? new VectorUDT() : DataTypes.createArrayType(DataTypes.FloatType)).add("valid", DataTypes.BooleanType);
        return spark.createDataFrame(rows, schema); // in the data set's order
    }

    static SyncBnClassifier classifier() {
        return new SyncBnClassifier().setWorkers(2).setBatchPerWorker(16).setBnMode("sync").setEpochs(1).setSeed(7);
    }

    @Test
    void fitEqualsTheCommandLineJobForTheSameDataAndSeed() throws Exception {
        int n = 256;
        TrainConfig config = TrainConfig.from(Options.defaults().set("workers", "2").set("batch-per-worker", "16").set("bn", "sync").set("epochs", "1")
                .set("seed", "7").set("progress-s", "0"));
        Trainer.Outcome cli = TrainJob.spark(config, sc, SparkData.of(sc, train.head(n), test.head(100), 2), Trainer.Listener.NONE);
        // rows in the order of the data set: the estimator numbers them in the frame's order, as the CLI does
        org.apache.spark.sql.Dataset<Row> rows = frame(train, 0, n, Column.VECTOR, n);
        SyncBnClassificationModel fromVectors = classifier().fit(rows);
        assertArrayEquals(cli.model().params(), fromVectors.modelFile().params(), "vector column");
        assertArrayEquals(cli.model().state(), fromVectors.modelFile().state());
        SyncBnClassificationModel fromArrays = classifier().fit(frame(train, 0, n, Column.FLOATS, n));
        assertArrayEquals(cli.model().params(), fromArrays.modelFile().params(), "array<float> column");
        assertEquals(10, fromVectors.numClasses());
        assertEquals(1, fromVectors.summary().totalEpochs());
        // another network through setNet: the same as --net
        Trainer.Outcome cliResnet = TrainJob.spark(config.toBuilder().net("resnet-8").build(), sc, SparkData.of(sc, train.head(n), test.head(100), 2),
                Trainer.Listener.NONE);
        SyncBnClassificationModel resnet = classifier().setNet("resnet-8").fit(rows);
        assertEquals("1x28x28:resnet-8:10", resnet.spec().toString());
        assertArrayEquals(cliResnet.model().params(), resnet.modelFile().params(), "resnet-8");
    }

    @Test
    void aPipelineFitsScoresAndEvaluatesAndSavedModelsPredictTheSame() throws Exception {
        SyncBnClassifier c = classifier().setEpochs(2).setFeaturesCol("image");
        org.apache.spark.sql.Dataset<Row> trainRows = frame(train, 0, 2000, Column.BYTES, 2000).withColumnRenamed("features", "image").repartition(3);
        org.apache.spark.sql.Dataset<Row> testRows = frame(test, 0, 500, Column.BYTES, 500).withColumnRenamed("features", "image");
        PipelineModel pipeline = new Pipeline().setStages(new PipelineStage[] {c}).fit(trainRows);
        org.apache.spark.sql.Dataset<Row> scored = pipeline.transform(testRows).cache();
        double accuracy = new MulticlassClassificationEvaluator().setMetricName("accuracy").evaluate(scored);
        assertTrue(accuracy > 0.6, "accuracy after 2 short epochs: " + accuracy);
        // batched predictions on the executors agree with the engine's own distributed evaluation
        SyncBnClassificationModel model = (SyncBnClassificationModel) pipeline.stages()[0];
        ModelFile m = model.modelFile();
        long correct = SparkEngine.evaluate(SparkData.of(sc, test.head(500), test.head(0), 2).train(), m.spec(), m.params(), m.state(), 1).totals().correct();
        assertEquals(correct, Math.round(accuracy * 500));
        Row first = scored.first();
        Vector p = first.getAs("probability");
        assertEquals(1.0, Arrays.stream(p.toArray()).sum(), 1e-9);
        assertEquals(first.<Vector>getAs("rawPrediction").argmax(), (int) first.getDouble(first.fieldIndex("prediction")));

        String path = dir.resolve("model").toString();
        model.write().overwrite().save(path);
        SyncBnClassificationModel loaded = SyncBnClassificationModel.load(path);
        assertArrayEquals(model.modelFile().params(), SyncBnClassificationModel.loadNetwork(path, sc.hadoopConfiguration()).params(), "export reads a saved Model's network");
        assertEquals("image", loaded.getFeaturesCol());
        assertFalse(loaded.hasSummary());
        List<Row> a = scored.select("probability", "prediction").collectAsList(), b = loaded.transform(testRows).select("probability", "prediction")
                .collectAsList();
        assertEquals(a, b, "a loaded model predicts exactly as the saved one");
        String pipelinePath = dir.resolve("pipeline").toString();
        pipeline.write().save(pipelinePath);
        assertEquals(a, PipelineModel.load(pipelinePath).transform(testRows).select("probability", "prediction").collectAsList());

        String estimatorPath = dir.resolve("estimator").toString();
        c.setValidationIndicatorCol("valid").write().save(estimatorPath);
        SyncBnClassifier back = SyncBnClassifier.load(estimatorPath);
        assertEquals(c.uid(), back.uid());
        assertEquals(2, (int) back.getOrDefault(back.epochs()));
        assertEquals("valid", back.getOrDefault(back.validationIndicatorCol()));
        assertEquals(Options.defaultOf("lr"), back.getOrDefault(back.lr()).toString(), "defaults from the table of defaults");
    }

    @Test
    void earlyStoppingKeepsTheBestValidationEpoch() throws Exception {
        String ckpt = dir.resolve("ckpt").toString();
        // a high constant learning rate on few samples: the validation loss soon stops falling
        SyncBnClassifier c = classifier().setEpochs(10).setLr(0.05).setLrSchedule("constant").setValidationIndicatorCol("valid").setEarlyStoppingEpochs(1)
                .setCheckpointDir(ckpt);
        SyncBnClassificationModel model = c.fit(frame(train, 0, 600, Column.VECTOR, 400));
        SyncBnTrainingSummary s = model.summary();
        double[] loss = s.validationLoss();
        int best = 0;
        for (int e = 1; e < loss.length; e++) if (loss[e] < loss[best]) best = e;
        assertEquals(best + 1, s.modelEpoch(), "the model is the epoch with the lowest validation loss: " + s);
        assertTrue(s.totalEpochs() == 10 || s.totalEpochs() == s.modelEpoch() + 1, "stops one epoch without improvement after the best: " + s);
        assertTrue(s.totalEpochs() < 10, "with this learning rate the validation loss rose before epoch 6: " + s);
        ModelFile atBest = ModelFile.load(ckpt + "/epoch-" + String.format("%04d", s.modelEpoch()) + ".model", sc.hadoopConfiguration());
        assertArrayEquals(atBest.params(), model.modelFile().params());
        double correct = s.epochs().get(0).testAcc() * 200;
        assertEquals(Math.rint(correct), correct, 1e-6, "validation accuracy is over the 200 validation rows");
    }

    @Test
    void badColumnsAreRefusedNamingTheColumnBeforeAnyEpochStarts() throws Exception {
        spark.sparkContext().listenerBus().waitUntilEmpty(30_000); // the listener hears of jobs asynchronously
        int before = epochJobs.get();
        org.apache.spark.sql.Dataset<Row> good = frame(train, 0, 64, Column.VECTOR, 64);
        StructType schema = good.schema();
        // features of the wrong length
        List<Row> shortRows = List.of(RowFactory.create(1.0, Vectors.dense(new double[100]), false), RowFactory.create(0.0, Vectors.dense(new double[100]), false));
        assertRefused(spark.createDataFrame(shortRows, schema), classifier().setImageShape(1, 28, 28), "features", "100");
        // a label out of range, or not whole
        assertRefused(good.withColumn("label", org.apache.spark.sql.functions.lit(300.0)), classifier(), "label", "300");
        assertRefused(good.withColumn("label", org.apache.spark.sql.functions.lit(-1.0)), classifier(), "label", "-1");
        assertRefused(good.withColumn("label", org.apache.spark.sql.functions.lit(1.5)), classifier(), "label", "1.5");
        // nulls
        assertRefused(good.withColumn("label", org.apache.spark.sql.functions.lit(null).cast("double")), classifier(), "label", "null");
        List<Row> nullFeatures = List.of(RowFactory.create(1.0, null, false));
        assertRefused(spark.createDataFrame(nullFeatures, schema), classifier().setImageShape(1, 28, 28), "features", "null");
        // wrong types
        assertRefused(good.withColumn("features", org.apache.spark.sql.functions.lit("pixels")), classifier(), "features", "string");
        assertRefused(good.withColumn("label", org.apache.spark.sql.functions.lit("cat")), classifier(), "label", "string");
        assertRefused(good.withColumn("valid", org.apache.spark.sql.functions.lit(1)), classifier().setValidationIndicatorCol("valid"), "valid", "boolean");
        // values outside [0, 1]
        List<Row> bright = List.of(RowFactory.create(1.0, Vectors.dense(new double[] {0, 2, 0, 0}), false), RowFactory.create(0.0, Vectors.dense(new double[4]), false));
        assertRefused(spark.createDataFrame(bright, schema), classifier(), "features", "outside [0, 1]");
        // an elastic minimum above the replicas asked for
        String m = assertThrows(IllegalArgumentException.class, () -> classifier().setWorkers(2).setMinWorkers(3).fit(good)).getMessage();
        assertTrue(m.contains("--elastic must be 0 (off) or a number of replicas from 1 to --workers 2, got 3"), m);
        spark.sparkContext().listenerBus().waitUntilEmpty(30_000);
        assertEquals(before, epochJobs.get(), "no barrier stage started");
    }

    static void assertRefused(org.apache.spark.sql.Dataset<Row> rows, SyncBnClassifier c, String column, String what) {
        String m = assertThrows(IllegalArgumentException.class, () -> c.fit(rows)).getMessage();
        assertTrue(m.contains("'" + column + "'") && m.contains(what), m);
    }
}
