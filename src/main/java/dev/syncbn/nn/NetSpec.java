package dev.syncbn.nn;

import java.io.Serializable;
import java.util.Arrays;

/**
 * The network's description: input channels, height and width, the widths of the conv blocks
 * (conv 3x3 padding 1, BN, ReLU, max-pool 2x2 each) and the number of classes.
 * Its text form ("1x28x28:32,64:10") is what a saved model records.
 */
public record NetSpec(int channels, int height, int width, int[] convWidths, int classes) implements Serializable {
    public NetSpec {
        if (channels < 1 || height < 1 || width < 1) throw new IllegalArgumentException("input shape must be positive: " + channels + "x" + height + "x" + width);
        if (convWidths.length == 0) throw new IllegalArgumentException("at least one conv block is needed");
        for (int c : convWidths) if (c < 1) throw new IllegalArgumentException("conv widths must be positive: " + Arrays.toString(convWidths));
        if (classes < 2) throw new IllegalArgumentException("classes must be at least 2, got " + classes);
        convWidths = convWidths.clone();
    }

    public static NetSpec defaultFor(int channels, int height, int width, int classes) {
        return new NetSpec(channels, height, width, new int[] {32, 64}, classes);
    }

    public static NetSpec parse(String text) {
        try {
            String[] parts = text.trim().split(":");
            String[] dims = parts[0].split("x");
            int[] widths = Arrays.stream(parts[1].split(",")).mapToInt(s -> Integer.parseInt(s.trim())).toArray();
            return new NetSpec(Integer.parseInt(dims[0]), Integer.parseInt(dims[1]), Integer.parseInt(dims[2]), widths, Integer.parseInt(parts[2]));
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("bad network description '" + text + "' (expected like 1x28x28:32,64:10): " + e.getMessage(), e);
        }
    }

    @Override
    public String toString() {
        StringBuilder b = new StringBuilder().append(channels).append('x').append(height).append('x').append(width).append(':');
        for (int i = 0; i < convWidths.length; i++) b.append(i == 0 ? "" : ",").append(convWidths[i]);
        return b.append(':').append(classes).toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NetSpec s && s.toString().equals(toString());
    }

    @Override
    public int hashCode() {
        return toString().hashCode();
    }

    @Override
    public int[] convWidths() {
        return convWidths.clone();
    }

    public int inputSize() {
        return channels * height * width;
    }
}
