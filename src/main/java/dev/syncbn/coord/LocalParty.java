package dev.syncbn.coord;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.util.function.BooleanSupplier;

/**
 * A party in the coordination service's own JVM (Spark local mode, where the executor is the driver):
 * the same steps a connection's frames take, as direct calls on the RunState, with no socket, seal or
 * copy of the gradient (about 1.3 ms a step of a 201 KB gradient on loopback). Nothing crosses a process
 * boundary, so there is no key to prove.
 */
public final class LocalParty implements DriverLink {
    private final RunState runState;
    private final int[] ranks;
    private final int epoch, attempt;
    private final BooleanSupplier killed;
    private int step;

    /** A party of these ranks (ascending) for a stage attempt of an epoch; killed tells whether its task was killed. */
    public LocalParty(RunState runState, int[] ranks, int epoch, int attempt, BooleanSupplier killed) {
        this.runState = runState;
        this.ranks = ranks.clone();
        this.epoch = epoch;
        this.attempt = attempt;
        this.killed = killed;
    }

    @Override
    public Welcome welcome() throws IOException {
        Welcome w = runState.join(ranks, epoch, attempt);
        step = w.startStep();
        return w;
    }

    @Override
    public void allReduce(int layer, boolean forward, double[] sums) {
        try {
            double[] totals = runState.reduceBn(ranks, attempt, epoch, step, layer, forward, sums, killed);
            System.arraycopy(totals, 0, sums, 0, sums.length);
        } catch (IOException e) {
            throw new UncheckedIOException("BN all-reduce of layer " + layer + " at step " + step + " failed", e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("BN all-reduce of layer " + layer + " at step " + step + " interrupted", e);
        }
    }

    @Override
    public float[] exchange(StepAggregator.Contribution c) throws IOException {
        try {
            float[] params = runState.handIn(ranks, attempt, epoch, step, c, killed);
            step++;
            return params;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("hand-in of step " + step + " interrupted: " + e.getMessage());
        }
    }

    @Override
    public void close() {
        runState.leave(ranks, attempt);
    }
}
