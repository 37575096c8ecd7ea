package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;
import java.util.Arrays;
import java.util.function.BooleanSupplier;
import java.util.function.Function;
import java.util.logging.Logger;

/**
 * The state of one training run as the driver's coordination service keeps it, with no sockets: the
 * epoch, the stage attempt and the ranks connected in it, the step in progress (BN reductions and
 * hand-ins through the StepAggregator), the parameters the parties copy after each step, and the
 * snapshot a relaunched attempt goes back to. The server (Coordinator) decodes and checks frames and
 * calls it; a party in the driver's JVM (LocalParty) calls it directly; tests drive it as both.
 *
 * The driver owns the step counter. Every StepAggregator.STATISTICS_EVERY steps (where the parties hand
 * in their running statistics, which no step needs) it keeps a snapshot: step, parameters, statistics
 * and, through the StepHandler, the optimizer's state. A relaunched stage attempt goes back to the last
 * snapshot and recomputes the steps after it (the same computation, so the run ends as an undisturbed
 * one; stepDone hears of each step once); whatever the failed attempt left half-done is dropped. Calls
 * from a stale attempt or for a step that is over are refused (ProtocolException), and the step in
 * progress is not touched. Thread-safe: every method holds this object's lock, and a party waiting for
 * the others waits on it.
 */
public final class RunState {
    private static final Logger LOG = Logger.getLogger(RunState.class.getName());

    /**
     * Per-step time split, seconds, as the replicas and the driver measured it. straggleS is not a fourth
     * part but a share of bnWait and exchange: the replicas' mean wait for the slowest one's compute (the
     * slowest replica's compute less the mean), which the protocol cannot remove.
     */
    public record StepTimes(double computeS, double bnWaitS, double exchangeS, double updateS, double straggleS) {}

    public interface StepHandler {
        /** All gradients of a step are in: apply them and write the new parameters into params. */
        void apply(StepAggregator.StepReport report, float[] params);

        /** Keep what apply changes besides the parameters (the optimizer's state) as it is now: a relaunch may go back here. */
        void snapshot();

        /** Go back to the last snapshot, whose parameters are params. */
        void rollback(float[] params);

        /** After each step, with its time split; exchange is the step's wall time less the other three. */
        void stepDone(StepAggregator.StepReport report, StepTimes times);
    }

    private BnMode bn;
    private final int paramCount, stateCount;
    private final int[] bnChannels;
    private StepAggregator aggregator;
    private boolean[] connected; // ranks with a live party in the current attempt
    private StepHandler handler;
    private int epoch = -1, stepsInEpoch, step, attempt = -1;
    // What the parties copy after a step; the next step's update writes the other array, and the two swap
    // (a party hands in that next step only after it has copied these). No allocation per step: a run that
    // allocated 1.4 MB a step paid for fresh heap pages, up to 5 ms a step, until the heap stopped growing.
    private float[] params, nextParams;
    private Object encodedParams; // what encodedParams(...) made of params, until they change
    private float[] state; // the replicas' running statistics, averaged (see StepAggregator.StepReport), as of snapshotStep
    private int snapshotStep; // where a relaunched attempt starts
    private float[] snapshotParams;
    private int firstUnreported; // stepDone has been called for the steps before it (a relaunch recomputes some)
    private long lastStepEnd; // nanoTime when the last step (or the attempt) began
    private Throwable failure;
    private volatile Runnable onFailure = () -> {};

    /** bnChannels: the channel count of each BN layer, in order. */
    public RunState(int workers, BnMode bn, int paramCount, int stateCount, int[] bnChannels) {
        this.bn = bn;
        this.paramCount = paramCount;
        this.stateCount = stateCount;
        this.bnChannels = bnChannels.clone();
        this.aggregator = new StepAggregator(workers, bn, paramCount, stateCount, bnChannels);
        this.connected = new boolean[workers];
    }

    /**
     * Continues the epoch with another number of replicas (an elastic run whose cluster shrank or grew):
     * the current attempt is superseded, its parties are refused from now on, and the first party of the
     * new one, whose attempts count from firstAttempt (above any earlier one), starts from the last
     * snapshot as a relaunch does. The steps recomputed are reported once, as for a relaunch.
     */
    public synchronized void reshape(int workers, BnMode bn, int firstAttempt) {
        if (firstAttempt <= attempt) throw new IllegalArgumentException("attempt " + firstAttempt + " is not above the current " + attempt);
        resize(workers, bn);
        clearPending();
        attempt = firstAttempt - 1; // no party has it: the old ones are stale, the first new one (attempt >= firstAttempt) rolls back
        notifyAll();
    }

