package dev.syncbn.nn;

import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DIFF_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_DST;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_SRC;
import static org.bytedeco.dnnl.global.dnnl.DNNL_ARG_WEIGHTS;
import static org.bytedeco.dnnl.global.dnnl.DNNL_VERSION_MAJOR;
import static org.bytedeco.dnnl.global.dnnl.DNNL_VERSION_MINOR;
import static org.bytedeco.dnnl.global.dnnl.DNNL_VERSION_PATCH;

import java.util.Set;
import java.util.concurrent.ConcurrentSkipListSet;

import org.bytedeco.dnnl.IntMemoryMap;
import org.bytedeco.dnnl.convolution_backward_data;
import org.bytedeco.dnnl.convolution_backward_weights;
import org.bytedeco.dnnl.convolution_forward;
import org.bytedeco.dnnl.engine;
import org.bytedeco.dnnl.global.dnnl.algorithm;
import org.bytedeco.dnnl.global.dnnl.prop_kind;
import org.bytedeco.dnnl.memory;
import org.bytedeco.dnnl.primitive;
import org.bytedeco.dnnl.reorder;
import org.bytedeco.dnnl.stream;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;

/**
 * One float convolution's oneDNN 3 primitives for batches of n samples: forward, backward data and
 * backward weights, made once and run every step. Weights are [out, in, kH, kW] and activations NCHW
 * or, in the residual networks' float path, nChw8c (blocked: see Relayout); each primitive takes the
 * layout oneDNN picks for it (nChw8c on AVX2), and where that is not the layer's, jit reorders move the
 * data in and out (0.02 to 0.13 ms each at batch 32; blocked activations save them: resnet-20 at 1
 * thread batch 32 ran at 296 against 268 images/s, alternating). The forward's input in oneDNN's layout
 * is kept for the weight gradient.
 *
 * Measured at batch 32 on one AVX2 core against ND4J's conv2d and conv2d_bp (its oneDNN 2, which makes
 * and reorders everything on each call): 16 channels at 28x28 4.6 against 7.8 to 9.9 ms for the three
 * passes, 32 at 14x14 4.0 against 5.8, 64 at 7x7 4.1 against 4.8.
 *
 * The OpenMP threads of these primitives are the calling thread's (Backend.limitThisThread): oneDNN 3
 * and ND4J load one libgomp between them.
 */
final class OneDnnConv {
    static final engine CPU = new engine(engine.kind.cpu, 0);
    // What a user memory points at until its first call sets it (JavaCPP refuses a null address).
    private static final Pointer UNSET = new BytePointer(1);

    private final stream stream = new stream(CPU);
    private final memory userSrc, userWeights, userDst;
    private final memory src, weights, dst;
    private final primitive forward;
    private final reorder srcIn, weightsIn, dstOut;
    private final IntMemoryMap forwardArgs = new IntMemoryMap();
    private final convolution_forward.primitive_desc forwardDesc;
    private final long[] srcDims, weightDims, dstDims, strides, padding;
    private final Scratch scratch;
    private final memory.format_tag activations;
    private Backward backward;

    /**
     * The layout of activations in oneDNN's terms: NCHW, or channels in blocks of BLOCK (nChw8c), the
     * layout oneDNN's AVX2 kernels take, in which the residual networks' float path keeps its activations.
     */
    static final int BLOCK = 8;

    static memory.format_tag layout(boolean blocked) {
        return blocked ? memory.format_tag.aBcd8b : memory.format_tag.nchw;
    }

    /**
     * n samples of inC x inH x inW, outC filters of k x k; activations (and their gradients) NCHW or, if
     * blocked, nChw8c; the copies in oneDNN's own layouts, where it wants others, live in scratch.
     */
    OneDnnConv(int n, int inC, int inH, int inW, int outC, int k, int stride, int pad, boolean blocked, Scratch scratch) {
        int outH = (inH + 2 * pad - k) / stride + 1, outW = (inW + 2 * pad - k) / stride + 1;
        srcDims = new long[] {n, inC, inH, inW};
        weightDims = new long[] {outC, inC, k, k};
        dstDims = new long[] {n, outC, outH, outW};
        strides = new long[] {stride, stride};
        padding = new long[] {pad, pad};
        this.scratch = scratch;
        forwardDesc = new convolution_forward.primitive_desc(CPU, prop_kind.forward_training, algorithm.convolution_direct,
                any(srcDims), any(weightDims), any(dstDims), strides, padding, padding);
        activations = layout(blocked);
        userSrc = userMemory(srcDims, activations);
        userWeights = userMemory(weightDims, memory.format_tag.oihw);
        userDst = userMemory(dstDims, activations);
        src = inner(forwardDesc.src_desc(), userSrc, scratch, 0);
        weights = inner(forwardDesc.weights_desc(), userWeights, scratch, 1);
        dst = inner(forwardDesc.dst_desc(), userDst, scratch, 2);
        srcIn = src == userSrc ? null : new reorder(userSrc, src);
        weightsIn = weights == userWeights ? null : new reorder(userWeights, weights);
        dstOut = dst == userDst ? null : new reorder(dst, userDst);
        forward = new convolution_forward(forwardDesc);
        IMPLEMENTATIONS.add(forwardDesc.impl_info_str().getString());
        forwardArgs.put(DNNL_ARG_SRC, src);
        forwardArgs.put(DNNL_ARG_WEIGHTS, weights);
        forwardArgs.put(DNNL_ARG_DST, dst);
    }

