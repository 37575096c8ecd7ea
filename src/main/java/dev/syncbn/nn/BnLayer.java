package dev.syncbn.nn;

import java.util.SplittableRandom;

/** A layer that batch-normalizes: its parameters (gamma, beta) and their bookkeeping are its BnStatistics'. */
public interface BnLayer extends Layer {
    BnStatistics statistics();

    @Override
    default int paramCount() {
        return statistics().paramCount();
    }

    @Override
    default void bindParams(Buf params, Buf grads, int offset) {
        statistics().bindParams(params, grads, offset);
    }

    @Override
    default void initParams(SplittableRandom rng) {
        statistics().initParams(rng);
    }
}
