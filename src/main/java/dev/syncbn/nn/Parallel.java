package dev.syncbn.nn;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;

/**
 * Runs the Java loops of one network on a fixed number of threads. Each network has its own pool, so
 * two Spark tasks in one executor JVM never share (or overrun) each other's threads.
 *
 * Work is handed out as one contiguous range per thread and the loop over the range is written in the
 * caller's lambda: a per-index callback through one shared call site would be megamorphic (every layer's
 * lambda passes through it), and the JIT could then inline and vectorize none of the loop bodies.
 */
public final class Parallel implements AutoCloseable {
    public interface Range {
        void run(int from, int to);
    }

    private final int threads;
    private final ForkJoinPool pool;

    public Parallel(int threads) {
        if (threads < 1) throw new IllegalArgumentException("threads must be at least 1, got " + threads);
        this.threads = threads;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads);
    }

    public int threads() {
        return threads;
    }

    /** Splits [0, n) into up to threads() contiguous ranges and runs body on each; returns when all are done. */
    public void forRange(int n, Range body) {
        int parts = Math.min(threads, n);
        if (parts <= 1) {
            if (n > 0) body.run(0, n);
            return;
        }
        ForkJoinTask<?>[] tasks = new ForkJoinTask<?>[parts - 1];
        for (int p = 1; p < parts; p++) {
            int from = (int) ((long) n * p / parts), to = (int) ((long) n * (p + 1) / parts);
            tasks[p - 1] = pool.submit(() -> body.run(from, to));
        }
        body.run(0, n / parts);
        for (ForkJoinTask<?> t : tasks) t.join();
    }

    @Override
    public void close() {
        if (pool != null) pool.shutdown();
    }
}
