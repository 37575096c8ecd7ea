package dev.syncbn.train;

import dev.syncbn.nn.ConvNet;
import dev.syncbn.optim.Adam;
import java.util.Arrays;
import java.util.Map;

/**
 * What computes the steps of an epoch: one process (LocalEngine) or Spark replicas. The Trainer around
 * it owns the epochs, shuffles, metrics, checkpoints and resume, so every engine gets them the same way.
 */
public interface Engine extends AutoCloseable {
    /**
     * Samples per forward pass in evaluation and prediction on the executors (no backward: a network for
     * 256 takes ~150 MB); fewer where a block has fewer.
     */
    int EVALUATION_BATCH = 256;

    /**
     * An epoch's totals, the mean split of its step time, and the medians of a step's time and of its time
     * outside compute, in milliseconds (medians: a few seconds of a busy machine move a mean, not them).
     * Then, of the time outside compute, the mean wait for the slowest replica's compute (straggle: part of
     * BN sync or exchange, 0 in one process), and the median of what remains, the time outside the slowest
     * replica's compute (overhead: what synchronizing itself costs). replicas: how many computed the
     * epoch's last step (1 in one process; an elastic run's may change).
     */
    record EpochResult(Totals totals, double computeMs, double bnSyncMs, double exchangeMs, double updateMs, double stepMsMedian,
            double outsideComputeMsMedian, double straggleMs, double overheadMsMedian, int replicas) {}

    /** The median of the first n values, in milliseconds if they are seconds (NaN for none). */
    static double medianMs(double[] seconds, int n) {
        if (n == 0) return Double.NaN;
        double[] sorted = Arrays.copyOf(seconds, n);
        Arrays.sort(sorted);
        return 1e3 * (n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2);
    }

    /** Called after each step with the step's index in the epoch, the replicas that computed it, its global mean loss and the totals so far. */
    interface Progress {
        void step(int stepInEpoch, int stepsInEpoch, int replicas, double stepLoss, Totals soFar);
    }

    /** Refuses to apply the update of a step whose loss is not finite, naming the step. */
    static void checkFinite(double loss, int epoch, int stepInEpoch) {
        if (!Double.isFinite(loss)) {
            throw new TrainingStopped("training stopped: the loss of epoch " + epoch + " step " + (stepInEpoch + 1) + " is " + loss
                    + "; that step's update was not applied, and checkpoints of finished epochs are untouched");
        }
    }

    /** Trains one epoch, global batch after global batch, in the order the Sampler gives for the run's seed and this epoch. */
    EpochResult trainEpoch(int epoch, Progress progress) throws Exception;

    /**
     * Precise BN: replaces the running statistics with the average batch statistics of up to `batches`
     * training batches (of the engine's per-replica batch size) through the current network.
     */
    void preciseBn(int batches) throws Exception;

    /** Sets the running statistics to sums[0 .. state) / sums[state] (the output of ConvNet.batchStatistics, added up). */
    default void setAveragedStatistics(double[] sums) {
        double batches = sums[sums.length - 1];
        if (batches == 0) {
            throw new IllegalArgumentException("precise BN: no replica has a whole training batch of its per-replica batch size; --precise-bn-batches "
                    + "needs at least that many training images per replica (more --max-train, or --precise-bn-batches 0)");
        }
        for (int i = 0; i < net().state.length(); i++) net().state.set(i, sums[i] / batches);
    }

    /** Loss and accuracy on the test set in evaluation mode. */
    Totals evaluate() throws Exception;

    /** The authoritative network (the driver's, for a distributed engine): parameters and BN running statistics. */
    ConvNet net();

    /** The driver's optimizer (its schedule may be set before training). */
    Adam adam();

    /** The current model, as it would be saved after `epochsDone` epochs. */
    default ModelFile snapshot(int epochsDone, Map<String, String> settings) {
        return ModelFile.of(net(), adam(), epochsDone, settings);
    }

    /** Optimizer steps in one epoch. */
    int stepsPerEpoch();

    /** Continues from a saved model. */
    default void restore(ModelFile model) {
        model.restore(net(), adam());
    }

    @Override
    void close();
}
