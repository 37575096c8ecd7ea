package dev.syncbn.nn;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The network of a NetSpec: per conv width, conv 3x3 (padding 1, no bias: see Conv2d) -> BN -> ReLU -> max-pool 2x2
 * (in float one fused layer, BnReluPool; in double the reference layers BatchNorm2d and MaxPool2d); then
 * a linear layer to the class logits and softmax cross-entropy. All trainable parameters live in one
 * flat buffer (and their gradients in another of the same layout), each layer holding views of its
 * part; the BN running statistics live apart, in the state buffer.
 *
 * With threads > 1 the batch is split into that many shards, each a full stack of layers run by one
 * thread on its share of the samples (ND4J's ops run single-threaded inside it: see Backend.init), as
 * data-parallel replicas inside one process: their BN statistics are summed before normalizing (sync BN
 * among the shards, then through the reducer set by setReducer), and their parameter gradients are summed
 * in shard order, so the result is the batch's, up to rounding. Measured against splitting every op over
 * the threads: oneDNN's convolutions gain little from a second OpenMP thread here (its threads must sleep
 * between ops, or spin and take the core from the Java passes), and the Java passes split over channels
 * unevenly; independent shards keep both cores busy.
 */
public final class ConvNet implements AutoCloseable {
    public final NetSpec spec;
    public final int maxBatch;
    /** Trainable parameters, their gradients (same layout), and BN running statistics. */
    public final Buf params, grads, state;
    /** Where the caller puts up to maxBatch input samples (C*H*W values each, NCHW). */
    public final Buf input;

    private final Shard[] shards;
    private final ExecutorService shardThreads; // runs shards 1.. (shard 0 runs on the caller's thread)
    private final ShardAllReduce shardSums; // with more than one shard
    private final SoftmaxCrossEntropy loss; // evaluation's, over the gathered logits
    private final Buf logits; // with more than one shard: the shards' logits side by side
    private Buf lastLogits;

    public ConvNet(NetSpec spec, int maxBatch, int threads, DataType type) {
        if (maxBatch < 1) throw new IllegalArgumentException("batch size must be at least 1, got " + maxBatch);
        if (threads < 1) throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        this.spec = spec;
        this.maxBatch = maxBatch;
        int count = Math.min(threads, maxBatch), capacity = (maxBatch + count - 1) / count;
        shards = new Shard[count];
        shardSums = count > 1 ? new ShardAllReduce(count) : null;
        for (int i = 0; i < count; i++) {
            shards[i] = new Shard(spec, capacity, count == 1 ? threads : 1, type);
            if (count > 1) shards[i].setReducer(shardSums.forShard(i));
            for (BatchNorm2d bn : shards[i].batchNorms) bn.setUpdatesRunningStatistics(i == 0);
        }
        int paramCount = shards[0].layers.stream().mapToInt(Layer::paramCount).sum();
        int stateCount = shards[0].batchNorms.stream().mapToInt(BatchNorm2d::stateCount).sum();
        params = Buf.zeros(type, paramCount);
        grads = Buf.zeros(type, paramCount);
        state = Buf.zeros(type, stateCount);
        input = count == 1 ? shards[0].input : Buf.zeros(type, (long) maxBatch * spec.inputSize());
        for (int i = 0; i < count; i++) shards[i].bind(params, i == 0 ? grads : Buf.zeros(type, paramCount), state);
        loss = new SoftmaxCrossEntropy(spec.classes(), maxBatch, type);
        logits = count > 1 ? Buf.zeros(type, (long) maxBatch * spec.classes()) : null;
        shardThreads = count > 1 ? Executors.newFixedThreadPool(count - 1, r -> {
            Thread t = new Thread(r, "syncbn-shard");
            t.setDaemon(true);
            return t;
        }) : null;
    }

