package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The step arithmetic without sockets: sums equal folding the parties' parts in rank order, whatever order they arrive in. */
class StepAggregatorTest {
    static final int W = 4, PARAMS = 1000, STATE = 6;
    static final int[] CHANNELS = {3, 5};

    static StepAggregator.Contribution contribution(int rank) {
        SplittableRandom rng = new SplittableRandom(rank);
        float[] g = new float[PARAMS], st = new float[STATE];
        for (int i = 0; i < PARAMS; i++) g[i] = (float) (rng.nextDouble() - 0.5) * (float) Math.pow(10, rng.nextInt(8) - 4);
        for (int i = 0; i < STATE; i++) st[i] = rank + i;
        return new StepAggregator.Contribution(8 + rank, 1.5 * rank, rank, 0.01 * rank, 0.01 * rank, 0.001, g, st);
    }

    static int[] ranks(int... r) {
        return r;
    }

    @Test
    void gradientSumIsTheRankOrderFoldWhateverTheArrivalOrder() throws Exception {
        double[] expected = new double[PARAMS];
        for (int r = 0; r < W; r++) for (int i = 0; i < PARAMS; i++) expected[i] += contribution(r).grad()[i];
        for (int[] arrival : new int[][] {{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}}) {
            StepAggregator a = new StepAggregator(W, BnMode.parse("sync", W), PARAMS, STATE, CHANNELS);
            for (int k = 0; k < W; k++) assertEquals(k == W - 1, a.addGradient(ranks(arrival[k]), contribution(arrival[k]), true));
            StepAggregator.StepReport r = a.sum(2, 7);
            assertArrayEquals(expected, r.gradSum(), 0.0, "arrival " + Arrays.toString(arrival)); // bitwise
            assertEquals(8 + 9 + 10 + 11, r.count());
            assertEquals(6, r.correct());
            assertEquals(9.0, r.lossSum(), 1e-12);
            assertEquals(0.015, r.computeS(), 1e-12, "mean compute");
            assertEquals(0.03, r.slowestComputeS(), 1e-12, "the slowest replica's compute");
            for (int i = 0; i < STATE; i++) assertEquals(1.5 + i, r.meanState()[i], 1e-6, "running statistics averaged over the replicas");
            assertEquals(7, r.step());
        }
    }

    /** Parties of 2 and 1 and 1 ranks: complete only when every rank is in; summed in the order of the parties' lowest ranks. */
    @Test
    void partiesSpeakForSeveralRanks() throws Exception {
        StepAggregator.Contribution c01 = contribution(0), c2 = contribution(2), c3 = contribution(3);
        double[] expected = new double[PARAMS];
        for (StepAggregator.Contribution c : new StepAggregator.Contribution[] {c01, c2, c3}) for (int i = 0; i < PARAMS; i++) expected[i] += c.grad()[i];
        for (boolean reversed : new boolean[] {false, true}) {
            StepAggregator a = new StepAggregator(W, BnMode.parse("sync", W), PARAMS, STATE, CHANNELS);
            if (reversed) {
                assertFalse(a.addGradient(ranks(3), c3, true));
                assertFalse(a.addGradient(ranks(2), c2, true));
                assertTrue(a.addGradient(ranks(0, 1), c01, true));
            } else {
                assertFalse(a.addGradient(ranks(0, 1), c01, true));
                assertFalse(a.addGradient(ranks(2), c2, true));
                assertTrue(a.addGradient(ranks(3), c3, true));
            }
            assertArrayEquals(expected, a.sum(0, 0).gradSum(), 0.0);
        }
        StepAggregator a = new StepAggregator(W, BnMode.parse("sync", W), PARAMS, STATE, CHANNELS);
        a.addGradient(ranks(0, 1), c01, true);
        assertThrows(Wire.ProtocolException.class, () -> a.addGradient(ranks(1, 2), c2, true), "rank 1 handed in twice");
        assertThrows(Wire.ProtocolException.class, () -> a.addGradient(ranks(3, 2), c2, true), "ranks not ascending");
        assertThrows(Wire.ProtocolException.class, () -> a.addGradient(ranks(), c2, true), "no ranks");
    }

    /**
     * Running statistics come every STATISTICS_EVERY steps and at the epoch's last, all or nothing: a
     * party that sends them out of turn, or not in turn, is refused.
     */
    @Test
    void runningStatisticsComeOnlyWhenDue() throws Exception {
        int k = StepAggregator.STATISTICS_EVERY;
        assertFalse(StepAggregator.statisticsDue(0, 100));
        assertTrue(StepAggregator.statisticsDue(k - 1, 100), "the end of the first interval");
        assertFalse(StepAggregator.statisticsDue(k, 100));
        assertTrue(StepAggregator.statisticsDue(99, 100), "the epoch's last step");
        assertTrue(StepAggregator.statisticsDue(0, 1));
        StepAggregator a = new StepAggregator(W, BnMode.parse("sync", W), PARAMS, STATE, CHANNELS);
        StepAggregator.Contribution with = contribution(0), without = new StepAggregator.Contribution(8, 1, 0, 0, 0, 0, with.grad(),
                StepAggregator.NO_STATISTICS);
        assertThrows(Wire.ProtocolException.class, () -> a.addGradient(ranks(0), with, false), "statistics out of turn");
        assertThrows(Wire.ProtocolException.class, () -> a.addGradient(ranks(0), without, true), "statistics missing");
        for (int r = 0; r < W; r++) a.addGradient(ranks(r), without, false);
        StepAggregator.StepReport report = a.sum(1, 3);
        assertNull(report.meanState(), "no statistics at this step");
        assertEquals(4 * 8, report.count());
    }

