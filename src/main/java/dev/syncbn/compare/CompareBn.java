package dev.syncbn.compare;


import dev.syncbn.data.Sampler;
import dev.syncbn.job.TrainJob;
import dev.syncbn.nn.BnMode;
import dev.syncbn.spark.SparkData;
import dev.syncbn.spark.SparkEngine;
import dev.syncbn.spark.SparkSetup;
import dev.syncbn.train.Engine;
import dev.syncbn.train.Metrics;
import dev.syncbn.train.Options;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.Trainer;
import java.awt.BasicStroke;
import java.awt.Color;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.DecimalFormat;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.ToDoubleFunction;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.CategoryAxis;
import org.jfree.chart.axis.CategoryLabelPositions;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.axis.NumberAxis;
import org.jfree.chart.axis.NumberTickUnit;
import org.jfree.chart.plot.CategoryPlot;
import org.jfree.chart.plot.ValueMarker;
import org.jfree.chart.plot.XYPlot;
import org.jfree.chart.renderer.category.StackedBarRenderer;
import org.jfree.chart.renderer.xy.XYErrorRenderer;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.data.xy.YIntervalSeries;
import org.jfree.data.xy.YIntervalSeriesCollection;

/**
 * The question users come with: does sync BN pay off at my per-worker batch size, and what does it cost?
 *
 * The default design isolates BN: the global batch stays fixed (64) and is split W x b in every way the
 * worker grid allows, so every run takes the same optimizer steps on the same samples. Sync BN at every
 * split is then the same computation as one replica of the whole batch (the report checks that on the
 * per-step losses), and local BN's difference from it is BN's effect alone. Every cell runs with several
 * seeds; the report gives means, standard deviations and 95% intervals, the local - sync difference per
 * split paired by seed, and a findings paragraph generated from those numbers. Each final model is
 * evaluated with its running statistics and, with --precise-bn-batches, with recomputed ones. The older
 * design (every W with every b) stays as --design grid.
 */
public final class CompareBn {
    /** One configuration: W replicas of b samples, BN mode. */
    record Cell(int workers, int batch, String bn) {
        String id() {
            return "w" + workers + "-b" + batch + "-" + bn.replace(":", "");
        }
    }

    /** One training run of a cell with one seed; precise is null without --precise-bn-batches. */
    record Run(Cell cell, long seed, List<Metrics.Epoch> epochs, Engine.Totals precise, List<Double> stepLosses) {
        Metrics.Epoch last() {
            return epochs.get(epochs.size() - 1);
        }
    }

    /** Mean, standard deviation and the half-width of the 95% interval of the mean (Student's t) of n values. */
    record Stats(int n, double mean, double sd, double half) {
        static Stats of(double[] xs) {
            return of(xs, 0);
        }

        /**
         * sdFloor: the interval uses at least this standard deviation. Accuracies on N test images move in
         * steps of 1/N, and a few seeds can agree exactly (three differences of one image each): their
         * standard deviation of 0 would make an interval of width 0 that "excludes 0" without telling
         * anything. Floored at one test image, such a difference is reported as the noise it is.
         */
        static Stats of(double[] xs, double sdFloor) {
            int n = xs.length;
            double mean = 0, ss = 0;
            for (double x : xs) mean += x / n;
            for (double x : xs) ss += (x - mean) * (x - mean);
            double sd = n > 1 ? Math.sqrt(ss / (n - 1)) : Double.NaN;
            return new Stats(n, mean, sd, n > 1 ? tCritical(n - 1) * Math.max(sd, sdFloor) / Math.sqrt(n) : Double.NaN);
        }

        boolean excludesZero() {
            return mean - half > 0 || mean + half < 0;
        }

        String text(double scale) {
            if (n < 2) return String.format(Locale.ROOT, "%.2f", scale * mean);
            return String.format(Locale.ROOT, "%.2f ± %.2f [%.2f, %.2f]", scale * mean, scale * sd, scale * (mean - half), scale * (mean + half));
        }
    }

