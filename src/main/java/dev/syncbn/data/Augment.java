package dev.syncbn.data;

import dev.syncbn.nn.Buf;
import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Training-time augmentation (--augment): each image is shifted by up to PAD pixels each way, the
 * uncovered border black (a random crop of the image padded with PAD zeros), and mirrored left to right
 * with probability 1/2. The draw depends only on the seed, the epoch and the sample's position in the
 * epoch's global shuffle, so a sample is augmented alike in one process and on any replica of any W
 * (position p is replica p % W's (p / W)-th sample: Sampler), and sync BN still computes what one
 * process computes.
 */
public final class Augment {
    private Augment() {}

    /** The largest shift, in pixels (4, as He et al.'s CIFAR recipe). */
    public static final int PAD = 4;

    /**
     * Writes samples order[from .. from+count) of data, augmented, into input (floats in [0, 1]) and their
     * labels into labelsOut; the j-th has shuffle position firstPosition + j * positionStride.
     */
    public static void fill(Dataset data, int[] order, int from, int count, Buf input, int[] labelsOut, long seed, int epoch, long firstPosition,
            int positionStride) {
        int c = data.channels(), h = data.height(), w = data.width(), size = data.sampleSize();
        byte[] pixels = data.pixels();
        float[] out = new float[size];
        for (int j = 0; j < count; j++) {
            int s = order[from + j];
            SplittableRandom rng = new SplittableRandom(mix(seed, epoch, firstPosition + (long) j * positionStride));
            int dy = rng.nextInt(2 * PAD + 1) - PAD, dx = rng.nextInt(2 * PAD + 1) - PAD;
            boolean mirror = rng.nextBoolean();
            Arrays.fill(out, 0f);
            for (int ch = 0; ch < c; ch++) {
                for (int y = 0; y < h; y++) {
                    int sy = y + dy;
                    if (sy < 0 || sy >= h) continue;
                    int src = s * size + (ch * h + sy) * w, dst = (ch * h + y) * w;
                    for (int x = 0; x < w; x++) {
                        int sx = (mirror ? w - 1 - x : x) + dx;
                        if (sx >= 0 && sx < w) out[dst + x] = (pixels[src + sx] & 0xff) / 255f;
                    }
                }
            }
            for (int i = 0; i < size; i++) input.set(j * size + i, out[i]);
            labelsOut[j] = data.label(s);
        }
    }

    private static long mix(long seed, int epoch, long position) {
        long z = seed * 0x9E3779B97F4A7C15L + epoch * 0xBF58476D1CE4E5B9L + position * 0x94D049BB133111EBL;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
