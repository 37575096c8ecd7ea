package dev.syncbn.nn;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * A ConvNet's batch split into shards inside one process: each shard a full stack of layers with its
 * own buffers, run by one thread on its share of the samples (ND4J's ops run single-threaded inside it:
 * see Backend.init), as data-parallel replicas: their BN statistics are summed before normalizing (sync
 * BN among the shards, then through the network's reducer), and their parameter gradients are summed in
 * shard order, so the result is the batch's, up to rounding. Measured against splitting every op over
 * the threads: oneDNN's convolutions gain little from a second OpenMP thread here (its threads must
 * sleep between ops, or spin and take the core from the Java passes), and the Java passes split over
 * channels unevenly; independent shards keep both cores busy.
 */
final class Shards implements AutoCloseable {
    /** One stack of layers with its own buffers, for up to capacity samples. */
    static final class Shard {
        final Parallel parallel;
        final Buf input;
        final List<Layer> layers = new ArrayList<>();
        final List<BnStatistics> batchNorms = new ArrayList<>();
        final List<String> layerNames = new ArrayList<>();
        final SoftmaxCrossEntropy loss;
        final int[] labels;
        // Nanoseconds spent in each layer's forward and backward (the loss last) since resetTimes(): a
        // nanoTime pair per layer costs well under a microsecond a step, so it is always on.
        long[] forwardNanos, backwardNanos;
        Buf grads;

        Shard(NetSpec spec, int capacity, int threads, ConvNet.Kernels kernels) {
            DataType type = kernels.type();
            this.parallel = new Parallel(threads);
            this.input = Buf.zeros(type, (long) capacity * spec.inputSize());
            int[] shape = {spec.channels(), spec.height(), spec.width()};
            if (spec.residual()) {
                shape = addResidual(spec, shape, capacity, kernels);
            } else {
                boolean first = true;
                for (int width : spec.convWidths()) {
                    int block = batchNorms.size() + 1;
                    add("conv" + block, new Conv2d(shape, width, 3, 1, 1, false, !first, capacity, parallel, type));
                    BnStatistics bn = BnStatistics.next(last().outShape(), batchNorms);
                    if (kernels == ConvNet.Kernels.FAST) {
                        add("bn" + block + "+relu+pool" + block, new BnReluPool(bn, 2, capacity, parallel));
                    } else {
                        add("bn" + block + "+relu", new BatchNorm2d(bn, true, capacity, parallel, type));
                        add("pool" + block, new MaxPool2d(last().outShape(), 2, capacity, parallel, type));
                    }
                    shape = last().outShape();
                    first = false;
                }
            }
            add("linear", new Linear(Layer.size(shape), spec.classes(), capacity, type));
            loss = new SoftmaxCrossEntropy(spec.classes(), capacity, type);
            layerNames.add("softmax+loss");
            labels = new int[capacity];
            resetTimes();
        }

        /** The stem (conv 3x3 -> BN -> ReLU), the residual blocks and the global average pool; returns the shape they leave. */
        private int[] addResidual(NetSpec spec, int[] shape, int capacity, ConvNet.Kernels kernels) {
            DataType type = kernels.type();
            boolean fast = kernels == ConvNet.Kernels.FAST;
            add("conv1", new Conv2d(shape, spec.stemWidth(), 3, 1, 1, false, false, capacity, parallel, type));
            if (fast) add("to-blocked", new Relayout(last().outShape(), true, capacity));
            add("bn1+relu", kernels.batchNorm(BnStatistics.next(last().outShape(), batchNorms), true, capacity, parallel));
            for (NetSpec.Block block : spec.blocks()) {
                add("stage" + block.stage() + ".block" + block.index(), new ResidualBlock(block, last().outShape(), batchNorms, capacity, parallel, kernels));
            }
            if (fast) add("to-nchw", new Relayout(last().outShape(), false, capacity));
            add("avgpool", new GlobalAvgPool(last().outShape(), capacity, type));
            return last().outShape();
        }

        private void add(String name, Layer layer) {
            layers.add(layer);
            layerNames.add(name);
        }

