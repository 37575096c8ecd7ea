package dev.syncbn.nn;

import dev.syncbn.optim.Adam;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Numbers that PyTorch produced (src/test/resources/pytorch, written by make_fixtures.py there with
 * Debian's python3-torch; PyTorch is not needed to run this): BN in training and evaluation mode with its
 * running statistics, convolutions with stride 1 and 2, cross-entropy, Adam, and one whole training step of
 * the seed network. The double reference layers agree to double rounding (the fixtures are float64), the
 * float kernels and Adam to float rounding.
 */
class PyTorchReferenceTest {
    private static final double DOUBLE_TOLERANCE = 1e-12, FLOAT_TOLERANCE = 1e-6; // measured: at most 6e-16 and 2e-7
    private final Parallel parallel = new Parallel(1);

    /** A fixture's tensors by name, each as its shape and values. */
    record Tensor(int[] shape, double[] values) {
        int size() {
            return values.length;
        }

        Buf buf(DataType type) {
            Buf b = Buf.zeros(type, values.length);
            for (int i = 0; i < values.length; i++) b.set(i, values[i]);
            return b;
        }
    }

    static Map<String, Tensor> fixture(String name) throws IOException {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        try (InputStream in = PyTorchReferenceTest.class.getResourceAsStream("/pytorch/" + name + ".txt")) {
            assertTrue(in != null, "fixture " + name + " (make_fixtures.py writes it)");
            String[] lines = new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n");
            for (int i = 1; i + 1 < lines.length; i += 2) { // line 0 names the writer
                String[] header = lines[i].trim().split(" "), values = lines[i + 1].trim().split(" ");
                int[] shape = new int[header.length - 1];
                for (int d = 0; d < shape.length; d++) shape[d] = Integer.parseInt(header[d + 1]);
                double[] v = new double[values.length];
                for (int k = 0; k < v.length; k++) v[k] = Double.parseDouble(values[k]);
                tensors.put(header[0], new Tensor(shape, v));
            }
        }
        return tensors;
    }

    /** Every value within tolerance of PyTorch's, relative to the largest magnitude of the tensor (at least 1). */
    static void assertClose(Tensor expected, Buf actual, int offset, double tolerance, String what) {
        double scale = 1, worst = 0;
        for (double v : expected.values()) scale = Math.max(scale, Math.abs(v));
        int worstAt = -1;
        for (int i = 0; i < expected.size(); i++) {
            double e = Math.abs(actual.get(offset + i) - expected.values()[i]) / scale;
            if (e > worst) {
                worst = e;
                worstAt = i;
            }
        }
        assertTrue(worst <= tolerance, what + ": relative error " + worst + " at " + worstAt + " (tolerance " + tolerance + ")");
    }

    static void assertClose(Tensor expected, Buf actual, double tolerance, String what) {
        assertClose(expected, actual, 0, tolerance, what);
    }

    @Test
    void batchNormInTrainingAndEvaluationModeWithItsRunningStatistics() throws IOException {
        Map<String, Tensor> f = fixture("batchnorm");
        for (DataType type : new DataType[] {DataType.DOUBLE, DataType.FLOAT}) {
            double tolerance = type == DataType.DOUBLE ? DOUBLE_TOLERANCE : FLOAT_TOLERANCE;
            int[] shape = f.get("x").shape();
            int n = shape[0], c = shape[1];
            BatchNorm2d bn = new BatchNorm2d(new int[] {c, shape[2], shape[3]}, 0, false, n, parallel, type);
            Buf params = Buf.zeros(type, 2 * c), grads = Buf.zeros(type, 2 * c), state = Buf.zeros(type, 2 * c);
            for (int i = 0; i < c; i++) {
                params.set(i, f.get("gamma").values()[i]);
                params.set(c + i, f.get("beta").values()[i]);
            }
            bn.bindParams(params, grads, 0);
            bn.statistics().bindState(state, 0);
            bn.statistics().initState();
            Buf x = f.get("x").buf(type);
            assertClose(f.get("y"), bn.forward(x, n, true), tolerance, type + " y");
            assertClose(f.get("dx"), bn.backward(f.get("dy").buf(type), n), tolerance, type + " dx");
            assertClose(f.get("dgamma"), grads, 0, tolerance, type + " dgamma");
            assertClose(f.get("dbeta"), grads, c, tolerance, type + " dbeta");
            assertClose(f.get("running_mean"), state, 0, tolerance, type + " running mean (momentum 0.1)");
            assertClose(f.get("running_var"), state, c, tolerance, type + " running variance (unbiased)");
            assertClose(f.get("y_eval"), bn.forward(x, n, false), tolerance, type + " evaluation mode");
        }
    }

    @Test
    void convolutionsWithStrideOneAndTwoForwardAndBackward() throws IOException {
        for (int stride : new int[] {1, 2}) {
            Map<String, Tensor> f = fixture("conv-stride" + stride);
            for (DataType type : new DataType[] {DataType.DOUBLE, DataType.FLOAT}) {
                double tolerance = type == DataType.DOUBLE ? DOUBLE_TOLERANCE : FLOAT_TOLERANCE;
                int[] xs = f.get("x").shape(), ws = f.get("w").shape();
                Conv2d conv = new Conv2d(new int[] {xs[1], xs[2], xs[3]}, ws[0], ws[2], stride, 1, false, true, xs[0], parallel, type);
                Buf params = f.get("w").buf(type), grads = Buf.zeros(type, params.length());
                conv.bindParams(params, grads, 0);
                String what = type + " stride " + stride;
                assertClose(f.get("y"), conv.forward(f.get("x").buf(type), xs[0], true), tolerance, what + " y");
                assertClose(f.get("dx"), conv.backward(f.get("dy").buf(type), xs[0]), tolerance, what + " dx");
                assertClose(f.get("dw"), grads, tolerance, what + " dw");
            }
        }
    }

    @Test
    void crossEntropyAndItsGradient() throws IOException {
        Map<String, Tensor> f = fixture("cross-entropy");
        int n = f.get("logits").shape()[0], k = f.get("logits").shape()[1];
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) labels[i] = (int) f.get("labels").values()[i];
        SoftmaxCrossEntropy loss = new SoftmaxCrossEntropy(k, n, DataType.DOUBLE);
        SoftmaxCrossEntropy.Result r = loss.apply(f.get("logits").buf(DataType.DOUBLE), labels, n, n, true);
        assertEquals(f.get("loss").values()[0], r.lossSum() / n, DOUBLE_TOLERANCE * Math.abs(f.get("loss").values()[0]), "mean loss");
        assertClose(f.get("dlogits"), loss.dLogits(), DOUBLE_TOLERANCE, "gradient of the mean loss");
    }

    @Test
    void adamStepsAtThreeGradientScales() throws IOException {
        Map<String, Tensor> f = fixture("adam");
        Buf p = f.get("p0").buf(DataType.FLOAT);
        Adam adam = new Adam(p, 1e-3);
        for (int step = 1; step <= 3; step++) {
            adam.apply(p, f.get("grad" + step).buf(DataType.FLOAT));
            Tensor expected = f.get("p" + step);
            for (int i = 0; i < expected.size(); i++) {
                assertEquals(expected.values()[i], p.get(i), 1e-6 * Math.max(1, Math.abs(expected.values()[i])), "step " + step + " parameter " + i);
            }
        }
    }

    /**
     * One training step of the seed network from PyTorch's weights (float32 there): the loss, every
     * gradient, the running statistics and the parameters after Adam, on the reference path (double, so the
     * difference is PyTorch's float rounding) and on the fast path (float, the kernels this program trains with).
     */
    @Test
    void oneTrainingStepOfTheSeedNetwork() throws IOException {
        Map<String, Tensor> f = fixture("seed-network-step");
        int n = f.get("x").shape()[0];
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) labels[i] = (int) f.get("labels").values()[i];
        for (ConvNet.Kernels kernels : ConvNet.Kernels.values()) {
            try (ConvNet net = new ConvNet(NetSpec.defaultFor(1, 28, 28, 10), n, 1, kernels)) {
                net.init(0); // running statistics 0 and 1; the parameters are PyTorch's
                Tensor params = f.get("params");
                assertEquals(params.size(), net.paramCount(), "the same parameters in the same order");
                for (int i = 0; i < params.size(); i++) net.params.set(i, params.values()[i]);
                for (int i = 0; i < f.get("x").size(); i++) net.input.set(i, f.get("x").values()[i]);
                SoftmaxCrossEntropy.Result r = net.trainStep(n, labels, n);
                double loss = f.get("loss").values()[0];
                assertEquals(loss, r.lossSum() / n, 1e-6 * loss, kernels + " loss");
                assertClose(f.get("grads"), net.grads, 2e-6, kernels + " gradients"); // measured: at most 7e-7 (PyTorch in float32)
                assertClose(f.get("state_after"), net.state, FLOAT_TOLERANCE, kernels + " running statistics");
                Buf p = Buf.zeros(DataType.FLOAT, net.paramCount()), g = Buf.zeros(DataType.FLOAT, net.paramCount()); // Adam works in float
                p.copyFrom(net.params);
                g.copyFrom(net.grads);
                new Adam(p, 1e-3).apply(p, g);
                assertClose(f.get("params_after"), p, FLOAT_TOLERANCE, kernels + " parameters after Adam");
            }
        }
    }
}
