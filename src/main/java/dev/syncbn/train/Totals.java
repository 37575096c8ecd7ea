package dev.syncbn.train;

import java.io.Serializable;

/** Sums over a set of samples: loss, correct predictions, count. */
public record Totals(double lossSum, long correct, long count) implements Serializable {
    public static final Totals NONE = new Totals(0, 0, 0);

    public double meanLoss() {
        return count == 0 ? Double.NaN : lossSum / count;
    }

    public double accuracy() {
        return count == 0 ? Double.NaN : (double) correct / count;
    }

    public Totals plus(Totals o) {
        return new Totals(lossSum + o.lossSum, correct + o.correct, count + o.count);
    }
}
