package dev.syncbn.cli;

import dev.syncbn.data.AtomicWrite;
import dev.syncbn.data.DataSource;
import dev.syncbn.data.Dataset;
import dev.syncbn.data.ParquetData;
import dev.syncbn.job.TrainJob;
import dev.syncbn.ml.SyncBnClassificationModel;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.spark.Evaluator;
import dev.syncbn.spark.SparkData;
import dev.syncbn.spark.SparkEngine;
import dev.syncbn.spark.SparkSetup;
import dev.syncbn.train.ModelFile;
import dev.syncbn.train.OnnxExport;
import dev.syncbn.train.Options;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.Trainer;
import java.util.Locale;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;

/** The commands that train, prepare, evaluate and predict: each turns its parsed options into a call of the layer below. */
final class Commands {
    /** The file that marks a directory as predict's output (so that --overwrite replaces nothing else). */
    static final String PREDICTIONS_MARKER = "_SYNCBN_PREDICTIONS";

    private Commands() {}

    /** One process, no Spark: the reference trainer. */
    static void trainLocal(Options o) throws Exception {
        TrainConfig c = TrainConfig.from(o);
        Configuration conf = new Configuration();
        Dataset[] data = DataSource.readSplits(o.get("data"), conf, SparkSetup::reader);
        TrainJob.local(c, data[0], data[1], conf);
    }

    /** A saved model (a model file or a saved SyncBnClassificationModel) as an ONNX file, through the Hadoop FileSystem API; no Spark. */
    static void export(Options o) throws Exception {
        if (o.get("model").isEmpty()) throw new IllegalArgumentException("export needs --model PATH");
        if (o.get("onnx").isEmpty()) throw new IllegalArgumentException("export needs --onnx FILE");
        Configuration conf = new Configuration();
        ModelFile model = SyncBnClassificationModel.loadNetwork(o.get("model"), conf);
        OnnxExport.write(model, o.get("onnx"), conf);
        NetSpec s = model.spec();
        System.out.printf("exported %s (%dx%dx%d images, %d classes, %d parameters) to %s: input image [N, %d, %d, %d], outputs logits and probability [N, %d]%n",
                o.get("model"), s.channels(), s.height(), s.width(), s.classes(), model.params().length, o.get("onnx"), s.channels(), s.height(), s.width(),
                s.classes());
    }

    /** Data-parallel on Spark. */
    static void train(Options o) throws Exception {
        TrainConfig c = TrainConfig.from(o);
        SparkConf sparkConf = SparkSetup.configure(new SparkConf().setAppName("syncbn"));
        String master = !o.get("master").isEmpty() ? o.get("master") : sparkConf.get("spark.master", "local[" + c.workers() + "]");
        sparkConf.setMaster(SparkSetup.withRetries(master));
        try (JavaSparkContext sc = new JavaSparkContext(sparkConf)) {
            sc.setLogLevel("WARN");
            SparkSession spark = SparkSession.builder().sparkContext(sc.sc()).getOrCreate();
            TrainJob.spark(c, sc, SparkData.load(spark, o.get("data"), c.workers(), c.maxTrain(), c.maxTest()), Trainer.Listener.NONE);
        }
    }

    /** Raw data (IDX or CIFAR-10 binary) to Parquet files on any Hadoop file system. */
    static void prepare(Options o) throws Exception {
        if (o.get("output").isEmpty()) throw new IllegalArgumentException("prepare needs --output DIR");
        try (SparkSession spark = SparkSetup.session("syncbn-prepare", o.get("master"), 2, false)) {
            Configuration conf = spark.sparkContext().hadoopConfiguration();
            String in = o.get("input");
            if (DataSource.isPrepared(in, conf)) throw new IllegalArgumentException("--input " + in + " is already prepared data");
            Dataset[] data = DataSource.readSplits(in, conf, () -> spark);
            ParquetData.prepare(spark, data[0], data[1], o.get("output"), o.getInt("files", 1), o.getBoolean("overwrite"));
            System.out.printf("prepared %d training and %d test images (%dx%dx%d, %d classes) from %s into %s (%d Parquet files per split)%n", data[0].size(),
                    data[1].size(), data[0].channels(), data[0].height(), data[0].width(), data[0].classes(), in, o.get("output"), o.getInt("files", 1));
        }
    }