    private void resize(int workers, BnMode bn) {
        if (workers == connected.length && bn.equals(this.bn)) return;
        this.bn = bn;
        aggregator = new StepAggregator(workers, bn, paramCount, stateCount, bnChannels);
        connected = new boolean[workers];
    }

    /** How the current replicas share BN statistics (an elastic run's change with their number). */
    synchronized BnMode bn() {
        return bn;
    }

    /** The arithmetic of the step (for the lengths a frame must have). */
    synchronized StepAggregator aggregator() {
        return aggregator;
    }

    /** Opens an epoch of stepsInEpoch steps, starting at step startStep, from these parameters and running statistics. */
    public synchronized void startEpoch(int epoch, int stepsInEpoch, int startStep, float[] params, float[] state, StepHandler handler) {
        startEpoch(epoch, stepsInEpoch, startStep, params, state, connected.length, bn, handler);
    }

    /** Opens an epoch as startEpoch does, of this many replicas and their BN mode (an elastic run may change them between epochs). */
    public synchronized void startEpoch(int epoch, int stepsInEpoch, int startStep, float[] params, float[] state, int workers, BnMode bn,
            StepHandler handler) {
        resize(workers, bn);
        this.epoch = epoch;
        this.stepsInEpoch = stepsInEpoch;
        this.step = startStep;
        this.params = params.clone();
        this.nextParams = new float[params.length];
        this.encodedParams = null;
        this.state = state.clone();
        this.handler = handler;
        this.snapshotStep = startStep;
        this.snapshotParams = params.clone();
        this.firstUnreported = startStep;
        handler.snapshot();
        this.attempt = -1;
        this.failure = null;
        Arrays.fill(connected, false);
        clearPending();
        notifyAll();
    }

    /** The step the driver will compute next (== stepsInEpoch once the epoch is done). */
    public synchronized int step() {
        return step;
    }

    /** The step a relaunched (or reshaped) attempt starts from: the last snapshot's. */
    public synchronized int snapshotStep() {
        return snapshotStep;
    }

    /** The replicas' running statistics, averaged over the replicas, as of the last step that carried them (the epoch's last, once it is done). */
    public synchronized float[] state() {
        return state.clone();
    }

    /** Called (on a thread of its own) when the step handler fails: the failure is the driver's and deterministic, so retrying the stage is pointless. */
    public void onFailure(Runnable listener) {
        this.onFailure = listener;
    }

    /** A failure in the step handler (the driver's side), or null. */
    public synchronized Throwable failure() {
        return failure;
    }

    private void clearPending() {
        aggregator.clear();
        lastStepEnd = System.nanoTime();
    }

    /** Where a party starts: its ranks join the stage attempt (a newer attempt voids what an older one left half-done). */
    public synchronized DriverLink.Welcome join(int[] ranks, int partyEpoch, int partyAttempt) throws Wire.ProtocolException {
        aggregator.checkParty(ranks);
        if (partyEpoch != epoch) throw new Wire.ProtocolException("hello for epoch " + partyEpoch + ", the run is in epoch " + epoch);
        if (partyAttempt < attempt) throw new Wire.ProtocolException("stale stage attempt " + partyAttempt + " (now " + attempt + ")");
        if (partyAttempt > attempt) {
            // a relaunched stage: what the failed attempt left half-done is void
            attempt = partyAttempt;
            Arrays.fill(connected, false);
        }
        boolean first = true;
        for (boolean c : connected) first &= !c;
        if (first) {
            // no party is in the middle of a step: start from the last snapshot, where the statistics are
            clearPending();
            if (step != snapshotStep) {
                step = snapshotStep;
                params = snapshotParams.clone(); // a new array: a replica of a failed attempt may still be reading the old one
                encodedParams = null;
                handler.rollback(params);
            }
            notifyAll();
        }
        for (int r : ranks) if (connected[r]) throw new Wire.ProtocolException("rank " + r + " is already connected in attempt " + attempt);
        for (int r : ranks) connected[r] = true;
        return new DriverLink.Welcome(step, params, state);
    }

    /** The party has gone: its ranks are free again (for a party of the current attempt). */
    public synchronized void leave(int[] ranks, int partyAttempt) {
        if (partyAttempt == attempt) for (int r : ranks) connected[r] = false;
    }

