package dev.syncbn.nn;

import org.nd4j.linalg.api.buffer.DataType;

/** The mean of each channel's H x W plane: {C, H, W} to {C}. The backward spreads dy[c] / (H*W) over the plane. */
public final class GlobalAvgPool implements Layer {
    private final int channels, plane;
    private final Buf out, dx;

    public GlobalAvgPool(int[] inShape, int maxBatch, DataType type) {
        this.channels = inShape[0];
        this.plane = inShape[1] * inShape[2];
        this.out = Buf.zeros(type, (long) maxBatch * channels);
        this.dx = Buf.zeros(type, (long) maxBatch * channels * plane);
    }

    @Override
    public int[] outShape() {
        return new int[] {channels};
    }

    @Override
    public Buf forward(Buf x, int n, boolean training) {
        for (int p = 0; p < n * channels; p++) {
            double s = 0;
            for (int i = p * plane; i < (p + 1) * plane; i++) s += x.get(i);
            out.set(p, s / plane);
        }
        return out;
    }

    @Override
    public Buf backward(Buf dy, int n) {
        for (int p = 0; p < n * channels; p++) {
            double g = dy.get(p) / plane;
            for (int i = p * plane; i < (p + 1) * plane; i++) dx.set(i, g);
        }
        return dx;
    }
}
