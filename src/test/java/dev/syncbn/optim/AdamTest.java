package dev.syncbn.optim;

import dev.syncbn.nn.Buf;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;

import static org.junit.jupiter.api.Assertions.assertEquals;

class AdamTest {
    /**
     * Three steps against the textbook algorithm (Kingma & Ba, with eps added to the corrected sqrt(v)),
     * written out here in double precision: the optimizer's float arithmetic agrees to float rounding.
     */
    @Test
    void matchesIndependentComputation() {
        double lr = 0.01, b1 = 0.8, b2 = 0.95, eps = 1e-6;
        double[] p0 = {0.5, -1.0, 2.0}, g1 = {0.1, -0.2, 3.0}, g2 = {-0.3, 0.0, 1.0}, g3 = {0.2, 0.5, -2.0};
        Buf params = Buf.zeros(DataType.FLOAT, 3), grads = Buf.zeros(DataType.FLOAT, 3);
        for (int i = 0; i < 3; i++) params.set(i, p0[i]);
        Adam adam = new Adam(params, lr, b1, b2, eps);
        double[][] gs = {g1, g2, g3};
        double[] p = p0.clone(), m = new double[3], v = new double[3];
        for (int t = 1; t <= 3; t++) {
            for (int i = 0; i < 3; i++) grads.set(i, gs[t - 1][i]);
            if (t == 2) adam.apply(params, gs[1]); // the driver's way in: a double-precision sum
            else adam.apply(params, grads);
            for (int i = 0; i < 3; i++) {
                double g = gs[t - 1][i];
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                double mHat = m[i] / (1 - Math.pow(b1, t)), vHat = v[i] / (1 - Math.pow(b2, t));
                p[i] -= lr * mHat / (Math.sqrt(vHat) + eps);
                assertEquals(p[i], params.get(i), 1e-6, "step " + t + " param " + i);
            }
        }
        assertEquals(3, adam.step());
    }

    @Test
    void cosineDecayFollowsHalfACosineToZero() {
        Buf params = Buf.zeros(DataType.FLOAT, 1);
        Adam adam = new Adam(params, 0.01).withCosineDecay(4);
        assertEquals(0.01, adam.lrAt(1), 1e-15);
        assertEquals(0.01 * 0.5 * (1 + Math.cos(Math.PI / 4)), adam.lrAt(2), 1e-15);
        assertEquals(0.005, adam.lrAt(3), 1e-15);
        assertEquals(0, adam.lrAt(5), 1e-15);
        assertEquals(0.01, new Adam(params, 0.01).lrAt(1000), 0);
    }

    @Test
    void rejectsBadLearningRate() {
        Buf params = Buf.zeros(DataType.FLOAT, 2);
        Assertions.assertThrows(IllegalArgumentException.class, () -> new Adam(params, 0));
        Assertions.assertThrows(IllegalArgumentException.class, () -> new Adam(params, Double.NaN));
        Assertions.assertThrows(IllegalArgumentException.class, () -> new Adam(Buf.zeros(DataType.DOUBLE, 2), 1e-3));
    }
}
