package dev.syncbn.nn;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

import static org.junit.jupiter.api.Assertions.assertNull;

class LayerGradientTest {
    private static final DataType D = DataType.DOUBLE;
    private final Parallel parallel = new Parallel(2);

    @Test
    void conv2dWithInputGradient() {
        int[] in = {3, 6, 5};
        GradCheck.checkLayer("conv", new Conv2d(in, 4, 3, 1, 1, true, true, 2, parallel, D), in, 2, true, 1);
    }

    @Test
    void conv2dStrideTwoNoPadding() {
        int[] in = {2, 7, 7};
        GradCheck.checkLayer("conv s2", new Conv2d(in, 3, 3, 2, 0, false, true, 3, parallel, D), in, 3, true, 2);
    }

    @Test
    void conv2dWeightGradientOnly() {
        int[] in = {2, 6, 6};
        Conv2d conv = new Conv2d(in, 3, 3, 1, 1, true, false, 2, parallel, D);
        GradCheck.checkLayer("first conv", conv, in, 2, true, 3);
        assertNull(conv.backward(GradCheck.randomBuf(2 * 3 * 36, new Random(0)), 2));
        int[] odd = {3, 7, 5};
        GradCheck.checkLayer("first conv s2", new Conv2d(odd, 2, 3, 2, 1, true, false, 2, parallel, D), odd, 2, true, 13);
        GradCheck.checkLayer("first conv p0", new Conv2d(odd, 2, 3, 1, 0, false, false, 2, parallel, D), odd, 2, true, 14);
    }

    @Test
    void batchNormTraining() {
        int[] shape = {3, 4, 5};
        BatchNorm2d bn = new BatchNorm2d(shape, 0, false, 4, parallel, D);
        bn.statistics().bindState(Buf.zeros(D, bn.statistics().stateCount()), 0);
        GradCheck.checkLayer("bn", bn, shape, 4, true, 4);
    }

    @Test
    void batchNormWithFusedRelu() {
        int[] shape = {2, 3, 3};
        BatchNorm2d bn = new BatchNorm2d(shape, 0, true, 3, parallel, D);
        bn.statistics().bindState(Buf.zeros(D, bn.statistics().stateCount()), 0);
        GradCheck.checkLayer("bn+relu", bn, shape, 3, true, 5);
    }

    @Test
    void maxPoolEvenAndOddSizes() {
        int[] even = {2, 4, 6};
        GradCheck.checkLayer("pool", new MaxPool2d(even, 2, 3, parallel, D), even, 3, true, 6);
        int[] odd = {2, 5, 7}; // floor mode drops the last row and column; their gradient is zero
        GradCheck.checkLayer("pool odd", new MaxPool2d(odd, 2, 2, parallel, D), odd, 2, true, 7);
    }

    @Test
    void linear() {
        int[] in = {3, 2, 2};
        GradCheck.checkLayer("linear", new Linear(12, 5, 4, D), in, 4, true, 8);
    }

    @Test
    void softmaxCrossEntropy() {
        Random rng = new Random(9);
        int n = 4, classes = 6;
        Buf logits = GradCheck.randomBuf(n * classes, rng);
        int[] labels = {0, 5, 2, 2};
        SoftmaxCrossEntropy ce = new SoftmaxCrossEntropy(classes, n, D);
        ce.apply(logits, labels, n, 7.0, true);
        Buf analytic = Buf.zeros(D, n * classes);
        analytic.copyFrom(ce.dLogits());
        double[] numeric = GradCheck.numeric(logits, n * classes, () -> ce.apply(logits, labels, n, 7.0, false).lossSum() / 7.0);
        GradCheck.assertClose("softmax-ce dlogits", numeric, analytic, 0);
    }
}
