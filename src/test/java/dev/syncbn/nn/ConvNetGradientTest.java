package dev.syncbn.nn;

import java.time.Duration;
import java.util.Random;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

import static org.junit.jupiter.api.Assertions.assertEquals;

class ConvNetGradientTest {
    @Test
    void wholeNetworkGradientMatchesFiniteDifferences() {
        NetSpec spec = new NetSpec(2, 8, 6, new int[] {3, 4}, 5);
        int n = 5;
        try (ConvNet net = new ConvNet(spec, n, 2, ConvNet.Kernels.REFERENCE)) {
            assertEquals(2, net.shards(), "the sharded network (2 and 3 samples) is the one checked");
            net.init(11);
            Random rng = new Random(12);
            for (int i = 0; i < n * spec.inputSize(); i++) net.input.set(i, rng.nextGaussian());
            int[] labels = {0, 4, 1, 1, 3};
            net.trainStep(n, labels, n);
            Buf analytic = Buf.zeros(DataType.DOUBLE, net.paramCount());
            analytic.copyFrom(net.grads);
            double[] numeric = GradCheck.numeric(net.params, net.paramCount(),
                    () -> net.trainStep(n, labels, n).lossSum() / n);
            GradCheck.assertClose("network dparams", numeric, analytic, 0);
        }
    }

    /**
     * The batch split over shards (threads) computes what one stack computes on the whole batch: loss,
     * correct count, gradients, running statistics, logits; in training and in evaluation, with a batch
     * smaller than the network's and one that leaves a shard without samples. A shard that fails fails
     * the step (the others are released, none hangs) and the next step runs normally.
     */
    @Test
    void shardsComputeWhatOneStackComputes() {
        NetSpec spec = NetSpec.defaultFor(1, 28, 28, 10);
        try (ConvNet one = new ConvNet(spec, 32, 1, ConvNet.Kernels.FAST); ConvNet three = new ConvNet(spec, 32, 3, ConvNet.Kernels.FAST)) {
            assertEquals(1, one.shards());
            assertEquals(3, three.shards());
            one.init(5);
            three.init(5);
            Random rng = new Random(6);
            int[] labels = new int[32];
            for (int n : new int[] {32, 17, 2}) {
                for (int i = 0; i < n * spec.inputSize(); i++) {
                    float v = (float) rng.nextDouble();
                    one.input.set(i, v);
                    three.input.set(i, v);
                }
                for (int i = 0; i < n; i++) labels[i] = rng.nextInt(10);
                SoftmaxCrossEntropy.Result a = one.trainStep(n, labels, n), b = three.trainStep(n, labels, n);
                assertEquals(a.lossSum(), b.lossSum(), 1e-5 * Math.abs(a.lossSum()), "loss, batch " + n);
                assertEquals(a.correct(), b.correct());
                assertRelative(one.grads, three.grads, 1e-4, "gradients, batch " + n);
                assertRelative(one.state, three.state, 1e-5, "running statistics, batch " + n);
                SoftmaxCrossEntropy.Result ea = one.evaluate(n, labels), eb = three.evaluate(n, labels);
                assertEquals(ea.lossSum(), eb.lossSum(), 1e-5 * Math.abs(ea.lossSum()), "evaluation loss, batch " + n);
                int[] pa = new int[n], pb = new int[n];
                one.lastPredictions(n, pa);
                three.lastPredictions(n, pb);
                Assertions.assertArrayEquals(pa, pb);
            }
            labels[31] = 1_000_000; // in the last shard: its loss fails after the BN reductions of its forward
            Assertions.assertThrows(IndexOutOfBoundsException.class, () -> three.trainStep(32, labels, 32));
            labels[31] = 0;
            // The distributed reducer failing (a lost coordinator) while the other shards wait for its result.
            three.setReducer((layer, forward, sums) -> {
                if (!forward) throw new IllegalStateException("coordinator lost");
            });
            IllegalStateException e = Assertions.assertTimeoutPreemptively(Duration.ofSeconds(60),
                    () -> Assertions.assertThrows(IllegalStateException.class, () -> three.trainStep(32, labels, 32)));
            assertEquals("coordinator lost", e.getMessage());
            three.setReducer(BnReducer.LOCAL);
            SoftmaxCrossEntropy.Result after = three.trainStep(32, labels, 32);
            Assertions.assertTrue(Double.isFinite(after.lossSum()));
        }
    }

    private static void assertRelative(Buf a, Buf b, double tolerance, String what) {
        double err = 0, max = 1e-30;
        for (int i = 0; i < a.length(); i++) {
            err = Math.max(err, Math.abs(a.get(i) - b.get(i)));
            max = Math.max(max, Math.abs(a.get(i)));
        }
        Assertions.assertTrue(err / max < tolerance, what + ": relative error " + err / max);
    }

    @Test
    void defaultNetworkHasPyTorchParameterCount() {
        try (ConvNet net = new ConvNet(NetSpec.defaultFor(1, 28, 28, 10), 1, 1, ConvNet.Kernels.FAST)) {
            // conv1 32*9 (no bias before BN), bn1 2*32, conv2 64*32*9, bn2 2*64, linear 3136*10+10
            assertEquals(288 + 64 + 18432 + 128 + 31370, net.paramCount());
        }
        try (ConvNet net = new ConvNet(NetSpec.defaultFor(3, 32, 32, 10), 1, 1, ConvNet.Kernels.FAST)) {
            assertEquals(3 * 32 * 9 + 64 + 18432 + 128 + 64 * 8 * 8 * 10 + 10, net.paramCount());
        }
    }
}
