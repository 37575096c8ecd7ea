package dev.syncbn.nn;

import java.util.List;
import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The network of a NetSpec: per conv width, conv 3x3 (padding 1, no bias: see Conv2d) -> BN -> ReLU -> max-pool 2x2;
 * then a linear layer to the class logits and softmax cross-entropy. All trainable parameters live in one
 * flat buffer (and their gradients in another of the same layout), each layer holding views of its
 * part; the BN running statistics live apart, in the state buffer.
 *
 * Two sets of kernels compute it (Kernels): the fast path in float, with BN, ReLU and pooling fused in
 * one layer (BnReluPool), which training, evaluation and prediction use; and the reference path in
 * double, one plain layer per operation (BatchNorm2d, MaxPool2d), on which the gradient checks run and
 * against which the fast path is tested. With threads > 1 the batch is split into shards (Shards).
 */
public final class ConvNet implements AutoCloseable {
    /** Which kernels compute the network. */
    public enum Kernels {
        /** Float, BN + ReLU + pool fused: for training and inference. */
        FAST(DataType.FLOAT),
        /** Double, one plain layer per operation: the reference, for gradient checks. */
        REFERENCE(DataType.DOUBLE);

        private final DataType type;

        Kernels(DataType type) {
            this.type = type;
        }

        public DataType type() {
            return type;
        }

        /** BN over stats, then ReLU if relu: the fused float layer on blocked activations, or the reference BatchNorm2d. */
        BnLayer batchNorm(BnStatistics stats, boolean relu, int maxBatch, Parallel parallel) {
            return this == FAST ? new FusedBn(stats, relu, false, OneDnnConv.BLOCK, maxBatch, parallel) : new BatchNorm2d(stats, relu, maxBatch, parallel, type);
        }
    }

    public final NetSpec spec;
    public final int maxBatch;
    /** Trainable parameters, their gradients (same layout), and BN running statistics. */
    public final Buf params, grads, state;
    /** Where the caller puts up to maxBatch input samples (C*H*W values each, NCHW). */
    public final Buf input;

    private final Shards shards;
    private final List<Buf> buffers; // every buffer this network allocated, freed by close()
    private final SoftmaxCrossEntropy loss; // evaluation's, over the gathered logits
    private final Buf logits; // with more than one shard: the shards' logits side by side
    private Buf lastLogits;

    public ConvNet(NetSpec spec, int maxBatch, int threads, Kernels kernels) {
        if (maxBatch < 1) throw new IllegalArgumentException("batch size must be at least 1, got " + maxBatch);
        if (threads < 1) throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        this.spec = spec;
        this.maxBatch = maxBatch;
        DataType type = kernels.type();
        Buf.startCollecting();
        try {
            shards = new Shards(spec, maxBatch, threads, kernels);
            Shards.Shard first = shards.first();
            int count = shards.count();
            int paramCount = first.layers.stream().mapToInt(Layer::paramCount).sum();
            int stateCount = first.batchNorms.stream().mapToInt(BnStatistics::stateCount).sum();
            params = Buf.zeros(type, paramCount);
            grads = Buf.zeros(type, paramCount);
            state = Buf.zeros(type, stateCount);
            input = count == 1 ? first.input : Buf.zeros(type, (long) maxBatch * spec.inputSize());
            for (int i = 0; i < count; i++) shards.shards[i].bind(params, i == 0 ? grads : Buf.zeros(type, paramCount), state);
            loss = new SoftmaxCrossEntropy(spec.classes(), maxBatch, type);
            logits = count > 1 ? Buf.zeros(type, (long) maxBatch * spec.classes()) : null;
        } finally {
            buffers = Buf.stopCollecting();
        }
    }

    /**
     * The off-heap bytes of a fast network for maxBatch samples in threads shards, without building it:
     * two one-shard networks for 1 and 2 samples give the fixed part and the part per sample. A lower
     * bound: ND4J's ops take some scratch memory of their own while they run.
     */
    public static long bytesFor(NetSpec spec, long maxBatch, int threads) {
        long[] bytes = new long[3];
        for (int batch = 1; batch <= 2; batch++) {
            long before = Buf.allocatedByThisThread();
            try (ConvNet net = new ConvNet(spec, batch, 1, Kernels.FAST)) {
                bytes[batch] = Buf.allocatedByThisThread() - before;
            }
        }
        long perSample = bytes[2] - bytes[1], fixed = bytes[1] - perSample;
        long shards = Math.max(1, Math.min(threads, maxBatch));
        return shards * fixed + maxBatch * perSample;
    }

