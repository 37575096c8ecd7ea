package dev.syncbn.bench;

import dev.syncbn.data.DataSource;
import dev.syncbn.data.Dataset;
import dev.syncbn.data.Sampler;
import dev.syncbn.nn.Backend;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.spark.SparkSetup;
import dev.syncbn.train.Engine;
import dev.syncbn.train.LocalEngine;
import dev.syncbn.train.Options;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.apache.hadoop.conf.Configuration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The single-process benchmark: training throughput after a warm-up, beside the machine's own matrix-product speed, and a per-layer profile. */
public final class Bench {
    private Bench() {}

    /** Training throughput at the given batch (default 64) after a warm-up, beside the machine's own matrix-product speed. */
    public static void run(Options o) throws Exception {
        int threads = o.getInt("threads", 1), batch = o.getInt("batch", 1);
        int warmup = o.getInt("warmup-steps", 0), steps = o.getInt("steps", 1);
        Backend.init();
        System.out.println("ND4J oneDNN build: " + Backend.isOneDnn() + ", threads " + threads);
        Dataset[] data = DataSource.readSplits(o.get("data"), new Configuration(), SparkSetup::reader);
        try (LocalEngine engine = new LocalEngine(data[0], data[1], o.get("net"), batch, o.getPositiveDouble("lr"), o.getLong("seed"), threads)) {
            System.out.printf(Locale.ROOT, "network %s: %,d parameters, %.1f MFLOP per image trained%n", engine.net.spec, engine.net.paramCount(),
                    engine.net.trainingFlopsPerSample() / 1e6);
            int[] shuffled = Sampler.order(data[0].size(), o.getLong("seed"), 1);
            int[] order = new int[(warmup + steps) * batch];
            for (int i = 0; i < order.length; i++) order[i] = shuffled[i % shuffled.length];
            Engine.Progress quiet = (step, stepsInEpoch, replicas, loss, soFar) -> {};
            engine.trainSteps(1, Arrays.copyOfRange(order, 0, warmup * batch), quiet);
            engine.net.resetTimes();
            long t0 = System.nanoTime();
            Engine.EpochResult timed = engine.trainSteps(2, Arrays.copyOfRange(order, warmup * batch, order.length), quiet);
            double seconds = (System.nanoTime() - t0) / 1e9;
            if (o.getBoolean("profile")) printProfile(engine.net, steps, seconds, timed.updateMs());
            System.out.println("convolutions: " + Backend.convolutionKernels());
            double imagesPerS = (double) steps * batch / seconds;
            double gflops = imagesPerS * engine.net.trainingFlopsPerSample() / 1e9;
            Backend.setOpThreads(Runtime.getRuntime().availableProcessors()); // the machine's gemm: all its cores
            double gemm = gemmGflops();
            Backend.setOpThreads(1);
            System.out.printf(Locale.ROOT, "batch %d: %.2f ms/step, %.0f images/s, %.1f GFLOP/s achieved; float gemm 1024^3: %.1f GFLOP/s (ratio %.3f)%n",
                    batch, seconds * 1e3 / steps, imagesPerS, gflops, gemm, gflops / gemm);
            System.out.printf(Locale.ROOT, "images_per_s=%.1f gflops=%.2f gemm_gflops=%.2f%n", imagesPerS, gflops, gemm);
        }
    }

    /** Milliseconds per step in each layer's forward and backward, the optimizer, and the rest (the data fill). */
    static void printProfile(ConvNet net, int steps, double seconds, double updateMs) {
        List<String> names = net.layerNames();
        long[] fwd = net.forwardNanos(), bwd = net.backwardNanos();
        double layersMs = 0;
        System.out.println("| layer | forward ms | backward ms |");
        System.out.println("| --- | ---: | ---: |");
        for (int i = 0; i < names.size(); i++) {
            double f = fwd[i] / 1e6 / steps, b = bwd[i] / 1e6 / steps;
            layersMs += f + b;
            System.out.printf(Locale.ROOT, "| %s | %.2f | %.2f |%n", names.get(i), f, b);
        }
        double stepMs = seconds * 1e3 / steps;
        System.out.printf(Locale.ROOT, "| adam | %.2f | |%n| rest (data fill) | %.2f | |%n| step | %.2f | |%n",
                updateMs, stepMs - layersMs - updateMs, stepMs);
    }

    /** The best of several timed 1024x1024x1024 float matrix products through ND4J. */
    static double gemmGflops() {
        int n = 1024;
        INDArray a = Nd4j.rand(DataType.FLOAT, n, n), b = Nd4j.rand(DataType.FLOAT, n, n), c = Nd4j.create(DataType.FLOAT, n, n);
        for (int i = 0; i < 3; i++) Nd4j.gemm(a, b, c, false, false, 1.0, 0.0);
        double best = 0;
        for (int r = 0; r < 5; r++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < 4; i++) Nd4j.gemm(a, b, c, false, false, 1.0, 0.0);
            best = Math.max(best, 4 * 2.0 * n * n * n / ((System.nanoTime() - t0) / 1e9) / 1e9);
        }
        return best;
    }
}
