package dev.syncbn.nn;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The network of a NetSpec: per conv width, conv 3x3 (padding 1, no bias: see Conv2d) -> BN -> ReLU -> max-pool 2x2
 * (in float one fused layer, BnReluPool; in double the reference layers BatchNorm2d and MaxPool2d); then
 * a linear layer to the class logits and softmax cross-entropy. All trainable parameters live in one
 * flat buffer (and their gradients in another of the same layout), each layer holding views of its
 * part; the BN running statistics live apart, in the state buffer.
 */
public final class ConvNet implements AutoCloseable {
    public final NetSpec spec;
    public final int maxBatch;
    /** Trainable parameters, their gradients (same layout), and BN running statistics. */
    public final Buf params, grads, state;
    /** Where the caller puts up to maxBatch input samples (C*H*W values each, NCHW). */
    public final Buf input;

    private final Parallel parallel;
    private final List<Layer> layers = new ArrayList<>();
    private final List<BatchNorm2d> batchNorms = new ArrayList<>();
    private final List<String> layerNames = new ArrayList<>();
    private final SoftmaxCrossEntropy loss;
    // Nanoseconds spent in each layer's forward and backward (the loss last) since resetTimes(): a
    // nanoTime pair per layer costs well under a microsecond a step, so it is always on.
    private long[] forwardNanos, backwardNanos;

    public ConvNet(NetSpec spec, int maxBatch, int threads, DataType type) {
        if (maxBatch < 1) throw new IllegalArgumentException("batch size must be at least 1, got " + maxBatch);
        this.spec = spec;
        this.maxBatch = maxBatch;
        this.parallel = new Parallel(threads);
        int[] shape = {spec.channels(), spec.height(), spec.width()};
        boolean first = true;
        for (int width : spec.convWidths()) {
            int block = batchNorms.size() + 1;
            add("conv" + block, new Conv2d(shape, width, 3, 1, 1, false, !first, maxBatch, parallel, type));
            BatchNorm2d bn = new BatchNorm2d(last().outShape(), batchNorms.size(), true, maxBatch, parallel, type);
            batchNorms.add(bn);
            if (type == DataType.FLOAT) {
                add("bn" + block + "+relu+pool" + block, new BnReluPool(bn, 2, maxBatch, parallel));
            } else { // the reference layers, in double for the gradient checks
                add("bn" + block + "+relu", bn);
                add("pool" + block, new MaxPool2d(last().outShape(), 2, maxBatch, parallel, type));
            }
            shape = last().outShape();
            first = false;
        }
        add("linear", new Linear(Layer.size(shape), spec.classes(), maxBatch, type));
        loss = new SoftmaxCrossEntropy(spec.classes(), maxBatch, type);
        layerNames.add("softmax+loss");
        resetTimes();

        int paramCount = layers.stream().mapToInt(Layer::paramCount).sum();
        int stateCount = batchNorms.stream().mapToInt(BatchNorm2d::stateCount).sum();
        params = Buf.zeros(type, paramCount);
        grads = Buf.zeros(type, paramCount);
        state = Buf.zeros(type, stateCount);
        input = Buf.zeros(type, (long) maxBatch * spec.inputSize());
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

    private void add(String name, Layer layer) {
        layers.add(layer);
        layerNames.add(name);
    }

    private Layer last() {
        return layers.get(layers.size() - 1);
    }

    public int paramCount() {
        return params.length();
    }

    /** PyTorch's default initialization, drawn from a generator seeded with seed. */
    public void init(long seed) {
        SplittableRandom rng = new SplittableRandom(seed);
        for (Layer layer : layers) layer.initParams(rng);
        for (BatchNorm2d bn : batchNorms) bn.initState();
    }

    /** Routes every BN layer's statistics through reducer (BnReducer.LOCAL by default). */
    public void setReducer(BnReducer reducer) {
        for (BatchNorm2d bn : batchNorms) bn.setReducer(reducer);
    }

    /** Forward of the n samples in input; returns the logits buffer [n, classes]. */
    public Buf forward(int n, boolean training) {
        checkBatch(n);
        Buf x = input;
        for (int i = 0; i < layers.size(); i++) {
            long t0 = System.nanoTime();
            x = layers.get(i).forward(x, n, training);
            forwardNanos[i] += System.nanoTime() - t0;
        }
        return x;
    }

    /**
     * One training pass: forward in training mode (updating BN running stats), loss, backward, leaving
     * the gradient of lossSum/normalizer in grads.
     */
    public SoftmaxCrossEntropy.Result trainStep(int n, int[] labels, double normalizer) {
        Buf logits = forward(n, true);
        long t0 = System.nanoTime();
        SoftmaxCrossEntropy.Result r = loss.apply(logits, labels, n, normalizer, true);
        forwardNanos[layers.size()] += System.nanoTime() - t0;
        Buf d = loss.dLogits();
        for (int i = layers.size() - 1; i >= 0 && d != null; i--) {
            t0 = System.nanoTime();
            d = layers.get(i).backward(d, n);
            backwardNanos[i] += System.nanoTime() - t0;
        }
        return r;
    }

    /** The layers' names in order, the loss last: conv1, bn1+relu, pool1, ..., linear, softmax+loss. */
    public List<String> layerNames() {
        return List.copyOf(layerNames);
    }

    /** Nanoseconds spent in each layer's forward (the loss's included, last) since resetTimes(). */
    public long[] forwardNanos() {
        return forwardNanos.clone();
    }

    /** Nanoseconds spent in each layer's backward since resetTimes() (the loss's is part of its forward). */
    public long[] backwardNanos() {
        return backwardNanos.clone();
    }

    public void resetTimes() {
        forwardNanos = new long[layerNames.size()];
        backwardNanos = new long[layerNames.size()];
    }

    /** The predicted class (argmax of the logits) of each of the n samples of the last forward. */
    public void lastPredictions(int n, int[] out) {
        Buf logits = ((Linear) layers.get(layers.size() - 1)).forwardOutput();
        int k = spec.classes();
        for (int s = 0; s < n; s++) {
            int best = 0;
            for (int j = 1; j < k; j++) if (logits.get(s * k + j) > logits.get(s * k + best)) best = j;
            out[s] = best;
        }
    }

    /**
     * Adds every BN layer's batch statistics of the last training forward into acc (state layout: per
     * layer, batch means then unbiased batch variances), for averaging over batches (precise BN).
     */
    public void addBatchStatistics(double[] acc) {
        for (BatchNorm2d bn : batchNorms) bn.addBatchStatistics(acc);
    }

    /**
     * For precise BN (as fvcore's): the sums of every BN layer's batch statistics (state layout) over up
     * to `batches` batches of `batch` samples of data, taken in `order` from its start, in training mode;
     * the last element is the number of batches. Their average replaces the running statistics: local
     * BN's are a momentum average over a moving network (and, across replicas, an average of averages);
     * these are the final network's.
     */
    public static double[] batchStatistics(ConvNet net, dev.syncbn.data.Dataset data, int[] order, int batch, int batches) {
        net.setReducer(BnReducer.LOCAL);
        double[] acc = new double[net.state.length() + 1];
        int[] labels = new int[batch];
        for (int k = 0; k < batches && (k + 1) * batch <= order.length; k++) {
            data.fill(order, k * batch, batch, net.input, labels);
            net.forward(batch, true);
            net.addBatchStatistics(acc);
            acc[acc.length - 1]++;
        }
        return acc;
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
        parallel.close();
    }
}