    /** Floating-point operations of one sample's training forward and backward in the matrix products (see Layer.trainingFlops). */
    public double trainingFlopsPerSample() {
        return shards.first().layers.stream().mapToDouble(Layer::trainingFlops).sum();
    }

    public int paramCount() {
        return params.length();
    }

    /** How many shards (threads running a stack of layers each) this network splits a batch into. */
    public int shards() {
        return shards.count();
    }

    /** PyTorch's default initialization, drawn from a generator seeded with seed. */
    public void init(long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        for (Layer layer : shards.first().layers) layer.initParams(rng);
        for (BnStatistics bn : shards.first().batchNorms) bn.initState();
    }

    /** Routes every BN layer's statistics through reducer (BnReducer.LOCAL by default). */
    public void setReducer(BnReducer reducer) {
        shards.setReducer(reducer);
    }

    /** Forward of the n samples in input; returns the logits buffer [n, classes]. */
    public Buf forward(int n, boolean training) {
        checkBatch(n);
        if (shards.count() == 1) return lastLogits = shards.first().forward(n, training);
        shards.run(input, spec.inputSize(), n, null, (i, count) -> shards.shards[i].forward(count, training));
        shards.gatherLogits(n, spec.classes(), logits);
        return lastLogits = logits;
    }

    /**
     * One training pass: forward in training mode (updating BN running stats), loss, backward, leaving
     * the gradient of lossSum/normalizer in grads.
     */
    public SoftmaxCrossEntropy.Result trainStep(int n, int[] labels, double normalizer) {
        checkBatch(n);
        if (shards.count() == 1) {
            System.arraycopy(labels, 0, shards.first().labels, 0, n);
            SoftmaxCrossEntropy.Result r = shards.first().trainStep(n, normalizer);
            lastLogits = shards.first().logits();
            return r;
        }
        SoftmaxCrossEntropy.Result[] results = new SoftmaxCrossEntropy.Result[shards.count()];
        shards.run(input, spec.inputSize(), n, labels, (i, count) -> results[i] = shards.shards[i].trainStep(count, normalizer));
        double lossSum = 0;
        int correct = 0;
        for (int i = 0; i < shards.count(); i++) {
            if (i > 0) grads.flat.addi(shards.shards[i].grads.flat);
            lossSum += results[i].lossSum();
            correct += results[i].correct();
        }
        shards.gatherLogits(n, spec.classes(), logits);
        lastLogits = logits;
        return new SoftmaxCrossEntropy.Result(lossSum, correct);
    }

    /** The layers' names in order, the loss last: conv1, bn1+relu+pool1, ..., linear, softmax+loss. */
    public List<String> layerNames() {
        return List.copyOf(shards.first().layerNames);
    }

    /** Nanoseconds spent in each layer's forward (the loss's included, last) since resetTimes(), by the first shard. */
    public long[] forwardNanos() {
        return shards.first().forwardNanos.clone();
    }

    /** Nanoseconds spent in each layer's backward since resetTimes() (the loss's is part of its forward), by the first shard. */
    public long[] backwardNanos() {
        return shards.first().backwardNanos.clone();
    }

    public void resetTimes() {
        shards.resetTimes();
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
        for (BnStatistics bn : shards.first().batchNorms) bn.addBatchStatistics(acc);
    }

    /** Loss and correct count of n samples in evaluation mode (running statistics, no gradient). */
    public SoftmaxCrossEntropy.Result evaluate(int n, int[] labels) {
        return loss.apply(forward(n, false), labels, n, 1, false);
    }

    private void checkBatch(int n) {
        if (n < 0 || n > maxBatch) throw new IllegalArgumentException("batch of " + n + " samples, this network holds 0 to " + maxBatch);
    }

    /** Stops the shards' threads and frees every buffer of the network now (views of params, grads and state included). */
    @Override
    public void close() {
        shards.close();
        Buf.closeAll(buffers);
    }
}
