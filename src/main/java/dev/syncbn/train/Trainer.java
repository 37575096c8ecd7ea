package dev.syncbn.train;

import dev.syncbn.data.Sampler;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * The epoch loop around an Engine: a fresh seeded shuffle every epoch, evaluation after every epoch,
 * one line and one metrics row per epoch, progress lines within long epochs, a checkpoint after every
 * epoch, resume from the newest checkpoint, and the final model.
 */
public final class Trainer {
    public record Config(int epochs, long seed, String metricsOut, String stepLog, String checkpointDir, boolean resume, String modelOut,
            double progressSeconds, Map<String, String> settings) {}

    private static final String CHECKPOINT_PREFIX = "epoch-", CHECKPOINT_SUFFIX = ".model";

    private final Config cfg;
    private final Engine engine;
    private final int trainSize;
    private final Configuration conf;
    private java.util.function.Consumer<Metrics.Epoch> onEpoch = e -> {};

    /** Called after every epoch, once its row is written. */
    public Trainer onEpoch(java.util.function.Consumer<Metrics.Epoch> listener) {
        this.onEpoch = listener;
        return this;
    }

    public Trainer(Config cfg, Engine engine, int trainSize, Configuration conf) {
        this.cfg = cfg;
        this.engine = engine;
        this.trainSize = trainSize;
        this.conf = conf;
        if (cfg.resume() && cfg.checkpointDir().isEmpty()) throw new IllegalArgumentException("--resume needs --checkpoint-dir");
    }

    public List<Metrics.Epoch> run() throws Exception {
        int start = 1;
        long stepsBefore = 0;
        if (cfg.resume()) {
            String latest = latestCheckpoint(cfg.checkpointDir(), conf);
            if (latest == null) {
                System.out.println("no checkpoint in " + cfg.checkpointDir() + ": starting from scratch");
            } else {
                ModelFile m = ModelFile.load(latest, conf);
                checkSameRun(m.settings(), latest);
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
        for (int epoch = start; epoch <= cfg.epochs(); epoch++) {
            int e = epoch;
            long t0 = System.nanoTime();
            long[] lastPrint = {t0};
            Engine.EpochResult result = engine.trainEpoch(epoch, (step, steps, stepLoss, soFar) -> {
                stepLog.add(String.format(java.util.Locale.ROOT, "%d,%.8f", ++globalStep[0], stepLoss));
                long now = System.nanoTime();
                if (cfg.progressSeconds() > 0 && (now - lastPrint[0]) / 1e9 >= cfg.progressSeconds() && step + 1 < steps) {
                    lastPrint[0] = now;
                    System.out.printf(java.util.Locale.ROOT, "  epoch %d step %d/%d  loss %.4f acc %.4f  %.0f images/s%n", e, step + 1, steps,
                            soFar.meanLoss(), soFar.accuracy(), soFar.count() / ((now - t0) / 1e9));
                }
            });
            double trainSeconds = (System.nanoTime() - t0) / 1e9;
            Engine.Totals train = result.totals(), test = engine.evaluate();
            double seconds = (System.nanoTime() - t0) / 1e9;
            Metrics.Epoch row = new Metrics.Epoch(epoch, train.meanLoss(), train.accuracy(), test.meanLoss(), test.accuracy(), seconds,
                    train.count() / trainSeconds, result.computeMs(), result.bnSyncMs(), result.exchangeMs(), result.updateMs());
            System.out.println(row.line());
            metrics.add(row.csv());
            metrics.flush();
            stepLog.flush();
            done.add(row);
            onEpoch.accept(row);
            if (!cfg.checkpointDir().isEmpty()) {
                engine.snapshot(epoch, cfg.settings()).save(checkpointPath(cfg.checkpointDir(), epoch), conf);
            }
        }
        if (!cfg.modelOut().isEmpty()) {
            engine.snapshot(cfg.epochs(), cfg.settings()).save(cfg.modelOut(), conf);
            System.out.println("model saved to " + cfg.modelOut());
        }
        return done;
    }

    /** A checkpoint only continues the run it came from: the settings that shape the run must agree. */
    private void checkSameRun(Map<String, String> saved, String path) {
        for (Map.Entry<String, String> e : cfg.settings().entrySet()) {
            String was = saved.get(e.getKey());
            if (was != null && !was.equals(e.getValue())) {
                throw new IllegalArgumentException("cannot resume from " + path + ": it was trained with --" + e.getKey() + " " + was
                        + ", this run has --" + e.getKey() + " " + e.getValue());
            }
        }
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
