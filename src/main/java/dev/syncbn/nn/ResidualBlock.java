package dev.syncbn.nn;

import java.util.List;
import java.util.SplittableRandom;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * One basic block of a residual network (He et al. 2016): conv 3x3 (stride s) -> BN -> ReLU -> conv 3x3
 * -> BN, plus the shortcut (the identity, or 1x1 conv stride s -> BN where the shape changes), then
 * ReLU. Parameters in PyTorch's order: conv1, bn1, conv2, bn2, then the shortcut's conv and BN.
 *
 * With the fast kernels the activations are blocked (nChw8c: see Relayout) and BN + ReLU and BN + add +
 * ReLU are one FusedBn each; the reference kernels (double)
 * run BatchNorm2d and the add and ReLU as written. The BN layers meet their group in the same order in
 * every replica: forward bn1, shortcut BN, bn2; backward bn2, bn1, shortcut BN.
 */
public final class ResidualBlock implements Layer {
    private final Conv2d conv1, conv2, shortcutConv;
    private final BnLayer bn1, shortcutBn;
    private final FusedBn tail; // fast: bn2 + add + ReLU
    private final BatchNorm2d bn2; // reference: bn2, followed by the add and ReLU here
    private final int[] outShape;
    private final int inSize;
    private final Buf out, atSum; // reference only: the output, and the gradient at the sum
    private final List<Layer> layers;

    /** Appends its BN layers' statistics (bn1, bn2, the shortcut's) to batchNorms, numbered on from its size. */
    public ResidualBlock(NetSpec.Block block, int[] inShape, List<BnStatistics> batchNorms, int maxBatch, Parallel parallel, ConvNet.Kernels kernels) {
        DataType type = kernels.type();
        boolean fast = kernels == ConvNet.Kernels.FAST;
        int width = block.outWidth(), stride = block.stride();
        conv1 = new Conv2d(inShape, width, 3, stride, 1, false, true, maxBatch, parallel, type, fast);
        bn1 = kernels.batchNorm(BnStatistics.next(conv1.outShape(), batchNorms), true, maxBatch, parallel);
        conv2 = new Conv2d(conv1.outShape(), width, 3, 1, 1, false, true, maxBatch, parallel, type, fast);
        BnStatistics s2 = BnStatistics.next(conv2.outShape(), batchNorms);
        tail = fast ? new FusedBn(s2, true, true, OneDnnConv.BLOCK, maxBatch, parallel) : null;
        bn2 = fast ? null : new BatchNorm2d(s2, false, maxBatch, parallel, type);
        outShape = conv2.outShape();
        inSize = Layer.size(inShape);
        if (block.projects()) {
            shortcutConv = new Conv2d(inShape, width, 1, stride, 0, false, true, maxBatch, parallel, type, fast);
            shortcutBn = kernels.batchNorm(BnStatistics.next(shortcutConv.outShape(), batchNorms), false, maxBatch, parallel);
        } else {
            shortcutConv = null;
            shortcutBn = null;
        }
        layers = shortcutConv == null ? List.of(conv1, bn1, conv2, fast ? tail : bn2) : List.of(conv1, bn1, conv2, fast ? tail : bn2, shortcutConv, shortcutBn);
        long size = (long) maxBatch * Layer.size(outShape);
        out = fast ? null : Buf.zeros(type, size);
        atSum = fast ? null : Buf.zeros(type, size);
    }

    @Override
    public int[] outShape() {
        return outShape.clone();
    }

    @Override
    public int paramCount() {
        return layers.stream().mapToInt(Layer::paramCount).sum();
    }

    @Override
    public double trainingFlops() {
        return layers.stream().mapToDouble(Layer::trainingFlops).sum();
    }

    @Override
    public void bindParams(Buf params, Buf grads, int offset) {
        for (Layer layer : layers) {
            layer.bindParams(params, grads, offset);
            offset += layer.paramCount();
        }
    }

    @Override
    public void initParams(SplittableRandom rng) {
        for (Layer layer : layers) layer.initParams(rng);
    }

    @Override
    public Buf forward(Buf x, int n, boolean training) {
        Buf main = conv2.forward(bn1.forward(conv1.forward(x, n, training), n, training), n, training);
        Buf shortcut = shortcutConv == null ? x : shortcutBn.forward(shortcutConv.forward(x, n, training), n, training);
        if (tail != null) return tail.forward(main, shortcut, n, training);
        Buf normalized = bn2.forward(main, n, training);
        for (int i = 0; i < n * Layer.size(outShape); i++) out.set(i, Math.max(0, normalized.get(i) + shortcut.get(i)));
        return out;
    }

    @Override
    public Buf backward(Buf dy, int n) {
        Buf dMain, g;
        if (tail != null) {
            dMain = tail.backward(dy, n);
            g = tail.residualGradient();
        } else {
            for (int i = 0; i < n * Layer.size(outShape); i++) atSum.set(i, out.get(i) > 0 ? dy.get(i) : 0);
            g = atSum;
            dMain = bn2.backward(g, n);
        }
        Buf dx = conv1.backward(bn1.backward(conv2.backward(dMain, n), n), n);
        Buf dShortcut = shortcutConv == null ? g : shortcutConv.backward(shortcutBn.backward(g, n), n);
        if (n > 0) dx.view((long) n * inSize).addi(dShortcut.view((long) n * inSize));
        return dx;
    }

    @Override
    public void close() {
        for (Layer layer : layers) layer.close();
    }
}
