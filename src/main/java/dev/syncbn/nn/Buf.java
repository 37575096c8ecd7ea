package dev.syncbn.nn;

import java.nio.ByteOrder;
import java.nio.DoubleBuffer;
import java.nio.FloatBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * A flat, off-heap array of floats (training) or doubles (gradient checks), allocated once and reused.
 * It is at the same time an ND4J array, so the convolution and matrix-product ops read and write it in
 * place, and plain Java loops read and write it through get/set. Every layer is written once against
 * this class and runs in either precision.
 */
public abstract class Buf {
    public final INDArray flat;
    private final INDArray memory; // the array that owns the memory: flat, or the longer one an aligned view is of
    private INDArray lastView;
    private long[] lastShape;

    private Buf(INDArray flat, INDArray memory) {
        this.flat = flat;
        this.memory = memory;
    }

    private static final ThreadLocal<long[]> ALLOCATED = ThreadLocal.withInitial(() -> new long[1]);
    private static final ThreadLocal<Deque<List<Buf>>> COLLECTED = ThreadLocal.withInitial(ArrayDeque::new);

    /**
     * Gathers every buffer this thread allocates from now until stopCollecting, which returns them, for
     * their owner to free together (closeAll). Off-heap memory is otherwise freed only when the garbage
     * collector finds the arrays unreachable: a JVM that builds networks faster than its heap fills (an
     * executor evaluating 32 partitions of resnet-20 at once, up to 1 GB each) runs out of memory first.
     * Calls nest: an inner owner's buffers are the outer owner's too.
     */
    static void startCollecting() {
        COLLECTED.get().push(new ArrayList<>());
    }

    static List<Buf> stopCollecting() {
        List<Buf> mine = COLLECTED.get().pop();
        if (!COLLECTED.get().isEmpty()) COLLECTED.get().peek().addAll(mine);
        return mine;
    }

    /** Frees the buffers' memory now; they must not be used afterwards. */
    static void closeAll(List<Buf> bufs) {
        for (Buf b : bufs) if (b.memory.closeable() && !b.memory.wasClosed()) b.memory.close();
    }

    /** True once closeAll freed this buffer's memory. */
    boolean isClosed() {
        return memory.wasClosed();
    }

    /** Bytes this thread has allocated through zeros so far (to size a network before building it for real). */
    public static long allocatedByThisThread() {
        return ALLOCATED.get()[0];
    }

    public static Buf zeros(DataType type, long length) {
        INDArray flat = Nd4j.create(type, Math.max(1, length));
        ALLOCATED.get()[0] += Math.max(1, length) * type.width();
        Buf b;
        if (type == DataType.FLOAT) b = new F32(flat);
        else if (type == DataType.DOUBLE) b = new F64(flat);
        else throw new IllegalArgumentException("unsupported data type " + type + " (FLOAT or DOUBLE)");
        List<Buf> collecting = COLLECTED.get().peek();
        if (collecting != null) collecting.add(b);
        return b;
    }

    /** Where the first element is in memory, for native code. */
    public final long address() {
        return flat.data().address() + flat.offset() * type().width();
    }

    /**
     * As zeros in float, with the first element on a 64-byte boundary, for memory oneDNN's kernels read and
     * write (they load whole cache lines of a blocked layout): in its own blocked copies at ND4J's 16-byte
     * alignment a convolution took 30% longer (2.1 against 1.6 ms, 16 channels at 28x28, batch 32). A view
     * of a slightly longer buffer, which closeAll frees.
     */
    public static Buf aligned(long length) {
        Buf whole = zeros(DataType.FLOAT, length + ALIGNMENT / 4);
        long skip = (ALIGNMENT - whole.address() % ALIGNMENT) % ALIGNMENT / 4;
        return new F32(whole.flat.get(NDArrayIndex.interval(skip, skip + Math.max(1, length))), whole.flat);
    }

    private static final long ALIGNMENT = 64;

    public abstract double get(int i);

    public abstract void set(int i, double v);

    public final void add(int i, double v) {
        set(i, get(i) + v);
    }

    public final int length() {
        return (int) flat.length();
    }

    public final DataType type() {
        return flat.dataType();
    }

    public final void fill(double v) {
        flat.assign(v);
    }

    /** The first product(shape) elements as an ND4J array of that shape, sharing this memory. */
    public final INDArray view(long... shape) {
        if (lastView != null && Arrays.equals(shape, lastShape)) return lastView;
        long n = 1;
        for (long s : shape) n *= s;
        if (n > flat.length()) throw new IllegalArgumentException("view of " + n + " elements in a buffer of " + flat.length());
        INDArray v = n == flat.length() ? flat.reshape(shape) : flat.get(NDArrayIndex.interval(0, n)).reshape(shape);
        lastView = v;
        lastShape = shape.clone();
        return v;
    }

    /** A view of elements [offset, offset+product(shape)) with that shape, sharing this memory. */
    public final INDArray slice(long offset, long... shape) {
        long n = 1;
        for (long s : shape) n *= s;
        return flat.get(NDArrayIndex.interval(offset, offset + n)).reshape(shape);
    }

    /**
     * The memory as a FloatBuffer, for the float-only kernels (BnReluPool): absolute bulk gets and puts
     * of a plane into a float[] let HotSpot vectorize the loops over it, which it does not for loops
     * over a buffer.
     */
    public FloatBuffer floats() {
        throw new UnsupportedOperationException("a " + type() + " buffer has no float view");
    }

    /** Copies the first dst.length values into dst (a bulk copy in float precision). */
    public abstract void copyTo(float[] dst);

    /** All values as a new float array. */
    public final float[] toFloats() {
        float[] out = new float[length()];
        copyTo(out);
        return out;
    }

    /** Overwrites the first src.length values with src (a bulk copy in float precision). */
    public abstract void copyFrom(float[] src);

    public final void copyFrom(Buf src) {
        flat.assign(src.flat);
    }

    private static final class F32 extends Buf {
        private final FloatBuffer data;

        F32(INDArray flat) {
            this(flat, flat);
        }

        F32(INDArray flat, INDArray memory) {
            super(flat, memory);
            data = flat.data().asNio().order(ByteOrder.nativeOrder()).asFloatBuffer().position((int) flat.offset()).slice();
        }

        @Override
        public double get(int i) {
            return data.get(i);
        }

        @Override
        public void set(int i, double v) {
            data.put(i, (float) v);
        }

        @Override
        public FloatBuffer floats() {
            return data;
        }

        @Override
        public void copyTo(float[] dst) {
            data.get(0, dst);
        }

        @Override
        public void copyFrom(float[] src) {
            data.put(0, src);
        }
    }

    private static final class F64 extends Buf {
        private final DoubleBuffer data;

        F64(INDArray flat) {
            super(flat, flat);
            data = flat.data().asNio().order(ByteOrder.nativeOrder()).asDoubleBuffer().position((int) flat.offset()).slice();
        }

        @Override
        public double get(int i) {
            return data.get(i);
        }

        @Override
        public void set(int i, double v) {
            data.put(i, v);
        }

        @Override
        public void copyTo(float[] dst) {
            for (int i = 0; i < dst.length; i++) dst[i] = (float) data.get(i);
        }

        @Override
        public void copyFrom(float[] src) {
            for (int i = 0; i < src.length; i++) data.put(i, src[i]);
        }
    }
}
