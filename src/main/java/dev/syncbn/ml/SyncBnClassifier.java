package dev.syncbn.ml;

import dev.syncbn.data.ImageRows;
import dev.syncbn.job.TrainJob;
import dev.syncbn.spark.SparkData;
import dev.syncbn.train.Options;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.Trainer;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.ml.attribute.Attribute;
import org.apache.spark.ml.attribute.NominalAttribute;
import org.apache.spark.ml.classification.ProbabilisticClassifier;
import org.apache.spark.ml.linalg.Vector;
import org.apache.spark.ml.param.BooleanParam;
import org.apache.spark.ml.param.DoubleParam;
import org.apache.spark.ml.param.IntParam;
import org.apache.spark.ml.param.LongParam;
import org.apache.spark.ml.param.Param;
import org.apache.spark.ml.param.ParamMap;
import org.apache.spark.ml.param.ParamValidators;
import org.apache.spark.ml.util.DefaultParamsReader;
import org.apache.spark.ml.util.DefaultParamsWritable;
import org.apache.spark.ml.util.Identifiable$;
import org.apache.spark.ml.util.MLReader;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.functions;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;

/**
 * A Spark ML Estimator for the convolutional network with (synchronized) batch norm: fit(DataFrame)
 * trains data-parallel with the same barrier-stage engine as `syncbn train` (the same parameters for
 * the same data and seed) and returns a SyncBnClassificationModel. Features: a vector, array<float> or
 * array<double> column of C*H*W values in [0, 1] (row-major, as the IDX reader produces them), or a
 * binary column of C*H*W bytes; labels: class numbers 0..K-1, K taken from the label column's metadata or
 * else from the largest label. The rows are decoded on the executors; the training set never passes
 * through the driver. Every default comes from the command line's table of defaults (Options).
 */
