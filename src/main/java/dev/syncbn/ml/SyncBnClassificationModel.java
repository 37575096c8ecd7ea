package dev.syncbn.ml;

import dev.syncbn.data.Dataset;
import dev.syncbn.data.ImageRows;
import dev.syncbn.nn.Backend;
import dev.syncbn.nn.Buf;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.spark.SparkSetup;
import dev.syncbn.train.Engine;
import dev.syncbn.train.ModelFile;
import dev.syncbn.train.OnnxExport;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.apache.spark.broadcast.Broadcast;
import org.apache.spark.ml.attribute.NominalAttribute;
import org.apache.spark.ml.classification.ProbabilisticClassificationModel;
import org.apache.spark.ml.linalg.DenseVector;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.linalg.VectorUDT;
import org.apache.spark.ml.linalg.Vectors;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.util.DefaultParamsReader$;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.ml.util.DefaultParamsWriter$;
import org.apache.spark.ml.util.Identifiable$;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.ml.util.MLWritable;
import org.apache.spark.ml.util.MLWriter;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.StructType;
import scala.Option;

/**
 * The trained network as a Spark ML Model. transform adds rawPrediction (the logits), probability
 * (their softmax) and prediction, in evaluation mode (BN running statistics), computed on the executors
 * in batches with the parameters broadcast once. Saved and loaded with write().save(path) and
 * load(path) on any Hadoop file system: the params as Spark ML metadata, the network as a model file
 * (the same format as `syncbn train --model-out`).
 */
public final class SyncBnClassificationModel extends ProbabilisticClassificationModel<Vector, SyncBnClassificationModel> implements MLWritable {
    private static final String MODEL_FILE = "data/model.bin";

    private final String uid;
    private final ModelFile model;
    private SyncBnTrainingSummary summary;
    private transient ConvNet single; // predictRaw's network, built on first use

    public SyncBnClassificationModel(String uid, ModelFile model) {
        this(uid, model, ConstructingUid.stash(uid));
    }

    private SyncBnClassificationModel(String uid, ModelFile model, Void stashed) {
        this.uid = uid;
        this.model = model;
        ConstructingUid.done();
    }

    /** A model file written by `syncbn train --model-out` (or a checkpoint) as a Spark ML model. */
    public static SyncBnClassificationModel fromModelFile(ModelFile model) {
        return new SyncBnClassificationModel(Identifiable$.MODULE$.randomUID("syncBnClassificationModel"), model);
    }

    @Override
    public String uid() {
        return uid != null ? uid : ConstructingUid.current();
    }

    public ModelFile modelFile() {
        return model;
    }

    public NetSpec spec() {
        return model.spec();
    }

    @Override
    public int numClasses() {
        return model.spec().classes();
    }

    @Override
    public int numFeatures() {
        return model.spec().inputSize();
    }

    public boolean hasSummary() {
        return summary != null;
    }

    /** Per-epoch losses, accuracies and step times of the fit that made this model; a loaded model has none. */
    public SyncBnTrainingSummary summary() {
        if (summary == null) throw new IllegalStateException("this model has no training summary (it was loaded, not fitted)");
        return summary;
    }

    void setSummary(SyncBnTrainingSummary summary) {
        this.summary = summary;
    }

    /** One sample at a time, as Spark's default per-row path asks; transform runs in batches instead. */
    @Override
    public synchronized Vector predictRaw(Vector features) {
        if (single == null) {
            single = new ConvNet(model.spec(), 1, 1, ConvNet.Kernels.FAST);
            single.params.copyFrom(model.params());
            single.state.copyFrom(model.state());
        }
        byte[] pixels = new byte[numFeatures()];
        String bad = ImageRows.decode(features, ImageRows.Kind.VECTOR, numFeatures(), pixels, 0);
        if (bad != null) throw new IllegalArgumentException("features " + bad);
        return Vectors.dense(Predict.logits(single, new Dataset(pixels, new byte[1], model.spec().channels(), model.spec().height(), model.spec().width(),
                numClasses()), 1)[0]);
    }

    /** Spark's own summaries (of logistic regression and the like) do not apply; Java needs the Scala override spelled out. */
    @Override
    @SuppressWarnings("rawtypes") // the two inherited signatures differ in a type argument: only the raw type overrides both
    public scala.Tuple3 findSummaryModel() {
        return super.findSummaryModel();
    }

    @Override
    public Vector raw2probabilityInPlace(Vector raw) {
        Predict.softmaxInPlace(((DenseVector) raw).values());
        return raw;
    }