    /** Loss, accuracy and confusion matrix of a saved model on a split of --data, evaluated in Spark. */
    static void evaluate(Options o) throws Exception {
        if (o.get("model").isEmpty()) throw new IllegalArgumentException("evaluate needs --model PATH");
        String split = o.get("split");
        if (!split.equals("test") && !split.equals("train")) throw new IllegalArgumentException("--split must be test or train, got '" + split + "'");
        try (SparkSession spark = SparkSetup.session("syncbn-evaluate", o.get("master"), 2, false); JavaSparkContext sc = new JavaSparkContext(spark.sparkContext())) {
            ModelFile model = ModelFile.load(o.get("model"), sc.hadoopConfiguration());
            int max = o.getInt("max-test", 0);
            SparkData data = SparkData.load(spark, o.get("data"), Math.max(1, sc.defaultParallelism()), split.equals("train") ? max : 0, split.equals("test") ? max : 0);
            checkFits(model, data, o.get("model"), o.get("data"));
            int threads = SparkSetup.taskCpus(sc.getConf());
            Evaluator.Evaluation t = SparkEngine.evaluate(split.equals("test") ? data.test() : data.train(), model.spec(), model.params(), model.state(), threads);
            System.out.print(evaluationReport(o.get("model"), split, t, model.spec().classes()));
        }
    }

    /** Refuses data of another image shape, or with more classes, than the model was trained for. */
    static void checkFits(ModelFile model, SparkData data, String modelPath, String dataPath) {
        NetSpec m = model.spec();
        if (data.channels() != m.channels() || data.height() != m.height() || data.width() != m.width() || data.classes() > m.classes()) {
            throw new IllegalArgumentException("the model " + modelPath + " takes " + m.channels() + "x" + m.height() + "x" + m.width() + " images of " + m.classes()
                    + " classes, --data " + dataPath + " has " + data.channels() + "x" + data.height() + "x" + data.width() + " images of " + data.classes());
        }
    }

    static String evaluationReport(String model, String split, Evaluator.Evaluation e, int k) {
        StringBuilder b = new StringBuilder(String.format(Locale.ROOT, "model %s on %s split: %d images, loss %.4f, accuracy %.4f%n", model, split,
                e.totals().count(), e.totals().meanLoss(), e.totals().accuracy()));
        b.append("confusion matrix (rows: true class, columns: predicted)\n      ");
        for (int j = 0; j < k; j++) b.append(String.format("%6d", j));
        b.append('\n');
        for (int i = 0; i < k; i++) {
            b.append(String.format("%6d", i));
            for (int j = 0; j < k; j++) b.append(String.format("%6d", e.confusion()[i * k + j]));
            b.append('\n');
        }
        return b.toString();
    }

    /**
     * Predictions of a saved model (a model file, or a directory saved by SyncBnClassificationModel) for a
     * split of --data, written as Parquet (index, label, prediction, probability) under a temporary name
     * and renamed into place: the Spark ML Model's transform, batched on the executors.
     */
    static void predict(Options o) throws Exception {
        if (o.get("model").isEmpty()) throw new IllegalArgumentException("predict needs --model PATH");
        if (o.get("output").isEmpty()) throw new IllegalArgumentException("predict needs --output DIR");
        String split = o.get("split");
        if (!split.equals("test") && !split.equals("train")) throw new IllegalArgumentException("--split must be test or train, got '" + split + "'");
        try (SparkSession spark = SparkSetup.session("syncbn-predict", o.get("master"), 2, false)) {
            Configuration conf = spark.sparkContext().hadoopConfiguration();
            String modelPath = o.get("model"), out = o.get("output");
            AtomicWrite.checkReplaceable(out, o.getBoolean("overwrite"), PREDICTIONS_MARKER, conf); // before any work
            SyncBnClassificationModel model = SyncBnClassificationModel.isSavedModel(modelPath, conf) ? SyncBnClassificationModel.load(modelPath)
                    : SyncBnClassificationModel.fromModelFile(ModelFile.load(modelPath, conf));
            org.apache.spark.sql.Dataset<Row> rows = ParquetData.frame(spark, o.get("data"), split);
            model.setFeaturesCol("image").setRawPredictionCol("");
            org.apache.spark.sql.Dataset<Row> predictions = model.transform(rows).select(functions.col("index"), functions.col("label"),
                    functions.col(model.getPredictionCol()).cast("int").as("prediction"), org.apache.spark.ml.functions.vector_to_array(
                            functions.col(model.getProbabilityCol()), "float32").as("probability"));
            AtomicWrite.writeDirectory(out, o.getBoolean("overwrite"), PREDICTIONS_MARKER, conf, tmp -> {
                predictions.write().parquet(tmp.toString());
                tmp.getFileSystem(conf).create(new Path(tmp, PREDICTIONS_MARKER)).close();
            });
            long n = spark.read().schema(predictions.schema()).parquet(out).count(); // the schema is known: no inference job
            System.out.printf("predictions of %s for the %s split of %s: %d rows (index, label, prediction, probability) in %s%n", modelPath, split,
                    o.get("data"), n, out);
        }
    }
}