    private void checkLive(int partyAttempt, int partyEpoch, int partyStep) throws Wire.ProtocolException {
        if (partyAttempt != attempt) throw new Wire.ProtocolException("stage attempt " + partyAttempt + " was superseded by " + attempt);
        if (partyEpoch != epoch || partyStep != step) {
            throw new Wire.ProtocolException("frame for epoch " + partyEpoch + " step " + partyStep + ", the run is at epoch " + epoch + " step " + step);
        }
    }

    /**
     * A party's part of a BN all-reduce; returns the totals of its shared groups once every part is in.
     * gone: null for a party whose thread is interrupted or whose connection closes when it dies; else
     * polled while waiting (see await).
     */
    public synchronized double[] reduceBn(int[] ranks, int partyAttempt, int partyEpoch, int partyStep, int layer, boolean forward, double[] sums,
            BooleanSupplier gone) throws Wire.ProtocolException, InterruptedException {
        checkLive(partyAttempt, partyEpoch, partyStep);
        aggregator.addBn(partyStep, layer, forward, ranks, sums);
        double[] result = aggregator.bnSums(partyStep, layer, forward, ranks);
        if (result != null) notifyAll();
        while (result == null) {
            await(gone);
            checkLive(partyAttempt, partyEpoch, partyStep);
            result = aggregator.bnSums(partyStep, layer, forward, ranks);
        }
        return result;
    }

    /**
     * A party's gradient report of a step; returns when the step is complete, with the new parameters
     * (read them, do not change them: they stay as they are until every party has handed in the next step).
     */
    public synchronized float[] handIn(int[] ranks, int partyAttempt, int partyEpoch, int partyStep, StepAggregator.Contribution c, BooleanSupplier gone)
            throws Wire.ProtocolException, InterruptedException {
        checkLive(partyAttempt, partyEpoch, partyStep);
        if (aggregator.addGradient(ranks, c, StepAggregator.statisticsDue(partyStep, stepsInEpoch))) completeStep();
        while (step == partyStep) {
            await(gone);
            if (partyAttempt != attempt) throw new Wire.ProtocolException("stage attempt " + partyAttempt + " was superseded by " + attempt);
        }
        return params;
    }

    /** encode(the current parameters), made once for every party that asks until the parameters change (one frame for all connections). */
    @SuppressWarnings("unchecked")
    public synchronized <T> T encodedParams(Function<float[], T> encode) {
        if (encodedParams == null) encodedParams = encode.apply(params);
        return (T) encodedParams;
    }

    /**
     * Waits (holding the lock) for another party's part. A connection's thread needs no more: a killed
     * replica closes its socket. A party in this JVM runs on its replica's own thread, which Spark may
     * mark killed without interrupting it, so it looks up every 200 ms.
     */
    private void await(BooleanSupplier gone) throws InterruptedException {
        if (gone == null) {
            wait();
            return;
        }
        wait(200);
        if (gone.getAsBoolean()) throw new InterruptedException("the party's task was killed");
    }

    /** All gradients of the current step are in (called holding the lock). */
    private void completeStep() {
        StepAggregator.StepReport report = aggregator.sum(epoch, step);
        try {
            long t0 = System.nanoTime();
            handler.apply(report, nextParams);
            float[] read = params;
            params = nextParams;
            nextParams = read;
            encodedParams = null;
            if (report.meanState() != null) { // the end of a snapshot interval
                state = report.meanState();
                snapshotStep = step + 1;
                System.arraycopy(params, 0, snapshotParams, 0, params.length);
                handler.snapshot();
            }
            long t1 = System.nanoTime();
            double update = (t1 - t0) / 1e9, wall = (t1 - lastStepEnd) / 1e9;
            step++;
            if (step > firstUnreported) {
                firstUnreported = step;
                handler.stepDone(report, new StepTimes(report.computeS(), report.bnWaitS(), Math.max(0, wall - report.computeS() - report.bnWaitS() - update),
                        update, Math.max(0, report.slowestComputeS() - report.computeS())));
            }
        } catch (RuntimeException e) {
            failure = e; // kept whole: the user sees the driver's own error, with its cause, not the replicas' echoes of it
            LOG.severe(String.valueOf(e.getMessage()));
            Thread t = new Thread(onFailure, "coordinator-failure");
            t.setDaemon(true);
            t.start();
            attempt = Integer.MAX_VALUE; // no replica of this epoch goes on
        }
        clearPending();
        notifyAll();
    }

    /** No party goes on (the service is closing). */
    public synchronized void end() {
        attempt = Integer.MAX_VALUE;
        notifyAll();
    }
}
