package dev.syncbn.compare;

import dev.syncbn.compare.CompareDesign.Cell;
import dev.syncbn.compare.CompareDesign.Run;
import dev.syncbn.nn.BnMode;
import dev.syncbn.train.Metrics;
import dev.syncbn.train.Options;
import dev.syncbn.train.Totals;
import java.util.ArrayList;
import java.util.List;

/**
 * The comparison's design: which cells (W replicas of b samples, BN mode) it trains. The default
 * isolates BN: the global batch stays fixed (64) and is split W x b in every way the worker grid allows,
 * so every run takes the same optimizer steps on the same samples; sync BN at every split is then the
 * same computation as one replica of the whole batch, and local BN's difference from it is BN's effect
 * alone. The older design (every W with every b) stays as --design grid.
 */
public final class CompareDesign {
    private CompareDesign() {}

    /** One configuration: W replicas of b samples, BN mode. */
    public record Cell(int workers, int batch, String bn) {
        String id() {
            return "w" + workers + "-b" + batch + "-" + bn.replace(":", "");
        }
    }

    /** One training run of a cell with one seed: its epochs, precise BN's evaluation (null without --precise-bn-batches) and every step's loss. */
    public record Run(Cell cell, long seed, List<Metrics.Epoch> epochs, Totals precise, List<Double> stepLosses) {
        Metrics.Epoch last() {
            return epochs.get(epochs.size() - 1);
        }
    }

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
}
