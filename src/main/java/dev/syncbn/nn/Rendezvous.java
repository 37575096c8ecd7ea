package dev.syncbn.nn;

/**
 * A reusable barrier for a fixed number of threads (a network's shards, an executor's replicas) whose
 * last arrival does the meeting's work before anyone goes on, and that a failing thread breaks for good:
 * every thread waiting, and every one arriving later, is released with Released until clear(). Written
 * out rather than a CyclicBarrier because CyclicBarrier.reset cannot release a thread that has not
 * arrived yet, a thread outside the barrier cannot break it, and its barrier action cannot throw a
 * checked exception.
 */
public final class Rendezvous {
    /** What a thread throws when another's failure released it. */
    public static final class Released extends IllegalStateException {
        Released() {
            super("released by another thread's failure");
        }
    }

    /** The meeting's work: it sees what every thread brought, and its results are seen by all once they go on. */
    public interface Work<E extends Exception> {
        void run() throws E;
    }

    /**
     * How long a waiting thread spins before it sleeps, when every party can have a core of its own. A
     * sleeping thread is woken tens of microseconds after the last arrival (a halted vCPU, more), at
     * every BN meeting; the waits are mostly a slower replica's lead of 0.5 to 3 ms. Measured at W=2 in
     * local[2], sync BN: median time outside the slowest replica's compute 0.73-0.86 ms with 2 ms of
     * spinning, 1.01-1.06 with 0.5 ms, 1.02-1.32 without.
     */
    private static final long SPIN_NANOS = 2_000_000;
    private final int parties;
    private final boolean spin;
    private int arrived;
    private volatile long generation;
    private volatile boolean failed;

    public Rendezvous(int parties) {
        this.parties = parties;
        this.spin = parties <= Runtime.getRuntime().availableProcessors(); // else a spinning thread would hold up the ones it waits for
    }

    /**
     * Waits until all parties have arrived; the last to arrive runs work (outside the lock, so failing the
     * rendezvous is never held up by it), then all go on. A waiting thread spins a while, then sleeps; a
     * work that throws, or an interrupted wait, fails the rendezvous for all.
     */
    public <E extends Exception> void await(Work<E> work) throws E {
        long mine;
        synchronized (this) {
            if (failed) throw new Released();
            mine = ++arrived < parties ? generation : -1;
        }
        if (mine < 0) {
            runAndRelease(work);
            return;
        }
        if (spin) {
            long until = System.nanoTime() + SPIN_NANOS;
            while (generation == mine && !failed && System.nanoTime() < until) Thread.onSpinWait();
        }
        synchronized (this) {
            try {
                while (generation == mine && !failed) wait();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                fail();
                throw new IllegalStateException("interrupted at a rendezvous", e);
            }
            if (generation == mine) throw new Released();
        }
    }

    private <E extends Exception> void runAndRelease(Work<E> work) throws E {
        try {
            work.run();
        } catch (Exception | Error e) {
            fail();
            throw e;
        }
        synchronized (this) {
            if (failed) throw new Released(); // the others were released meanwhile: the meeting is off
            arrived = 0;
            generation++;
            notifyAll();
        }
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
