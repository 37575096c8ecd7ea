package dev.syncbn.nn;

/**
 * A reusable barrier for a fixed number of threads (a network's shards, an executor's replicas) that a
 * failing thread breaks for good: every thread waiting, and every one arriving later, is released with
 * Released until clear(). Written out rather than a CyclicBarrier because CyclicBarrier.reset cannot
 * release a thread that has not arrived yet, and a thread outside the barrier cannot break it.
 */
public final class Rendezvous {
    /** What a thread throws when another's failure released it. */
    public static final class Released extends IllegalStateException {
        Released() {
            super("released by another thread's failure");
        }
    }

    private final int parties;
    private int arrived;
    private long generation;
    private boolean failed;

    public Rendezvous(int parties) {
        this.parties = parties;
    }

    /**
     * Waits until all parties have arrived; returns true in the thread that arrived last (it can do the
     * meeting's work while the others are still waking up). An interrupted wait fails the rendezvous for all.
     */
    public synchronized boolean await() {
        if (failed) throw new Released();
        if (++arrived == parties) {
            arrived = 0;
            generation++;
            notifyAll();
            return true;
        }
        long mine = generation;
        try {
            while (generation == mine && !failed) wait();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail();
            throw new IllegalStateException("interrupted at a rendezvous", e);
        }
        if (generation == mine) throw new Released();
        return false;
    }

    /** A thread failed: every other one waiting, or arriving later, fails too. */
    public synchronized void fail() {
        failed = true;
        notifyAll();
    }

    public synchronized boolean failed() {
        return failed;
    }

    /** Makes it usable again, with every thread idle. */
    public synchronized void clear() {
        failed = false;
        arrived = 0;
    }
}
