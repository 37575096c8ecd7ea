package dev.syncbn.train;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/** One row per epoch, printed as a line and kept in a CSV (rewritten whole, atomically, after each epoch). */
public final class Metrics {
    public static final String HEADER = "epoch,train_loss,train_acc,test_loss,test_acc,epoch_s,images_per_s";

    public record Epoch(int epoch, double trainLoss, double trainAcc, double testLoss, double testAcc, double seconds, double imagesPerSecond) {
        String csv() {
            return String.format(java.util.Locale.ROOT, "%d,%.6f,%.6f,%.6f,%.6f,%.3f,%.1f", epoch, trainLoss, trainAcc, testLoss, testAcc, seconds, imagesPerSecond);
        }

        public String line() {
            return String.format(java.util.Locale.ROOT, "epoch %d  train loss %.4f acc %.4f  test loss %.4f acc %.4f  %.1f s  %.0f images/s",
                    epoch, trainLoss, trainAcc, testLoss, testAcc, seconds, imagesPerSecond);
        }
    }

    private final String path;
    private final Configuration conf;
    private final List<String> rows = new ArrayList<>();

    /** keepBefore: on resume, the rows of epochs before this one already in the file are kept. */
    public Metrics(String path, Configuration conf, int keepBefore) throws IOException {
        this.path = path;
        this.conf = conf;
        if (path.isEmpty() || keepBefore <= 1) return;
        Path p = new Path(path);
        FileSystem fs = p.getFileSystem(conf);
        if (!fs.exists(p)) return;
        try (BufferedReader r = new BufferedReader(new InputStreamReader(fs.open(p), StandardCharsets.UTF_8))) {
            String header = r.readLine();
            if (!HEADER.equals(header)) throw new IOException(path + ": not a metrics file of this program (header '" + header + "')");
            for (String line; (line = r.readLine()) != null; ) {
                if (Integer.parseInt(line.substring(0, line.indexOf(','))) < keepBefore) rows.add(line);
            }
        }
    }

    public void add(Epoch e) throws IOException {
        rows.add(e.csv());
        if (path.isEmpty()) return;
        AtomicWrite.write(path, conf, out -> {
            StringBuilder b = new StringBuilder(HEADER).append('\n');
            for (String row : rows) b.append(row).append('\n');
            out.write(b.toString().getBytes(StandardCharsets.UTF_8));
        });
    }
}