    /** The two-sided 95% quantile of Student's t with df degrees of freedom. */
    static double tCritical(int df) {
        double[] table = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101,
            2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
        return df <= table.length ? table[df - 1] : 1.96;
    }

    private CompareBn() {}

    /** The cells of the chosen design; group:G only where it differs from both local (G > 1) and sync (G < W). */
    static List<Cell> cells(Options o) {
        List<int[]> splits = new ArrayList<>();
        String design = o.get("design");
        if (design.equals("split")) {
            int global = o.getInt("global-batch", 1);
            for (int w : parseGrid(o.get("workers-grid"), "--workers-grid")) if (global % w == 0) splits.add(new int[] {w, global / w});
            if (splits.isEmpty()) throw new IllegalArgumentException("no W of --workers-grid " + o.get("workers-grid") + " divides --global-batch " + global);
        } else if (design.equals("grid")) {
            for (int w : parseGrid(o.get("workers-grid"), "--workers-grid")) for (int b : parseGrid(o.get("batch-grid"), "--batch-grid")) splits.add(new int[] {w, b});
        } else {
            throw new IllegalArgumentException("--design must be split or grid, got '" + design + "'");
        }
        List<Cell> cells = new ArrayList<>();
        for (int[] s : splits) {
            int w = s[0], b = s[1];
            for (String m : o.get("modes").split(",")) {
                if (m.trim().startsWith("group:")) {
                    int g = parseGrid(m.trim().substring(6), "--modes group:G").get(0);
                    if (g <= 1 || g >= w || w % g != 0) continue;
                }
                String mode = BnMode.parse(m.trim(), w).text();
                if (w == 1 && !mode.equals("sync") && o.get("modes").contains("sync")) continue; // one replica: local is sync
                cells.add(new Cell(w, b, mode));
            }
        }
        if (cells.isEmpty()) throw new IllegalArgumentException("the comparison grid is empty");
        return cells;
    }

    private static List<Integer> parseGrid(String text, String option) {
        List<Integer> values = new ArrayList<>();
        for (String s : text.split(",")) {
            try {
                int v = Integer.parseInt(s.trim());
                if (v >= 1) {
                    values.add(v);
                    continue;
                }
            } catch (NumberFormatException ignored) {
                // reported below
            }
            throw new IllegalArgumentException(option + " takes positive whole numbers separated by commas, got '" + s + "'");
        }
        return values;
    }