    @Override
    public StructType transformSchema(StructType schema) {
        ImageRows.kindOf(schema, getFeaturesCol());
        return outputSchema(schema, getRawPredictionCol(), getProbabilityCol(), getPredictionCol(), numClasses());
    }

    /** The input columns, then rawPrediction, probability and prediction (each unless its column name is empty). */
    static StructType outputSchema(StructType schema, String raw, String probability, String prediction, int classes) {
        StructType out = schema;
        for (String c : new String[] {raw, probability, prediction}) {
            if (!c.isEmpty() && schema.getFieldIndex(c).isDefined()) throw new IllegalArgumentException("output column '" + c + "' already exists");
        }
        if (!raw.isEmpty()) out = out.add(raw, new VectorUDT(), false);
        if (!probability.isEmpty()) out = out.add(probability, new VectorUDT(), false);
        if (!prediction.isEmpty()) {
            NominalAttribute a = NominalAttribute.defaultAttr().withName(prediction);
            if (classes > 0) a = a.withNumValues(classes);
            out = out.add(a.toStructField());
        }
        return out;
    }

    @Override
    public org.apache.spark.sql.Dataset<Row> transform(org.apache.spark.sql.Dataset<?> dataset) {
        StructType schema = dataset.schema(), out = transformSchema(schema);
        SparkSession spark = dataset.sparkSession();
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(spark.sparkContext());
        Broadcast<float[][]> weights = sc.broadcast(new float[][] {model.params(), model.state()});
        int threads = SparkSetup.taskCpus(sc.getConf());
        Predict predict = new Predict(model.spec(), weights, schema.fieldIndex(getFeaturesCol()), ImageRows.kindOf(schema, getFeaturesCol()), getFeaturesCol(),
                !getRawPredictionCol().isEmpty(), !getProbabilityCol().isEmpty(), !getPredictionCol().isEmpty(), isDefined(thresholds()) ? getThresholds() : null,
                threads);
        JavaRDD<Row> rows = dataset.toDF().javaRDD().mapPartitions(predict);
        return spark.createDataFrame(rows, out);
    }

    /** Forward passes over a partition's rows, Engine.EVALUATION_BATCH at a time, each output row its input row and the prediction columns. */
    static final class Predict implements FlatMapFunction<Iterator<Row>, Row> {
        private final NetSpec spec;
        private final Broadcast<float[][]> weights;
        private final int featuresIndex, threads;
        private final ImageRows.Kind kind;
        private final String featuresCol;
        private final boolean raw, probability, prediction;
        private final double[] thresholds;

        Predict(NetSpec spec, Broadcast<float[][]> weights, int featuresIndex, ImageRows.Kind kind, String featuresCol, boolean raw, boolean probability,
                boolean prediction, double[] thresholds, int threads) {
            this.spec = spec;
            this.weights = weights;
            this.featuresIndex = featuresIndex;
            this.kind = kind;
            this.featuresCol = featuresCol;
            this.raw = raw;
            this.probability = probability;
            this.prediction = prediction;
            this.thresholds = thresholds;
            this.threads = threads;
        }

        @Override
        public Iterator<Row> call(Iterator<Row> rows) {
            Backend.init();
            ConvNet net = new ConvNet(spec, Engine.EVALUATION_BATCH, threads, ConvNet.Kernels.FAST);
            net.params.copyFrom(weights.value()[0]);
            net.state.copyFrom(weights.value()[1]);
            int size = spec.inputSize();
            byte[] pixels = new byte[Engine.EVALUATION_BATCH * size];
            return new Iterator<>() {
                private final List<Row> done = new ArrayList<>(Engine.EVALUATION_BATCH);
                private int next;

                @Override
                public boolean hasNext() {
                    if (next < done.size()) return true;
                    if (!rows.hasNext()) {
                        net.close();
                        return false;
                    }
                    List<Row> in = new ArrayList<>(Engine.EVALUATION_BATCH);
                    while (in.size() < Engine.EVALUATION_BATCH && rows.hasNext()) {
                        Row r = rows.next();
                        String bad = ImageRows.decode(r.get(featuresIndex), kind, size, pixels, in.size() * size);
                        if (bad != null) throw new IllegalArgumentException("features column '" + featuresCol + "' " + bad + " in row " + r);
                        in.add(r);
                    }
                    int n = in.size();
                    double[][] logits = logits(net, new Dataset(Arrays.copyOf(pixels, n * size), new byte[n], spec.channels(), spec.height(),
                            spec.width(), spec.classes()), n);
                    done.clear();
                    next = 0;
                    for (int s = 0; s < n; s++) done.add(output(in.get(s), logits[s]));
                    return true;
                }

                @Override
                public Row next() {
                    if (!hasNext()) throw new NoSuchElementException();
                    return done.get(next++);
                }
            };
        }

