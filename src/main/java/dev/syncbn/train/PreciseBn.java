package dev.syncbn.train;

import dev.syncbn.data.Dataset;
import dev.syncbn.nn.BnReducer;
import dev.syncbn.nn.ConvNet;

/**
 * Precise BN (as fvcore's): the running statistics replaced by the average batch statistics of whole
 * training batches through the final network. Local BN's running statistics are a momentum average over
 * a moving network (and, across replicas, an average of averages); these are the final network's.
 */
public final class PreciseBn {
    private PreciseBn() {}

    /**
     * The sums of every BN layer's batch statistics (state layout) over up to `batches` batches of `batch`
     * samples of data, taken in `order` from its start, in training mode; the last element is the number
     * of batches (only whole batches count).
     */
    public static double[] batchStatistics(ConvNet net, Dataset data, int[] order, int batch, int batches) {
        net.setReducer(BnReducer.LOCAL);
        double[] acc = new double[net.state.length() + 1];
        int[] labels = new int[batch];
        for (int k = 0; k < batches && (k + 1) * batch <= order.length; k++) {
            data.fill(order, k * batch, batch, net.input, labels);
            net.forward(batch, true);
            net.addBatchStatistics(acc);
            acc[acc.length - 1]++;
        }
        return acc;
    }
}
