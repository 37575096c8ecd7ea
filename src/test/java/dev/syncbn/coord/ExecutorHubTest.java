package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;
import dev.syncbn.nn.Rendezvous;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Replicas grouped into executor hubs (one connection per executor) compute what replicas with a
 * connection each compute: the same BN sums per sync group (also for groups split across executors),
 * the same parameters; a replica that fails inside a hub fails its hub-mates at once (nothing hangs),
 * and the relaunched stage ends exactly as an undisturbed run. All of it through sockets, and again with
 * the hubs linked directly to a service in their own JVM (Spark local mode).
 */
class ExecutorHubTest {
    static final int W = 4, STEPS = 30, P = CoordinatorHostileTest.P, S = CoordinatorHostileTest.S;

    /**
     * Runs W replicas in hubs of the given rank sets, linked to the service by sockets or (inJvm) directly;
     * a replica's BN part depends on its rank and step, so a wrong grouping shows. Returns rank 0's final parameters.
     */
    static float[] run(Coordinator c, boolean inJvm, BnMode bn, int[][] hubs, int attempt, int failRank, int failStep, List<Throwable> failures)
            throws Exception {
        List<Thread> threads = new ArrayList<>();
        float[][] results = new float[W][];
        for (int[] ranks : hubs) {
            ExecutorHub hub = new ExecutorHub(ranks, bn, (rs, killed) -> inJvm ? c.localParty(rs, 1, attempt, killed)
                    : new CoordinatorClient("127.0.0.1", c.port(), c.key(), false, rs, 1, attempt, P, S, CoordinatorHostileTest.CHANNELS, killed));
            for (int rank : ranks) {
                Thread t = new Thread(() -> {
                    try (ExecutorHub.Replica replica = hub.replica(rank, () -> false)) {
                        DriverLink.Welcome w = replica.welcome();
                        float[] params = w.params();
                        for (int step = w.startStep(); step < STEPS; step++) {
                            if (rank == failRank && step == failStep) throw new IllegalStateException("injected failure of rank " + rank);
                            double[] sums = {rank + 1, step, (rank + 1) * 0.001, 2, 3};
                            replica.allReduce(0, true, sums);
                            double expected = 0;
                            for (int r = 0; r < W; r++) if (bn.groupOf(r) == bn.groupOf(rank)) expected += r + 1;
                            assertEquals(expected, sums[0], 0, "rank " + rank + "'s group sum at step " + step);
                            assertEquals(step * bn.groupSize(), sums[1], 0);
                            float[] grad = new float[P];
                            for (int i = 0; i < P; i++) grad[i] = (step + 1) * (rank + 1) * 0.01f + i;
                            // the service's epoch has CoordinatorHostileTest.STEPS steps, of which this run takes STEPS
                            float[] st = StepAggregator.statisticsDue(step, CoordinatorHostileTest.STEPS) ? new float[S] : StepAggregator.NO_STATISTICS;
                            params = replica.exchange(StepAggregator.Contribution.ofReplica(1, 0.5, 0, 0, 0, grad, st)).clone();
                        }
                        results[rank] = params;
                    } catch (Throwable e) {
                        synchronized (failures) {
                            failures.add(e);
                        }
                    }
                });
                threads.add(t);
                t.start();
            }
        }
        for (Thread t : threads) t.join(failRank >= 0 ? 2_000 : 60_000);
        return results[0];
    }

    @Test
    void hubsComputeWhatAConnectionPerReplicaComputes() throws Exception {
        for (String mode : new String[] {"sync", "group:2", "local"}) {
            BnMode bn = BnMode.parse(mode, W);
            float[] reference = null;
            // per replica; two executors of two; three and one (a group split across executors); all four in one;
            // through sockets, and linked directly to a service in the same JVM (as in Spark local mode)
            for (boolean inJvm : new boolean[] {false, true}) {
                for (int[][] hubs : new int[][][] {{{0}, {1}, {2}, {3}}, {{0, 1}, {2, 3}}, {{0, 1, 2}, {3}}, {{0, 1, 2, 3}}}) {
                    String what = mode + " " + Arrays.deepToString(hubs) + (inJvm ? " in the JVM" : " through sockets");
                    AtomicInteger steps = new AtomicInteger();
                    List<Throwable> failures = new ArrayList<>();
                    try (Coordinator c = CoordinatorHostileTest.start(W, steps, false, bn)) {
                        float[] got = run(c, inJvm, bn, hubs, 0, -1, -1, failures);
                        if (!failures.isEmpty()) throw new AssertionError(what, failures.get(0));
                        assertEquals(STEPS, steps.get());
                        if (reference == null) reference = got;
                        else assertArrayEquals(reference, got, 1e-4f, what);
                        long[] bytes = c.bytesMoved();
                        assertEquals(!inJvm, bytes[0] > 0 && bytes[1] > 0, what + ": bytes through the service " + Arrays.toString(bytes));
                    }
                }
            }
        }
    }

    @Test
    void aReplicaFailingInsideAHubFailsItsHubMatesAndTheRelaunchIsExact() throws Exception {
        failingReplicaInsideAHub(false);
        failingReplicaInsideAHub(true);
    }

    static void failingReplicaInsideAHub(boolean inJvm) throws Exception {
        BnMode bn = BnMode.parse("sync", W);
        int[][] hubs = {{0, 1}, {2, 3}};
        AtomicInteger undisturbedSteps = new AtomicInteger();
        float[] undisturbed;
        try (Coordinator c = CoordinatorHostileTest.start(W, undisturbedSteps, false, bn)) {
            undisturbed = run(c, inJvm, bn, hubs, 0, -1, -1, new ArrayList<>());
        }
        AtomicInteger steps = new AtomicInteger();
        try (Coordinator c = CoordinatorHostileTest.start(W, steps, false, bn)) {
            List<Throwable> failures = new ArrayList<>();
            long t0 = System.nanoTime();
            run(c, inJvm, bn, hubs, 0, 1, 7, failures);
            // rank 1 failed; rank 0 (its hub-mate) was released at once, not after a timeout
            assertTrue(failures.stream().anyMatch(e -> e.getMessage().contains("injected failure of rank 1")), String.valueOf(failures));
            assertTrue(failures.stream().anyMatch(e -> e instanceof Rendezvous.Released), "rank 0 was released: " + failures);
            assertTrue(System.nanoTime() - t0 < 20_000_000_000L);
            assertEquals(7, c.runState().step(), "no step after the failure was taken");
            List<Throwable> second = new ArrayList<>();
            float[] relaunched = run(c, inJvm, bn, hubs, 1, -1, -1, second); // the next stage attempt voids what is left of the first
            assertTrue(second.isEmpty(), String.valueOf(second));
            assertArrayEquals(undisturbed, relaunched);
            assertEquals(STEPS, steps.get(), "every step exactly once");
        }
    }
}
