package dev.syncbn.nn;

import java.util.SplittableRandom;

/**
 * One layer of the network, with its forward and backward passes side by side. A layer owns its output
 * and input-gradient buffers (sized for the largest batch, reused every step) and views of the network's
 * flat parameter and gradient buffers. Shapes are per sample: {C, H, W}, or {features}.
 */
public interface Layer {
    int[] outShape();

    default int paramCount() {
        return 0;
    }

    /**
     * Floating-point operations of one sample's forward and backward in its matrix products (2 per
     * multiply-add; the weight gradient and the input gradient each cost what the forward does); the
     * element-wise layers count as 0.
     */
    default double trainingFlops() {
        return 0;
    }

    /** Takes this layer's views at offset of the network's flat parameter and gradient buffers. */
    default void bindParams(Buf params, Buf grads, int offset) {}

    /** Writes PyTorch's default initialization into this layer's parameters. */
    default void initParams(SplittableRandom rng) {}

    /** x holds n samples; returns the buffer holding the n outputs. */
    Buf forward(Buf x, int n, boolean training);

    /**
     * dy is the gradient of the loss with respect to the last forward's output. Writes (does not add)
     * this layer's parameter gradients and returns the input gradient, or null if this layer was built
     * without one (the first layer).
     */
    Buf backward(Buf dy, int n);

    /**
     * Frees native memory the layer made after its construction (at its first forward or backward),
     * which the network's own close, freeing what was allocated while it was built, does not see.
     */
    default void close() {}

    static int size(int[] shape) {
        int s = 1;
        for (int d : shape) s *= d;
        return s;
    }
}
