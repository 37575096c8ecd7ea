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

    private final int parties;
    private int arrived;
    private long generation;
    private boolean failed;

    public Rendezvous(int parties) {
        this.parties = parties;
    }

    /**
     * Waits until all parties have arrived; the last to arrive runs work (outside the lock, so failing the
     * rendezvous is never held up by it), then all go on. One wake-up per waiting thread and meeting; a
     * work that throws, or an interrupted wait, fails the rendezvous for all.
     */
    public <E extends Exception> void await(Work<E> work) throws E {
        synchronized (this) {
            if (failed) throw new Released();
            if (++arrived < parties) {
                long mine = generation;
                try {
                    while (generation == mine && !failed) wait();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    fail();
                    throw new IllegalStateException("interrupted at a rendezvous", e);
                }
                if (generation == mine) throw new Released();
                return;
            }
        }
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
