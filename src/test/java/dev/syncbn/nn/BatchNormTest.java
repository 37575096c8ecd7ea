package dev.syncbn.nn;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

import static org.junit.jupiter.api.Assertions.assertEquals;

class BatchNormTest {
    private static final DataType D = DataType.DOUBLE;
    private static final int C = 3, H = 2, W = 3, PLANE = H * W;
    private final Parallel parallel = new Parallel(2);

    private BatchNorm2d bn(int maxBatch, double[] gamma, double[] beta) {
        BatchNorm2d bn = new BatchNorm2d(new int[] {C, H, W}, 0, false, Math.max(1, maxBatch), parallel, D);
        bn.bindParams(paramsOf(gamma, beta), Buf.zeros(D, 2 * C), 0);
        bn.statistics().bindState(Buf.zeros(D, 2 * C), 0);
        bn.statistics().initState();
        return bn;
    }

    private static Buf copy(Buf src, int from, int count) {
        Buf b = Buf.zeros(D, Math.max(1, count));
        for (int i = 0; i < count; i++) b.set(i, src.get(from + i));
        return b;
    }

    @Test
    void trainingAndEvaluationModesMatchIndependentComputation() {
        int n = 4;
        double[] gamma = {1.5, -0.5, 2}, beta = {0.1, 0.2, -0.3};
        BatchNorm2d bn = bn(n, gamma, beta);
        Buf x = GradCheck.randomBuf(n * C * PLANE, new Random(1));
        for (int i = 0; i < x.length(); i++) x.set(i, x.get(i) * 3 + 5); // mean far from 0
        Buf y = bn.forward(x, n, true);

        Buf params = Buf.zeros(D, 1), grads = Buf.zeros(D, 1);
        double[] rm = new double[C], rv = new double[C];
        for (int c = 0; c < C; c++) {
            List<Double> vals = new ArrayList<>();
            for (int s = 0; s < n; s++) for (int p = 0; p < PLANE; p++) vals.add(x.get((s * C + c) * PLANE + p));
            double mean = vals.stream().mapToDouble(v -> v).average().orElseThrow();
            double ss = vals.stream().mapToDouble(v -> (v - mean) * (v - mean)).sum();
            double biased = ss / vals.size(), unbiased = ss / (vals.size() - 1);
            for (int s = 0; s < n; s++) {
                for (int p = 0; p < PLANE; p++) {
                    int i = (s * C + c) * PLANE + p;
                    assertEquals(gamma[c] * (x.get(i) - mean) / Math.sqrt(biased + 1e-5) + beta[c], y.get(i), 1e-9);
                }
            }
            rm[c] = 0.9 * 0 + 0.1 * mean;
            rv[c] = 0.9 * 1 + 0.1 * unbiased;
        }
        // running stats after one step: PyTorch's momentum convention, unbiased variance
        Buf yEval = bn.forward(x, n, false);
        for (int c = 0; c < C; c++) {
            for (int s = 0; s < n; s++) {
                for (int p = 0; p < PLANE; p++) {
                    int i = (s * C + c) * PLANE + p;
                    assertEquals(gamma[c] * (x.get(i) - rm[c]) / Math.sqrt(rv[c] + 1e-5) + beta[c], yEval.get(i), 1e-9);
                }
            }
        }
        // a second training step moves them again
        bn.forward(x, n, true);
        Buf yEval2 = bn.forward(x, n, false);
        int i0 = 0; // sample 0, channel 0, position 0
        double rm2 = 0.9 * rm[0] + 0.1 * (rm[0] / 0.1), rv2 = 0.9 * rv[0] + 0.1 * ((rv[0] - 0.9) / 0.1);
        assertEquals(gamma[0] * (x.get(i0) - rm2) / Math.sqrt(rv2 + 1e-5) + beta[0], yEval2.get(i0), 1e-9);
    }

    /** BN over a batch split into parts (sizes may be unequal or zero) whose sums are all-reduced == BN over the whole batch. */
    @Test
    void splitBatchWithSummedReductionsEqualsWholeBatch() throws Exception {
        checkSplit(new int[] {2, 2, 2, 2});
        checkSplit(new int[] {5, 1, 0, 2});
        checkSplit(new int[] {0, 8});
    }

