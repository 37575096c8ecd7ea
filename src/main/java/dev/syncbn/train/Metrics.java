package dev.syncbn.train;

import dev.syncbn.data.AtomicWrite;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * A CSV log whose first column is a number (epoch or step): the metrics file (one row per epoch) and
 * the step log. Rewritten whole, atomically, on every flush; on resume the rows before the resume
 * point are kept.
 */
public final class Metrics {
    public static final String STEP_HEADER = "step,loss,replicas";
    static final String FIRST_STEP_HEADER = "step,loss";
    /** The metrics file's first header; later versions appended columns, and a file with any earlier header is still resumed. */
    static final String FIRST_HEADER = "epoch,train_loss,train_acc,test_loss,test_acc,epoch_s,images_per_s,compute_ms,bn_sync_ms,exchange_ms,update_ms";
    public static final String HEADER = FIRST_HEADER + ",step_ms_median,outside_compute_ms_median,straggle_ms,overhead_ms_median,replicas";

    /** One epoch; then the time split of a step as in Engine.EpochResult. */
    public record Epoch(int epoch, double trainLoss, double trainAcc, double testLoss, double testAcc, double seconds, double imagesPerSecond,
            double computeMs, double bnSyncMs, double exchangeMs, double updateMs, double stepMsMedian, double outsideComputeMsMedian, double straggleMs,
            double overheadMsMedian, int replicas) {
        public String csv() {
            return String.format(Locale.ROOT, "%d,%.6f,%.6f,%.6f,%.6f,%.3f,%.1f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%d", epoch, trainLoss, trainAcc,
                    testLoss, testAcc, seconds, imagesPerSecond, computeMs, bnSyncMs, exchangeMs, updateMs, stepMsMedian, outsideComputeMsMedian, straggleMs,
                    overheadMsMedian, replicas);
        }

        public String line() {
            return String.format(Locale.ROOT,
                    "epoch %d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  %.1f s  %.0f images/s  step ms: compute %.2f bn-sync %.2f exchange %.2f"
                            + " update %.2f, straggle %.2f of them (median step %.2f, outside compute %.2f, overhead %.2f)",
                    epoch, trainLoss, trainAcc, testLoss, testAcc, seconds, imagesPerSecond, computeMs, bnSyncMs, exchangeMs, updateMs, straggleMs, stepMsMedian,
                    outsideComputeMsMedian, overheadMsMedian);
        }
    }

    private final String path, header;
    private final Configuration conf;
    private final List<String> rows = new ArrayList<>();

    /** keepBefore: on resume, the rows already in the file whose first column is below this are kept. */
    public Metrics(String path, String header, Configuration conf, long keepBefore) throws IOException {
        this.path = path;
        this.header = header;
        this.conf = conf;
        if (path.isEmpty() || keepBefore <= 1) return;
        Path p = new Path(path);
        FileSystem fs = AtomicWrite.readerFor(p, conf);
        if (!fs.exists(p)) return;
        try (BufferedReader r = new BufferedReader(new InputStreamReader(fs.open(p), StandardCharsets.UTF_8))) {
            String found = r.readLine();
            // an earlier version's file: its rows are kept as they are, without the later columns
            boolean older = found != null && found.startsWith(header.equals(HEADER) ? FIRST_HEADER : FIRST_STEP_HEADER) && header.startsWith(found + ",");
            if (!header.equals(found) && !older) throw new IOException(path + ": not a log of this kind (header '" + found + "', expected '" + header + "')");
            int lineNumber = 1, skipped = 0;
            for (String line; (line = r.readLine()) != null; ) {
                lineNumber++;
                long first;
                try { // read back tolerantly: a blank or damaged line is dropped, not a reason to refuse the resume
                    first = Long.parseLong(line.substring(0, line.indexOf(',')).trim());
                } catch (RuntimeException e) {
                    if (!line.isBlank()) skipped++;
                    continue;
                }
                if (first < keepBefore) rows.add(line);
            }
            if (skipped > 0) System.out.println(path + ": " + skipped + " damaged line(s) dropped on resume");
        }
    }

    public void add(String row) {
        rows.add(row);
    }

    public void flush() throws IOException {
        if (path.isEmpty()) return;
        AtomicWrite.write(path, conf, out -> {
            StringBuilder b = new StringBuilder(header).append('\n');
            for (String row : rows) b.append(row).append('\n');
            out.write(b.toString().getBytes(StandardCharsets.UTF_8));
        });
    }
}
