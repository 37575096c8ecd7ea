package dev.syncbn.data;

import java.util.SplittableRandom;

/**
 * The one sampler of every engine. Each epoch visits the n training samples in a seeded shuffle, the
 * same for a seed and epoch wherever it is computed, in global batches. With W replicas, position p of
 * the shuffle goes to replica p % W as its (p / W)-th sample, as PyTorch's DistributedSampler assigns
 * them: replica r's j-th batch of b is then exactly the r-th share of positions [j*W*b, (j+1)*W*b), the
 * same samples as the j-th batch of W*b in one process.
 */
public final class Sampler {
    private Sampler() {}

    public static int[] order(int n, long seed, int epoch) {
        int[] order = new int[n];
        for (int i = 0; i < n; i++) order[i] = i;
        SplittableRandom rng = new SplittableRandom(seed * 0x9E3779B97F4A7C15L + epoch);
        for (int i = n - 1; i > 0; i--) {
            int j = rng.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        return order;
    }

    /** Optimizer steps in an epoch of n samples; the last global batch may be short. */
    public static int steps(int n, int globalBatch) {
        return (n + globalBatch - 1) / globalBatch;
    }

    public static int replicaOf(int position, int workers) {
        return position % workers;
    }

    /** The shuffle position of replica r's localIndex-th sample: the inverse of replicaOf and localIndex. */
    public static long position(int replica, int localIndex, int workers) {
        return (long) localIndex * workers + replica;
    }

    /** Where position `position` of the shuffle stands in its replica's list for the epoch. */
    public static int localIndex(int position, int workers) {
        return position / workers;
    }

    /** How many samples replica r gets in an epoch of n. */
    public static int countFor(int replica, int n, int workers) {
        return n / workers + (replica < n % workers ? 1 : 0);
    }
}
