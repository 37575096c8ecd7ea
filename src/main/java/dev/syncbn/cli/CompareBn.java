package dev.syncbn.cli;

import dev.syncbn.train.Options;
import dev.syncbn.data.Sampler;
import dev.syncbn.spark.SparkData;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.TrainJob;
import dev.syncbn.nn.BnMode;
import dev.syncbn.spark.SparkEngine;
import dev.syncbn.train.Metrics;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;
import org.jfree.chart.ChartFactory;
import org.jfree.chart.ChartUtils;
import org.jfree.chart.JFreeChart;
import org.jfree.chart.axis.LogAxis;
import org.jfree.chart.plot.PlotOrientation;
import org.jfree.data.category.DefaultCategoryDataset;
import org.jfree.data.xy.XYSeries;
import org.jfree.data.xy.XYSeriesCollection;

/**
 * The question users come with: does sync BN pay off at my per-worker batch size, and what does it
 * cost? Trains the same data, seed and epochs with each BN mode over a grid of per-worker batch sizes
 * and worker counts, and writes results.csv, three PNG charts and report.md into --output.
 */
final class CompareBn {
    record Run(int workers, int batch, String bn) {
        String label() {
            return bn + " W=" + workers;
        }

        String id() {
            return "w" + workers + "-b" + batch + "-" + bn.replace(":", "");
        }
    }

    record Result(Run run, List<Metrics.Epoch> epochs) {
        Metrics.Epoch last() {
            return epochs.get(epochs.size() - 1);
        }

        double meanEpochSeconds() {
            return epochs.stream().mapToDouble(Metrics.Epoch::seconds).average().orElse(Double.NaN);
        }
    }

    private CompareBn() {}

    static List<Run> grid(String workers, String batches, String modes) {
        List<Run> runs = new ArrayList<>();
        for (String w : workers.split(",")) {
            for (String b : batches.split(",")) {
                for (String m : modes.split(",")) {
                    int wi = parsePositive(w, "--workers-grid"), bi = parsePositive(b, "--batch-grid");
                    String mode = m.trim();
                    if (mode.startsWith("group:")) {
                        // only where it differs from both local (G > 1) and sync (G < W)
                        int g = parsePositive(mode.substring(6), "--modes group:G");
                        if (g <= 1 || g >= wi || wi % g != 0) continue;
                    }
                    runs.add(new Run(wi, bi, BnMode.parse(mode, wi).text()));
                }
            }
        }
        if (runs.isEmpty()) throw new IllegalArgumentException("the comparison grid is empty");
        return runs;
    }

    private static int parsePositive(String s, String option) {
        try {
            int v = Integer.parseInt(s.trim());
            if (v >= 1) return v;
        } catch (NumberFormatException ignored) {
            // reported below
        }
        throw new IllegalArgumentException(option + " takes positive whole numbers separated by commas, got '" + s + "'");
    }

    static void run(Options o) throws Exception {
        List<Run> runs = grid(o.get("workers-grid"), o.get("batch-grid"), o.get("modes"));
        String outDir = o.get("output").isEmpty() ? "out/compare-bn" : o.get("output");
        Files.createDirectories(Path.of(outDir, "runs"));
        int maxWorkers = runs.stream().mapToInt(Run::workers).max().orElseThrow(), epochs = o.getInt("epochs", 1);
        List<Result> results = new ArrayList<>();
        // every run of the grid needs W task slots at once; in local mode tasks are threads, so unless --master says
        // otherwise, run local[max W] whatever local default spark-submit chose
        try (SparkSession spark = Main.spark(o, "syncbn-compare-bn", maxWorkers, true); JavaSparkContext sc = new JavaSparkContext(spark.sparkContext())) {
            SparkData data = SparkData.load(spark, o.get("data"), maxWorkers, o.getInt("max-train", 0), o.getInt("max-test", 0));
            warmUp(sc, data, maxWorkers);
            // time left is estimated from the steps done so far: a run's cost is about proportional to its steps
            long totalSteps = 0, stepsDone = 0;
            for (Run r : runs) totalSteps += steps(r, data.trainSize()) * epochs;
            long t0 = System.nanoTime();
            for (int i = 0; i < runs.size(); i++) {
                Run r = runs.get(i);
                System.out.printf("== run %d of %d: W=%d, %d per worker, BN %s%n", i + 1, runs.size(), r.workers(), r.batch(), r.bn());
                long before = stepsDone, runSteps = steps(r, data.trainSize()), allSteps = totalSteps;
                int runIndex = i;
                // the same job as `train`, with this run's split and BN mode and its own metrics file
                TrainConfig c = TrainConfig.from(o.set("workers", Integer.toString(r.workers())).set("batch-per-worker", Integer.toString(r.batch()))
                        .set("bn", r.bn()).set("metrics-out", Path.of(outDir, "runs", r.id() + ".csv").toString()));
                List<Metrics.Epoch> rows = TrainJob.spark(c, sc, data, e -> {
                    long done = before + runSteps * e.epoch();
                    double elapsed = (System.nanoTime() - t0) / 1e9, left = elapsed / done * (allSteps - done);
                    System.out.printf(Locale.ROOT, "progress: run %d of %d, epoch %d of %d, test acc %.4f; %.0f s so far, about %.0f s left%n", runIndex + 1,
                            runs.size(), e.epoch(), epochs, e.testAcc(), elapsed, left);
                }).epochs();
                results.add(new Result(r, rows));
                stepsDone += runSteps * epochs;
            }
            String note = String.format(Locale.ROOT, "%d training images, %d test images, %d epochs, seed %d, Adam lr %s (%s schedule), Spark %s",
                    data.trainSize(), data.testSize(), epochs, o.getLong("seed"), o.get("lr"), o.get("lr-schedule"), sc.master());
            write(outDir, results, note, (System.nanoTime() - t0) / 1e9);
        }
    }

