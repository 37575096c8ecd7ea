package dev.syncbn.cli;

import dev.syncbn.data.DataSource;
import dev.syncbn.data.Dataset;
import dev.syncbn.data.ParquetData;
import dev.syncbn.data.Sampler;
import dev.syncbn.ml.SyncBnClassificationModel;
import dev.syncbn.nn.Backend;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.spark.Evaluator;
import dev.syncbn.spark.SparkData;
import dev.syncbn.spark.SparkEngine;
import dev.syncbn.spark.SparkSetup;
import dev.syncbn.train.AtomicWrite;
import dev.syncbn.train.Engine;
import dev.syncbn.train.LocalEngine;
import dev.syncbn.train.ModelFile;
import dev.syncbn.train.Options;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.TrainJob;
import java.io.IOException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.functions;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Entry point: syncbn COMMAND [--option value ...]. */
public final class Main {
    /** Forward plus backward cost of the default network on one 28x28 image (DESIGN.md). */
    static final double MFLOP_PER_IMAGE = 22.8;
    /** The file that marks a directory as predict's output (so that --overwrite replaces nothing else). */
    static final String PREDICTIONS_MARKER = "_SYNCBN_PREDICTIONS";

    private Main() {}

    /** This program's version (pom.xml's; a test keeps them equal). */
    static final String VERSION = "0.1.0-SNAPSHOT";

