package dev.syncbn.nn;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The fused float kernel against the reference layers it replaces (BatchNorm2d with ReLU, then MaxPool2d), both in float. */
class BnReluPoolTest {
    private static final DataType F = DataType.FLOAT;
    private final Parallel parallel = new Parallel(2);

    private record Pair(BnStatistics fusedBn, BnReluPool fused, BatchNorm2d bn, MaxPool2d pool, Buf fusedGrads, Buf grads, Buf fusedState, Buf state) {}

    private Pair build(int[] shape, int n, Random rng) {
        int c = shape[0];
        Buf params = Buf.zeros(F, 2 * c);
        for (int i = 0; i < c; i++) {
            params.set(i, rng.nextGaussian()); // gamma, of either sign
            params.set(c + i, rng.nextGaussian() * 0.5);
        }
        BnStatistics fusedBn = new BnStatistics(shape, 0);
        BatchNorm2d bn = new BatchNorm2d(shape, 0, true, n, parallel, F);
        BnReluPool fused = new BnReluPool(fusedBn, 2, n, parallel);
        MaxPool2d pool = new MaxPool2d(shape, 2, n, parallel, F);
        Buf fusedGrads = Buf.zeros(F, 2 * c), grads = Buf.zeros(F, 2 * c), fusedState = Buf.zeros(F, 2 * c), state = Buf.zeros(F, 2 * c);
        fused.bindParams(params, fusedGrads, 0);
        bn.bindParams(params, grads, 0);
        fusedBn.bindState(fusedState, 0);
        bn.statistics().bindState(state, 0);
        fusedBn.initState();
        bn.statistics().initState();
        return new Pair(fusedBn, fused, bn, pool, fusedGrads, grads, fusedState, state);
    }

    private static Buf random(int length, Random rng, double scale, double shift) {
        Buf b = Buf.zeros(F, length);
        for (int i = 0; i < length; i++) b.set(i, rng.nextGaussian() * scale + shift);
        return b;
    }

    /** Largest |a - b| over the first length elements, relative to the largest |b|. */
    private static double relativeError(Buf a, Buf b, int length) {
        double err = 0, max = 1e-30;
        for (int i = 0; i < length; i++) {
            err = Math.max(err, Math.abs(a.get(i) - b.get(i)));
            max = Math.max(max, Math.abs(b.get(i)));
        }
        return err / max;
    }

    @Test
    void matchesBatchNormReluThenMaxPool() {
        Random rng = new Random(7);
        // Even and odd planes (floor mode drops the last row and column), a mean far from 0, and a batch
        // smaller than the buffers.
        for (int[] shape : new int[][] {{3, 6, 8}, {4, 7, 5}, {2, 28, 28}}) {
            int max = 5, n = 4, in = n * shape[0] * shape[1] * shape[2];
            Pair p = build(shape, max, rng);
            int outLength = n * Layer.size(p.pool.outShape());
            for (int step = 0; step < 3; step++) {
                Buf x = random(max * Layer.size(shape), rng, 2, step == 1 ? 5 : 0);
                Buf fusedOut = p.fused.forward(x, n, true);
                Buf refOut = p.pool.forward(p.bn.forward(x, n, true), n, true);
                assertTrue(relativeError(fusedOut, refOut, outLength) < 1e-5, "forward " + Arrays.toString(shape));
                assertTrue(relativeError(p.fusedState, p.state, p.state.length()) < 1e-5, "running statistics");

                Buf dy = random(max * Layer.size(p.pool.outShape()), rng, 1, 0);
                Buf fusedDx = p.fused.backward(dy, n);
                Buf refDx = p.bn.backward(p.pool.backward(dy, n), n);
                assertTrue(relativeError(fusedDx, refDx, in) < 1e-4, "dx " + relativeError(fusedDx, refDx, in));
                assertTrue(relativeError(p.fusedGrads, p.grads, p.grads.length()) < 1e-4, "dgamma, dbeta");
            }
            Buf x = random(max * Layer.size(shape), rng, 2, 1);
            Buf fusedEval = p.fused.forward(x, n, false);
            Buf refEval = p.pool.forward(p.bn.forward(x, n, false), n, false);
            assertTrue(relativeError(fusedEval, refEval, outLength) < 1e-5, "evaluation forward");
            assertEquals(0, fusedEval.get(outLength), "nothing written past the batch");
        }
    }
}
