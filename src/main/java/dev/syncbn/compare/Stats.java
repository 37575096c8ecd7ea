package dev.syncbn.compare;

import java.util.Locale;
import org.apache.commons.math3.distribution.TDistribution;

/** Mean, standard deviation and the half-width of the 95% interval of the mean (Student's t, commons-math3's) of n values. */
    /** Mean, standard deviation and the half-width of the 95% interval of the mean (Student's t) of n values. */
public record Stats(int n, double mean, double sd, double half) {
    static Stats of(double[] xs) {
        return of(xs, 0);
    }

    /**
     * sdFloor: the interval uses at least this standard deviation. Accuracies on N test images move in
     * steps of 1/N, and a few seeds can agree exactly (three differences of one image each): their
     * standard deviation of 0 would make an interval of width 0 that "excludes 0" without telling
     * anything. Floored at one test image, such a difference is reported as the noise it is.
     */
    static Stats of(double[] xs, double sdFloor) {
        int n = xs.length;
        double mean = 0, ss = 0;
        for (double x : xs) mean += x / n;
        for (double x : xs) ss += (x - mean) * (x - mean);
        double sd = n > 1 ? Math.sqrt(ss / (n - 1)) : Double.NaN;
        return new Stats(n, mean, sd, n > 1 ? tCritical(n - 1) * Math.max(sd, sdFloor) / Math.sqrt(n) : Double.NaN);
    }

    boolean excludesZero() {
        return mean - half > 0 || mean + half < 0;
    }

    String text(double scale) {
        if (n < 2) return String.format(Locale.ROOT, "%.2f", scale * mean);
        return String.format(Locale.ROOT, "%.2f ± %.2f [%.2f, %.2f]", scale * mean, scale * sd, scale * (mean - half), scale * (mean + half));
    }

    /** The two-sided 95% quantile of Student's t with df degrees of freedom. */
    static double tCritical(int df) {
        return new TDistribution(null, df).inverseCumulativeProbability(0.975);
    }
}
