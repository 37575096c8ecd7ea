package dev.syncbn.nn;

import java.util.Random;
import java.util.function.DoubleSupplier;
import java.util.stream.IntStream;
import org.nd4j.linalg.api.buffer.DataType;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Central finite differences in double precision against analytic gradients. */
final class GradCheck {
    static final double H = 1e-6;

    private GradCheck() {}

    static Buf randomBuf(int n, Random rng) {
        Buf b = Buf.zeros(DataType.DOUBLE, n);
        for (int i = 0; i < n; i++) b.set(i, rng.nextGaussian());
        return b;
    }

    /** d loss / d buf[i], numerically, for every i in [0, count). */
    static double[] numeric(Buf buf, int count, DoubleSupplier loss) {
        return numericAt(buf, IntStream.range(0, count).toArray(), loss);
    }

    /** d loss / d buf[i] numerically for each of the given indices; returns them in that order. */
    static double[] numericAt(Buf buf, int[] indices, DoubleSupplier loss) {
        double[] g = new double[indices.length];
        for (int j = 0; j < indices.length; j++) {
            int i = indices[j];
            double orig = buf.get(i);
            buf.set(i, orig + H);
            double plus = loss.getAsDouble();
            buf.set(i, orig - H);
            double minus = loss.getAsDouble();
            buf.set(i, orig);
            g[j] = (plus - minus) / (2 * H);
        }
        return g;
    }

    /** Asserts |a - n| <= 1e-6 * max(1, |a|, |n|) element-wise, naming the first bad index. */
    static void assertClose(String what, double[] numeric, Buf analytic, int offset) {
        double worst = 0;
        for (int i = 0; i < numeric.length; i++) {
            double a = analytic.get(offset + i), n = numeric[i];
            double err = Math.abs(a - n) / Math.max(1, Math.max(Math.abs(a), Math.abs(n)));
            worst = Math.max(worst, err);
            assertTrue(err < 1e-6, what + "[" + i + "]: analytic " + a + " numeric " + n);
        }
        assertTrue(numeric.length > 0, what + ": nothing checked");
    }

    /** Sum of y[i] * r[i] over the first count elements: a scalar loss whose dy is r. */
    static double dot(Buf y, Buf r, int count) {
        double s = 0;
        for (int i = 0; i < count; i++) s += y.get(i) * r.get(i);
        return s;
    }

    /**
     * Checks a layer's input gradient (if it has one) and parameter gradients on n random samples, with
     * the loss sum(y * r) for a random r.
     */
    static void checkLayer(String name, Layer layer, int[] inShape, int n, boolean training, long seed) {
        Random rng = new Random(seed);
        int inSize = n * Layer.size(inShape), outSize = n * Layer.size(layer.outShape());
        Buf params = randomBuf(Math.max(1, layer.paramCount()), rng);
        Buf grads = Buf.zeros(DataType.DOUBLE, Math.max(1, layer.paramCount()));
        layer.bindParams(params, grads, 0);
        Buf x = randomBuf(inSize, rng);
        Buf r = randomBuf(outSize, rng);
        DoubleSupplier loss = () -> dot(layer.forward(x, n, training), r, outSize);
        loss.getAsDouble();
        Buf dx = layer.backward(r, n);
        // backward overwrites grads; keep copies before the numeric passes run the forward again
        Buf dxCopy = null;
        if (dx != null) {
            dxCopy = Buf.zeros(DataType.DOUBLE, inSize);
            for (int i = 0; i < inSize; i++) dxCopy.set(i, dx.get(i));
        }
        Buf gradCopy = Buf.zeros(DataType.DOUBLE, grads.length());
        gradCopy.copyFrom(grads);
        if (dxCopy != null) assertClose(name + " dx", numeric(x, inSize, loss), dxCopy, 0);
        if (layer.paramCount() > 0) assertClose(name + " dparams", numeric(params, layer.paramCount(), loss), gradCopy, 0);
    }
}
