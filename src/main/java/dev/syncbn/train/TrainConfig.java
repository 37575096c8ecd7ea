package dev.syncbn.train;

import dev.syncbn.nn.BnMode;

/**
 * One training run's settings, typed and checked: what the command line's options and the Spark ML
 * Estimator's params both become, through the Builder, whose defaults are the Options table's. batch and
 * threads are the single-process engine's; workers, batchPerWorker, bn and shuffle the Spark engine's
 * (whose replicas take spark.task.cpus threads each; shuffle: global or partition, see Options).
 * net: the --net text (NetSpec.forData builds it for the data's shape). earlyStoppingEpochs: stop after that many epochs without a lower evaluation loss (0: never), keeping
 * the best epoch's model. preciseBnBatches: after the last epoch, replace the running statistics with
 * those of that many training batches (0: keep them). failAtStep: for tests, replica 0 fails once at
 * this step of every epoch's first attempt (-1: never).
 */
public record TrainConfig(String net, int epochs, double lr, String lrSchedule, long seed, int workers, int batchPerWorker, BnMode bn, int batch, int threads,
        int maxTrain, int maxTest, String metricsOut, String stepLog, String checkpointDir, boolean resume, String modelOut, double progressSeconds,
        int failAtStep, int earlyStoppingEpochs, int preciseBnBatches, String shuffle, int minWorkers, double elasticWaitSeconds, boolean augment) {
    public TrainConfig {
        atLeast("epochs", epochs, 1);
        atLeast("workers", workers, 1);
        atLeast("batch-per-worker", batchPerWorker, 1);
        atLeast("batch", batch, 1);
        atLeast("threads", threads, 1);
        atLeast("max-train", maxTrain, 0);
        atLeast("max-test", maxTest, 0);
        atLeast("precise-bn-batches", preciseBnBatches, 0);
        if (!(lr > 0) || Double.isInfinite(lr)) throw new IllegalArgumentException("--lr must be a positive number, got " + lr);
        if (!(progressSeconds >= 0)) throw new IllegalArgumentException("--progress-s must be at least 0, got " + progressSeconds);
        if (!shuffle.equals("global") && !shuffle.equals("partition")) throw new IllegalArgumentException("--shuffle must be global or partition, got '" + shuffle + "'");
        if (!lrSchedule.equals("constant") && !lrSchedule.equals("cosine")) {
            throw new IllegalArgumentException("--lr-schedule must be constant or cosine, got '" + lrSchedule + "'");
        }
        if (earlyStoppingEpochs < 0) throw new IllegalArgumentException("early stopping needs a number of epochs >= 0, got " + earlyStoppingEpochs);
        if (net.isBlank()) throw new IllegalArgumentException("--net must name a network, like 32,64 or resnet-20");
        if (resume && checkpointDir.isEmpty()) throw new IllegalArgumentException("--resume needs --checkpoint-dir");
        if (minWorkers < 0 || minWorkers > workers) {
            throw new IllegalArgumentException("--elastic must be 0 (off) or a number of replicas from 1 to --workers " + workers + ", got " + minWorkers);
        }
        if (minWorkers > 0 && shuffle.equals("partition")) {
            throw new IllegalArgumentException("--elastic needs --shuffle global: with --shuffle partition each replica's block is fixed to its rank");
        }
        if (!(elasticWaitSeconds >= 0) || Double.isInfinite(elasticWaitSeconds)) {
            throw new IllegalArgumentException("--elastic-wait must be a number of seconds >= 0, got " + elasticWaitSeconds);
        }
    }

    /** Whether the run may go on with fewer replicas when the cluster's task slots shrink (--elastic MIN). */
    public boolean elastic() {
        return minWorkers > 0;
    }

    private static void atLeast(String option, long value, long min) {
        if (value < min) throw new IllegalArgumentException("--" + option + " must be at least " + min + ", got " + value);
    }

    /** The options of a command line (or their defaults) as a typed configuration. */
    public static TrainConfig from(Options o) {
        return new Builder(o).build();
    }

    /** A builder at the Options table's defaults. */
    public static Builder builder() {
        return new Builder(Options.defaults());
    }

    /** A builder holding this configuration, to change some of it. */
    public Builder toBuilder() {
        return new Builder(this);
    }

    /** Whether each replica keeps its block and reshuffles within it (--shuffle partition) instead of the global reshuffle. */
    public boolean shufflePartitions() {
        return shuffle.equals("partition");
    }

    /** Named construction of a TrainConfig; build() checks it. */
    public static final class Builder {
        private int epochs, workers, batchPerWorker, batch, threads, maxTrain, maxTest, failAtStep, earlyStoppingEpochs, preciseBnBatches, minWorkers;
        private double lr, progressSeconds, elasticWaitSeconds;
        private long seed;
        private boolean resume, augment;
        private String net, lrSchedule, bn, metricsOut, stepLog, checkpointDir, modelOut, shuffle;

        private Builder(Options o) {
            net = o.get("net");
            epochs = o.getInt("epochs", 1);
            lr = o.getPositiveDouble("lr");
            lrSchedule = o.get("lr-schedule");
            seed = o.getLong("seed");
            workers = o.getInt("workers", 1);
            batchPerWorker = o.getInt("batch-per-worker", 1);
            bn = o.get("bn");
            batch = o.getInt("batch", 1);
            threads = o.getInt("threads", 1);
            maxTrain = o.getInt("max-train", 0);
            maxTest = o.getInt("max-test", 0);
            metricsOut = o.get("metrics-out");
            stepLog = o.get("step-log");
            checkpointDir = o.get("checkpoint-dir");
            resume = o.getBoolean("resume");
            modelOut = o.get("model-out");
            progressSeconds = o.getInt("progress-s", 0);
            failAtStep = o.getInt("fail-at-step", -1);
            earlyStoppingEpochs = 0; // the Estimator's (it has validation rows); the command line has none
            preciseBnBatches = o.getInt("precise-bn-batches", 0);
            shuffle = o.get("shuffle");
            minWorkers = o.getInt("elastic", 0);
            elasticWaitSeconds = o.getInt("elastic-wait", 0);
            augment = o.getBoolean("augment");
        }

        private Builder(TrainConfig c) {
            net = c.net;
            epochs = c.epochs;
            lr = c.lr;
            lrSchedule = c.lrSchedule;
            seed = c.seed;
            workers = c.workers;
            batchPerWorker = c.batchPerWorker;
            bn = c.bn.text();
            batch = c.batch;
            threads = c.threads;
            maxTrain = c.maxTrain;
            maxTest = c.maxTest;
            metricsOut = c.metricsOut;
            stepLog = c.stepLog;
            checkpointDir = c.checkpointDir;
            resume = c.resume;
            modelOut = c.modelOut;
            progressSeconds = c.progressSeconds;
            failAtStep = c.failAtStep;
            earlyStoppingEpochs = c.earlyStoppingEpochs;
            preciseBnBatches = c.preciseBnBatches;
            shuffle = c.shuffle;
            minWorkers = c.minWorkers;
            elasticWaitSeconds = c.elasticWaitSeconds;
            augment = c.augment;
        }

        /** The architecture ("32,64", "resnet-20", "resnet-20x2") or a whole description that agrees with the data. */
        public Builder net(String v) { net = v; return this; }
        public Builder epochs(int v) { epochs = v; return this; }
        public Builder lr(double v) { lr = v; return this; }
        public Builder lrSchedule(String v) { lrSchedule = v; return this; }
        public Builder seed(long v) { seed = v; return this; }
        public Builder workers(int v) { workers = v; return this; }
        public Builder batchPerWorker(int v) { batchPerWorker = v; return this; }
        /** local, sync or group:G (checked against workers at build()). */
        public Builder bn(String v) { bn = v; return this; }
        public Builder batch(int v) { batch = v; return this; }
        public Builder threads(int v) { threads = v; return this; }
        public Builder maxTrain(int v) { maxTrain = v; return this; }
        public Builder maxTest(int v) { maxTest = v; return this; }
        public Builder metricsOut(String v) { metricsOut = v; return this; }
        public Builder stepLog(String v) { stepLog = v; return this; }
        public Builder checkpointDir(String v) { checkpointDir = v; return this; }
        public Builder resume(boolean v) { resume = v; return this; }
        public Builder modelOut(String v) { modelOut = v; return this; }
        public Builder progressSeconds(double v) { progressSeconds = v; return this; }
        public Builder failAtStep(int v) { failAtStep = v; return this; }
        public Builder earlyStoppingEpochs(int v) { earlyStoppingEpochs = v; return this; }
        public Builder preciseBnBatches(int v) { preciseBnBatches = v; return this; }
        /** global or partition. */
        public Builder shuffle(String v) { shuffle = v; return this; }
        /** 0: a fixed number of replicas; else the fewest an elastic run may go on with. */
        public Builder minWorkers(int v) { minWorkers = v; return this; }
        public Builder elasticWaitSeconds(double v) { elasticWaitSeconds = v; return this; }
        /** Random shifts and mirroring of the training images (data.Augment). */
        public Builder augment(boolean v) { augment = v; return this; }

        public TrainConfig build() {
            return new TrainConfig(net, epochs, lr, lrSchedule, seed, workers, batchPerWorker, BnMode.parse(bn, workers), batch, threads, maxTrain, maxTest,
                    metricsOut, stepLog, checkpointDir, resume, modelOut, progressSeconds, failAtStep, earlyStoppingEpochs, preciseBnBatches, shuffle,
                    minWorkers, elasticWaitSeconds, augment);
        }
    }
}
