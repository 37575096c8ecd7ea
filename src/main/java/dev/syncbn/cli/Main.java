package dev.syncbn.cli;

import dev.syncbn.data.Dataset;
import dev.syncbn.data.IdxReader;
import dev.syncbn.data.Shuffle;
import dev.syncbn.nn.Backend;
import dev.syncbn.train.Engine;
import dev.syncbn.train.LocalEngine;
import dev.syncbn.train.Trainer;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Entry point: syncbn COMMAND [--option value ...]. */
public final class Main {
    /** Forward plus backward cost of the default network on one 28x28 image (DESIGN.md). */
    static final double MFLOP_PER_IMAGE = 22.8;

    private Main() {}

    public static void main(String[] args) throws Exception {
        if (args.length == 2 && args[0].equals("help") && args[1].equals("--markdown")) {
            System.out.print(Options.markdownTable());
            return;
        }
        if (args.length == 0 || args[0].equals("--help") || args[0].equals("help")) {
            System.out.println("usage: syncbn train|bench [options]\n" + Options.help());
            return;
        }
        Options o;
        try {
            o = Options.parse(java.util.Arrays.copyOfRange(args, 1, args.length));
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
            return;
        }
        switch (args[0]) {
            case "train" -> train(o);
            case "bench" -> bench(o);
            default -> {
                System.err.println("error: unknown command '" + args[0] + "' (train, bench)");
                System.exit(2);
            }
        }
    }

    static Dataset[] loadData(Options o, Configuration conf) throws java.io.IOException {
        Dataset train = IdxReader.readSplit(o.get("data"), "train", conf);
        Dataset test = IdxReader.readSplit(o.get("data"), "t10k", conf);
        int maxTrain = o.getInt("max-train", 0), maxTest = o.getInt("max-test", 0);
        if (maxTrain > 0) train = train.head(maxTrain);
        if (maxTest > 0) test = test.head(maxTest);
        return new Dataset[] {train, test};
    }

    static void train(Options o) throws Exception {
        int threads = o.getInt("threads", 1), batch = o.getInt("batch", 1), epochs = o.getInt("epochs", 1);
        double lr = o.getPositiveDouble("lr");
        long seed = o.getLong("seed");
        Backend.init(threads);
        Configuration conf = new Configuration();
        Dataset[] data = loadData(o, conf);
        Map<String, String> settings = new LinkedHashMap<>();
        for (String k : new String[] {"seed", "batch", "lr", "max-train"}) settings.put(k, o.get(k));
        System.out.printf("training on %d images, testing on %d; batch %d, lr %s, seed %d, %d threads%n", data[0].size(), data[1].size(), batch,
                o.get("lr"), seed, threads);
        try (LocalEngine engine = new LocalEngine(data[0], data[1], batch, lr, seed, threads)) {
            Trainer.Config cfg = new Trainer.Config(epochs, seed, o.get("metrics-out"), o.get("step-log"), o.get("checkpoint-dir"), o.getBoolean("resume"),
                    o.get("model-out"), o.getInt("progress-s", 0), settings);
            new Trainer(cfg, engine, data[0].size(), conf).run();
        }
    }

    /** Training throughput at the given batch (default 64) after a warm-up, beside the machine's own matrix-product speed. */
    static void bench(Options o) throws Exception {
        int threads = o.getInt("threads", 1), batch = o.getInt("batch", 1);
        int warmup = o.getInt("warmup-steps", 0), steps = o.getInt("steps", 1);
        Backend.init(threads);
        System.out.println("ND4J oneDNN build: " + Backend.isOneDnn() + ", threads " + threads);
        Dataset[] data = loadData(o, new Configuration());
        try (LocalEngine engine = new LocalEngine(data[0], data[1], batch, o.getPositiveDouble("lr"), o.getLong("seed"), threads)) {
            int[] shuffled = Shuffle.order(data[0].size(), o.getLong("seed"), 1);
            int[] order = new int[(warmup + steps) * batch];
            for (int i = 0; i < order.length; i++) order[i] = shuffled[i % shuffled.length];
            Engine.Progress quiet = (step, stepsInEpoch, loss, soFar) -> {};
            engine.trainEpoch(1, java.util.Arrays.copyOfRange(order, 0, warmup * batch), quiet);
            long t0 = System.nanoTime();
            engine.trainEpoch(2, java.util.Arrays.copyOfRange(order, warmup * batch, order.length), quiet);
            double seconds = (System.nanoTime() - t0) / 1e9;
            double imagesPerS = (double) steps * batch / seconds;
            double flopScale = (double) data[0].sampleSize() / (28 * 28);
            double gflops = imagesPerS * MFLOP_PER_IMAGE * flopScale / 1e3;
            double gemm = gemmGflops();
            System.out.printf(java.util.Locale.ROOT, "batch %d: %.2f ms/step, %.0f images/s, %.1f GFLOP/s achieved; float gemm 1024^3: %.1f GFLOP/s (ratio %.3f)%n",
                    batch, seconds * 1e3 / steps, imagesPerS, gflops, gemm, gflops / gemm);
            System.out.printf(java.util.Locale.ROOT, "images_per_s=%.1f gflops=%.2f gemm_gflops=%.2f%n", imagesPerS, gflops, gemm);
        }
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