    /**
     * The off-heap bytes of a float network for maxBatch samples in threads shards, without building it:
     * two one-shard networks for 1 and 2 samples give the fixed part and the part per sample. A lower
     * bound: ND4J's ops take some scratch memory of their own while they run.
     */
    public static long bytesFor(NetSpec spec, long maxBatch, int threads) {
        long[] bytes = new long[3];
        for (int batch = 1; batch <= 2; batch++) {
            long before = Buf.allocatedByThisThread();
            try (ConvNet net = new ConvNet(spec, batch, 1, DataType.FLOAT)) {
                bytes[batch] = Buf.allocatedByThisThread() - before;
            }
        }
        long perSample = bytes[2] - bytes[1], fixed = bytes[1] - perSample;
        long shards = Math.max(1, Math.min(threads, maxBatch));
        return shards * fixed + maxBatch * perSample;
    }

    /** One stack of layers with its own buffers, for up to capacity samples. */
    private static final class Shard {
        final Parallel parallel;
        final Buf input;
        final List<Layer> layers = new ArrayList<>();
        final List<BatchNorm2d> batchNorms = new ArrayList<>();
        final List<String> layerNames = new ArrayList<>();
        final SoftmaxCrossEntropy loss;
        final int[] labels;
        // Nanoseconds spent in each layer's forward and backward (the loss last) since resetTimes(): a
        // nanoTime pair per layer costs well under a microsecond a step, so it is always on.
        long[] forwardNanos, backwardNanos;
        Buf grads;

        Shard(NetSpec spec, int capacity, int threads, DataType type) {
            this.parallel = new Parallel(threads);
            this.input = Buf.zeros(type, (long) capacity * spec.inputSize());
            int[] shape = {spec.channels(), spec.height(), spec.width()};
            boolean first = true;
            for (int width : spec.convWidths()) {
                int block = batchNorms.size() + 1;
                add("conv" + block, new Conv2d(shape, width, 3, 1, 1, false, !first, capacity, parallel, type));
                BatchNorm2d bn = new BatchNorm2d(last().outShape(), batchNorms.size(), true, capacity, parallel, type);
                batchNorms.add(bn);
                if (type == DataType.FLOAT) {
                    add("bn" + block + "+relu+pool" + block, new BnReluPool(bn, 2, capacity, parallel));
                } else { // the reference layers, in double for the gradient checks
                    add("bn" + block + "+relu", bn);
                    add("pool" + block, new MaxPool2d(last().outShape(), 2, capacity, parallel, type));
                }
                shape = last().outShape();
                first = false;
            }
            add("linear", new Linear(Layer.size(shape), spec.classes(), capacity, type));
            loss = new SoftmaxCrossEntropy(spec.classes(), capacity, type);
            layerNames.add("softmax+loss");
            labels = new int[capacity];
            resetTimes();
        }

        private void add(String name, Layer layer) {
            layers.add(layer);
            layerNames.add(name);
        }

        private Layer last() {
            return layers.get(layers.size() - 1);
        }

        void bind(Buf params, Buf grads, Buf state) {
            this.grads = grads;
            int offset = 0, stateOffset = 0;
            for (Layer layer : layers) {
                layer.bindParams(params, grads, offset);
                offset += layer.paramCount();
            }
            for (BatchNorm2d bn : batchNorms) {
                bn.bindState(state, stateOffset);
                stateOffset += bn.stateCount();
            }
        }

        void setReducer(BnReducer reducer) {
            for (BatchNorm2d bn : batchNorms) bn.setReducer(reducer);
        }

        void resetTimes() {
            forwardNanos = new long[layerNames.size()];
            backwardNanos = new long[layerNames.size()];
        }

        Buf forward(int n, boolean training) {
            Buf x = input;
            for (int i = 0; i < layers.size(); i++) {
                long t0 = System.nanoTime();
                x = layers.get(i).forward(x, n, training);
                forwardNanos[i] += System.nanoTime() - t0;
            }
            return x;
        }

