package dev.syncbn.nn;

import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The float convolutions against the same layer in double (ND4J's conv2d and conv2d_bp, and the
 * gradient-checked weightGradOnly): the first layer's direct kernel (Conv2d.forwardDirect and its weight
 * gradient) and oneDNN's primitives (OneDnnConv).
 */
class FloatConvTest {
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
            fillAlike(rng, fp, dp);
            int inLength = maxBatch * Layer.size(in), outLength = maxBatch * Layer.size(fast.outShape());
            Buf fx = Buf.zeros(DataType.FLOAT, inLength), dx = Buf.zeros(DataType.DOUBLE, inLength);
            Buf fdy = Buf.zeros(DataType.FLOAT, outLength), ddy = Buf.zeros(DataType.DOUBLE, outLength);
            for (int step = 0; step < 2; step++) { // twice: nothing of the first batch may leak into the second
                fillAlike(rng, fx, dx);
                fillAlike(rng, fdy, ddy);
                String what = Arrays.toString(c) + " step " + step;
                assertClose(fast.forward(fx, n, true), ref.forward(dx, n, true), n * Layer.size(fast.outShape()), "forward " + what);
                assertNull(fast.backward(fdy, n));
                ref.backward(ddy, n);
                assertClose(fg, dg, params, "weight gradient " + what);
            }
        }
    }

    /**
     * Strides 1 and 2, a 1x1 projection, channel counts that are not multiples of oneDNN's block of 8, a
     * 5x5 window; batch sizes that each get their own primitives, with one set of blocked copies that
     * grows when a larger batch comes (3, then 5), then a smaller one and the first again.
     */
    @Test
    void oneDnnMatchesTheDoubleReferenceAtEveryBatchSize() {
        Random rng = new Random(4);
        int[][] cases = {{16, 28, 28, 16, 3, 1, 1}, {16, 28, 28, 32, 3, 2, 1}, {16, 28, 28, 32, 1, 2, 0}, {3, 7, 5, 4, 3, 1, 1}, {5, 9, 6, 3, 5, 1, 2}};
        for (int[] c : cases) {
            int[] in = {c[0], c[1], c[2]};
            int outC = c[3], k = c[4], stride = c[5], pad = c[6], maxBatch = 5;
            Conv2d fast = new Conv2d(in, outC, k, stride, pad, false, true, maxBatch, parallel, DataType.FLOAT);
            Conv2d ref = new Conv2d(in, outC, k, stride, pad, false, true, maxBatch, parallel, DataType.DOUBLE);
            int params = fast.paramCount();
            Buf fp = Buf.zeros(DataType.FLOAT, params), fg = Buf.zeros(DataType.FLOAT, params);
            Buf dp = Buf.zeros(DataType.DOUBLE, params), dg = Buf.zeros(DataType.DOUBLE, params);
            fast.bindParams(fp, fg, 0);
            ref.bindParams(dp, dg, 0);
            int inLength = maxBatch * Layer.size(in), outLength = maxBatch * Layer.size(fast.outShape());
            Buf fx = Buf.zeros(DataType.FLOAT, inLength), dx = Buf.zeros(DataType.DOUBLE, inLength);
            Buf fdy = Buf.zeros(DataType.FLOAT, outLength), ddy = Buf.zeros(DataType.DOUBLE, outLength);
            for (int n : new int[] {3, 5, 1, 3}) {
                fillAlike(rng, fp, dp);
                fillAlike(rng, fx, dx);
                fillAlike(rng, fdy, ddy);
                String what = Arrays.toString(c) + " batch " + n;
                assertClose(fast.forward(fx, n, true), ref.forward(dx, n, true), n * Layer.size(fast.outShape()), "forward " + what);
                assertClose(fast.backward(fdy, n), ref.backward(ddy, n), n * Layer.size(in), "input gradient " + what);
                // a weight's gradient sums n x 28 x 28 products in float: sqrt(3920) x 2^-24 is 4e-6
                assertClose(fg, dg, params, 1e-5, "weight gradient " + what);
            }
            // made at the first forward, after the network's own buffers: the layer's close frees them
            List<Buf> scratch = fast.oneDnnScratch();
            assertFalse(scratch.isEmpty());
            fast.close();
            assertTrue(scratch.stream().allMatch(Buf::isClosed), "blocked copies freed");
        }
    }

    /** Random values into the float buffer, and the same float values into the double one: only the arithmetic differs. */
    private static void fillAlike(Random rng, Buf f, Buf d) {
        for (int i = 0; i < f.length(); i++) {
            f.set(i, rng.nextGaussian());
            d.set(i, f.get(i));
        }
    }

    private static void assertClose(Buf actual, Buf expected, int length, String what) {
        assertClose(actual, expected, length, 2e-6, what);
    }

    private static void assertClose(Buf actual, Buf expected, int length, double tolerance, String what) {
        double err = 0, max = 1e-30;
        for (int i = 0; i < length; i++) {
            err = Math.max(err, Math.abs(actual.get(i) - expected.get(i)));
            max = Math.max(max, Math.abs(expected.get(i)));
        }
        assertTrue(err / max < tolerance, what + ": relative error " + err / max);
    }
}