    /** Where a layer's blocked copies live: the i-th of them, at least bytes long and 64-byte aligned (one set for every n). */
    interface Scratch {
        Buf get(int i, long bytes);
    }

    private static final Set<String> IMPLEMENTATIONS = new ConcurrentSkipListSet<>();

    /** The implementations oneDNN chose for the primitives made so far in this JVM (jit:avx2, ...: they name the instruction set). */
    static String implementations() {
        return String.join(", ", IMPLEMENTATIONS);
    }

    /** oneDNN's version, as major.minor.patch. */
    static String version() {
        return DNNL_VERSION_MAJOR + "." + DNNL_VERSION_MINOR + "." + DNNL_VERSION_PATCH;
    }

    /** y = conv(x, w): x, w and y are addresses of NCHW input, OIHW weights and NCHW output. */
    void forward(long x, long w, long y) {
        userSrc.set_data_handle(new Address(x));
        userWeights.set_data_handle(new Address(w));
        userDst.set_data_handle(new Address(y));
        run(srcIn, userSrc, src);
        run(weightsIn, userWeights, weights);
        forward.execute(stream, forwardArgs);
        run(dstOut, dst, userDst);
        stream._wait();
    }

    /**
     * dx and dw from dy, for the input and weights of the last forward (whose blocked input this keeps):
     * w, dy, dx and dw are addresses of OIHW weights, NCHW output gradient, NCHW input gradient and OIHW
     * weight gradient (overwritten).
     */
    void backward(long w, long dy, long dx, long dw) {
        if (backward == null) backward = new Backward();
        backward.run(w, dy, dx, dw);
    }

    /** The backward primitives, made at the first backward (an evaluating network never needs them). */
    private final class Backward {
        final memory userDiffDst = userMemory(dstDims, activations);
        final memory userDiffSrc = userMemory(srcDims, activations);
        final memory userDiffWeights = userMemory(weightDims, memory.format_tag.oihw);
        final memory dataDiffDst, dataWeights, diffSrc, weightsSrc, weightsDiffDst, diffWeights;
        final primitive data, weightGrad;
        final reorder dataDiffDstIn, dataWeightsIn, diffSrcOut, weightsSrcIn, weightsDiffDstIn, diffWeightsOut;
        final IntMemoryMap dataArgs = new IntMemoryMap(), weightArgs = new IntMemoryMap();

