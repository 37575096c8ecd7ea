package dev.syncbn.coord;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.syncbn.nn.BnMode;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The step arithmetic without sockets: sums equal folding the parts in rank order, whatever order they arrive in. */
class StepAggregatorTest {
    static final int W = 4, PARAMS = 1000, STATE = 6;
    static final int[] CHANNELS = {3, 5};

    static StepAggregator.Contribution contribution(int rank) {
        SplittableRandom rng = new SplittableRandom(rank);
        float[] g = new float[PARAMS], st = new float[STATE];
        for (int i = 0; i < PARAMS; i++) g[i] = (float) (rng.nextDouble() - 0.5) * (float) Math.pow(10, rng.nextInt(8) - 4);
        for (int i = 0; i < STATE; i++) st[i] = rank + i;
        return new StepAggregator.Contribution(8 + rank, 1.5 * rank, rank, 0.01 * rank, 0.001, g, st);
    }

    @Test
    void gradientSumIsTheRankOrderFoldWhateverTheArrivalOrder() throws Exception {
        double[] expected = new double[PARAMS];
        for (int r = 0; r < W; r++) for (int i = 0; i < PARAMS; i++) expected[i] += contribution(r).grad()[i];
        for (int[] arrival : new int[][] {{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}}) {
            StepAggregator a = new StepAggregator(W, BnMode.parse("sync", W), PARAMS, STATE, CHANNELS);
            for (int k = 0; k < W; k++) assertEquals(k == W - 1, a.addGradient(arrival[k], contribution(arrival[k])));
            StepAggregator.StepReport r = a.sum(2, 7);
            assertArrayEquals(expected, r.gradSum(), 0.0, "arrival " + java.util.Arrays.toString(arrival)); // bitwise
            assertEquals(8 + 9 + 10 + 11, r.count());
            assertEquals(6, r.correct());
            assertEquals(9.0, r.lossSum(), 1e-12);
            assertEquals(0.015, r.computeS(), 1e-12);
            for (int k = 0; k < W; k++) assertEquals(k, r.states()[k][0]);
            assertEquals(7, r.step());
        }
    }

    @Test
    void bnSumsAreTakenPerGroupOnlyWhenTheGroupIsComplete() throws Exception {
        StepAggregator a = new StepAggregator(W, BnMode.parse("group:2", W), PARAMS, STATE, CHANNELS);
        int length = a.bnLength(1, true);
        assertEquals(11, length);
        double[][] parts = new double[W][length];
        for (int r = 0; r < W; r++) for (int i = 0; i < length; i++) parts[r][i] = 0.1 * (r + 1) + i;
        a.addBn(0, 1, true, 3, parts[3]);
        assertNull(a.bnSum(0, 1, true, 2));
        a.addBn(0, 1, true, 0, parts[0]);
        assertNull(a.bnSum(0, 1, true, 0), "rank 1 of group 0 is missing");
        a.addBn(0, 1, true, 2, parts[2]);
        double[] group1 = a.bnSum(0, 1, true, 3);
        for (int i = 0; i < length; i++) assertEquals(parts[2][i] + parts[3][i], group1[i], 0.0);
        assertNull(a.bnSum(0, 1, false, 3), "the backward of the same layer is another sum");
        a.addBn(0, 1, true, 1, parts[1]);
        assertEquals(parts[0][0] + parts[1][0], a.bnSum(0, 1, true, 1)[0], 0.0);
        a.clear();
        assertNull(a.bnSum(0, 1, true, 1));
    }

    @Test
    void malformedOrRepeatedPartsAreRefused() throws Exception {
        StepAggregator a = new StepAggregator(W, BnMode.parse("sync", W), PARAMS, STATE, CHANNELS);
        assertThrows(Wire.ProtocolException.class, () -> a.addBn(0, 2, true, 0, new double[5]));
        assertThrows(Wire.ProtocolException.class, () -> a.addBn(0, 0, false, 0, new double[7]));
        assertThrows(Wire.ProtocolException.class, () -> a.addBn(0, 0, true, W, new double[7]));
        a.addBn(0, 0, true, 0, new double[7]);
        assertThrows(Wire.ProtocolException.class, () -> a.addBn(0, 0, true, 0, new double[7]));
        assertFalse(a.addGradient(1, contribution(1)));
        assertThrows(Wire.ProtocolException.class, () -> a.addGradient(1, contribution(1)));
        assertThrows(Wire.ProtocolException.class, () -> a.addGradient(2, new StepAggregator.Contribution(1, 0, 2, 0, 0, new float[PARAMS], new float[STATE])));
        assertThrows(Wire.ProtocolException.class, () -> a.addGradient(2, new StepAggregator.Contribution(1, 0, 0, 0, 0, new float[3], new float[STATE])));
        assertThrows(IllegalStateException.class, () -> a.sum(0, 0));
        StepAggregator local = new StepAggregator(W, BnMode.parse("local", W), PARAMS, STATE, CHANNELS);
        assertTrue(assertThrows(Wire.ProtocolException.class, () -> local.addBn(0, 0, true, 0, new double[7])).getMessage().contains("local"));
    }
}