    @Test
    void sharedGroupsAreThoseWithMembersOutsideTheParty() {
        assertArrayEquals(new int[0], StepAggregator.sharedGroups(BnMode.parse("local", 8), ranks(0, 1, 2, 3)));
        assertArrayEquals(new int[0], StepAggregator.sharedGroups(BnMode.parse("sync", 4), ranks(0, 1, 2, 3)));
        assertArrayEquals(new int[] {0}, StepAggregator.sharedGroups(BnMode.parse("sync", 8), ranks(4, 5)));
        assertArrayEquals(new int[] {1}, StepAggregator.sharedGroups(BnMode.parse("group:4", 8), ranks(0, 1, 2, 3, 4)));
        assertArrayEquals(new int[] {0, 2}, StepAggregator.sharedGroups(BnMode.parse("group:2", 6), ranks(1, 2, 3, 4)));
    }

    @Test
    void bnSumsAreTakenPerGroupOnlyWhenTheGroupIsComplete() throws Exception {
        StepAggregator a = new StepAggregator(W, BnMode.parse("group:2", W), PARAMS, STATE, CHANNELS);
        int length = a.bnLength(1, true);
        assertEquals(11, length);
        double[][] parts = new double[W][length];
        for (int r = 0; r < W; r++) for (int i = 0; i < length; i++) parts[r][i] = 0.1 * (r + 1) + i;
        a.addBn(0, 1, true, ranks(3), parts[3]);
        assertNull(a.bnSums(0, 1, true, ranks(2)));
        a.addBn(0, 1, true, ranks(0), parts[0]);
        assertNull(a.bnSums(0, 1, true, ranks(0)), "rank 1 of group 0 is missing");
        a.addBn(0, 1, true, ranks(2), parts[2]);
        double[] group1 = a.bnSums(0, 1, true, ranks(3));
        for (int i = 0; i < length; i++) assertEquals(parts[2][i] + parts[3][i], group1[i], 0.0);
        assertNull(a.bnSums(0, 1, false, ranks(3)), "the backward of the same layer is another sum");
        a.addBn(0, 1, true, ranks(1), parts[1]);
        assertEquals(parts[0][0] + parts[1][0], a.bnSums(0, 1, true, ranks(1))[0], 0.0);
        a.clear();
        assertNull(a.bnSums(0, 1, true, ranks(1)));
    }

    /** Sync over 4 ranks from parties {0}, {1, 2}, {3}: the middle party sends its two members' sum as one part. */
    @Test
    void aPartysBnPartCoversAllItsMembers() throws Exception {
        StepAggregator a = new StepAggregator(W, BnMode.parse("sync", W), PARAMS, STATE, CHANNELS);
        int length = a.bnLength(0, false);
        double[] p0 = new double[length], p12 = new double[length], p3 = new double[length];
        for (int i = 0; i < length; i++) {
            p0[i] = 1 + i;
            p12[i] = 10 + i;
            p3[i] = 100 + i;
        }
        a.addBn(5, 0, false, ranks(1, 2), p12);
        a.addBn(5, 0, false, ranks(3), p3);
        assertNull(a.bnSums(5, 0, false, ranks(3)), "rank 0 is missing");
        a.addBn(5, 0, false, ranks(0), p0);
        double[] total = a.bnSums(5, 0, false, ranks(1, 2));
        for (int i = 0; i < length; i++) assertEquals(p0[i] + p12[i] + p3[i], total[i], 0.0);
        StepAggregator whole = new StepAggregator(W, BnMode.parse("sync", W), PARAMS, STATE, CHANNELS);
        assertThrows(Wire.ProtocolException.class, () -> whole.addBn(5, 0, false, ranks(0, 1, 2, 3), p0), "a party holding the whole group sends nothing");
    }

    @Test
    void malformedOrRepeatedPartsAreRefused() throws Exception {
        StepAggregator a = new StepAggregator(W, BnMode.parse("sync", W), PARAMS, STATE, CHANNELS);
        assertThrows(Wire.ProtocolException.class, () -> a.addBn(0, 2, true, ranks(0), new double[5]));
        assertThrows(Wire.ProtocolException.class, () -> a.addBn(0, 0, false, ranks(0), new double[7]));
        assertThrows(Wire.ProtocolException.class, () -> a.addBn(0, 0, true, ranks(W), new double[7]));
        a.addBn(0, 0, true, ranks(0), new double[7]);
        assertThrows(Wire.ProtocolException.class, () -> a.addBn(0, 0, true, ranks(0), new double[7]));
        assertFalse(a.addGradient(ranks(1), contribution(1), true));
        assertThrows(Wire.ProtocolException.class, () -> a.addGradient(ranks(1), contribution(1), true));
        StepAggregator.Contribution moreRightThanCounted = new StepAggregator.Contribution(1, 0, 2, 0, 0, 0, new float[PARAMS], new float[STATE]);
        StepAggregator.Contribution shortGradient = new StepAggregator.Contribution(1, 0, 0, 0, 0, 0, new float[3], new float[STATE]);
        assertThrows(Wire.ProtocolException.class, () -> a.addGradient(ranks(2), moreRightThanCounted, true));
        assertThrows(Wire.ProtocolException.class, () -> a.addGradient(ranks(2), shortGradient, true));
        assertThrows(IllegalStateException.class, () -> a.sum(0, 0));
        StepAggregator local = new StepAggregator(W, BnMode.parse("local", W), PARAMS, STATE, CHANNELS);
        assertTrue(assertThrows(Wire.ProtocolException.class, () -> local.addBn(0, 0, true, ranks(0), new double[7])).getMessage().contains("local"));
    }
}