        SoftmaxCrossEntropy.Result trainStep(int n, double normalizer) {
            Buf out = forward(n, true);
            long t0 = System.nanoTime();
            SoftmaxCrossEntropy.Result r = loss.apply(out, labels, n, normalizer, true);
            forwardNanos[layers.size()] += System.nanoTime() - t0;
            Buf d = loss.dLogits();
            for (int i = layers.size() - 1; i >= 0 && d != null; i--) {
                t0 = System.nanoTime();
                d = layers.get(i).backward(d, n);
                backwardNanos[i] += System.nanoTime() - t0;
            }
            return r;
        }
    }

    /**
     * The shards' BN reduction: each shard's sums are added in shard order, the total goes once through
     * the network's reducer (another replica's, in a distributed run), and every shard gets the result.
     * A shard that fails breaks the rendezvous, so the others fail too instead of waiting.
     */
    private static final class ShardAllReduce {
        private final double[][] slots;
        private final Rendezvous rendezvous;
        private volatile BnReducer outer = BnReducer.LOCAL;

        ShardAllReduce(int shards) {
            slots = new double[shards][];
            rendezvous = new Rendezvous(shards);
        }

        BnReducer forShard(int shard) {
            return (layer, forward, sums) -> {
                slots[shard] = sums;
                rendezvous.await(() -> { // the last shard to arrive sums in shard order and writes the total into every shard's sums
                    double[] total = new double[sums.length];
                    for (double[] s : slots) for (int i = 0; i < total.length; i++) total[i] += s[i];
                    outer.allReduce(layer, forward, total);
                    for (double[] s : slots) System.arraycopy(total, 0, s, 0, total.length);
                });
            };
        }

        void fail() {
            rendezvous.fail();
        }

        void clear() {
            rendezvous.clear();
        }
    }

    public int paramCount() {
        return params.length();
    }

    /** How many shards (threads running a stack of layers each) this network splits a batch into. */
    public int shards() {
        return shards.length;
    }

    /** PyTorch's default initialization, drawn from a generator seeded with seed. */
    public void init(long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        for (Layer layer : shards[0].layers) layer.initParams(rng);
        for (BatchNorm2d bn : shards[0].batchNorms) bn.initState();
    }

    /** Routes every BN layer's statistics through reducer (BnReducer.LOCAL by default). */
    public void setReducer(BnReducer reducer) {
        if (shards.length == 1) shards[0].setReducer(reducer);
        else shardSums.outer = reducer;
    }

    /** Forward of the n samples in input; returns the logits buffer [n, classes]. */
    public Buf forward(int n, boolean training) {
        checkBatch(n);
        if (shards.length == 1) return lastLogits = shards[0].forward(n, training);
        runShards(n, null, (i, count) -> shards[i].forward(count, training));
        return gatherLogits(n);
    }

    /**
     * One training pass: forward in training mode (updating BN running stats), loss, backward, leaving
     * the gradient of lossSum/normalizer in grads.
     */
    public SoftmaxCrossEntropy.Result trainStep(int n, int[] labels, double normalizer) {
        checkBatch(n);
        if (shards.length == 1) {
            System.arraycopy(labels, 0, shards[0].labels, 0, n);
            SoftmaxCrossEntropy.Result r = shards[0].trainStep(n, normalizer);
            lastLogits = ((Linear) shards[0].last()).forwardOutput();
            return r;
        }
        SoftmaxCrossEntropy.Result[] results = new SoftmaxCrossEntropy.Result[shards.length];
        runShards(n, labels, (i, count) -> results[i] = shards[i].trainStep(count, normalizer));
        double lossSum = 0;
        int correct = 0;
        for (int i = 0; i < shards.length; i++) {
            if (i > 0) grads.flat.addi(shards[i].grads.flat);
            lossSum += results[i].lossSum();
            correct += results[i].correct();
        }
        gatherLogits(n);
        return new SoftmaxCrossEntropy.Result(lossSum, correct);
    }

    private interface ShardWork {
        void run(int shard, int count);
    }

    private int from(int n, int shard) {
        return (int) ((long) n * shard / shards.length);
    }

