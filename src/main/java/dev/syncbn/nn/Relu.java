package dev.syncbn.nn;

/** y = max(x, 0); dx = dy where y > 0, else 0. */
public final class Relu implements Layer {
    private final int[] shape;
    private final int size;
    private final Parallel parallel;
    private final Buf out, dx;

    public Relu(int[] shape, int maxBatch, Parallel parallel, org.nd4j.linalg.api.buffer.DataType type) {
        this.shape = shape.clone();
        this.size = Layer.size(shape);
        this.parallel = parallel;
        this.out = Buf.zeros(type, (long) maxBatch * size);
        this.dx = Buf.zeros(type, (long) maxBatch * size);
    }

    @Override
    public int[] outShape() {
        return shape.clone();
    }

    @Override
    public Buf forward(Buf x, int n, boolean training) {
        parallel.forEach(n, s -> {
            for (int i = s * size; i < (s + 1) * size; i++) out.set(i, Math.max(x.get(i), 0));
        });
        return out;
    }

    @Override
    public Buf backward(Buf dy, int n) {
        parallel.forEach(n, s -> {
            for (int i = s * size; i < (s + 1) * size; i++) dx.set(i, out.get(i) > 0 ? dy.get(i) : 0);
        });
        return dx;
    }
}
