package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The run's state machine with no socket: epochs, stage attempts, join and leave, BN reductions,
 * hand-ins, snapshots and the rollback of a relaunched attempt, driven through LocalParty (the direct
 * calls a party in the driver's JVM makes). The same parties as CoordinatorHostileTest's, which proves
 * the same over the wire.
 */
class RunStateTest {
    static final int W = 3, P = CoordinatorHostileTest.P, S = CoordinatorHostileTest.S, STEPS = CoordinatorHostileTest.STEPS;

    /** A run whose "optimizer" adds the summed gradient to the parameters; applied counts every computed step, reported every reported one. */
    static RunState run(AtomicInteger applied, AtomicInteger reported, RuntimeException failAtStep5) {
        RunState s = new RunState(W, BnMode.parse("sync", W), P, S, CoordinatorHostileTest.CHANNELS);
        float[] params = new float[P];
        s.startEpoch(1, STEPS, 0, params, new float[S], new RunState.StepHandler() {
            @Override
            public void apply(StepAggregator.StepReport r, float[] next) {
                if (failAtStep5 != null && r.step() == 5) throw failAtStep5;
                applied.incrementAndGet();
                for (int i = 0; i < P; i++) params[i] += (float) r.gradSum()[i];
                System.arraycopy(params, 0, next, 0, P);
            }

            @Override
            public void snapshot() {}

            @Override
            public void rollback(float[] snapshotParams) {
                System.arraycopy(snapshotParams, 0, params, 0, P);
            }

            @Override
            public void stepDone(StepAggregator.StepReport r, RunState.StepTimes t) {
                reported.incrementAndGet();
            }
        });
        return s;
    }

    /** Replica rank of a stage attempt, up to (not including) step `until`, or to the end; returns its last parameters. */
    static float[] replica(RunState s, int rank, int attempt, int until) throws Exception {
        try (LocalParty link = new LocalParty(s, new int[] {rank}, 1, attempt, () -> false)) {
            DriverLink.Welcome w = link.welcome();
            int snapshot = w.startStep();
            while (snapshot > 0 && !StepAggregator.statisticsDue(snapshot - 1, STEPS)) snapshot--;
            assertArrayEquals(CoordinatorHostileTest.statisticsAtSnapshot(snapshot, W), w.state(), "welcomed at step " + w.startStep());
            float[] params = w.params();
            for (int step = w.startStep(); step < Math.min(until, STEPS); step++) {
                double[] sums = {rank + 1, step, 1, 2, 3};
                link.allReduce(0, true, sums);
                assertEquals(W * (W + 1) / 2.0, sums[0], 0, "BN sum at step " + step);
                float[] grad = new float[P];
                for (int i = 0; i < P; i++) grad[i] = (step + 1) * (rank + 1) * 0.01f + i;
                float[] st = StepAggregator.statisticsDue(step, STEPS) ? CoordinatorHostileTest.statistics(step, rank) : StepAggregator.NO_STATISTICS;
                params = link.exchange(StepAggregator.Contribution.ofReplica(1, 0.5, 0, 0, 0, grad, st)).clone();
            }
            return params;
        }
    }

    /** One stage attempt: every rank in a thread of its own, rank 0 leaving before step `rank0Until`; the ranks' results and failures. */
    static Object[] stage(RunState s, int attempt, int rank0Until) throws InterruptedException {
        float[][] results = new float[W][];
        Throwable[] errors = new Throwable[W];
        List<Thread> threads = new ArrayList<>();
        for (int r = 0; r < W; r++) {
            int rank = r;
            Thread t = new Thread(() -> {
                try {
                    results[rank] = replica(s, rank, attempt, rank == 0 ? rank0Until : Integer.MAX_VALUE);
                } catch (Throwable e) {
                    errors[rank] = e;
                }
            });
            threads.add(t);
            t.start();
        }
        return new Object[] {results, errors, threads};
    }

    @SuppressWarnings("unchecked")
    static void join(Object[] stage) throws InterruptedException {
        for (Thread t : (List<Thread>) stage[2]) t.join(30_000);
    }

    static float[] undisturbed() throws Exception {
        RunState s = run(new AtomicInteger(), new AtomicInteger(), null);
        Object[] stage = stage(s, 0, Integer.MAX_VALUE);
        join(stage);
        for (Throwable e : (Throwable[]) stage[1]) if (e != null) throw new AssertionError(e);
        return ((float[][]) stage[0])[0];
    }

    @Test
    void aRelaunchedAttemptGoesBackToTheSnapshotRecomputesOnlyTheStepsAfterItAndEndsExactly() throws Exception {
        float[] expected = undisturbed();
        int snapshot = StepAggregator.STATISTICS_EVERY, broken = snapshot + 3;
        AtomicInteger applied = new AtomicInteger(), reported = new AtomicInteger();
        RunState s = run(applied, reported, null);
        // attempt 0: rank 0 leaves before step `broken`; the others wait in that step's BN reduction
        Object[] first = stage(s, 0, broken);
        while (s.step() < broken) Thread.sleep(1);
        Thread.sleep(50);
        assertEquals(broken, s.step());
        Object[] second = stage(s, 1, Integer.MAX_VALUE); // the relaunch: its hellos void attempt 0
        join(first);
        join(second);
        Throwable[] stale = (Throwable[]) first[1];
        assertNull(stale[0], "rank 0 left cleanly");
        for (int r = 1; r < W; r++) {
            Throwable why = stale[r] != null && stale[r].getCause() instanceof Wire.ProtocolException ? stale[r].getCause() : stale[r];
            assertTrue(why instanceof Wire.ProtocolException && why.getMessage().contains("superseded"), "attempt 0's rank " + r + ": " + stale[r]);
        }
        for (Throwable e : (Throwable[]) second[1]) assertNull(e);
        assertArrayEquals(expected, ((float[][]) second[0])[W - 1]);
        assertEquals(STEPS, s.step());
        assertEquals(STEPS, reported.get(), "every step reported once");
        assertEquals(STEPS + broken - snapshot, applied.get(), "steps " + snapshot + " to " + (broken - 1) + " computed twice");
        assertArrayEquals(CoordinatorHostileTest.statisticsAtSnapshot(STEPS, W), s.state());
    }

    @Test
    void callsOfAStaleAttemptOrForAnotherStepOrARankTakenTwiceAreRefused() throws Exception {
        RunState s = run(new AtomicInteger(), new AtomicInteger(), null);
        s.join(new int[] {0}, 1, 1);
        assertThrows(Wire.ProtocolException.class, () -> s.join(new int[] {1}, 1, 0), "an older attempt");
        assertThrows(Wire.ProtocolException.class, () -> s.join(new int[] {0}, 1, 1), "rank 0 again");
        assertThrows(Wire.ProtocolException.class, () -> s.join(new int[] {1}, 2, 1), "another epoch");
        assertThrows(Wire.ProtocolException.class, () -> s.reduceBn(new int[] {0}, 1, 1, 3, 0, true, new double[5], null), "a step not under way");
        assertThrows(Wire.ProtocolException.class, () -> s.reduceBn(new int[] {0}, 0, 1, 0, 0, true, new double[5], null), "a superseded attempt");
        s.leave(new int[] {0}, 1);
        s.join(new int[] {0}, 1, 1); // free again once left
        assertEquals(0, s.step(), "nothing was computed");
    }

    @Test
    void aFailingUpdateIsKeptWholeAndReleasesEveryWaitingParty() throws Exception {
        IllegalStateException cause = new IllegalStateException("the loss of step 6 is NaN");
        RunState s = run(new AtomicInteger(), new AtomicInteger(), cause);
        AtomicInteger notified = new AtomicInteger();
        s.onFailure(notified::incrementAndGet);
        Object[] stage = stage(s, 0, Integer.MAX_VALUE);
        join(stage);
        assertSame(cause, s.failure());
        for (Throwable e : (Throwable[]) stage[1]) assertTrue(e instanceof Wire.ProtocolException, "released: " + e);
        assertEquals(5, s.step(), "the failed step was not applied");
        long deadline = System.nanoTime() + 5_000_000_000L;
        while (notified.get() == 0 && System.nanoTime() < deadline) Thread.sleep(5);
        assertEquals(1, notified.get());
    }
}