    /** Copies each shard's share of the n samples (and labels) in, runs work on every shard at once, and waits for all. */
    private void runShards(int n, int[] labels, ShardWork work) {
        int size = spec.inputSize();
        shardSums.clear();
        List<Future<?>> running = new ArrayList<>();
        Throwable failure = null;
        for (int i = shards.length - 1; i >= 0; i--) {
            Shard shard = shards[i];
            int index = i, lo = from(n, i), count = from(n, i + 1) - lo;
            if (count > 0) shard.input.view((long) count * size).assign(input.slice((long) lo * size, (long) count * size));
            if (labels != null) System.arraycopy(labels, lo, shard.labels, 0, count);
            Runnable task = () -> {
                try {
                    Backend.limitThisThread(1);
                    work.run(index, count);
                } catch (RuntimeException | Error e) {
                    shardSums.fail();
                    throw e;
                }
            };
            if (i > 0) {
                running.add(shardThreads.submit(task));
            } else {
                try {
                    task.run();
                } catch (RuntimeException | Error e) {
                    failure = e;
                }
            }
        }
        for (Future<?> f : running) {
            try {
                f.get();
            } catch (ExecutionException e) {
                // The first failure is the cause; the others are shards released by it.
                if (failure == null || failure instanceof Rendezvous.Released) failure = e.getCause();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                if (failure == null) failure = e;
            }
        }
        if (failure instanceof RuntimeException r) throw r;
        if (failure instanceof Error e) throw e;
        if (failure != null) throw new IllegalStateException(failure);
    }

    private Buf gatherLogits(int n) {
        int k = spec.classes();
        for (int i = 0; i < shards.length; i++) {
            Buf out = ((Linear) shards[i].last()).forwardOutput();
            int lo = from(n, i), count = from(n, i + 1) - lo;
            for (int j = 0; j < count * k; j++) logits.set(lo * k + j, out.get(j));
        }
        return lastLogits = logits;
    }

    /** The layers' names in order, the loss last: conv1, bn1+relu+pool1, ..., linear, softmax+loss. */
    public List<String> layerNames() {
        return List.copyOf(shards[0].layerNames);
    }

    /** Nanoseconds spent in each layer's forward (the loss's included, last) since resetTimes(), by the first shard. */
    public long[] forwardNanos() {
        return shards[0].forwardNanos.clone();
    }

    /** Nanoseconds spent in each layer's backward since resetTimes() (the loss's is part of its forward), by the first shard. */
    public long[] backwardNanos() {
        return shards[0].backwardNanos.clone();
    }

    public void resetTimes() {
        for (Shard shard : shards) shard.resetTimes();
    }

    /** The predicted class (argmax of the logits) of each of the n samples of the last forward. */
    public void lastPredictions(int n, int[] out) {
        int k = spec.classes();
        for (int s = 0; s < n; s++) {
            int best = 0;
            for (int j = 1; j < k; j++) if (lastLogits.get(s * k + j) > lastLogits.get(s * k + best)) best = j;
            out[s] = best;
        }
    }

    /**
     * Adds every BN layer's batch statistics of the last training forward into acc (state layout: per
     * layer, batch means then unbiased batch variances), for averaging over batches (precise BN). They
     * are the whole batch's in every shard.
     */
    public void addBatchStatistics(double[] acc) {
        for (BatchNorm2d bn : shards[0].batchNorms) bn.addBatchStatistics(acc);
    }

    /** Loss and correct count of n samples in evaluation mode (running statistics, no gradient). */
    public SoftmaxCrossEntropy.Result evaluate(int n, int[] labels) {
        return loss.apply(forward(n, false), labels, n, 1, false);
    }

    private void checkBatch(int n) {
        if (n < 0 || n > maxBatch) throw new IllegalArgumentException("batch of " + n + " samples, this network holds 0 to " + maxBatch);
    }

    @Override
    public void close() {
        for (Shard shard : shards) shard.parallel.close();
        if (shardThreads != null) shardThreads.shutdown();
    }
}
