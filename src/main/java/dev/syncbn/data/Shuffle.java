package dev.syncbn.data;

import java.util.SplittableRandom;

/** The seeded order in which an epoch visits the training samples: the same for a seed and epoch, wherever it is computed. */
public final class Shuffle {
    private Shuffle() {}

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
}
