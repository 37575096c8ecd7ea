package dev.syncbn.nn;

import org.nd4j.linalg.api.buffer.DataType;

/**
 * Softmax cross-entropy on logits [n, classes]. The loss is the sum over the n samples divided by a
 * normalizer: n for one process; the global batch size for a replica of a data-parallel run, so that
 * the replicas' gradients add up to the gradient of the global mean loss.
 */
public final class SoftmaxCrossEntropy {
    private final int classes;
    private final Buf dLogits;

    public SoftmaxCrossEntropy(int classes, int maxBatch, DataType type) {
        this.classes = classes;
        this.dLogits = Buf.zeros(type, (long) maxBatch * classes);
    }

    /** Sum of per-sample losses and number of correct predictions (argmax equals label). */
    public record Result(double lossSum, int correct) {}

    /** Computes the loss of n samples and, if gradient, fills dLogits() with d(lossSum/normalizer)/dlogits. */
    public Result apply(Buf logits, int[] labels, int n, double normalizer, boolean gradient) {
        double lossSum = 0;
        int correct = 0;
        for (int s = 0; s < n; s++) {
            int base = s * classes, label = labels[s];
            double max = Double.NEGATIVE_INFINITY;
            int argmax = 0;
            for (int j = 0; j < classes; j++) {
                double v = logits.get(base + j);
                if (v > max) {
                    max = v;
                    argmax = j;
                }
            }
            // log-sum-exp shifted by the max, so exp never overflows.
            double sumExp = 0;
            for (int j = 0; j < classes; j++) sumExp += Math.exp(logits.get(base + j) - max);
            double logZ = max + Math.log(sumExp);
            lossSum += logZ - logits.get(base + label);
            if (argmax == label) correct++;
            if (gradient) {
                for (int j = 0; j < classes; j++) {
                    double p = Math.exp(logits.get(base + j) - logZ);
                    dLogits.set(base + j, (p - (j == label ? 1 : 0)) / normalizer);
                }
            }
        }
        return new Result(lossSum, correct);
    }

    public Buf dLogits() {
        return dLogits;
    }
}
