package dev.syncbn.data;

import dev.syncbn.nn.Buf;
import java.util.Arrays;

/**
 * Labelled images in one contiguous block: pixels as unsigned bytes, sample after sample, each C x H x W
 * (NCHW order); labels as bytes. Pixels become floats in [0, 1] only when a batch is filled.
 */
public record Dataset(byte[] pixels, byte[] labels, int channels, int height, int width, int classes) {
    public Dataset {
        long expected = (long) labels.length * channels * height * width;
        if (pixels.length != expected) {
            throw new IllegalArgumentException(labels.length + " labels need " + expected + " pixel bytes, got " + pixels.length);
        }
        if (classes < 1 || classes > 256) throw new IllegalArgumentException("class count " + classes + " is outside 1..256 (labels are bytes)");
    }

    /** The class count that labels imply: the largest label + 1. */
    public static int classesOf(byte[] labels) {
        int max = 0;
        for (byte b : labels) max = Math.max(max, b & 0xff);
        return max + 1;
    }

    /** The same samples, declared to have k classes (at least as many as the labels imply). */
    public Dataset withClasses(int k) {
        if (k < classesOf(labels)) throw new IllegalArgumentException("labels go up to " + (classesOf(labels) - 1) + ", more than " + k + " classes");
        return new Dataset(pixels, labels, channels, height, width, k);
    }

    public int size() {
        return labels.length;
    }

    public int sampleSize() {
        return channels * height * width;
    }

    public int label(int i) {
        return labels[i] & 0xff;
    }

    /** n, or the first `max` of n if max > 0 (the meaning of --max-train and --max-test). */
    public static int limit(int n, int max) {
        return max > 0 ? Math.min(n, max) : n;
    }

    /** The first n samples (n clamped to size()), sharing nothing with this one. */
    public Dataset head(int n) {
        int m = Math.min(n, size());
        return new Dataset(Arrays.copyOf(pixels, m * sampleSize()), Arrays.copyOf(labels, m), channels, height, width, classes);
    }

    /**
     * Writes samples order[from .. from+count) into input (as floats in [0, 1]) and their labels into
     * labelsOut[0 .. count).
     */
    public void fill(int[] order, int from, int count, Buf input, int[] labelsOut) {
        int size = sampleSize();
        for (int j = 0; j < count; j++) {
            int s = order[from + j];
            int src = s * size, dst = j * size;
            for (int i = 0; i < size; i++) input.set(dst + i, (pixels[src + i] & 0xff) / 255.0);
            labelsOut[j] = label(s);
        }
    }
}