public final class SyncBnClassifier extends ProbabilisticClassifier<Vector, SyncBnClassifier, SyncBnClassificationModel>
        implements DefaultParamsWritable {
    private final String uid;
    private final IntParam workers, batchPerWorker, minWorkers, epochs, imageChannels, imageHeight, imageWidth, earlyStoppingEpochs;
    private final BooleanParam augment;
    private final Param<String> net, bnMode, lrSchedule, checkpointDir, validationIndicatorCol;
    private final DoubleParam lr;
    private final LongParam seed;

    public SyncBnClassifier() {
        this(Identifiable$.MODULE$.randomUID("syncBnClassifier"));
    }

    public SyncBnClassifier(String uid) {
        this(uid, ConstructingUid.stash(uid));
    }

    private SyncBnClassifier(String uid, Void stashed) {
        this.uid = uid;
        ConstructingUid.done();
        workers = new IntParam(this, "workers", Options.help("workers"), ParamValidators.gtEq(1));
        batchPerWorker = new IntParam(this, "batchPerWorker", Options.help("batch-per-worker"), ParamValidators.gtEq(1));
        minWorkers = new IntParam(this, "minWorkers", Options.help("elastic"), ParamValidators.gtEq(0));
        net = new Param<>(this, "net", Options.help("net"));
        augment = new BooleanParam(this, "augment", Options.help("augment"));
        bnMode = new Param<>(this, "bnMode", Options.help("bn"));
        epochs = new IntParam(this, "epochs", Options.help("epochs"), ParamValidators.gtEq(1));
        lr = new DoubleParam(this, "lr", Options.help("lr"), ParamValidators.gt(0));
        lrSchedule = new Param<>(this, "lrSchedule", Options.help("lr-schedule"), ParamValidators.inArray(new String[] {"cosine", "constant"}));
        seed = new LongParam(this, "seed", Options.help("seed"));
        checkpointDir = new Param<>(this, "checkpointDir", Options.help("checkpoint-dir") + "; empty: none");
        imageChannels = new IntParam(this, "imageChannels", "channels C of the images (features hold C*H*W values)", ParamValidators.gtEq(1));
        imageHeight = new IntParam(this, "imageHeight", "height H of the images", ParamValidators.gtEq(1));
        imageWidth = new IntParam(this, "imageWidth", "width W of the images", ParamValidators.gtEq(1));
        validationIndicatorCol = new Param<>(this, "validationIndicatorCol",
                "a Boolean column: true marks the rows evaluated after every epoch instead of trained on; empty: none");
        earlyStoppingEpochs = new IntParam(this, "earlyStoppingEpochs",
                "stop after this many epochs without a lower validation loss and keep the best epoch's model (0: never; needs validationIndicatorCol)",
                ParamValidators.gtEq(0));
        Options d = Options.defaults();
        setDefault(workers, d.getInt("workers", 1));
        setDefault(batchPerWorker, d.getInt("batch-per-worker", 1));
        setDefault(minWorkers, d.getInt("elastic", 0));
        setDefault(net, d.get("net"));
        setDefault(augment, d.getBoolean("augment"));
        setDefault(bnMode, d.get("bn"));
        setDefault(epochs, d.getInt("epochs", 1));
        setDefault(lr, d.getPositiveDouble("lr"));
        setDefault(lrSchedule, d.get("lr-schedule"));
        setDefault(seed, d.getLong("seed"));
        setDefault(checkpointDir, d.get("checkpoint-dir"));
        setDefault(validationIndicatorCol, "");
        setDefault(earlyStoppingEpochs, 0);
    }

    @Override
    public String uid() {
        return uid != null ? uid : ConstructingUid.current();
    }

    public IntParam workers() { return workers; }
    public IntParam batchPerWorker() { return batchPerWorker; }
    public IntParam minWorkers() { return minWorkers; }
    public Param<String> net() { return net; }
    public BooleanParam augment() { return augment; }
    public Param<String> bnMode() { return bnMode; }
    public IntParam epochs() { return epochs; }
    public DoubleParam lr() { return lr; }
    public Param<String> lrSchedule() { return lrSchedule; }
    public LongParam seed() { return seed; }
    public Param<String> checkpointDir() { return checkpointDir; }
    public IntParam imageChannels() { return imageChannels; }
    public IntParam imageHeight() { return imageHeight; }
    public IntParam imageWidth() { return imageWidth; }
    public Param<String> validationIndicatorCol() { return validationIndicatorCol; }
    public IntParam earlyStoppingEpochs() { return earlyStoppingEpochs; }

    public SyncBnClassifier setWorkers(int value) { return (SyncBnClassifier) set(workers, value); }
    public SyncBnClassifier setBatchPerWorker(int value) { return (SyncBnClassifier) set(batchPerWorker, value); }
    /** 0 (the default): a fixed number of replicas; MIN: elastic, going on with as few as MIN replicas when executors are lost (--elastic). */
    public SyncBnClassifier setMinWorkers(int value) { return (SyncBnClassifier) set(minWorkers, value); }
    /** The network, as --net takes it: "32,64" (the default), "resnet-20", "resnet-20x2", ... */
    public SyncBnClassifier setNet(String value) { return (SyncBnClassifier) set(net, value); }
    /** Random shifts and mirroring of the training rows' images (--augment). */
    public SyncBnClassifier setAugment(boolean value) { return (SyncBnClassifier) set(augment, value); }
    /** "local", "sync" or "group:G". */
    public SyncBnClassifier setBnMode(String value) { return (SyncBnClassifier) set(bnMode, value); }
    public SyncBnClassifier setEpochs(int value) { return (SyncBnClassifier) set(epochs, value); }
    public SyncBnClassifier setLr(double value) { return (SyncBnClassifier) set(lr, value); }
    /** "cosine" or "constant". */
    public SyncBnClassifier setLrSchedule(String value) { return (SyncBnClassifier) set(lrSchedule, value); }
    public SyncBnClassifier setSeed(long value) { return (SyncBnClassifier) set(seed, value); }
    /** A checkpoint after every epoch in this directory (any Hadoop file system). */
    public SyncBnClassifier setCheckpointDir(String value) { return (SyncBnClassifier) set(checkpointDir, value); }
    public SyncBnClassifier setValidationIndicatorCol(String value) { return (SyncBnClassifier) set(validationIndicatorCol, value); }
    public SyncBnClassifier setEarlyStoppingEpochs(int value) { return (SyncBnClassifier) set(earlyStoppingEpochs, value); }

    /** The images' shape: the features of a row hold channels*height*width values. Without it, features of n = s*s values are 1 x s x s images. */
    public SyncBnClassifier setImageShape(int channels, int height, int width) {
        set(imageChannels, channels);
        set(imageHeight, height);
        return (SyncBnClassifier) set(imageWidth, width);
    }

    @Override
    public SyncBnClassifier copy(ParamMap extra) {
        return defaultCopy(extra);
    }

    /**
     * Checks the columns fit() reads before any Spark job: the features column may be a vector, array<float>,
     * array<double> or binary (Predictor would insist on a vector); a label column, where present, numeric
     * (fit casts it to double afterwards, which would turn text into nulls).
     */
    @Override
    public StructType transformSchema(StructType schema) {
        ImageRows.kindOf(schema, getFeaturesCol());
        if (schema.getFieldIndex(getLabelCol()).isDefined()) ImageRows.checkLabelType(schema, getLabelCol());
        String valid = getOrDefault(validationIndicatorCol);
        if (!valid.isEmpty()) {
            DataType t = ImageRows.field(schema, valid).dataType();
            if (!t.equals(DataTypes.BooleanType)) throw new IllegalArgumentException("validation indicator column '" + valid + "' has type " + t.simpleString() + "; it must be boolean");
        }
        return SyncBnClassificationModel.outputSchema(schema, getRawPredictionCol(), getProbabilityCol(), getPredictionCol(), 0);
    }

    @Override
    public SyncBnClassificationModel train(Dataset<?> dataset) {
        Dataset<Row> df = dataset.toDF();
        int[] shape = imageShape(df);
        String valid = getOrDefault(validationIndicatorCol);
        Dataset<Row> trainRows = df, evalRows = df.limit(0);
        if (!valid.isEmpty()) {
            if (!df.filter(functions.col(valid).isNull()).isEmpty()) {
                throw new IllegalArgumentException("validation indicator column '" + valid + "' has nulls; it must be true or false in every row");
            }
            trainRows = df.filter(functions.not(functions.col(valid)));
            evalRows = df.filter(functions.col(valid));
        }
        if ((Integer) getOrDefault(earlyStoppingEpochs) > 0 && valid.isEmpty()) {
            throw new IllegalArgumentException("earlyStoppingEpochs needs validation rows: setValidationIndicatorCol");
        }
        TrainConfig config = TrainConfig.builder().workers((Integer) getOrDefault(workers)).batchPerWorker((Integer) getOrDefault(batchPerWorker))
                .minWorkers((Integer) getOrDefault(minWorkers)).augment((Boolean) getOrDefault(augment))
                .net(getOrDefault(net)).bn(getOrDefault(bnMode)).epochs((Integer) getOrDefault(epochs)).lr((Double) getOrDefault(lr)).lrSchedule(getOrDefault(lrSchedule))
                .seed((Long) getOrDefault(seed)).checkpointDir(getOrDefault(checkpointDir)).progressSeconds(0)
                .earlyStoppingEpochs((Integer) getOrDefault(earlyStoppingEpochs)).build();
        SparkData data = SparkData.fromFrames(trainRows, evalRows, getFeaturesCol(), getLabelCol(), shape[0], shape[1], shape[2], classesFromMetadata(df));
        JavaSparkContext sc = JavaSparkContext.fromSparkContext(df.sparkSession().sparkContext());
        Trainer.Outcome outcome;
        try {
            outcome = TrainJob.spark(config, sc, data, Trainer.Listener.NONE);
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException("training failed: " + e.getMessage(), e);
        }
        SyncBnClassificationModel model = new SyncBnClassificationModel(uid, outcome.model());
        model.setSummary(new SyncBnTrainingSummary(outcome.epochs(), outcome.model().epoch()));
        return copyValues(model, ParamMap.empty());
    }

    private int[] imageShape(Dataset<Row> df) {
        if (isDefined(imageChannels) && isDefined(imageHeight) && isDefined(imageWidth)) {
            return new int[] {(Integer) getOrDefault(imageChannels), (Integer) getOrDefault(imageHeight), (Integer) getOrDefault(imageWidth)};
        }
        // without a shape: the first row's features, if they are a square of s*s values, are a 1 x s x s image
        Row first = df.select(getFeaturesCol()).first();
        int n = first.isNullAt(0) ? 0 : switch (ImageRows.kindOf(df.schema(), getFeaturesCol())) {
            case VECTOR -> ((Vector) first.get(0)).size();
            case BYTES -> ((byte[]) first.get(0)).length;
            default -> first.getList(0).size();
        };
        int side = (int) Math.round(Math.sqrt(n));
        if (n == 0 || side * side != n) {
            throw new IllegalArgumentException("features column '" + getFeaturesCol() + "' holds " + n + " values per row, not a square image: setImageShape(channels, height, width)");
        }
        return new int[] {1, side, side};
    }

    /** K from the label column's metadata (as StringIndexer writes it), or 0 to count it from the labels. */
    private int classesFromMetadata(Dataset<Row> df) {
        Attribute a = Attribute.fromStructField(ImageRows.field(df.schema(), getLabelCol()));
        if (a instanceof NominalAttribute n && n.getNumValues().isDefined()) return (Integer) n.getNumValues().get();
        return 0;
    }

    public static MLReader<SyncBnClassifier> read() {
        return new DefaultParamsReader<>();
    }

    public static SyncBnClassifier load(String path) {
        return read().load(path);
    }
}
