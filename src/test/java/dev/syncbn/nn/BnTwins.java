package dev.syncbn.nn;

import java.util.Random;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * A fused float BN layer and the reference BatchNorm2d it replaces, on the same random parameters (gamma
 * of either sign) with gradients and running statistics of their own; and what the tests comparing
 * them share.
 */
final class BnTwins {
    static final DataType F = DataType.FLOAT;
    final Buf params, fusedGrads, grads, fusedState, state;

    BnTwins(BnLayer fused, BatchNorm2d reference, Random rng) {
        int c = reference.outShape()[0];
        params = Buf.zeros(F, 2 * c);
        for (int i = 0; i < c; i++) {
            params.set(i, rng.nextGaussian());
            params.set(c + i, rng.nextGaussian() * 0.5);
        }
        fusedGrads = bind(fused, params, fusedState = Buf.zeros(F, 2 * c));
        grads = bind(reference, params, state = Buf.zeros(F, 2 * c));
    }

    private static Buf bind(BnLayer layer, Buf params, Buf state) {
        Buf grads = Buf.zeros(F, params.length());
        layer.bindParams(params, grads, 0);
        layer.statistics().bindState(state, 0);
        layer.statistics().initState();
        return grads;
    }

    static Buf random(int length, Random rng, double scale, double shift) {
        Buf b = Buf.zeros(F, length);
        for (int i = 0; i < length; i++) b.set(i, rng.nextGaussian() * scale + shift);
        return b;
    }

    /** Largest |actual - expected| over the first length elements, relative to the largest |expected|. */
    static double relativeError(Buf actual, Buf expected, int length) {
        double err = 0, max = 1e-30;
        for (int i = 0; i < length; i++) {
            err = Math.max(err, Math.abs(expected.get(i) - actual.get(i)));
            max = Math.max(max, Math.abs(expected.get(i)));
        }
        return err / max;
    }
}