        Layer last() {
            return layers.get(layers.size() - 1);
        }

        void bind(Buf params, Buf grads, Buf state) {
            this.grads = grads;
            int offset = 0, stateOffset = 0;
            for (Layer layer : layers) {
                layer.bindParams(params, grads, offset);
                offset += layer.paramCount();
            }
            for (BnStatistics bn : batchNorms) {
                bn.bindState(state, stateOffset);
                stateOffset += bn.stateCount();
            }
        }

        void setReducer(BnReducer reducer) {
            for (BnStatistics bn : batchNorms) bn.setReducer(reducer);
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

        Buf logits() {
            return ((Linear) last()).forwardOutput();
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
    }

    interface Work {
        void run(int shard, int count);
    }

    final Shard[] shards;
    private final ExecutorService threads; // runs shards 1.. (shard 0 runs on the caller's thread)
    private final ShardAllReduce sums; // with more than one shard

    /** min(threads, maxBatch) shards of ceil(maxBatch / shards) samples each; one shard gets all the threads for its ops. */
    Shards(NetSpec spec, int maxBatch, int threads, ConvNet.Kernels kernels) {
        int count = Math.min(threads, maxBatch), capacity = (maxBatch + count - 1) / count;
        shards = new Shard[count];
        sums = count > 1 ? new ShardAllReduce(count) : null;
        for (int i = 0; i < count; i++) {
            shards[i] = new Shard(spec, capacity, count == 1 ? threads : 1, kernels);
            if (count > 1) shards[i].setReducer(sums.forShard(i));
            for (BnStatistics bn : shards[i].batchNorms) bn.setUpdatesRunningStatistics(i == 0);
        }
        this.threads = count > 1 ? Executors.newFixedThreadPool(count - 1, r -> {
            Thread t = new Thread(r, "syncbn-shard");
            t.setDaemon(true);
            return t;
        }) : null;
    }

    int count() {
        return shards.length;
    }

    Shard first() {
        return shards[0];
    }

    /** Routes every BN layer's statistics, once summed over the shards, through reducer. */
    void setReducer(BnReducer reducer) {
        if (shards.length == 1) shards[0].setReducer(reducer);
        else sums.outer = reducer;
    }

    /** The first sample of shard i's share of n. */
    int from(int n, int shard) {
        return (int) ((long) n * shard / shards.length);
    }

    /** Copies each shard's share of the n samples of input (and labels) in, runs work on every shard at once, and waits for all. */
    void run(Buf input, int sampleSize, int n, int[] labels, Work work) {
        sums.rendezvous.clear();
        List<Future<?>> running = new ArrayList<>();
        Throwable failure = null;
        for (int i = shards.length - 1; i >= 0; i--) {
            Shard shard = shards[i];
            int index = i, lo = from(n, i), count = from(n, i + 1) - lo;
            if (count > 0) shard.input.view((long) count * sampleSize).assign(input.slice((long) lo * sampleSize, (long) count * sampleSize));
            if (labels != null) System.arraycopy(labels, lo, shard.labels, 0, count);
            Runnable task = () -> {
                try {
                    Backend.limitThisThread(1);
                    work.run(index, count);
                } catch (RuntimeException | Error e) {
                    sums.rendezvous.fail();
                    throw e;
                }
            };
            if (i > 0) {
                running.add(threads.submit(task));
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

    /** Each shard's logits of its share of the n samples, side by side in out. */
    void gatherLogits(int n, int classes, Buf out) {
        for (int i = 0; i < shards.length; i++) {
            Buf logits = shards[i].logits();
            int lo = from(n, i), count = from(n, i + 1) - lo;
            for (int j = 0; j < count * classes; j++) out.set(lo * classes + j, logits.get(j));
        }
    }

    void resetTimes() {
        for (Shard shard : shards) shard.resetTimes();
    }

    @Override
    public void close() {
        for (Shard shard : shards) {
            for (Layer layer : shard.layers) layer.close();
            shard.parallel.close();
        }
        if (threads != null) threads.shutdown();
    }
}
