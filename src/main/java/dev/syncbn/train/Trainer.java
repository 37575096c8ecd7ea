package dev.syncbn.train;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * The epoch loop around an Engine: evaluation after every epoch, one line and one metrics row per
 * epoch, progress lines within long epochs, a checkpoint after every epoch, resume from the newest
 * checkpoint, early stopping on the evaluation loss, and the final model.
 */
public final class Trainer {
    /**
     * The epochs trained in this run, the model it produced (the best epoch's with early stopping), and
     * with precise BN the evaluation after it (else null).
     */
    public record Outcome(List<Metrics.Epoch> epochs, ModelFile model, Totals preciseBnEvaluation) {}

    private static final String CHECKPOINT_PREFIX = "epoch-", CHECKPOINT_SUFFIX = ".model";

    private final TrainConfig cfg;
    private final Map<String, String> settings;
    private final Engine engine;
    private final Configuration conf;
    private Listener listener = Listener.NONE;
    private ResumeCheck resumeCheck;

    /** Whether a checkpoint's settings let this run continue it: throws naming what differs, or returns a note to print (or null). */
    public interface ResumeCheck {
        String check(Map<String, String> saved, String path);
    }

    /** What a caller hears of a run as it goes. */
    public interface Listener {
        Listener NONE = new Listener() {};

        /** After each step, with the run's step number (from 1) and the step's global mean loss. */
        default void step(long step, double loss) {}

        /** After every epoch, once its row is written. */
        default void epoch(Metrics.Epoch row) {}
    }

    public Trainer listener(Listener listener) {
        this.listener = listener;
        return this;
    }

    /** Replaces the default check of a resumed run (every setting the same as the checkpoint's). */
    public Trainer resumeCheck(ResumeCheck check) {
        this.resumeCheck = check;
        return this;
    }

    /**
     * cfg: the run (of it the Trainer reads the epochs, the outputs, resume, early stopping, precise BN
     * and the progress interval); settings: what a resumed run must share with the checkpoint it resumes.
     */
    public Trainer(TrainConfig cfg, Map<String, String> settings, Engine engine, Configuration conf) {
        this.cfg = cfg;
        this.settings = settings;
        this.engine = engine;
        this.conf = conf;
        this.resumeCheck = sameSettings(settings);
    }

    public Outcome run() throws Exception {
        try (RunLock lock = RunLock.acquire(List.of(cfg.checkpointDir(), cfg.metricsOut(), cfg.stepLog(), cfg.modelOut()), conf)) {
            Outcome outcome = train();
            printOutputs();
            return outcome;
        }
    }

    /** Where every output of the run went, in one place at the end. */
    private void printOutputs() {
        List<String> outputs = new ArrayList<>();
        if (!cfg.metricsOut().isEmpty()) outputs.add("metrics " + cfg.metricsOut());
        if (!cfg.stepLog().isEmpty()) outputs.add("step log " + cfg.stepLog());
        if (!cfg.checkpointDir().isEmpty()) outputs.add("checkpoints " + cfg.checkpointDir());
        if (!cfg.modelOut().isEmpty()) outputs.add("model " + cfg.modelOut());
        System.out.println(outputs.isEmpty() ? "outputs: none (see --metrics-out, --step-log, --checkpoint-dir, --model-out)" : "outputs: " + String.join(", ", outputs));
    }

