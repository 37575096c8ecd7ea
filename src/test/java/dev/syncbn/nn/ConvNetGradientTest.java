package dev.syncbn.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

class ConvNetGradientTest {
    @Test
    void wholeNetworkGradientMatchesFiniteDifferences() {
        NetSpec spec = new NetSpec(2, 8, 6, new int[] {3, 4}, 5);
        int n = 5;
        try (ConvNet net = new ConvNet(spec, n, 2, DataType.DOUBLE)) {
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

    @Test
    void defaultNetworkHasPyTorchParameterCount() {
        try (ConvNet net = new ConvNet(NetSpec.defaultFor(1, 28, 28, 10), 1, 1, DataType.FLOAT)) {
            // conv1 32*9 (no bias before BN), bn1 2*32, conv2 64*32*9, bn2 2*64, linear 3136*10+10
            assertEquals(288 + 64 + 18432 + 128 + 31370, net.paramCount());
        }
        try (ConvNet net = new ConvNet(NetSpec.defaultFor(3, 32, 32, 10), 1, 1, DataType.FLOAT)) {
            assertEquals(3 * 32 * 9 + 64 + 18432 + 128 + 64 * 8 * 8 * 10 + 10, net.paramCount());
        }
    }
}
