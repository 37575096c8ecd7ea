package dev.syncbn.train;

import dev.syncbn.nn.BnMode;

/**
 * One training run's settings, typed and checked: what the command line's options and the Spark ML
 * Estimator's params both become (their defaults are the Options table's). batch and threads are the
 * single-process engine's; workers, batchPerWorker and bn the Spark engine's, whose replicas take
 * spark.task.cpus threads each; shuffle how the Spark engine deals the samples out each epoch (SparkEngine.Settings). earlyStoppingEpochs: stop after that many epochs without a lower
 * evaluation loss (0: never), keeping the best epoch's model. preciseBnBatches: see Trainer.Config.
 */
public record TrainConfig(int epochs, double lr, String lrSchedule, long seed, int workers, int batchPerWorker, BnMode bn, int batch, int threads,
        int maxTrain, int maxTest, String metricsOut, String stepLog, String checkpointDir, boolean resume, String modelOut, double progressSeconds,
        int failAtStep, int earlyStoppingEpochs, int preciseBnBatches, String shuffle) {
    public TrainConfig {
        if (!shuffle.equals("global") && !shuffle.equals("partition")) throw new IllegalArgumentException("--shuffle must be global or partition, got '" + shuffle + "'");
        if (!lrSchedule.equals("constant") && !lrSchedule.equals("cosine")) {
            throw new IllegalArgumentException("--lr-schedule must be constant or cosine, got '" + lrSchedule + "'");
        }
        if (earlyStoppingEpochs < 0) throw new IllegalArgumentException("early stopping needs a number of epochs >= 0, got " + earlyStoppingEpochs);
        if (resume && checkpointDir.isEmpty()) throw new IllegalArgumentException("--resume needs --checkpoint-dir");
    }

    /** The options (command line, or the Estimator's params written into the table) as a typed configuration. */
    public static TrainConfig from(Options o) {
        int workers = o.getInt("workers", 1);
        return new TrainConfig(o.getInt("epochs", 1), o.getPositiveDouble("lr"), o.get("lr-schedule"), o.getLong("seed"), workers,
                o.getInt("batch-per-worker", 1), BnMode.parse(o.get("bn"), workers), o.getInt("batch", 1), o.getInt("threads", 1), o.getInt("max-train", 0),
                o.getInt("max-test", 0), o.get("metrics-out"), o.get("step-log"), o.get("checkpoint-dir"), o.getBoolean("resume"), o.get("model-out"),
                o.getInt("progress-s", 0), o.getInt("fail-at-step", -1), 0, o.getInt("precise-bn-batches", 0), o.get("shuffle"));
    }

    public TrainConfig withEarlyStopping(int epochs) {
        return new TrainConfig(this.epochs, lr, lrSchedule, seed, workers, batchPerWorker, bn, batch, threads, maxTrain, maxTest, metricsOut, stepLog,
                checkpointDir, resume, modelOut, progressSeconds, failAtStep, epochs, preciseBnBatches, shuffle);
    }
}
