package dev.syncbn.nn;

import java.util.concurrent.ForkJoinPool;
import java.util.function.IntConsumer;
import java.util.stream.IntStream;

/**
 * Runs the Java loops of one network on a fixed number of threads. Each network has its own pool, so
 * two Spark tasks in one executor JVM never share (or overrun) each other's threads.
 */
public final class Parallel implements AutoCloseable {
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

    /** Calls body(i) for i in [0, n), spread over this pool's threads; returns when all are done. */
    public void forEach(int n, IntConsumer body) {
        if (pool == null || n == 1) {
            for (int i = 0; i < n; i++) body.accept(i);
        } else {
            // A parallel stream started inside a pool's task runs on that pool, not the common pool.
            pool.submit(() -> IntStream.range(0, n).parallel().forEach(body)).join();
        }
    }

    @Override
    public void close() {
        if (pool != null) pool.shutdown();
    }
}
