package dev.syncbn.nn;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static dev.syncbn.nn.BnTwins.F;
import static dev.syncbn.nn.BnTwins.random;
import static dev.syncbn.nn.BnTwins.relativeError;

/** The fused float kernel against the reference layers it replaces (BatchNorm2d with ReLU, then MaxPool2d), both in float. */
class BnReluPoolTest {
    private final Parallel parallel = new Parallel(2);

    private record Pair(BnReluPool fused, BatchNorm2d bn, MaxPool2d pool, BnTwins twins) {}

    private Pair build(int[] shape, int n, Random rng) {
        BnReluPool fused = new BnReluPool(new BnStatistics(shape, 0), 2, n, parallel);
        BatchNorm2d bn = new BatchNorm2d(shape, 0, true, n, parallel, F);
        return new Pair(fused, bn, new MaxPool2d(shape, 2, n, parallel, F), new BnTwins(fused, bn, rng));
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
                assertTrue(relativeError(p.twins.fusedState, p.twins.state, p.twins.state.length()) < 1e-5, "running statistics");

                Buf dy = random(max * Layer.size(p.pool.outShape()), rng, 1, 0);
                Buf fusedDx = p.fused.backward(dy, n);
                Buf refDx = p.bn.backward(p.pool.backward(dy, n), n);
                assertTrue(relativeError(fusedDx, refDx, in) < 1e-4, "dx " + relativeError(fusedDx, refDx, in));
                assertTrue(relativeError(p.twins.fusedGrads, p.twins.grads, p.twins.grads.length()) < 1e-4, "dgamma, dbeta");
            }
            Buf x = random(max * Layer.size(shape), rng, 2, 1);
            Buf fusedEval = p.fused.forward(x, n, false);
            Buf refEval = p.pool.forward(p.bn.forward(x, n, false), n, false);
            assertTrue(relativeError(fusedEval, refEval, outLength) < 1e-5, "evaluation forward");
            assertEquals(0, fusedEval.get(outLength), "nothing written past the batch");
        }
    }
}