    public static void main(String[] args) throws Exception {
        if (args.length == 2 && args[0].equals("help") && args[1].equals("--markdown")) {
            System.out.print(Options.markdownTable());
            return;
        }
        if (args.length > 0 && (args[0].equals("--version") || args[0].equals("version"))) {
            System.out.println("syncbn " + VERSION);
            return;
        }
        if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h") || args[0].equals("help")) {
            System.out.println("usage: syncbn COMMAND [options]   (syncbn COMMAND --help: that command's options; syncbn --version)\n"
                    + "commands: " + String.join(", ", Options.COMMANDS));
            return;
        }
        String command = args[0];
        String[] rest = java.util.Arrays.copyOfRange(args, 1, args.length);
        Options o;
        try {
            if (java.util.Arrays.asList(rest).contains("--help") || java.util.Arrays.asList(rest).contains("-h")) {
                String usage = Options.usage(command); // refuses an unknown command
                System.out.println("usage: syncbn " + command + " [options]\n" + usage);
                return;
            }
            o = Options.parse(command, rest);
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
            return;
        }
        try {
            dispatch(command, o);
        } catch (IllegalArgumentException | IOException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
        }
    }

    static void dispatch(String command, Options o) throws Exception {
        switch (command) {
            case "train" -> train(o);
            case "train-local" -> trainLocal(o);
            case "prepare" -> prepare(o);
            case "evaluate" -> evaluate(o);
            case "compare-bn" -> CompareBn.run(o);
            case "bench" -> bench(o);
            case "predict" -> predict(o);
            default -> throw new IllegalArgumentException("unknown command '" + command + "' (" + String.join(", ", Options.COMMANDS) + ")");
        }
    }

    /** One process, no Spark: the reference trainer. */
    static void trainLocal(Options o) throws Exception {
        TrainConfig c = TrainConfig.from(o);
        Configuration conf = new Configuration();
        Dataset[] data = DataSource.readSplits(o.get("data"), conf, Main::localSpark);
        TrainJob.local(c, data[0], data[1], conf);
    }

    /** A one-thread local Spark session, only for reading prepared (Parquet) data in a command that has no Spark otherwise. */
    static SparkSession localSpark() {
        return SparkSession.builder().config(SparkSetup.configure(new SparkConf().setMaster("local[1]").setAppName("syncbn-read"))).getOrCreate();
    }

    /** A Spark session as spark-submit (or --master) configured it; a local master without a given size gets defaultCores slots. */
    static SparkSession spark(Options o, String name, int defaultCores) {
        return spark(o, name, defaultCores, false);
    }

    /** localCores: any local master not given by --master gets defaultCores task slots. */
    static SparkSession spark(Options o, String name, int defaultCores, boolean localCores) {
        SparkConf conf = SparkSetup.configure(new SparkConf().setAppName(name));
        String master = !o.get("master").isEmpty() ? o.get("master") : conf.get("spark.master", "local[" + defaultCores + "]");
        if (localCores && o.get("master").isEmpty() && master.startsWith("local")) master = "local[" + defaultCores + "]";
        conf.setMaster(SparkSetup.withRetries(master));
        SparkSession s = SparkSession.builder().config(conf).getOrCreate();
        s.sparkContext().setLogLevel("WARN");
        return s;
    }

    /** Raw data (IDX or CIFAR-10 binary) to Parquet files on any Hadoop file system. */
    static void prepare(Options o) throws Exception {
        if (o.get("output").isEmpty()) throw new IllegalArgumentException("prepare needs --output DIR");
        try (SparkSession spark = spark(o, "syncbn-prepare", 2)) {
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
        try (SparkSession spark = spark(o, "syncbn-evaluate", 2); JavaSparkContext sc = new JavaSparkContext(spark.sparkContext())) {
            ModelFile model = ModelFile.load(o.get("model"), sc.hadoopConfiguration());
            int max = o.getInt("max-test", 0);
            SparkData data = SparkData.load(spark, o.get("data"), Math.max(1, sc.defaultParallelism()), split.equals("train") ? max : 0, split.equals("test") ? max : 0);
            checkFits(model, data, o.get("model"), o.get("data"));
            int threads = Integer.parseInt(sc.getConf().get("spark.task.cpus", "1"));
            Evaluator.Totals t = SparkEngine.evaluate(split.equals("test") ? data.test() : data.train(), model.spec(), model.params(), model.state(), threads);
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

    static String evaluationReport(String model, String split, Evaluator.Totals t, int k) {
        StringBuilder b = new StringBuilder(String.format(java.util.Locale.ROOT, "model %s on %s split: %d images, loss %.4f, accuracy %.4f%n", model, split,
                t.count(), t.lossSum() / t.count(), (double) t.correct() / t.count()));
        b.append("confusion matrix (rows: true class, columns: predicted)\n      ");
        for (int j = 0; j < k; j++) b.append(String.format("%6d", j));
        b.append('\n');
        for (int i = 0; i < k; i++) {
            b.append(String.format("%6d", i));
            for (int j = 0; j < k; j++) b.append(String.format("%6d", t.confusion()[i * k + j]));
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
        try (SparkSession spark = spark(o, "syncbn-predict", 2)) {
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

    /** Data-parallel on Spark. */
    static void train(Options o) throws Exception {
        TrainConfig c = TrainConfig.from(o);
        SparkConf sparkConf = SparkSetup.configure(new SparkConf().setAppName("syncbn"));
        String master = !o.get("master").isEmpty() ? o.get("master") : sparkConf.get("spark.master", "local[" + c.workers() + "]");
        sparkConf.setMaster(SparkSetup.withRetries(master));
        try (JavaSparkContext sc = new JavaSparkContext(sparkConf)) {
            sc.setLogLevel("WARN");
            SparkSession spark = SparkSession.builder().sparkContext(sc.sc()).getOrCreate();
            TrainJob.spark(c, sc, SparkData.load(spark, o.get("data"), c.workers(), c.maxTrain(), c.maxTest()), e -> {});
        }
    }

    /** Training throughput at the given batch (default 64) after a warm-up, beside the machine's own matrix-product speed. */
    static void bench(Options o) throws Exception {
        int threads = o.getInt("threads", 1), batch = o.getInt("batch", 1);
        int warmup = o.getInt("warmup-steps", 0), steps = o.getInt("steps", 1);
        Backend.init();
        System.out.println("ND4J oneDNN build: " + Backend.isOneDnn() + ", threads " + threads);
        Dataset[] data = DataSource.readSplits(o.get("data"), new Configuration(), Main::localSpark);
        try (LocalEngine engine = new LocalEngine(data[0], data[1], batch, o.getPositiveDouble("lr"), o.getLong("seed"), threads)) {
            int[] shuffled = Sampler.order(data[0].size(), o.getLong("seed"), 1);
            int[] order = new int[(warmup + steps) * batch];
            for (int i = 0; i < order.length; i++) order[i] = shuffled[i % shuffled.length];
            Engine.Progress quiet = (step, stepsInEpoch, loss, soFar) -> {};
            engine.trainSteps(1, java.util.Arrays.copyOfRange(order, 0, warmup * batch), quiet);
            engine.net.resetTimes();
            long t0 = System.nanoTime();
            Engine.EpochResult timed = engine.trainSteps(2, java.util.Arrays.copyOfRange(order, warmup * batch, order.length), quiet);
            double seconds = (System.nanoTime() - t0) / 1e9;
            if (o.getBoolean("profile")) printProfile(engine.net, steps, seconds, timed.updateMs());
            double imagesPerS = (double) steps * batch / seconds;
            double flopScale = (double) data[0].sampleSize() / (28 * 28);
            double gflops = imagesPerS * MFLOP_PER_IMAGE * flopScale / 1e3;
            Backend.setOpThreads(Runtime.getRuntime().availableProcessors()); // the machine's gemm: all its cores
            double gemm = gemmGflops();
            Backend.setOpThreads(1);
            System.out.printf(java.util.Locale.ROOT, "batch %d: %.2f ms/step, %.0f images/s, %.1f GFLOP/s achieved; float gemm 1024^3: %.1f GFLOP/s (ratio %.3f)%n",
                    batch, seconds * 1e3 / steps, imagesPerS, gflops, gemm, gflops / gemm);
            System.out.printf(java.util.Locale.ROOT, "images_per_s=%.1f gflops=%.2f gemm_gflops=%.2f%n", imagesPerS, gflops, gemm);
        }
    }

    /** Milliseconds per step in each layer's forward and backward, the optimizer, and the rest (the data fill). */
    static void printProfile(ConvNet net, int steps, double seconds, double updateMs) {
        java.util.List<String> names = net.layerNames();
        long[] fwd = net.forwardNanos(), bwd = net.backwardNanos();
        double layersMs = 0;
        System.out.println("| layer | forward ms | backward ms |");
        System.out.println("| --- | ---: | ---: |");
        for (int i = 0; i < names.size(); i++) {
            double f = fwd[i] / 1e6 / steps, b = bwd[i] / 1e6 / steps;
            layersMs += f + b;
            System.out.printf(java.util.Locale.ROOT, "| %s | %.2f | %.2f |%n", names.get(i), f, b);
        }
        double stepMs = seconds * 1e3 / steps;
        System.out.printf(java.util.Locale.ROOT, "| adam | %.2f | |%n| rest (data fill) | %.2f | |%n| step | %.2f | |%n",
                updateMs, stepMs - layersMs - updateMs, stepMs);
    }

    /** The best of several timed 1024x1024x1024 float matrix products through ND4J. */
    static double gemmGflops() {
        int n = 1024;
        INDArray a = Nd4j.rand(DataType.FLOAT, n, n), b = Nd4j.rand(DataType.FLOAT, n, n), c = Nd4j.create(DataType.FLOAT, n, n);
        for (int i = 0; i < 3; i++) Nd4j.gemm(a, b, c, false, false, 1.0, 0.0);
        double best = 0;
        for (int r = 0; r < 5; r++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < 4; i++) Nd4j.gemm(a, b, c, false, false, 1.0, 0.0);
            best = Math.max(best, 4 * 2.0 * n * n * n / ((System.nanoTime() - t0) / 1e9) / 1e9);
        }
        return best;
    }
}
