package dev.syncbn.compare;

import dev.syncbn.compare.CompareDesign.Cell;
import dev.syncbn.compare.CompareDesign.Run;
import dev.syncbn.train.Metrics;
import java.awt.BasicStroke;
import java.awt.Color;
import java.io.File;
import java.io.IOException;
import java.text.DecimalFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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

/** The comparison's charts: accuracy and local - sync against the per-worker batch (with 95% intervals), and each cell's step time by part. */
final class CompareCharts {
    private CompareCharts() {}

    static void write(String outDir, Map<Cell, List<Run>> byCell, int testSize) throws IOException {
        System.setProperty("java.awt.headless", "true");
        Map<String, YIntervalSeries> accuracy = new LinkedHashMap<>();
        for (Map.Entry<Cell, List<Run>> e : byCell.entrySet()) {
            Cell c = e.getKey();
            Stats s = CompareReport.finalAccuracy(e.getValue());
            accuracy.computeIfAbsent(c.bn(), YIntervalSeries::new).add(c.batch(), 100 * s.mean(), 100 * (s.mean() - nz(s.half())), 100 * (s.mean() + nz(s.half())));
            Stats p = CompareReport.preciseAccuracy(e.getValue());
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
            Stats d = c.bn().equals("local") ? CompareReport.difference(byCell, c.workers(), c.batch(), false, testSize) : null;
            if (d != null) diff.add(c.batch(), 100 * d.mean(), 100 * (d.mean() - nz(d.half())), 100 * (d.mean() + nz(d.half())));
        }
        YIntervalSeriesCollection dc = new YIntervalSeriesCollection();
        dc.addSeries(diff);
        save(outDir, "difference-vs-batch.png", xyChart("Local minus sync BN test accuracy, paired by seed (95% interval)", "points", dc, true));

        DefaultCategoryDataset times = new DefaultCategoryDataset();
        for (Map.Entry<Cell, List<Run>> e : byCell.entrySet()) {
            Cell c = e.getKey();
            String column = "W=" + c.workers() + " b=" + c.batch() + " " + c.bn();
            times.addValue(CompareReport.meanOver(e.getValue(), Metrics.Epoch::computeMs), "compute", column);
            times.addValue(CompareReport.meanOver(e.getValue(), Metrics.Epoch::bnSyncMs), "BN sync", column);
            times.addValue(CompareReport.meanOver(e.getValue(), Metrics.Epoch::exchangeMs), "exchange", column);
            times.addValue(CompareReport.meanOver(e.getValue(), Metrics.Epoch::updateMs), "update", column);
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