        Backward() {
            var dataDesc = new convolution_backward_data.primitive_desc(CPU, algorithm.convolution_direct,
                    any(srcDims), any(weightDims), any(dstDims), strides, padding, padding, forwardDesc);
            var weightDesc = new convolution_backward_weights.primitive_desc(CPU, algorithm.convolution_direct,
                    any(srcDims), any(weightDims), any(dstDims), strides, padding, padding, forwardDesc);
            dataDiffDst = inner(dataDesc.diff_dst_desc(), userDiffDst, scratch, 3);
            dataWeights = dataDesc.weights_desc().equals(weights.get_desc()) ? weights : inner(dataDesc.weights_desc(), userWeights, scratch, 4);
            diffSrc = inner(dataDesc.diff_src_desc(), userDiffSrc, scratch, 5);
            weightsSrc = weightDesc.src_desc().equals(src.get_desc()) ? src : inner(weightDesc.src_desc(), userSrc, scratch, 6);
            weightsDiffDst = weightDesc.diff_dst_desc().equals(dataDiffDst.get_desc()) ? dataDiffDst
                    : inner(weightDesc.diff_dst_desc(), userDiffDst, scratch, 7);
            diffWeights = inner(weightDesc.diff_weights_desc(), userDiffWeights, scratch, 8);
            dataDiffDstIn = dataDiffDst == userDiffDst ? null : new reorder(userDiffDst, dataDiffDst);
            dataWeightsIn = dataWeights == weights || dataWeights == userWeights ? null : new reorder(userWeights, dataWeights);
            diffSrcOut = diffSrc == userDiffSrc ? null : new reorder(diffSrc, userDiffSrc);
            weightsSrcIn = weightsSrc == src || weightsSrc == userSrc ? null : new reorder(userSrc, weightsSrc);
            weightsDiffDstIn = weightsDiffDst == dataDiffDst || weightsDiffDst == userDiffDst ? null : new reorder(userDiffDst, weightsDiffDst);
            diffWeightsOut = diffWeights == userDiffWeights ? null : new reorder(diffWeights, userDiffWeights);
            data = new convolution_backward_data(dataDesc);
            weightGrad = new convolution_backward_weights(weightDesc);
            IMPLEMENTATIONS.add(dataDesc.impl_info_str().getString());
            IMPLEMENTATIONS.add(weightDesc.impl_info_str().getString());
            dataArgs.put(DNNL_ARG_DIFF_DST, dataDiffDst);
            dataArgs.put(DNNL_ARG_WEIGHTS, dataWeights);
            dataArgs.put(DNNL_ARG_DIFF_SRC, diffSrc);
            weightArgs.put(DNNL_ARG_DIFF_DST, weightsDiffDst);
            weightArgs.put(DNNL_ARG_SRC, weightsSrc);
            weightArgs.put(DNNL_ARG_DIFF_WEIGHTS, diffWeights);
        }

        void close() {
            OneDnnConv.close(data, weightGrad, dataDiffDstIn, dataWeightsIn, diffSrcOut, weightsSrcIn, weightsDiffDstIn, diffWeightsOut,
                    dataArgs, weightArgs, userDiffDst, userDiffSrc, userDiffWeights, dataDiffDst, dataWeights, diffSrc, weightsSrc,
                    weightsDiffDst, diffWeights);
        }

        void run(long w, long dy, long dx, long dw) {
            userWeights.set_data_handle(new Address(w));
            userDiffDst.set_data_handle(new Address(dy));
            userDiffSrc.set_data_handle(new Address(dx));
            userDiffWeights.set_data_handle(new Address(dw));
            OneDnnConv.this.run(dataDiffDstIn, userDiffDst, dataDiffDst);
            OneDnnConv.this.run(dataWeightsIn, userWeights, dataWeights);
            OneDnnConv.this.run(weightsSrcIn, userSrc, weightsSrc);
            OneDnnConv.this.run(weightsDiffDstIn, userDiffDst, weightsDiffDst);
            data.execute(stream, dataArgs);
            OneDnnConv.this.run(diffSrcOut, diffSrc, userDiffSrc);
            weightGrad.execute(stream, weightArgs);
            OneDnnConv.this.run(diffWeightsOut, diffWeights, userDiffWeights);
            stream._wait();
        }
    }

    /** Frees the primitives and memory descriptions now (the blocked copies are the layer's Bufs). */
    void close() {
        if (backward != null) backward.close();
        close(forward, srcIn, weightsIn, dstOut, forwardArgs, forwardDesc, userSrc, userWeights, userDst, src, weights, dst, stream);
    }

    static void close(Pointer... pointers) {
        for (Pointer p : pointers) if (p != null) p.close();
    }

    private void run(reorder reorder, memory from, memory to) {
        if (reorder != null) reorder.execute(stream, from, to);
    }

    /** user itself if the primitive takes the user's layout, else a memory of that layout in scratch buffer i. */
    private static memory inner(memory.desc wanted, memory user, Scratch scratch, int i) {
        if (wanted.equals(user.get_desc())) return user;
        return new memory(wanted, CPU, new Address(scratch.get(i, wanted.get_size()).address()));
    }

    private static memory.desc any(long[] dims) {
        return new memory.desc(dims, memory.data_type.f32, memory.format_tag.any);
    }

    /** A float memory of the layout tag whose address each call sets (set_data_handle): the layer's own buffers. */
    static memory userMemory(long[] dims, memory.format_tag tag) {
        return new memory(new memory.desc(dims, memory.data_type.f32, tag), CPU, UNSET);
    }

    /** A raw address for oneDNN (JavaCPP's Pointer has no public constructor from one). */
    static final class Address extends Pointer {
        Address(long address) {
            this.address = address;
        }
    }
}