    private void checkSplit(int[] parts) throws Exception {
        int n = 0;
        for (int p : parts) n += p;
        double[] gamma = {0.7, 1.3, -1.1}, beta = {0.5, -0.25, 0};
        Random rng = new Random(n * 31L + parts.length);
        Buf x = GradCheck.randomBuf(n * C * PLANE, rng);
        Buf dy = GradCheck.randomBuf(n * C * PLANE, rng);

        BatchNorm2d whole = bn(n, gamma, beta);
        Buf wholeGrads = Buf.zeros(D, 2 * C);
        whole.bindParams(paramsOf(gamma, beta), wholeGrads, 0);
        Buf y = whole.forward(x, n, true);
        Buf dx = whole.backward(dy, n);

        InProcessAllReduce allReduce = new InProcessAllReduce(parts.length);
        ExecutorService pool = Executors.newFixedThreadPool(parts.length);
        List<Future<Buf[]>> results = new ArrayList<>();
        int start = 0;
        for (int r = 0; r < parts.length; r++) {
            int rank = r, from = start, m = parts[r];
            start += m;
            results.add(pool.submit(() -> {
                BatchNorm2d part = bn(m, gamma, beta);
                Buf grads = Buf.zeros(D, 2 * C);
                part.bindParams(paramsOf(gamma, beta), grads, 0);
                part.statistics().setReducer(allReduce.forRank(rank));
                Buf partY = copy(part.forward(copy(x, from * C * PLANE, m * C * PLANE), m, true), 0, m * C * PLANE);
                Buf partDx = copy(part.backward(copy(dy, from * C * PLANE, m * C * PLANE), m), 0, m * C * PLANE);
                return new Buf[] {partY, partDx, grads};
            }));
        }
        double[] dGammaBeta = new double[2 * C];
        start = 0;
        for (int r = 0; r < parts.length; r++) {
            Buf[] got = results.get(r).get();
            for (int i = 0; i < parts[r] * C * PLANE; i++) {
                int gi = start * C * PLANE + i;
                assertEquals(y.get(gi), got[0].get(i), 1e-12, "y");
                assertEquals(dx.get(gi), got[1].get(i), 1e-12, "dx");
            }
            for (int i = 0; i < 2 * C; i++) dGammaBeta[i] += got[2].get(i);
            start += parts[r];
        }
        pool.shutdown();
        for (int i = 0; i < 2 * C; i++) assertEquals(wholeGrads.get(i), dGammaBeta[i], 1e-12, "dgamma/dbeta " + i);
    }

    private static Buf paramsOf(double[] gamma, double[] beta) {
        Buf p = Buf.zeros(D, 2 * C);
        for (int c = 0; c < C; c++) {
            p.set(c, gamma[c]);
            p.set(C + c, beta[c]);
        }
        return p;
    }

    /**
     * A layer whose sync group has no sample in a step still meets the others, forward and backward: in an
     * executor's hub the replicas of every group meet in one place, so a layer that skipped a meeting would
     * pair its next one with the others' backward (a group:2 run over 32 replicas with an empty group in its
     * last step failed so). Both kernels, through the statistics they share.
     */
    @Test
    void aGroupWithoutSamplesStillTakesPartInEveryMeeting() {
        for (boolean fused : new boolean[] {false, true}) {
            List<String> meetings = new ArrayList<>();
            BnReducer recording = (layer, forward, sums) -> meetings.add(layer + (forward ? " forward" : " backward"));
            DataType type = fused ? DataType.FLOAT : D;
            BnStatistics stats = new BnStatistics(new int[] {C, 4, 4}, 0);
            Layer layer = fused ? new BnReluPool(stats, 2, 2, parallel) : new BatchNorm2d(stats, true, 2, parallel, type);
            Buf grads = Buf.zeros(type, 2 * C);
            for (int i = 0; i < 2 * C; i++) grads.set(i, 7);
            layer.bindParams(Buf.zeros(type, 2 * C), grads, 0);
            stats.bindState(Buf.zeros(type, 2 * C), 0);
            stats.initState();
            stats.setReducer(recording);
            Buf x = Buf.zeros(type, 2 * C * 16);
            layer.forward(x, 0, true);
            layer.backward(Buf.zeros(type, 2 * C * (fused ? 4 : 16)), 0);
            assertEquals(List.of("0 forward", "0 backward"), meetings, fused ? "BnReluPool" : "BatchNorm2d");
            for (int i = 0; i < 2 * C; i++) assertEquals(0, grads.get(i), "dgamma and dbeta of a group without samples");
        }
    }
}
