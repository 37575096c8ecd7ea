package dev.syncbn.nn;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static dev.syncbn.nn.BnTwins.F;
import static dev.syncbn.nn.BnTwins.random;
import static dev.syncbn.nn.BnTwins.relativeError;

/**
 * The residual networks' fused float BN (BN + ReLU, and BN + add + ReLU) against BatchNorm2d followed by
 * the add and ReLU, both in float: on NCHW activations (lanes 1) and on blocked ones (lanes 8, nChw8c,
 * compared after putting them back in NCHW order).
 */
class FusedBnTest {
    private final Parallel parallel = new Parallel(2);

    @Test
    void matchesBatchNormThenAddAndRelu() {
        Random rng = new Random(11);
        for (int lanes : new int[] {1, OneDnnConv.BLOCK}) {
            for (boolean residual : new boolean[] {false, true}) {
                for (int[] shape : new int[][] {{16, 5, 3}, {8, 7, 7}, {8, 13, 11}}) { // the last: rows of 1,144 values in nChw8c, taken in two chunks
                    check(shape, lanes, residual, rng);
                }
            }
        }
    }

    private void check(int[] shape, int lanes, boolean residual, Random rng) {
        int c = shape[0], max = 5, n = 4, size = Layer.size(shape), length = n * size;
        String what = Arrays.toString(shape) + " lanes " + lanes + (residual ? " with the add" : "");
        FusedBn fused = new FusedBn(new BnStatistics(shape, 0), true, residual, lanes, max, parallel);
        BatchNorm2d bn = new BatchNorm2d(shape, 0, !residual, max, parallel, F);
        BnTwins t = new BnTwins(fused, bn, rng);
        for (int step = 0; step < 3; step++) {
            Buf x = random(max * size, rng, 2, step == 1 ? 5 : 0), shortcut = random(max * size, rng, 1, 0);
            Buf out = residual ? fused.forward(layout(x, shape, n, lanes), layout(shortcut, shape, n, lanes), n, true)
                    : fused.forward(layout(x, shape, n, lanes), n, true);
            Buf expected = bn.forward(x, n, true);
            Buf sum = Buf.zeros(F, max * size);
            for (int i = 0; i < length; i++) sum.set(i, residual ? Math.max(0, expected.get(i) + shortcut.get(i)) : expected.get(i));
            assertClose(sum, nchw(out, shape, n, lanes), length, 1e-5, "forward " + what);
            assertClose(t.state, t.fusedState, 2 * c, 1e-5, "running statistics " + what);

            Buf dy = random(max * size, rng, 1, 0), atSum = Buf.zeros(F, max * size);
            for (int i = 0; i < length; i++) atSum.set(i, sum.get(i) > 0 ? dy.get(i) : 0);
            Buf dx = fused.backward(layout(dy, shape, n, lanes), n);
            Buf expectedDx = bn.backward(residual ? atSum : dy, n);
            assertClose(expectedDx, nchw(dx, shape, n, lanes), length, 1e-4, "dx " + what);
            assertClose(t.grads, t.fusedGrads, 2 * c, 1e-4, "dgamma, dbeta " + what);
            if (residual) assertClose(atSum, nchw(fused.residualGradient(), shape, n, lanes), length, 1e-6, "the shortcut's gradient " + what);
        }
    }

    /** x (NCHW) in the layout of lanes: itself, or channels interleaved in blocks of lanes. */
    private static Buf layout(Buf x, int[] shape, int n, int lanes) {
        if (lanes == 1) return x;
        Buf b = Buf.zeros(F, x.length());
        for (int i = 0; i < n * Layer.size(shape); i++) b.set(blockedIndex(i, shape, lanes), x.get(i));
        return b;
    }

    /** The inverse of layout. */
    private static Buf nchw(Buf b, int[] shape, int n, int lanes) {
        if (lanes == 1) return b;
        Buf x = Buf.zeros(F, b.length());
        for (int i = 0; i < n * Layer.size(shape); i++) x.set(i, b.get(blockedIndex(i, shape, lanes)));
        return x;
    }

    /** Where NCHW element i sits in nChw(lanes)c. */
    private static int blockedIndex(int i, int[] shape, int lanes) {
        int plane = shape[1] * shape[2], size = shape[0] * plane;
        int s = i / size, c = i % size / plane, p = i % plane;
        return ((s * (shape[0] / lanes) + c / lanes) * plane + p) * lanes + c % lanes;
    }

    private static void assertClose(Buf expected, Buf actual, int length, double tolerance, String what) {
        double err = relativeError(actual, expected, length);
        assertTrue(err <= tolerance, what + ": relative error " + err);
    }
}
