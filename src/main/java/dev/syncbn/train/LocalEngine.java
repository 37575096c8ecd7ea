package dev.syncbn.train;

import dev.syncbn.data.Augment;
import dev.syncbn.data.Dataset;
import dev.syncbn.data.Sampler;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.nn.SoftmaxCrossEntropy;
import dev.syncbn.optim.Adam;

/** One process, one network: the reference that the distributed engine must match. */
public final class LocalEngine implements Engine {
    private final Dataset train, test;
    private final int batch;
    private final long seed;
    private final boolean augment;
    public final ConvNet net;
    public final Adam adam;
    private final int[] labels;

    /** The engine of the run c (of it: batch, lr, seed, threads). */
    public LocalEngine(Dataset train, Dataset test, TrainConfig c) {
        this(train, test, c.net(), c.batch(), c.lr(), c.seed(), c.threads(), c.augment());
    }

    /** The seed network. */
    public LocalEngine(Dataset train, Dataset test, int batch, double lr, long seed, int threads) {
        this(train, test, NetSpec.SEED, batch, lr, seed, threads);
    }

    /** net: as --net takes it (see NetSpec.forData). */
    public LocalEngine(Dataset train, Dataset test, String network, int batch, double lr, long seed, int threads) {
        this(train, test, network, batch, lr, seed, threads, false);
    }

    private LocalEngine(Dataset train, Dataset test, String network, int batch, double lr, long seed, int threads, boolean augment) {
        this.train = train;
        this.augment = augment;
        this.test = test;
        this.batch = batch;
        this.seed = seed;
        this.net = new ConvNet(NetSpec.forData(network, train.channels(), train.height(), train.width(), train.classes()), batch, threads, ConvNet.Kernels.FAST);
        net.init(seed);
        this.adam = new Adam(net.params, lr);
        this.labels = new int[batch];
    }

    @Override
    public EpochResult trainEpoch(int epoch, Progress progress) {
        return trainSteps(epoch, Sampler.order(train.size(), seed, epoch), progress);
    }

    /** Trains on the training samples in the given order, batch after batch (the benchmark chooses its own). */
    public EpochResult trainSteps(int epoch, int[] order, Progress progress) {
        int steps = Sampler.steps(order.length, batch);
        double updateS = 0;
        double[] stepS = new double[steps], outsideS = new double[steps];
        Totals soFar = Totals.NONE;
        long t0 = System.nanoTime();
        for (int s = 0; s < steps; s++) {
            long s0 = System.nanoTime();
            int from = s * batch, n = Math.min(batch, order.length - from);
            if (augment) Augment.fill(train, order, from, n, net.input, labels, seed, epoch, from, 1);
            else train.fill(order, from, n, net.input, labels);
            SoftmaxCrossEntropy.Result r = net.trainStep(n, labels, n);
            Engine.checkFinite(r.lossSum(), epoch, s);
            long u0 = System.nanoTime();
            adam.apply(net.params, net.grads);
            long u1 = System.nanoTime();
            updateS += (u1 - u0) / 1e9;
            stepS[s] = (u1 - s0) / 1e9;
            outsideS[s] = (u1 - u0) / 1e9;
            soFar = soFar.plus(new Totals(r.lossSum(), r.correct(), n));
            progress.step(s, steps, 1, r.lossSum() / n, soFar);
        }
        double totalMs = (System.nanoTime() - t0) / 1e6 / steps, updateMs = updateS * 1e3 / steps;
        double outsideMedian = Engine.medianMs(outsideS, steps);
        return new EpochResult(soFar, totalMs - updateMs, 0, 0, updateMs, Engine.medianMs(stepS, steps), outsideMedian, 0,
                outsideMedian, 1);
    }


    @Override
    public void preciseBn(int batches) {
        setAveragedStatistics(PreciseBn.batchStatistics(net, train, Sampler.order(train.size(), seed, 0), batch, batches));
    }

    @Override
    public Adam adam() {
        return adam;
    }

    @Override
    public int stepsPerEpoch() {
        return Sampler.steps(train.size(), batch);
    }

    @Override
    public Totals evaluate() {
        return evaluate(net, test, labels, null);
    }

    /**
     * Loss and accuracy of net in evaluation mode on all of data, in batches of net.maxBatch; if confusion is
     * not null, adds each sample to confusion[label * classes + predicted].
     */
    public static Totals evaluate(ConvNet net, Dataset data, int[] labels, long[] confusion) {
        int[] predicted = new int[net.maxBatch];
        int[] order = new int[data.size()];
        for (int i = 0; i < order.length; i++) order[i] = i;
        Totals sum = Totals.NONE;
        for (int from = 0; from < order.length; from += net.maxBatch) {
            int n = Math.min(net.maxBatch, order.length - from);
            data.fill(order, from, n, net.input, labels);
            SoftmaxCrossEntropy.Result r = net.evaluate(n, labels);
            if (confusion != null) {
                net.lastPredictions(n, predicted);
                for (int i = 0; i < n; i++) confusion[labels[i] * net.spec.classes() + predicted[i]]++;
            }
            sum = sum.plus(new Totals(r.lossSum(), r.correct(), n));
        }
        return sum;
    }

    @Override
    public ConvNet net() {
        return net;
    }

    @Override
    public void close() {
        net.close();
    }
}
