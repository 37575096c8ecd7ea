package dev.syncbn.optim;

import dev.syncbn.nn.Buf;

/**
 * Adam with PyTorch's semantics (torch.optim.Adam, no weight decay, no amsgrad):
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
 */
public final class Adam {
    public static final double DEFAULT_LR = 1e-3, DEFAULT_BETA1 = 0.9, DEFAULT_BETA2 = 0.999, DEFAULT_EPS = 1e-8;

    public final double lr, beta1, beta2, eps;
    /** First and second moment estimates, laid out like the parameters. */
    public final Buf m, v;
    private long step;
    /** 0: constant learning rate; otherwise cosine decay from lr to 0 over this many steps. */
    private long cosineSteps;

    public Adam(Buf params, double lr, double beta1, double beta2, double eps) {
        if (!(lr > 0)) throw new IllegalArgumentException("learning rate must be positive, got " + lr);
        this.lr = lr;
        this.beta1 = beta1;
        this.beta2 = beta2;
        this.eps = eps;
        this.m = Buf.zeros(params.type(), params.length());
        this.v = Buf.zeros(params.type(), params.length());
    }

    public Adam(Buf params, double lr) {
        this(params, lr, DEFAULT_BETA1, DEFAULT_BETA2, DEFAULT_EPS);
    }

    /** Decays the learning rate along half a cosine, from lr at step 1 to 0 after totalSteps (torch's CosineAnnealingLR with eta_min 0). */
    public Adam withCosineDecay(long totalSteps) {
        if (totalSteps < 1) throw new IllegalArgumentException("cosine decay needs at least one step, got " + totalSteps);
        this.cosineSteps = totalSteps;
        return this;
    }

    /** The learning rate of step t (1-based). */
    public double lrAt(long t) {
        if (cosineSteps == 0) return lr;
        return lr * 0.5 * (1 + Math.cos(Math.PI * Math.min(t - 1, cosineSteps) / cosineSteps));
    }

    public long step() {
        return step;
    }

    /** Restores the step count (with m and v, filled by the caller) from a checkpoint. */
    public void setStep(long step) {
        this.step = step;
    }

    /** Copies the moments and the step count into other, an Adam over parameters of the same length (a snapshot to go back to). */
    public void copyStateTo(Adam other) {
        other.m.copyFrom(m);
        other.v.copyFrom(v);
        other.step = step;
    }

    public void apply(Buf params, Buf grads) {
        step++;
        double c1 = 1 - Math.pow(beta1, step), c2 = 1 - Math.pow(beta2, step);
        double sqrtC2 = Math.sqrt(c2), lrNow = lrAt(step);
        for (int i = 0; i < params.length(); i++) {
            double g = grads.get(i);
            double mi = beta1 * m.get(i) + (1 - beta1) * g;
            double vi = beta2 * v.get(i) + (1 - beta2) * g * g;
            m.set(i, mi);
            v.set(i, vi);
            // PyTorch: denom = sqrt(v) / sqrt(1 - b2^t) + eps; p -= (lr / (1 - b1^t)) * m / denom
            params.add(i, -(lrNow / c1) * mi / (Math.sqrt(vi) / sqrtC2 + eps));
        }
    }
}