    public static void run(Options o) throws Exception {
        List<Cell> cells = cells(o);
        int seeds = o.getInt("seeds", 1), epochs = o.getInt("epochs", 1), maxWorkers = cells.stream().mapToInt(Cell::workers).max().orElseThrow();
        String outDir = o.get("output").isEmpty() ? "out/compare-bn" : o.get("output");
        Files.createDirectories(Path.of(outDir, "runs"));
        long firstSeed = o.getLong("seed");
        // every run needs W task slots at once; in local mode tasks are threads, so unless --master says
        // otherwise, run local[max W] whatever local default spark-submit chose
        try (SparkSession spark = SparkSetup.session("syncbn-compare-bn", o.get("master"), maxWorkers, true); JavaSparkContext sc = new JavaSparkContext(spark.sparkContext())) {
            SparkData data = SparkData.load(spark, o.get("data"), maxWorkers, o.getInt("max-train", 0), o.getInt("max-test", 0));
            double[] perRun = estimate(sc, data, cells, epochs, o.getInt("precise-bn-batches", 0));
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
                    runs.add(train(o, sc, data, cell, seed, outDir));
                    done += perRun[i];
                    double elapsed = (System.nanoTime() - t0) / 1e9;
                    System.out.printf(Locale.ROOT, "progress: %d of %d runs; %.0f s so far, about %.0f s left%n", index, cells.size() * seeds, elapsed,
                            elapsed / done * (expected - done));
                }
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            String note = String.format(Locale.ROOT, "%s design, %d training images, %d test images, %d epochs, seeds %d..%d, Adam lr %s (%s schedule)%s, Spark %s "
                    + "on a %d-core machine", o.get("design"), data.trainSize(), data.testSize(), epochs, firstSeed, firstSeed + seeds - 1, o.get("lr"),
                    o.get("lr-schedule"), o.getInt("precise-bn-batches", 0) > 0 ? ", precise BN over " + o.get("precise-bn-batches") + " batches" : "",
                    sc.master(), Runtime.getRuntime().availableProcessors());
            write(outDir, runs, note, seconds, o.get("design").equals("split"), data.testSize());
        }
    }

    /** One run through the training job itself, with its own metrics file and step log. */
    private static Run train(Options o, JavaSparkContext sc, SparkData data, Cell cell, long seed, String outDir) throws Exception {
        String base = Path.of(outDir, "runs", cell.id() + "-s" + seed).toString();
        TrainConfig c = TrainConfig.from(o.set("workers", Integer.toString(cell.workers())).set("batch-per-worker", Integer.toString(cell.batch()))
                .set("bn", cell.bn()).set("seed", Long.toString(seed)).set("metrics-out", base + ".csv").set("step-log", base + "-steps.csv"));
        Trainer.Outcome outcome = TrainJob.spark(c, sc, data, e -> {});
        List<Double> losses = new ArrayList<>();
        List<String> lines = Files.readAllLines(Path.of(base + "-steps.csv"));
        for (String line : lines.subList(1, lines.size())) losses.add(Double.parseDouble(line.substring(line.indexOf(',') + 1)));
        return new Run(cell, seed, outcome.epochs(), outcome.preciseBnEvaluation(), losses);
    }

    /**
     * Seconds per run of each cell, from short timed runs (each the second epoch of 12 steps, after one
     * that warms up the stage) at the fewest replicas, at as many as the machine has cores, and at the
     * most: a step's time is interpolated linearly in W between them (one replica leaves the other cores
     * idle, so the curve bends at the core count), plus per epoch the measured stage and evaluation overhead.
     */
    private static double[] estimate(JavaSparkContext sc, SparkData data, List<Cell> cells, int epochs, int preciseBatches) throws Exception {
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
        int threads = SparkSetup.taskCpus(sc.getConf());
        for (int round = 0; round < rounds.size(); round++) {
            Cell c = rounds.get(round);
            int steps = 12;
            SparkData slice = data.head(c.workers() * c.batch() * steps, Math.min(data.testSize(), 500));
            try (SparkEngine engine = new SparkEngine(sc, slice, new SparkEngine.Settings(c.workers(), c.batch(), BnMode.parse("sync", c.workers()), 1e-3, 1,
                    threads, -1))) {
                // a fresh JVM's first steps are slow (the JIT compiles on the same cores): the first round trains 6 epochs before its
                // last is timed, the others 1; and timed is always the second epoch or later
                for (int e = 1; e < (round == 0 ? 6 : 2); e++) engine.trainEpoch(e, (s, n, loss, soFar) -> {});
                long t0 = System.nanoTime();
                Engine.EpochResult r = engine.trainEpoch(round == 0 ? 6 : 2, (s, n, loss, soFar) -> {});
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

    static void write(String outDir, List<Run> runs, String note, double seconds, boolean fixedGlobalBatch, int testSize) throws IOException {
        StringBuilder csv = new StringBuilder("workers,batch_per_worker,bn,seed," + Metrics.HEADER + ",precise_test_loss,precise_test_acc\n");
        for (Run r : runs) {
            for (Metrics.Epoch e : r.epochs()) {
                boolean last = e == r.last() && r.precise() != null;
                csv.append(String.format(Locale.ROOT, "%d,%d,%s,%d,%s,%s,%s%n", r.cell().workers(), r.cell().batch(), r.cell().bn(), r.seed(), e.csv(),
                        last ? String.format(Locale.ROOT, "%.6f", r.precise().meanLoss()) : "", last ? String.format(Locale.ROOT, "%.6f", r.precise().accuracy()) : ""));
            }
        }
        Files.writeString(Path.of(outDir, "results.csv"), csv, StandardCharsets.UTF_8);
        Map<Cell, List<Run>> byCell = byCell(runs);
        charts(outDir, byCell, testSize);
        Files.writeString(Path.of(outDir, "report.md"), report(byCell, note, seconds, fixedGlobalBatch, testSize), StandardCharsets.UTF_8);
        System.out.println("wrote " + outDir + "/results.csv, accuracy-vs-batch.png, difference-vs-batch.png, step-time.png and report.md");
    }

    static Map<Cell, List<Run>> byCell(List<Run> runs) {
        Map<Cell, List<Run>> m = new LinkedHashMap<>();
        for (Run r : runs) m.computeIfAbsent(r.cell(), c -> new ArrayList<>()).add(r);
        return m;
    }

    static Stats finalAccuracy(List<Run> runs) {
        return Stats.of(runs.stream().mapToDouble(r -> r.last().testAcc()).toArray());
    }

    static Stats preciseAccuracy(List<Run> runs) {
        if (runs.stream().anyMatch(r -> r.precise() == null)) return null;
        return Stats.of(runs.stream().mapToDouble(r -> r.precise().accuracy()).toArray());
    }

    /** local - sync final accuracy of one split, paired by seed (null where either is missing). */
    static Stats difference(Map<Cell, List<Run>> byCell, int w, int b, boolean precise, int testSize) {
        List<Run> local = byCell.get(new Cell(w, b, "local")), sync = byCell.get(new Cell(w, b, "sync"));
        if (local == null || sync == null) return null;
        List<Double> d = new ArrayList<>();
        for (Run l : local) {
            for (Run s : sync) {
                if (s.seed() != l.seed()) continue;
                if (precise && (l.precise() == null || s.precise() == null)) return null;
                d.add(precise ? l.precise().accuracy() - s.precise().accuracy() : l.last().testAcc() - s.last().testAcc());
            }
        }
        return d.isEmpty() ? null : Stats.of(d.stream().mapToDouble(Double::doubleValue).toArray(), 1.0 / testSize);
    }

    /**
     * The largest relative difference of a sync run's per-step losses from the one-replica run of the same
     * seed, over its first `steps` steps (fixed global batch only).
     */
    static double syncCheck(Map<Cell, List<Run>> byCell, int steps) {
        double worst = 0;
        for (Map.Entry<Cell, List<Run>> e : byCell.entrySet()) {
            Cell c = e.getKey();
            if (!c.bn().equals("sync") || c.workers() == 1) continue;
            List<Run> base = byCell.get(new Cell(1, c.workers() * c.batch(), "sync"));
            if (base == null) return Double.NaN;
            for (Run r : e.getValue()) {
                for (Run one : base) {
                    if (one.seed() != r.seed()) continue;
                    for (int i = 0; i < Math.min(steps, Math.min(one.stepLosses().size(), r.stepLosses().size())); i++) {
                        double a = one.stepLosses().get(i), x = r.stepLosses().get(i);
                        worst = Math.max(worst, Math.abs(a - x) / Math.abs(a));
                    }
                    if (one.stepLosses().size() != r.stepLosses().size()) return Double.POSITIVE_INFINITY;
                }
            }
        }
        return worst;
    }

    static double meanOver(List<Run> runs, ToDoubleFunction<Metrics.Epoch> f) {
        return runs.stream().mapToDouble(r -> f.applyAsDouble(r.last())).average().orElse(Double.NaN);
    }

    static String report(Map<Cell, List<Run>> byCell, String note, double seconds, boolean fixedGlobalBatch, int testSize) {
        int cores = Runtime.getRuntime().availableProcessors();
        StringBuilder b = new StringBuilder("# Sync vs local batch norm\n\n");
        b.append(String.format(Locale.ROOT, "%s. %d runs took %.1f minutes.%n%n", note, byCell.values().stream().mapToInt(List::size).sum(), seconds / 60));
        int maxW = byCell.keySet().stream().mapToInt(Cell::workers).max().orElse(1);
        if (maxW > cores) {
            b.append(String.format(Locale.ROOT, "Replicas beyond this machine's %d cores (up to W = %d here) take turns on them: their time-per-step columns "
                    + "show this machine sharing its cores, not a cluster with a core per replica. Their accuracy is unaffected.%n%n", cores, maxW));
        }
        if (fixedGlobalBatch) {
            double first = syncCheck(byCell, 20), all = syncCheck(byCell, Integer.MAX_VALUE);
            b.append(Double.isNaN(all) ? "The one-replica run that sync BN is checked against is not in this grid.\n\n"
                    : String.format(Locale.ROOT, "**Sync BN is the one-replica computation:** at every split, its per-step losses differ from the "
                            + "one-replica run's (W = 1, same seed) by at most %.1e relative over the first 20 steps and %.1e over all of them (float "
                            + "rounding, which training amplifies step by step). Local BN's difference from it is BN's effect alone: every split takes the "
                            + "same optimizer steps on the same samples.%n%n", first, all));
        }
        boolean precise = byCell.values().stream().allMatch(runs -> preciseAccuracy(runs) != null);
        b.append(String.format(Locale.ROOT, "Accuracy in percent on %d test images, mean ± standard deviation over seeds [95%% interval of the mean; for the "
                + "paired differences, with the standard deviation taken as at least one test image, %.2f points]; step time in ms, mean over seeds of "
                + "the last epoch.%n%n", testSize, 100.0 / testSize));
        b.append("| W | b | BN | seeds | test accuracy (running statistics) |" + (precise ? " test accuracy (precise BN) |" : "")
                + " step ms: compute / BN sync / exchange / update |\n");
        b.append("| ---: | ---: | --- | ---: | --- |" + (precise ? " --- |" : "") + " --- |\n");
        for (Map.Entry<Cell, List<Run>> e : byCell.entrySet()) {
            Cell c = e.getKey();
            List<Run> runs = e.getValue();
            b.append(String.format(Locale.ROOT, "| %d | %d | %s | %d | %s |%s %.1f / %.1f / %.1f / %.1f |%n", c.workers(), c.batch(), c.bn(), runs.size(),
                    finalAccuracy(runs).text(100), precise ? " " + preciseAccuracy(runs).text(100) + " |" : "", meanOver(runs, Metrics.Epoch::computeMs),
                    meanOver(runs, Metrics.Epoch::bnSyncMs), meanOver(runs, Metrics.Epoch::exchangeMs), meanOver(runs, Metrics.Epoch::updateMs)));
        }
        b.append("\n## Local minus sync, paired by seed\n\n");
        b.append("| W | b | local - sync, points (running statistics) | excludes 0 |" + (precise ? " local - sync, points (precise BN) | excludes 0 |" : "")
                + " sync's extra time per step |\n");
        b.append("| ---: | ---: | --- | --- |" + (precise ? " --- | --- |" : "") + " ---: |\n");
        List<String> significant = new ArrayList<>();
        double widest = 0;
        int splits = 0, localBelow = 0;
        for (Cell c : byCell.keySet()) {
            if (!c.bn().equals("local")) continue;
            Stats d = difference(byCell, c.workers(), c.batch(), false, testSize);
            if (d == null) continue;
            splits++;
            Stats dp = precise ? difference(byCell, c.workers(), c.batch(), true, testSize) : null;
            double cost = 100 * (stepMs(byCell.get(new Cell(c.workers(), c.batch(), "sync"))) / stepMs(byCell.get(c)) - 1);
            b.append(String.format(Locale.ROOT, "| %d | %d | %s | %s |%s %+.0f%% |%n", c.workers(), c.batch(), d.text(100), d.excludesZero() ? "yes" : "no",
                    dp == null ? "" : " " + dp.text(100) + " | " + (dp.excludesZero() ? "yes" : "no") + " |", cost));
            if (!Double.isNaN(d.half())) widest = Math.max(widest, d.half());
            if (d.mean() < 0) localBelow++;
            if (d.excludesZero()) {
                significant.add(String.format(Locale.ROOT, "at W=%d x b=%d local BN is %.2f points %s sync BN (95%% interval %+.2f to %+.2f)", c.workers(), c.batch(),
                        Math.abs(100 * d.mean()), d.mean() > 0 ? "above" : "below", 100 * (d.mean() - d.half()), 100 * (d.mean() + d.half())));
            }
        }
        b.append("\n![test accuracy against per-worker batch](accuracy-vs-batch.png)\n![local minus sync](difference-vs-batch.png)\n"
                + "![time per step](step-time.png)\n\n## What the numbers show\n\n");
        int n = byCell.values().iterator().next().size();
        if (splits == 0) {
            b.append("This grid has no split with both local and sync BN, so it says nothing about their difference.\n");
        } else if (n < 2) {
            b.append("With one seed per cell there is no measure of run-to-run noise: no difference here can be told from it. Run with --seeds 3 or more.\n");
        } else if (significant.isEmpty()) {
            b.append(String.format(Locale.ROOT, "No split shows a difference between local and sync BN whose 95%% interval excludes 0 (%d seeds per cell). "
                    + "This grid could not have detected differences smaller than about ±%.2f points (the widest half-interval of the paired "
                    + "differences); within that, local and sync BN trained equally well here.%n", n, 100 * widest));
        } else {
            b.append(String.format(Locale.ROOT, "%d of %d splits show a difference whose 95%% interval excludes 0 (%d seeds per cell): %s. Elsewhere the "
                    + "differences are within run-to-run noise (half-intervals up to ±%.2f points). With %d splits each tested at 95%%, a grid without any "
                    + "effect would show at least one such split %.0f%% of the time; what weighs more is the sign across splits.%n", significant.size(), splits,
                    n, String.join("; ", significant), 100 * widest, splits, 100 * (1 - Math.pow(0.95, splits))));
        }
        if (splits > 1) {
            b.append(String.format(Locale.ROOT, "%nLocal BN's mean is below sync BN's at %d of %d splits.%n", localBelow, splits));
        }
        b.append("\nSync BN computes each layer's statistics over the whole global batch, local BN over each replica's b samples: the smaller b, "
                + "the noisier local statistics, and the more sync BN should pay off. Its price is two all-reduces per BN layer per step (the "
                + "extra time column).\n");
        return b.toString();
    }

    static double stepMs(List<Run> runs) {
        return meanOver(runs, e -> e.computeMs() + e.bnSyncMs() + e.exchangeMs() + e.updateMs());
    }

    static void charts(String outDir, Map<Cell, List<Run>> byCell, int testSize) throws IOException {
        System.setProperty("java.awt.headless", "true");
        Map<String, YIntervalSeries> accuracy = new LinkedHashMap<>();
        for (Map.Entry<Cell, List<Run>> e : byCell.entrySet()) {
            Cell c = e.getKey();
            Stats s = finalAccuracy(e.getValue());
            accuracy.computeIfAbsent(c.bn(), YIntervalSeries::new).add(c.batch(), 100 * s.mean(), 100 * (s.mean() - nz(s.half())), 100 * (s.mean() + nz(s.half())));
            Stats p = preciseAccuracy(e.getValue());
            if (p != null && c.bn().equals("local")) {
                accuracy.computeIfAbsent("local, precise BN", YIntervalSeries::new).add(c.batch(), 100 * p.mean(), 100 * (p.mean() - nz(p.half())),
                        100 * (p.mean() + nz(p.half())));
            }
        }
        YIntervalSeriesCollection acc = new YIntervalSeriesCollection();
        accuracy.values().forEach(acc::addSeries);
        save(outDir, "accuracy-vs-batch.png", xyChart("Test accuracy against per-worker batch (mean, 95% interval)", "test accuracy (%)", acc, false));

        YIntervalSeries diff = new YIntervalSeries("local - sync");
        for (Cell c : byCell.keySet()) {
            Stats d = c.bn().equals("local") ? difference(byCell, c.workers(), c.batch(), false, testSize) : null;
            if (d != null) diff.add(c.batch(), 100 * d.mean(), 100 * (d.mean() - nz(d.half())), 100 * (d.mean() + nz(d.half())));
        }
        YIntervalSeriesCollection dc = new YIntervalSeriesCollection();
        dc.addSeries(diff);
        save(outDir, "difference-vs-batch.png", xyChart("Local minus sync BN test accuracy, paired by seed (95% interval)", "points", dc, true));

        DefaultCategoryDataset times = new DefaultCategoryDataset();
        for (Map.Entry<Cell, List<Run>> e : byCell.entrySet()) {
            Cell c = e.getKey();
            String column = "W=" + c.workers() + " b=" + c.batch() + " " + c.bn();
            times.addValue(meanOver(e.getValue(), Metrics.Epoch::computeMs), "compute", column);
            times.addValue(meanOver(e.getValue(), Metrics.Epoch::bnSyncMs), "BN sync", column);
            times.addValue(meanOver(e.getValue(), Metrics.Epoch::exchangeMs), "exchange", column);
            times.addValue(meanOver(e.getValue(), Metrics.Epoch::updateMs), "update", column);
        }
        CategoryAxis x = new CategoryAxis("workers, per-worker batch, BN");
        x.setCategoryLabelPositions(CategoryLabelPositions.UP_45);
        CategoryPlot plot = new CategoryPlot(times, x, new NumberAxis("ms per step"), new StackedBarRenderer());
        plot.setBackgroundPaint(Color.WHITE);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        save(outDir, "step-time.png", new JFreeChart("Time per step by part", JFreeChart.DEFAULT_TITLE_FONT, plot, true));
    }

    private static double nz(double v) {
        return Double.isNaN(v) ? 0 : v;
    }

    private static JFreeChart xyChart(String title, String yLabel, YIntervalSeriesCollection data, boolean zeroLine) {
        LogAxis x = new LogAxis("per-worker batch size b (log scale)");
        x.setBase(2);
        x.setTickUnit(new NumberTickUnit(1)); // one tick per power of 2
        x.setNumberFormatOverride(new DecimalFormat("0"));
        NumberAxis y = new NumberAxis(yLabel);
        y.setAutoRangeIncludesZero(zeroLine);
        XYErrorRenderer r = new XYErrorRenderer();
        r.setDrawXError(false);
        Color[] palette = {new Color(0xC0392B), new Color(0x2471A3), new Color(0x229954), new Color(0xCA6F1E), new Color(0x7D3C98)};
        for (int i = 0; i < data.getSeriesCount(); i++) r.setSeriesPaint(i, palette[i % palette.length]);
        r.setDefaultLinesVisible(true);
        r.setDefaultShapesVisible(true);
        for (int i = 0; i < data.getSeriesCount(); i++) r.setSeriesStroke(i, new BasicStroke(2f));
        XYPlot plot = new XYPlot(data, x, y, r);
        plot.setBackgroundPaint(Color.WHITE);
        plot.setDomainGridlinePaint(Color.LIGHT_GRAY);
        plot.setRangeGridlinePaint(Color.LIGHT_GRAY);
        if (zeroLine) plot.addRangeMarker(new ValueMarker(0, Color.BLACK, new BasicStroke(1f)));
        return new JFreeChart(title, JFreeChart.DEFAULT_TITLE_FONT, plot, true);
    }

    private static void save(String outDir, String name, JFreeChart chart) throws IOException {
        ChartUtils.saveChartAsPNG(new File(outDir, name), chart, 1000, 600);
    }
}
