package dev.syncbn.nn;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The network's description: input channels, height and width, the architecture, and the number of
 * classes. Two architectures:
 * - the plain stack (depth 0): per conv width, conv 3x3 padding 1 -> BN -> ReLU -> max-pool 2x2;
 * - resnet-N (depth N = 6n+2, He et al. 2016 section 4.2): conv 3x3 (16 widen) -> BN -> ReLU, three
 *   stages of n basic blocks of widths 16, 32, 64 (times widen; the first block of stages 2 and 3 with
 *   stride 2), global average pool.
 * Both end in a linear layer to the class logits. The text form ("1x28x28:32,64:10",
 * "1x28x28:resnet-20:10", "3x32x32:resnet-20x2:10") is what a saved model records.
 */
public record NetSpec(int channels, int height, int width, int[] convWidths, int depth, int widen, int classes) implements Serializable {
    /** The seed network's conv widths, and what --net defaults to. */
    public static final String SEED = "32,64";
    private static final int[] STAGE_WIDTHS = {16, 32, 64};

    public NetSpec {
        if (channels < 1 || height < 1 || width < 1) throw new IllegalArgumentException("input shape must be positive: " + channels + "x" + height + "x" + width);
        if (classes < 2) throw new IllegalArgumentException("classes must be at least 2, got " + classes);
        if (depth == 0) {
            if (convWidths.length == 0) throw new IllegalArgumentException("at least one conv block is needed");
            for (int c : convWidths) if (c < 1) throw new IllegalArgumentException("conv widths must be positive: " + Arrays.toString(convWidths));
            if (widen != 1) throw new IllegalArgumentException("a width multiplier is for residual networks only");
        } else {
            if (depth < 8 || (depth - 2) % 6 != 0) throw new IllegalArgumentException("resnet depth must be 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, ...), got " + depth);
            if (widen < 1) throw new IllegalArgumentException("resnet width multiplier must be at least 1, got " + widen);
            if (convWidths.length != 0) throw new IllegalArgumentException("a residual network has no conv widths of its own");
        }
        convWidths = convWidths.clone();
    }

    /** A plain stack of conv blocks. */
    public NetSpec(int channels, int height, int width, int[] convWidths, int classes) {
        this(channels, height, width, convWidths, 0, 1, classes);
    }

    /** The seed network (SEED) for this input and classes. */
    public static NetSpec defaultFor(int channels, int height, int width, int classes) {
        return forData(SEED, channels, height, width, classes);
    }

    /**
     * The network that --net names for data of this shape: the architecture alone ("32,64", "resnet-20",
     * "resnet-20x2"), or a whole description, which must agree with the data.
     */
    public static NetSpec forData(String net, int channels, int height, int width, int classes) {
        String text = net.trim();
        if (text.indexOf(':') < 0) text = channels + "x" + height + "x" + width + ":" + text + ":" + classes;
        NetSpec spec = parse(text);
        if (spec.channels != channels || spec.height != height || spec.width != width || spec.classes != classes) {
            throw new IllegalArgumentException("--net " + net + " is for " + spec.channels + "x" + spec.height + "x" + spec.width + " images of " + spec.classes
                    + " classes, the data has " + channels + "x" + height + "x" + width + " of " + classes);
        }
        return spec;
    }

    public static NetSpec parse(String text) {
        try {
            String[] parts = text.trim().split(":");
            if (parts.length != 3) throw new IllegalArgumentException("three parts separated by ':'");
            String[] dims = parts[0].split("x");
            if (dims.length != 3) throw new IllegalArgumentException("an input shape CxHxW");
            int c = Integer.parseInt(dims[0]), h = Integer.parseInt(dims[1]), w = Integer.parseInt(dims[2]), k = Integer.parseInt(parts[2]);
            String arch = parts[1].trim();
            if (arch.startsWith("resnet-")) {
                String[] dw = arch.substring("resnet-".length()).split("x");
                if (dw.length > 2) throw new IllegalArgumentException("resnet-N or resnet-NxK");
                return new NetSpec(c, h, w, new int[0], Integer.parseInt(dw[0]), dw.length == 2 ? Integer.parseInt(dw[1]) : 1, k);
            }
            int[] widths = Arrays.stream(arch.split(",")).mapToInt(s -> Integer.parseInt(s.trim())).toArray();
            return new NetSpec(c, h, w, widths, k);
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("bad network description '" + text
                    + "' (expected like 1x28x28:32,64:10 or 1x28x28:resnet-20:10, or in --net the middle part alone): " + e.getMessage(), e);
        }
    }

    /** The middle part of the text form: "32,64", "resnet-20" or "resnet-20x2". */
    public String architecture() {
        if (depth > 0) return "resnet-" + depth + (widen > 1 ? "x" + widen : "");
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < convWidths.length; i++) b.append(i == 0 ? "" : ",").append(convWidths[i]);
        return b.toString();
    }

    @Override
    public String toString() {
        return channels + "x" + height + "x" + width + ":" + architecture() + ":" + classes;
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

    public boolean residual() {
        return depth > 0;
    }

    public int inputSize() {
        return channels * height * width;
    }

    /** One residual block: its input and output widths and the stride of its first conv (and of its shortcut, if it has one). */
    public record Block(int stage, int index, int inWidth, int outWidth, int stride) {
        /** A 1x1 conv + BN shortcut where the shape changes (option B), else the identity. */
        public boolean projects() {
            return stride != 1 || inWidth != outWidth;
        }
    }

    /** The stem's width of a residual network. */
    public int stemWidth() {
        return STAGE_WIDTHS[0] * widen;
    }

    /** A residual network's blocks in order (none for a plain stack). */
    public List<Block> blocks() {
        List<Block> blocks = new ArrayList<>();
        if (depth == 0) return blocks;
        int n = (depth - 2) / 6, in = stemWidth();
        for (int stage = 0; stage < STAGE_WIDTHS.length; stage++) {
            int out = STAGE_WIDTHS[stage] * widen;
            for (int b = 0; b < n; b++) {
                blocks.add(new Block(stage + 1, b + 1, in, out, b == 0 && stage > 0 ? 2 : 1));
                in = out;
            }
        }
        return blocks;
    }

    /**
     * The channel count of every BN layer in the network's order, which is also the order of their
     * parameters and running statistics: per conv block of a plain stack; for a residual network the
     * stem's, then per block bn1, bn2 and the shortcut's (as PyTorch's state_dict lists them).
     */
    public int[] bnChannels() {
        if (depth == 0) return convWidths.clone();
        List<Integer> c = new ArrayList<>(List.of(stemWidth()));
        for (Block b : blocks()) {
            c.add(b.outWidth());
            c.add(b.outWidth());
            if (b.projects()) c.add(b.outWidth());
        }
        return c.stream().mapToInt(Integer::intValue).toArray();
    }
}
