package dev.syncbn.compare;

import dev.syncbn.compare.CompareDesign.Cell;
import dev.syncbn.compare.CompareDesign.Run;
import dev.syncbn.train.Metrics;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.ToDoubleFunction;

/**
 * What a comparison writes: results.csv (every epoch of every run), the Markdown report (the table of
 * cells, local - sync paired by seed, the check that sync BN is the one-replica computation, and the
 * findings generated from those numbers) and three charts (CompareCharts).
 */
final class CompareReport {
    private CompareReport() {}

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
        CompareCharts.write(outDir, byCell, testSize);
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

}
