package dev.syncbn.ml;

import dev.syncbn.train.Metrics;
import java.io.Serializable;
import java.util.List;

/**
 * What fit() did, epoch by epoch: training loss and accuracy, validation loss and accuracy (NaN without
 * validation rows), seconds, images/s and the split of a step's time (compute, BN sync, exchange,
 * update, in ms); and which epoch the model is (with early stopping, the best validation epoch's).
 */
public final class SyncBnTrainingSummary implements Serializable {
    private final List<Metrics.Epoch> epochs;
    private final int modelEpoch;

    SyncBnTrainingSummary(List<Metrics.Epoch> epochs, int modelEpoch) {
        this.epochs = List.copyOf(epochs);
        this.modelEpoch = modelEpoch;
    }

    /** One row per epoch trained (Metrics.Epoch: trainLoss, trainAcc, testLoss and testAcc are the validation figures, ...). */
    public List<Metrics.Epoch> epochs() {
        return epochs;
    }

    public int totalEpochs() {
        return epochs.size();
    }

    /** The epoch whose parameters the model holds. */
    public int modelEpoch() {
        return modelEpoch;
    }

    public double[] trainLoss() {
        return epochs.stream().mapToDouble(Metrics.Epoch::trainLoss).toArray();
    }

    public double[] validationLoss() {
        return epochs.stream().mapToDouble(Metrics.Epoch::testLoss).toArray();
    }

    public double[] validationAccuracy() {
        return epochs.stream().mapToDouble(Metrics.Epoch::testAcc).toArray();
    }

    @Override
    public String toString() {
        StringBuilder b = new StringBuilder("model from epoch " + modelEpoch + " of " + epochs.size() + "\n");
        for (Metrics.Epoch e : epochs) b.append(e.line()).append('\n');
        return b.toString();
    }
}
