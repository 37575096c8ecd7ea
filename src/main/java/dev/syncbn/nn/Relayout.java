package dev.syncbn.nn;

import java.util.HashMap;
import java.util.Map;
import org.bytedeco.dnnl.memory;
import org.bytedeco.dnnl.reorder;
import org.bytedeco.dnnl.stream;

/**
 * Moves float activations between NCHW and nChw8c (OneDnnConv.BLOCK channels to a block), and their
 * gradients back: the residual networks' float path keeps its activations blocked from the stem's BN to
 * the global average pool, so oneDNN's convolutions take and give them without a reorder each.
 */
public final class Relayout implements Layer {
    private final int[] shape;
    private final boolean toBlocked;
    private final Buf out, dx;
    private final Map<Integer, Reorders> byBatch = new HashMap<>();

    public Relayout(int[] shape, boolean toBlocked, int maxBatch) {
        if (shape[0] % OneDnnConv.BLOCK != 0) {
            throw new IllegalArgumentException("blocked activations need channels in multiples of " + OneDnnConv.BLOCK + ", got " + shape[0]);
        }
        this.shape = shape.clone();
        this.toBlocked = toBlocked;
        long size = (long) maxBatch * Layer.size(shape);
        this.out = Buf.aligned(size);
        this.dx = Buf.aligned(size);
    }

    @Override
    public int[] outShape() {
        return shape.clone();
    }

    @Override
    public Buf forward(Buf x, int n, boolean training) {
        if (n > 0) reorders(n).run(toBlocked, x.address(), out.address());
        return out;
    }

    @Override
    public Buf backward(Buf dy, int n) {
        if (n > 0) reorders(n).run(!toBlocked, dy.address(), dx.address());
        return dx;
    }

    @Override
    public void close() {
        byBatch.values().forEach(Reorders::close);
        byBatch.clear();
    }

    private Reorders reorders(int n) {
        return byBatch.computeIfAbsent(n, size -> new Reorders(new long[] {size, shape[0], shape[1], shape[2]}));
    }

    /** The two reorders for batches of n, each between two memories whose addresses are set per call. */
    private static final class Reorders {
        final stream stream = new stream(OneDnnConv.CPU);
        final memory plain, blocked;
        final reorder toBlocked, toPlain;

        Reorders(long[] dims) {
            plain = OneDnnConv.userMemory(dims, OneDnnConv.layout(false));
            blocked = OneDnnConv.userMemory(dims, OneDnnConv.layout(true));
            toBlocked = new reorder(plain, blocked);
            toPlain = new reorder(blocked, plain);
        }

        void run(boolean intoBlocked, long from, long to) {
            memory source = intoBlocked ? plain : blocked, target = intoBlocked ? blocked : plain;
            source.set_data_handle(new OneDnnConv.Address(from));
            target.set_data_handle(new OneDnnConv.Address(to));
            (intoBlocked ? toBlocked : toPlain).execute(stream, source, target);
            stream._wait();
        }

        void close() {
            OneDnnConv.close(toBlocked, toPlain, plain, blocked, stream);
        }
    }
}