    /** A short untimed run first, so that the first run of the grid does not pay for the JIT's warm-up alone. */
    private static void warmUp(JavaSparkContext sc, SparkData data, int workers) throws Exception {
        System.out.println("== warm-up (not recorded)");
        int threads = Integer.parseInt(sc.getConf().get("spark.task.cpus", "1"));
        SparkData small = data.head(workers * 8 * 20, 0);
        try (SparkEngine engine = new SparkEngine(sc, small, new SparkEngine.Settings(workers, 8, BnMode.parse("sync", workers), 1e-3, 1, threads, -1))) {
            engine.trainEpoch(1, (s, steps, loss, soFar) -> {});
        }
    }

    private static long steps(Run r, int n) {
        return Sampler.steps(n, r.workers() * r.batch());
    }

    static void write(String outDir, List<Result> results, String note, double seconds) throws IOException {
        StringBuilder csv = new StringBuilder("workers,batch_per_worker,bn," + Metrics.HEADER + "\n");
        for (Result res : results) {
            for (Metrics.Epoch e : res.epochs()) csv.append(res.run().workers()).append(',').append(res.run().batch()).append(',').append(res.run().bn()).append(',').append(e.csv()).append('\n');
        }
        Files.writeString(Path.of(outDir, "results.csv"), csv, StandardCharsets.UTF_8);
        charts(outDir, results);
        Files.writeString(Path.of(outDir, "report.md"), report(results, note, seconds), StandardCharsets.UTF_8);
        System.out.println("wrote " + outDir + "/results.csv, accuracy-per-epoch.png, accuracy-vs-batch.png, epoch-time.png and report.md");
    }

    static void charts(String outDir, List<Result> results) throws IOException {
        System.setProperty("java.awt.headless", "true");
        XYSeriesCollection perEpoch = new XYSeriesCollection();
        for (Result res : results) {
            XYSeries s = new XYSeries(res.run().label() + " b=" + res.run().batch());
            for (Metrics.Epoch e : res.epochs()) s.add(e.epoch(), 100 * e.testAcc());
            perEpoch.addSeries(s);
        }
        JFreeChart c1 = ChartFactory.createXYLineChart("Test accuracy per epoch", "epoch", "test accuracy (%)", perEpoch, PlotOrientation.VERTICAL, true, false, false);
        style(c1.getXYPlot());
        c1.getXYPlot().getDomainAxis().setStandardTickUnits(org.jfree.chart.axis.NumberAxis.createIntegerTickUnits());
        ChartUtils.saveChartAsPNG(new File(outDir, "accuracy-per-epoch.png"), c1, 1000, 600);

        Map<String, XYSeries> byMode = new LinkedHashMap<>();
        for (Result res : results) byMode.computeIfAbsent(res.run().label(), XYSeries::new).add(res.run().batch(), 100 * res.last().testAcc());
        XYSeriesCollection vsBatch = new XYSeriesCollection();
        byMode.values().forEach(vsBatch::addSeries);
        JFreeChart c2 = ChartFactory.createXYLineChart("Final test accuracy against per-worker batch size", "per-worker batch size", "test accuracy (%)", vsBatch,
                PlotOrientation.VERTICAL, true, false, false);
        LogAxis x = new LogAxis("per-worker batch size (log scale)");
        x.setBase(2);
        x.setTickUnit(new org.jfree.chart.axis.NumberTickUnit(1)); // one tick per power of 2
        x.setNumberFormatOverride(new java.text.DecimalFormat("0"));
        c2.getXYPlot().setDomainAxis(x);
        style(c2.getXYPlot());
        ChartUtils.saveChartAsPNG(new File(outDir, "accuracy-vs-batch.png"), c2, 1000, 600);

        DefaultCategoryDataset times = new DefaultCategoryDataset();
        for (Result res : results) times.addValue(res.meanEpochSeconds(), res.run().bn(), "W=" + res.run().workers() + " b=" + res.run().batch());
        JFreeChart c3 = ChartFactory.createBarChart("Time per epoch (training and evaluation)", "workers and per-worker batch", "seconds", times);
        c3.getCategoryPlot().setBackgroundPaint(java.awt.Color.WHITE);
        c3.getCategoryPlot().setRangeGridlinePaint(java.awt.Color.LIGHT_GRAY);
        ChartUtils.saveChartAsPNG(new File(outDir, "epoch-time.png"), c3, 1000, 600);
    }

