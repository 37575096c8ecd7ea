package dev.syncbn.nn;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The first layer's direct float kernel (Conv2d.forwardDirect and its weight gradient) against the same
 * layer in double, which runs ND4J's conv2d and the gradient-checked weightGradOnly.
 */
class DirectConvTest {
    private final Parallel parallel = new Parallel(2);

    @Test
    void matchesTheDoubleReference() {
        Random rng = new Random(3);
        // One input channel 28x28 (the first layer), several channels on a non-square plane, a 5x5 window.
        int[][] cases = {{1, 28, 28, 8, 3}, {3, 7, 5, 4, 3}, {2, 9, 6, 3, 5}};
        for (int[] c : cases) {
            int[] in = {c[0], c[1], c[2]};
            int outC = c[3], k = c[4], maxBatch = 5, n = 4;
            Conv2d fast = new Conv2d(in, outC, k, 1, k / 2, false, false, maxBatch, parallel, DataType.FLOAT);
            Conv2d ref = new Conv2d(in, outC, k, 1, k / 2, false, false, maxBatch, parallel, DataType.DOUBLE);
            int params = fast.paramCount();
            Buf fp = Buf.zeros(DataType.FLOAT, params), fg = Buf.zeros(DataType.FLOAT, params);
            Buf dp = Buf.zeros(DataType.DOUBLE, params), dg = Buf.zeros(DataType.DOUBLE, params);
            fast.bindParams(fp, fg, 0);
            ref.bindParams(dp, dg, 0);
            for (int i = 0; i < params; i++) {
                double w = rng.nextGaussian();
                fp.set(i, w);
                dp.set(i, fp.get(i)); // the float value, so only the arithmetic differs
            }
            int inLength = maxBatch * Layer.size(in), outLength = maxBatch * Layer.size(fast.outShape());
            Buf fx = Buf.zeros(DataType.FLOAT, inLength), dx = Buf.zeros(DataType.DOUBLE, inLength);
            Buf fdy = Buf.zeros(DataType.FLOAT, outLength), ddy = Buf.zeros(DataType.DOUBLE, outLength);
            for (int step = 0; step < 2; step++) { // twice: nothing of the first batch may leak into the second
                for (int i = 0; i < inLength; i++) {
                    fx.set(i, rng.nextGaussian());
                    dx.set(i, fx.get(i));
                }
                for (int i = 0; i < outLength; i++) {
                    fdy.set(i, rng.nextGaussian());
                    ddy.set(i, fdy.get(i));
                }
                String what = Arrays.toString(c) + " step " + step;
                assertClose(fast.forward(fx, n, true), ref.forward(dx, n, true), n * Layer.size(fast.outShape()), "forward " + what);
                assertNull(fast.backward(fdy, n));
                ref.backward(ddy, n);
                assertClose(fg, dg, params, "weight gradient " + what);
            }
        }
    }

    private static void assertClose(Buf actual, Buf expected, int length, String what) {
        double err = 0, max = 1e-30;
        for (int i = 0; i < length; i++) {
            err = Math.max(err, Math.abs(actual.get(i) - expected.get(i)));
            max = Math.max(max, Math.abs(expected.get(i)));
        }
        assertTrue(err / max < 2e-6, what + ": relative error " + err / max);
    }
}