    private Outcome train() throws Exception {
        int start = 1;
        long stepsBefore = 0;
        if (cfg.resume()) {
            String latest = latestCheckpoint(cfg.checkpointDir(), conf);
            if (latest == null) {
                System.out.println("no checkpoint in " + cfg.checkpointDir() + ": starting from scratch");
            } else {
                ModelFile m = ModelFile.load(latest, conf);
                String note = resumeCheck.check(m.settings(), latest);
                if (note != null) System.out.println(note);
                engine.restore(m);
                start = m.epoch() + 1;
                stepsBefore = m.step();
                System.out.println("resumed from " + latest + " (epoch " + m.epoch() + ", step " + m.step() + ")");
            }
        }
        Metrics metrics = new Metrics(cfg.metricsOut(), Metrics.HEADER, conf, start);
        Metrics stepLog = new Metrics(cfg.stepLog(), Metrics.STEP_HEADER, conf, stepsBefore + 1);
        long[] globalStep = {stepsBefore};
        List<Metrics.Epoch> done = new ArrayList<>();
        ModelFile best = null;
        double bestLoss = Double.POSITIVE_INFINITY;
        int bestEpoch = 0, lastEpoch = start - 1;
        for (int epoch = start; epoch <= cfg.epochs(); epoch++) {
            int e = epoch;
            long t0 = System.nanoTime();
            long[] lastPrint = {t0};
            Engine.EpochResult result = engine.trainEpoch(epoch, (step, steps, replicas, stepLoss, soFar) -> {
                stepLog.add(String.format(Locale.ROOT, "%d,%.8f,%d", ++globalStep[0], stepLoss, replicas));
                listener.step(globalStep[0], stepLoss);
                long now = System.nanoTime();
                if (cfg.progressSeconds() > 0 && (now - lastPrint[0]) / 1e9 >= cfg.progressSeconds() && step + 1 < steps) {
                    lastPrint[0] = now;
                    System.out.printf(Locale.ROOT, "  epoch %d step %d/%d  loss %.4f acc %.4f  %.0f images/s%n", e, step + 1, steps,
                            soFar.meanLoss(), soFar.accuracy(), soFar.count() / ((now - t0) / 1e9));
                }
            });
            double trainSeconds = (System.nanoTime() - t0) / 1e9;
            Totals train = result.totals(), test = engine.evaluate();
            double seconds = (System.nanoTime() - t0) / 1e9;
            Metrics.Epoch row = new Metrics.Epoch(epoch, train.meanLoss(), train.accuracy(), test.meanLoss(), test.accuracy(), seconds,
                    train.count() / trainSeconds, result.computeMs(), result.bnSyncMs(), result.exchangeMs(), result.updateMs(), result.stepMsMedian(),
                    result.outsideComputeMsMedian(), result.straggleMs(), result.overheadMsMedian(), result.replicas());
            System.out.println(row.line());
            metrics.add(row.csv());
            metrics.flush();
            stepLog.flush();
            done.add(row);
            listener.epoch(row);
            lastEpoch = epoch;
            if (!cfg.checkpointDir().isEmpty()) {
                engine.snapshot(epoch, settings).save(checkpointPath(cfg.checkpointDir(), epoch), conf);
            }
            if (cfg.earlyStoppingEpochs() > 0 && test.count() > 0) {
                if (test.meanLoss() < bestLoss) {
                    bestLoss = test.meanLoss();
                    bestEpoch = epoch;
                    best = engine.snapshot(epoch, settings);
                } else if (epoch - bestEpoch >= cfg.earlyStoppingEpochs()) {
                    System.out.printf(Locale.ROOT, "early stopping after epoch %d: no lower evaluation loss than epoch %d's %.4f for %d epochs%n", epoch,
                            bestEpoch, bestLoss, cfg.earlyStoppingEpochs());
                    break;
                }
            }
        }
        Totals precise = null;
        if (cfg.preciseBnBatches() > 0 && best == null && lastEpoch >= start) {
            engine.preciseBn(cfg.preciseBnBatches());
            precise = engine.evaluate();
            System.out.printf(Locale.ROOT, "precise BN (running statistics of %d training batches through the final network): test loss %.4f acc %.4f%n",
                    cfg.preciseBnBatches(), precise.meanLoss(), precise.accuracy());
        }
        ModelFile outcome = best != null ? best : engine.snapshot(lastEpoch, settings);
        if (!cfg.modelOut().isEmpty()) {
            outcome.save(cfg.modelOut(), conf);
            System.out.println("model saved to " + cfg.modelOut() + (best != null ? " (epoch " + bestEpoch + ", the lowest evaluation loss)" : ""));
        }
        return new Outcome(done, outcome, precise);
    }

    /** A checkpoint only continues the run it came from: the settings that shape the run must agree (a setting it lacks is taken as agreeing). */
    public static ResumeCheck sameSettings(Map<String, String> settings) {
        return (saved, path) -> {
            for (Map.Entry<String, String> e : settings.entrySet()) {
                String was = saved.get(e.getKey());
                if (was != null && !was.equals(e.getValue())) {
                    throw new IllegalArgumentException("cannot resume from " + path + ": it was trained with --" + e.getKey() + " " + was
                            + ", this run has --" + e.getKey() + " " + e.getValue());
                }
            }
            return null;
        };
    }

    static String checkpointPath(String dir, int epoch) {
        return new Path(dir, String.format("%s%04d%s", CHECKPOINT_PREFIX, epoch, CHECKPOINT_SUFFIX)).toString();
    }

    /** The checkpoint with the highest epoch in dir, or null if there is none. */
    public static String latestCheckpoint(String dir, Configuration conf) throws IOException {
        Path d = new Path(dir);
        FileSystem fs = d.getFileSystem(conf);
        if (!fs.exists(d)) return null;
        String best = null;
        for (FileStatus st : fs.listStatus(d)) {
            String name = st.getPath().getName();
            if (name.startsWith(CHECKPOINT_PREFIX) && name.endsWith(CHECKPOINT_SUFFIX) && (best == null || name.compareTo(new Path(best).getName()) > 0)) {
                best = st.getPath().toString();
            }
        }
        return best;
    }
}
