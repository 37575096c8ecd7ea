package dev.syncbn.compare;

import dev.syncbn.compare.CompareDesign.Cell;
import dev.syncbn.compare.CompareDesign.Run;
import dev.syncbn.data.Sampler;
import dev.syncbn.job.TrainJob;
import dev.syncbn.spark.SparkData;
import dev.syncbn.spark.SparkEngine;
import dev.syncbn.spark.SparkSetup;
import dev.syncbn.train.Engine;
import dev.syncbn.train.Options;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.Trainer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

/**
 * The question users come with: does sync BN pay off at my per-worker batch size, and what does it cost?
 * compare-bn trains every cell of the design (CompareDesign) with several seeds through the training job
 * itself, each with its own metrics file and step log, after estimating how long the grid takes (and
 * refusing one that would not fit --max-minutes); the report (CompareReport) gives means, standard
 * deviations and 95% intervals, the local - sync difference per split paired by seed, and findings
 * generated from those numbers. Each final model is evaluated with its running statistics and, with
 * --precise-bn-batches, with recomputed ones.
 */
public final class CompareRunner {
    private CompareRunner() {}

    public static void run(Options o) throws Exception {
        List<Cell> cells = CompareDesign.cells(o);
        TrainConfig base = TrainConfig.from(o);
        int seeds = o.getInt("seeds", 1), epochs = o.getInt("epochs", 1), maxWorkers = cells.stream().mapToInt(Cell::workers).max().orElseThrow();
        String outDir = o.get("output").isEmpty() ? "out/compare-bn" : o.get("output");
        Files.createDirectories(Path.of(outDir, "runs"));
        long firstSeed = o.getLong("seed");
        // every run needs W task slots at once; in local mode tasks are threads, so unless --master says
        // otherwise, run local[max W] whatever local default spark-submit chose
        try (SparkSession spark = SparkSetup.session("syncbn-compare-bn", o.get("master"), maxWorkers, true); JavaSparkContext sc = new JavaSparkContext(spark.sparkContext())) {
            SparkData data = SparkData.load(spark, o.get("data"), maxWorkers, o.getInt("max-train", 0), o.getInt("max-test", 0));
            double[] perRun = estimate(sc, data, base.net(), cells, epochs, o.getInt("precise-bn-batches", 0));
            double expected = 0;
            for (double s : perRun) expected += s * seeds;
            System.out.printf(Locale.ROOT, "%d runs (%d cells x %d seeds, %d epochs of %d images each): expected about %.1f minutes%n", cells.size() * seeds,
                    cells.size(), seeds, epochs, data.trainSize(), expected / 60);
            int maxMinutes = o.getInt("max-minutes", 0);
            if (maxMinutes > 0 && expected / 60 > maxMinutes) {
                throw new IllegalArgumentException(String.format(Locale.ROOT, "the grid would take about %.1f minutes, more than --max-minutes %d: use fewer "
                        + "--seeds, --epochs, --max-train or cells (--workers-grid, --modes), or raise --max-minutes", expected / 60, maxMinutes));
            }
            List<Run> runs = new ArrayList<>();
            long t0 = System.nanoTime();
            double done = 0;
            int index = 0;
            for (int i = 0; i < cells.size(); i++) {
                for (int s = 0; s < seeds; s++) {
                    Cell cell = cells.get(i);
                    long seed = firstSeed + s;
                    System.out.printf("== run %d of %d: W=%d, %d per worker, BN %s, seed %d%n", ++index, cells.size() * seeds, cell.workers(), cell.batch(),
                            cell.bn(), seed);
                    runs.add(train(base, sc, data, cell, seed, outDir));
                    done += perRun[i];
                    double elapsed = (System.nanoTime() - t0) / 1e9;
                    System.out.printf(Locale.ROOT, "progress: %d of %d runs; %.0f s so far, about %.0f s left%n", index, cells.size() * seeds, elapsed,
                            elapsed / done * (expected - done));
                }
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            String note = String.format(Locale.ROOT, "Network %s, %s design, %d training images, %d test images, %d epochs, seeds %d..%d, Adam lr %s (%s schedule)%s, Spark %s "
                    + "on a %d-core machine", data.spec(base.net()), o.get("design"), data.trainSize(), data.testSize(), epochs, firstSeed, firstSeed + seeds - 1, o.get("lr"),
                    o.get("lr-schedule"), o.getInt("precise-bn-batches", 0) > 0 ? ", precise BN over " + o.get("precise-bn-batches") + " batches" : "",
                    sc.master(), Runtime.getRuntime().availableProcessors());
            CompareReport.write(outDir, runs, note, seconds, o.get("design").equals("split"), data.testSize());
        }
    }

    /** One run through the training job itself, with its own metrics file and step log; its step losses as they come. */
    private static Run train(TrainConfig base, JavaSparkContext sc, SparkData data, Cell cell, long seed, String outDir) throws Exception {
        String file = Path.of(outDir, "runs", cell.id() + "-s" + seed).toString();
        TrainConfig c = base.toBuilder().workers(cell.workers()).batchPerWorker(cell.batch()).bn(cell.bn()).seed(seed).metricsOut(file + ".csv")
                .stepLog(file + "-steps.csv").build();
        List<Double> losses = new ArrayList<>();
        Trainer.Outcome outcome = TrainJob.spark(c, sc, data, new Trainer.Listener() {
            @Override
            public void step(long step, double loss) {
                losses.add(loss);
            }
        });
        return new Run(cell, seed, outcome.epochs(), outcome.preciseBnEvaluation(), losses);
    }

    /**
     * Seconds per run of each cell, from short timed runs (each the second epoch of 12 steps, after one
     * that warms up the stage) at the fewest replicas, at as many as the machine has cores, and at the
     * most: a step's time is interpolated linearly in W between them (one replica leaves the other cores
     * idle, so the curve bends at the core count), plus per epoch the measured stage and evaluation overhead.
     */
    private static double[] estimate(JavaSparkContext sc, SparkData data, String net, List<Cell> cells, int epochs, int preciseBatches) throws Exception {
        TreeMap<Integer, Cell> probes = new TreeMap<>();
        for (Cell c : cells) probes.putIfAbsent(c.workers(), c);
        int cores = Runtime.getRuntime().availableProcessors();
        TreeMap<Integer, Cell> chosen = new TreeMap<>();
        chosen.put(probes.firstKey(), probes.firstEntry().getValue());
        chosen.put(probes.lastKey(), probes.lastEntry().getValue());
        Map.Entry<Integer, Cell> nearCores = probes.floorEntry(cores);
        if (nearCores != null) chosen.put(nearCores.getKey(), nearCores.getValue());
        System.out.println("== warm-up and timing (not recorded)");
        double evalPerImage = Double.POSITIVE_INFINITY;
        TreeMap<Integer, double[]> seconds = new TreeMap<>(); // W -> {per step, per epoch besides steps}
        List<Cell> rounds = new ArrayList<>(chosen.values());
        rounds.add(0, chosen.lastEntry().getValue()); // the first round warms up the JIT and Spark and is not used
        for (int round = 0; round < rounds.size(); round++) {
            Cell c = rounds.get(round);
            int steps = 12;
            SparkData slice = data.head(c.workers() * c.batch() * steps, Math.min(data.testSize(), 500));
            TrainConfig probe = TrainConfig.builder().net(net).workers(c.workers()).batchPerWorker(c.batch()).bn("sync").lr(1e-3).seed(1).build();
            try (SparkEngine engine = new SparkEngine(sc, slice, probe)) {
                // a fresh JVM's first steps are slow (the JIT compiles on the same cores): the first round trains 6 epochs before its
                // last is timed, the others 1; and timed is always the second epoch or later
                for (int e = 1; e < (round == 0 ? 6 : 2); e++) engine.trainEpoch(e, (s, n, replicas, loss, soFar) -> {});
                long t0 = System.nanoTime();
                Engine.EpochResult r = engine.trainEpoch(round == 0 ? 6 : 2, (s, n, replicas, loss, soFar) -> {});
                double epoch = (System.nanoTime() - t0) / 1e9, stepsTime = (r.computeMs() + r.bnSyncMs() + r.exchangeMs() + r.updateMs()) / 1e3 * steps;
                long t1 = System.nanoTime();
                engine.evaluate();
                if (round > 0) {
                    seconds.put(c.workers(), new double[] {stepsTime / steps, Math.max(0, epoch - stepsTime)});
                    evalPerImage = Math.min(evalPerImage, (System.nanoTime() - t1) / 1e9 / slice.testSize());
                }
            }
        }
        StringBuilder timing = new StringBuilder("timing:");
        for (Map.Entry<Integer, double[]> e : seconds.entrySet()) {
            timing.append(String.format(Locale.ROOT, " W=%d %.1f ms per step and %.2f s per epoch besides,", e.getKey(), 1e3 * e.getValue()[0], e.getValue()[1]));
        }
        System.out.println(timing.append(String.format(Locale.ROOT, " %.2f s per 1,000 images evaluated", 1e3 * evalPerImage)));
        double[] perRun = new double[cells.size()];
        for (int i = 0; i < cells.size(); i++) {
            Cell c = cells.get(i);
            Map.Entry<Integer, double[]> lo = seconds.floorEntry(c.workers()), hi = seconds.ceilingEntry(c.workers());
            double f = lo.getKey().equals(hi.getKey()) ? 0 : (double) (c.workers() - lo.getKey()) / (hi.getKey() - lo.getKey());
            double step = lo.getValue()[0] + f * (hi.getValue()[0] - lo.getValue()[0]), overhead = lo.getValue()[1] + f * (hi.getValue()[1] - lo.getValue()[1]);
            int steps = Sampler.steps(data.trainSize(), c.workers() * c.batch());
            perRun[i] = epochs * (steps * step + overhead + evalPerImage * data.testSize()) + (preciseBatches > 0 ? overhead + evalPerImage * data.testSize() : 0);
        }
        return perRun;
    }

}
