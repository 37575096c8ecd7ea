package dev.syncbn.job;

import dev.syncbn.data.Dataset;
import dev.syncbn.nn.Backend;
import dev.syncbn.spark.SparkData;
import dev.syncbn.spark.SparkEngine;
import dev.syncbn.spark.SparkSetup;
import dev.syncbn.train.Engine;
import dev.syncbn.train.LocalEngine;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.Trainer;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;
import org.apache.hadoop.conf.Configuration;
import org.apache.spark.api.java.JavaSparkContext;

/**
 * A training run from a typed configuration and its data, for every caller (the command line, the
 * Spark ML Estimator, compare-bn): it builds the engine, sets the learning-rate schedule, decides what
 * a resumed run must share with its checkpoint, and runs the epochs.
 */
public final class TrainJob {
    private TrainJob() {}

    /** One process, no Spark: the reference trainer. */
    public static Trainer.Outcome local(TrainConfig c, Dataset train, Dataset test, Configuration conf) throws Exception {
        Backend.init();
        Dataset trainPart = train.head(Dataset.limit(train.size(), c.maxTrain())), testPart = test.head(Dataset.limit(test.size(), c.maxTest()));
        System.out.printf("single process: training on %d images, testing on %d; batch %d, %d threads%n", trainPart.size(), testPart.size(), c.batch(),
                c.threads());
        try (LocalEngine engine = new LocalEngine(trainPart, testPart, c)) {
            return run(engine, c, conf, Map.of("batch", Integer.toString(c.batch())), Trainer.Listener.NONE, Trainer::sameSettings);
        }
    }

    /** Data-parallel on Spark: W replicas of spark.task.cpus threads each; the listener hears of every step and epoch. */
    public static Trainer.Outcome spark(TrainConfig c, JavaSparkContext sc, SparkData data, Trainer.Listener listener) throws Exception {
        int threads = SparkSetup.taskCpus(sc.getConf());
        System.out.printf("Spark %s: %d replicas x %d = global batch %d, BN %s, %d thread(s) per replica; training on %d images, evaluating on %d%n",
                sc.master(), c.workers(), c.batchPerWorker(), c.workers() * c.batchPerWorker(), c.bn().text(), threads, data.trainSize(), data.testSize());
        try (SparkEngine engine = new SparkEngine(sc, data, c)) {
            System.out.println(engine.channelDescription());
            Map<String, String> shape = new LinkedHashMap<>();
            shape.put("workers", Integer.toString(c.workers()));
            shape.put("batch-per-worker", Integer.toString(c.batchPerWorker()));
            shape.put("bn", c.bn().text());
            shape.put("shuffle", c.shuffle());
            return run(engine, c, sc.hadoopConfiguration(), shape, listener, settings -> reshapeable(c, settings));
        }
    }

    /**
     * A Spark run may resume with another W and b of the same global batch W * b. The global shuffle
     * gives step j the positions [j*W*b, (j+1)*W*b) of the epoch's permutation whatever W is (Sampler),
     * so the same global batches follow, and sync BN computes over each what one process would: the same
     * steps. Local and group BN normalize over other batches then, and --shuffle partition deals the
     * replicas' blocks anew; both are allowed with a note. Every other setting must agree.
     */
    private static Trainer.ResumeCheck reshapeable(TrainConfig c, Map<String, String> settings) {
        Map<String, String> fixed = new LinkedHashMap<>(settings);
        fixed.remove("workers");
        fixed.remove("batch-per-worker");
        Trainer.ResumeCheck sameOtherwise = Trainer.sameSettings(fixed);
        return (saved, path) -> {
            sameOtherwise.check(saved, path);
            if (!saved.containsKey("workers") || !saved.containsKey("batch-per-worker")) return null;
            int w = Integer.parseInt(saved.get("workers")), b = Integer.parseInt(saved.get("batch-per-worker"));
            if (w == c.workers() && b == c.batchPerWorker()) return null;
            int global = c.workers() * c.batchPerWorker();
            if (w * b != global) {
                throw new IllegalArgumentException("cannot resume from " + path + ": it was trained with a global batch of " + w * b + " (--workers " + w
                        + " x --batch-per-worker " + b + "), this run has " + global + " (" + c.workers() + " x " + c.batchPerWorker()
                        + "); a resumed run may change --workers and --batch-per-worker only together, keeping their product");
            }
            String note = "resuming " + w + " replicas x " + b + " as " + c.workers() + " x " + c.batchPerWorker() + ", global batch " + global + " either way: ";
            note += c.bn().text().equals("sync") ? "sync BN computes the same steps"
                    : "note: " + c.bn().text() + " BN now normalizes over other batches than before";
            if (c.shufflePartitions()) note += "; note: with --shuffle partition the replicas' blocks are dealt anew, so the epochs' batches change";
            return note;
        };
    }

    /** The epochs of any engine; shape: the engine's settings that a resumed run must share. */
    private static Trainer.Outcome run(Engine engine, TrainConfig c, Configuration conf, Map<String, String> shape, Trainer.Listener listener,
            Function<Map<String, String>, Trainer.ResumeCheck> resumeCheck) throws Exception {
        // values, not spellings: a run started with --lr 0.001 resumes with --lr 1e-3
        Map<String, String> settings = new LinkedHashMap<>();
        settings.put("seed", Long.toString(c.seed()));
        settings.put("lr", Double.toString(c.lr()));
        settings.put("lr-schedule", c.lrSchedule());
        settings.put("max-train", Integer.toString(c.maxTrain()));
        settings.put("net", engine.net().spec.architecture());
        settings.put("augment", Boolean.toString(c.augment()));
        settings.putAll(shape);
        if (c.lrSchedule().equals("cosine")) {
            engine.adam().withCosineDecay((long) c.epochs() * engine.stepsPerEpoch());
            settings.put("epochs", Integer.toString(c.epochs())); // the schedule's length
        }
        return new Trainer(c, settings, engine, conf).listener(listener).resumeCheck(resumeCheck.apply(settings)).run();
    }
}
