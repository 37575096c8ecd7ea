package dev.syncbn.nn;

/**
 * The seam through which batch norm aggregates its per-channel statistics. A local network passes them
 * through unchanged; a distributed trainer replaces it with an all-reduce (element-wise sum) over the
 * replicas of a sync group. Every replica of the group must call it in the same order, also when it
 * has no sample in the step (its sums are then zero).
 */
public interface BnReducer {
    /**
     * Replaces sums, in place, with the element-wise sum of every group member's sums.
     * layer is the index of the batch-norm layer in the network; forward tells the two calls apart
     * (forward: sum x, sum x^2 per channel, then the count; backward: sum dy, sum dy*x_hat per channel).
     */
    void allReduce(int layer, boolean forward, double[] sums);

    BnReducer LOCAL = (layer, forward, sums) -> {};
}
