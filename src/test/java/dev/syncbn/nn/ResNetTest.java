package dev.syncbn.nn;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The residual networks: their layers' gradients in double, the whole network's, and the fast kernels against the reference. */
class ResNetTest {
    @Test
    void resnet20HasThePyTorchPeersParameterCount() {
        // ../shared/peers/torch-native/train.py --net resnet-20 --params
        try (ConvNet net = new ConvNet(NetSpec.forData("resnet-20", 1, 28, 28, 10), 1, 1, ConvNet.Kernels.FAST)) {
            assertEquals(272_186, net.paramCount());
            assertEquals(2 * Arrays.stream(net.spec.bnChannels()).sum(), net.state.length());
            assertEquals(21, net.spec.bnChannels().length);
        }
        try (ConvNet net = new ConvNet(NetSpec.forData("resnet-20", 3, 32, 32, 10), 1, 1, ConvNet.Kernels.FAST)) {
            assertEquals(272_186 + 2 * 16 * 9, net.paramCount());
        }
    }

    @Test
    void descriptionsParseAndRefuseWhatIsNotANetwork() {
        NetSpec wide = NetSpec.forData("resnet-14x2", 3, 32, 32, 10);
        assertEquals("3x32x32:resnet-14x2:10", wide.toString());
        assertEquals(wide, NetSpec.parse(wide.toString()));
        assertEquals(NetSpec.defaultFor(1, 28, 28, 10), NetSpec.forData(NetSpec.SEED, 1, 28, 28, 10));
        assertEquals(NetSpec.defaultFor(1, 28, 28, 10), NetSpec.forData("1x28x28:32,64:10", 1, 28, 28, 10));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> NetSpec.forData("resnet-21", 1, 28, 28, 10)).getMessage().contains("6n+2"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> NetSpec.forData("3x32x32:resnet-20:10", 1, 28, 28, 10)).getMessage()
                .contains("the data has 1x28x28"));
        assertThrows(IllegalArgumentException.class, () -> NetSpec.forData("resnet-x", 1, 28, 28, 10));
    }

    @Test
    void newLayersGradientsMatchFiniteDifferences() {
        int[] shape = {3, 6, 5};
        try (Parallel p = new Parallel(1)) {
            GradCheck.checkLayer("conv 3x3 stride 2", new Conv2d(shape, 4, 3, 2, 1, false, true, 3, p, DataType.DOUBLE), shape, 3, true, 1);
            GradCheck.checkLayer("conv 1x1 stride 2", new Conv2d(shape, 4, 1, 2, 0, false, true, 3, p, DataType.DOUBLE), shape, 3, true, 2);
            GradCheck.checkLayer("global average pool", new GlobalAvgPool(shape, 3, DataType.DOUBLE), shape, 3, true, 4);
            for (NetSpec.Block block : List.of(new NetSpec.Block(1, 1, 3, 3, 1), new NetSpec.Block(2, 1, 3, 4, 2))) {
                List<BnStatistics> batchNorms = new ArrayList<>();
                ResidualBlock layer = new ResidualBlock(block, shape, batchNorms, 3, p, ConvNet.Kernels.REFERENCE);
                for (BnStatistics bn : batchNorms) bn.bindState(Buf.zeros(DataType.DOUBLE, bn.stateCount()), 0);
                GradCheck.checkLayer("residual block " + block, layer, shape, 3, true, 5);
            }
        }
    }

    /**
     * A whole resnet-8 (stem, an identity block, two projecting blocks with stride 2, pool, linear): its
     * 78,000 parameters are too many for finite differences in test time, so 300 are checked: the first
     * and last of every 260-parameter stretch, which touches every layer's weights, gammas and betas.
     */
    @Test
    void wholeResnetGradientMatchesFiniteDifferences() {
        NetSpec spec = NetSpec.forData("resnet-8", 1, 8, 8, 3);
        int n = 4;
        try (ConvNet net = new ConvNet(spec, n, 2, ConvNet.Kernels.REFERENCE)) {
            assertEquals(2, net.shards(), "the sharded network is the one checked");
            net.init(3);
            Random rng = new Random(4);
            for (int i = 0; i < n * spec.inputSize(); i++) net.input.set(i, rng.nextGaussian());
            int[] labels = {0, 2, 1, 1};
            net.trainStep(n, labels, n);
            Buf analytic = Buf.zeros(DataType.DOUBLE, net.paramCount());
            analytic.copyFrom(net.grads);
            int stretch = net.paramCount() / 150 + 1;
            int[] indices = IntStream.range(0, net.paramCount()).filter(i -> i % stretch == 0 || i % stretch == stretch - 1 || i == net.paramCount() - 1).toArray();
            double[] numeric = GradCheck.numericAt(net.params, indices, () -> net.trainStep(n, labels, n).lossSum() / n);
            Buf picked = Buf.zeros(DataType.DOUBLE, indices.length);
            for (int j = 0; j < indices.length; j++) picked.set(j, analytic.get(indices[j]));
            GradCheck.assertClose("resnet-8 dparams", numeric, picked, 0);
        }
    }

    /** The float kernels (FusedBn) compute what the double reference computes, in training and evaluation. */
    @Test
    void fastKernelsMatchTheReference() {
        NetSpec spec = NetSpec.forData("resnet-8", 1, 12, 12, 4);
        int n = 6;
        try (ConvNet fast = new ConvNet(spec, n, 2, ConvNet.Kernels.FAST); ConvNet ref = new ConvNet(spec, n, 1, ConvNet.Kernels.REFERENCE)) {
            fast.init(7);
            ref.init(7);
            assertArrayEquals(fast.params.toFloats(), ref.params.toFloats());
            Random rng = new Random(8);
            for (int i = 0; i < n * spec.inputSize(); i++) {
                double v = rng.nextDouble();
                fast.input.set(i, v);
                ref.input.set(i, (float) v);
            }
            int[] labels = {0, 1, 2, 3, 1, 2};
            for (int step = 0; step < 2; step++) {
                double a = fast.trainStep(n, labels, n).lossSum(), b = ref.trainStep(n, labels, n).lossSum();
                assertEquals(b, a, 1e-5 * Math.abs(b), "loss");
                assertRelative(ref.grads, fast.grads, 1e-4, "gradients");
                assertRelative(ref.state, fast.state, 1e-5, "running statistics");
            }
            assertEquals(ref.evaluate(n, labels).lossSum(), fast.evaluate(n, labels).lossSum(), 1e-4, "evaluation loss");
        }
    }

    static void assertRelative(Buf expected, Buf actual, double tolerance, String what) {
        double err = 0, max = 1e-30;
        for (int i = 0; i < expected.length(); i++) {
            err = Math.max(err, Math.abs(expected.get(i) - actual.get(i)));
            max = Math.max(max, Math.abs(expected.get(i)));
        }
        assertTrue(err / max < tolerance, what + ": relative error " + err / max);
    }
}