        private Row output(Row in, double[] logits) {
            List<Object> values = new ArrayList<>(in.size() + 3);
            for (int i = 0; i < in.size(); i++) values.add(in.get(i));
            double[] p = logits.clone();
            softmaxInPlace(p);
            if (raw) values.add(Vectors.dense(logits));
            if (probability) values.add(Vectors.dense(p));
            if (prediction) {
                int best = 0;
                for (int j = 1; j < p.length; j++) if (scaled(p, j) > scaled(p, best)) best = j;
                values.add((double) best);
            }
            return RowFactory.create(values.toArray());
        }

        /** Spark's thresholds rule: the class with the largest p / threshold. */
        private double scaled(double[] p, int j) {
            return thresholds == null ? p[j] : p[j] / thresholds[j];
        }

        /** The logits of the first n samples of data, in evaluation mode. */
        static double[][] logits(ConvNet net, Dataset data, int n) {
            int[] order = new int[n], labels = new int[n];
            for (int i = 0; i < n; i++) order[i] = i;
            data.fill(order, 0, n, net.input, labels);
            Buf out = net.forward(n, false);
            int k = net.spec.classes();
            double[][] logits = new double[n][k];
            for (int s = 0; s < n; s++) for (int j = 0; j < k; j++) logits[s][j] = out.get(s * k + j);
            return logits;
        }

        static void softmaxInPlace(double[] v) {
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (double x : v) max = Math.max(max, x);
            for (int j = 0; j < v.length; j++) sum += v[j] = Math.exp(v[j] - max);
            for (int j = 0; j < v.length; j++) v[j] /= sum;
        }
    }

    @Override
    public SyncBnClassificationModel copy(ParamMap extra) {
        SyncBnClassificationModel copy = copyValues(new SyncBnClassificationModel(uid, model), extra);
        copy.summary = summary;
        return copy.setParent(parent());
    }

    @Override
    public MLWriter write() {
        return new MLWriter() {
            @Override
            public void saveImpl(String path) {
                DefaultParamsWriter$.MODULE$.saveMetadata(SyncBnClassificationModel.this, path, sparkSession());
                try {
                    model.save(new Path(path, MODEL_FILE).toString(), sparkSession().sparkContext().hadoopConfiguration());
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }
        };
    }

    public static MLReader<SyncBnClassificationModel> read() {
        return new MLReader<>() {
            @Override
            public SyncBnClassificationModel load(String path) {
                DefaultParamsReader.Metadata metadata = DefaultParamsReader$.MODULE$.loadMetadata(path, sparkSession(), SyncBnClassificationModel.class.getName());
                ModelFile file;
                try {
                    file = ModelFile.load(new Path(path, MODEL_FILE).toString(), sparkSession().sparkContext().hadoopConfiguration());
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
                SyncBnClassificationModel m = new SyncBnClassificationModel(metadata.uid(), file);
                metadata.getAndSetParams(m, scala.Option.empty());
                return m;
            }
        };
    }

    public static SyncBnClassificationModel load(String path) {
        return read().load(path);
    }

    /** True if path holds a model saved by write().save (Spark ML metadata), rather than a model file. */
    /** The network of a saved model: a model file (--model-out, a checkpoint) or a directory saved by write().save. */
    public static ModelFile loadNetwork(String path, Configuration conf) throws IOException {
        return ModelFile.load(isSavedModel(path, conf) ? new Path(path, MODEL_FILE).toString() : path, conf);
    }

    /** Writes the network as an ONNX model (see OnnxExport: BN folded, input image, outputs logits and probability), atomically. */
    public void exportOnnx(String path) throws IOException {
        Option<SparkSession> spark = SparkSession.getActiveSession(); // its Hadoop settings reach hdfs://; else the defaults
        OnnxExport.write(model, path, spark.isDefined() ? spark.get().sparkContext().hadoopConfiguration() : new Configuration());
    }

    public static boolean isSavedModel(String path, Configuration conf) throws IOException {
        Path p = new Path(path, "metadata");
        return p.getFileSystem(conf).exists(p);
    }
}