    /** White background, grey grid, a marker at every point, and an accuracy axis that does not start at zero. */
    private static void style(org.jfree.chart.plot.XYPlot plot) {
        plot.setBackgroundPaint(java.awt.Color.WHITE);
        plot.setDomainGridlinePaint(java.awt.Color.LIGHT_GRAY);
        plot.setRangeGridlinePaint(java.awt.Color.LIGHT_GRAY);
        ((org.jfree.chart.axis.NumberAxis) plot.getRangeAxis()).setAutoRangeIncludesZero(false);
        org.jfree.chart.renderer.xy.XYLineAndShapeRenderer r = new org.jfree.chart.renderer.xy.XYLineAndShapeRenderer(true, true);
        for (int i = 0; i < plot.getDataset().getSeriesCount(); i++) r.setSeriesStroke(i, new java.awt.BasicStroke(2f));
        plot.setRenderer(r);
    }

    static String report(List<Result> results, String note, double seconds) {
        StringBuilder b = new StringBuilder("# Sync vs local batch norm\n\n");
        b.append(String.format(Locale.ROOT, "%s. The grid took %.1f minutes.%n%n", note, seconds / 60));
        b.append("| workers | per-worker batch | BN | test acc (final) | test loss | s per epoch | images/s | step ms: compute / BN sync / exchange / update |\n");
        b.append("| ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |\n");
        for (Result res : results) {
            Metrics.Epoch e = res.last();
            b.append(String.format(Locale.ROOT, "| %d | %d | %s | %.2f%% | %.4f | %.1f | %.0f | %.1f / %.1f / %.1f / %.1f |%n", res.run().workers(), res.run().batch(),
                    res.run().bn(), 100 * e.testAcc(), e.testLoss(), res.meanEpochSeconds(), e.imagesPerSecond(), e.computeMs(), e.bnSyncMs(), e.exchangeMs(),
                    e.updateMs()));
        }
        b.append("\n![accuracy per epoch](accuracy-per-epoch.png)\n![accuracy against batch](accuracy-vs-batch.png)\n![time per epoch](epoch-time.png)\n\n");
        b.append("## What the numbers show\n\n");
        double minGain = Double.POSITIVE_INFINITY, maxGain = Double.NEGATIVE_INFINITY, minCost = Double.POSITIVE_INFINITY, maxCost = Double.NEGATIVE_INFINITY;
        for (Result sync : results) {
            for (Result local : results) {
                if (sync.run().bn().equals("sync") && local.run().bn().equals("local") && local.run().workers() == sync.run().workers()
                        && local.run().batch() == sync.run().batch()) {
                    double gain = 100 * (sync.last().testAcc() - local.last().testAcc()), cost = 100 * (sync.meanEpochSeconds() / local.meanEpochSeconds() - 1);
                    minGain = Math.min(minGain, gain);
                    maxGain = Math.max(maxGain, gain);
                    minCost = Math.min(minCost, cost);
                    maxCost = Math.max(maxCost, cost);
                }
            }
        }
        if (minGain <= maxGain) {
            b.append(String.format(Locale.ROOT, "Across this grid, sync BN's final test accuracy minus local BN's ranges from %+.2f to %+.2f points, "
                    + "and its time per epoch from %+.0f%% to %+.0f%%.%n%n", minGain, maxGain, minCost, maxCost));
        }
        for (Result sync : results) {
            if (!sync.run().bn().equals("sync")) continue;
            for (Result other : results) {
                if (other.run().workers() != sync.run().workers() || other.run().batch() != sync.run().batch() || other.run().bn().equals("sync")) continue;
                double gain = 100 * (sync.last().testAcc() - other.last().testAcc());
                double cost = 100 * (sync.meanEpochSeconds() / other.meanEpochSeconds() - 1);
                b.append(String.format(Locale.ROOT, "- W=%d, %d per worker: sync BN's final test accuracy is %s %s %s BN's (%.2f%% vs %.2f%%), at %s%.0f%% time per epoch.%n",
                        sync.run().workers(), sync.run().batch(), String.format(Locale.ROOT, "%.2f points", Math.abs(gain)), gain >= 0 ? "above" : "below",
                        other.run().bn(), 100 * sync.last().testAcc(), 100 * other.last().testAcc(), cost >= 0 ? "+" : "", cost));
            }
        }
        b.append("\nSync BN computes each layer's statistics over the whole global batch (W x b samples), local BN over each replica's b. ");
        b.append("The smaller b, the noisier local statistics are, and the more sync BN should pay off; its price is two all-reduces per BN layer per step, ");
        b.append("which weigh most where steps are short (small b). A single run per cell and a short schedule make differences of a few tenths of a point noise.\n");
        return b.toString();
    }
}
