package dev.syncbn.nn;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class RendezvousTest {
    /** Every meeting's work runs once, before anyone goes on, and every thread sees its result (whether it spun or slept). */
    @Test
    void eachMeetingsWorkRunsOnceAndIsSeenByAll() throws Exception {
        Rendezvous r = new Rendezvous(2);
        long[] meetings = new long[1];
        Runnable party = () -> {
            for (int i = 0; i < 20_000; i++) {
                if (i % 1000 == 0) sleepMs(3); // now and then longer than the spin: the other one sleeps
                r.await(() -> meetings[0]++);
                assertEquals(i + 1, meetings[0], "after meeting " + i);
            }
        };
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<?> a = pool.submit(party), b = pool.submit(party);
            a.get(60, TimeUnit.SECONDS);
            b.get(60, TimeUnit.SECONDS);
        } finally {
            pool.shutdownNow();
        }
        assertEquals(20_000, meetings[0]);
    }

    /** A thread failed from outside releases the one waiting (spinning, then asleep) and every later arrival, until cleared. */
    @Test
    void failingReleasesTheWaitingAndTheLaterArrivals() throws Exception {
        Rendezvous r = new Rendezvous(2);
        ExecutorService pool = Executors.newSingleThreadExecutor();
        try {
            Future<Throwable> waiting = pool.submit(() -> {
                try {
                    r.await(() -> {});
                    return null;
                } catch (RuntimeException e) {
                    return e;
                }
            });
            sleepMs(1);
            r.fail();
            assertTrue(waiting.get(10, TimeUnit.SECONDS) instanceof Rendezvous.Released);
            assertThrows(Rendezvous.Released.class, () -> r.await(() -> {}));
            r.clear();
            Future<?> other = pool.submit(() -> r.await(() -> {}));
            r.await(() -> {});
            other.get(10, TimeUnit.SECONDS);
        } finally {
            pool.shutdownNow();
        }
    }

    private static void sleepMs(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }
}
