package dev.syncbn.train;

import dev.syncbn.data.AtomicWrite;
import dev.syncbn.nn.BnStatistics;
import dev.syncbn.nn.NetSpec;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.apache.hadoop.conf.Configuration;

/**
 * A trained network as an ONNX model (opset 13) in evaluation mode, for serving elsewhere (ONNX Runtime,
 * SynapseML's ONNXModel, Triton). Input `image`: float N x C x H x W, pixels in [0, 1] as this program
 * reads them, N dynamic. Outputs `logits` (N x classes) and `probability` (their softmax). Every
 * network the program builds: the plain stack (Conv, Relu, MaxPool per block) and the residual networks
 * (Conv, Relu, Conv, the shortcut, Add, Relu per block; GlobalAveragePool). BN is folded into the
 * convolution before it, as serving wants (see convBn). The protobuf is written by hand: the few
 * messages and fields of onnx.proto the graph needs.
 */
public final class OnnxExport {
    private OnnxExport() {}

    static final int OPSET = 13, IR_VERSION = 7, FLOAT = 1;

    /** Writes model's network to path through the Hadoop FileSystem API, atomically. */
    public static void write(ModelFile model, String path, Configuration conf) throws IOException {
        byte[] bytes = toBytes(model.spec(), model.params(), model.state());
        AtomicWrite.write(path, conf, out -> out.write(bytes));
    }

    /** The ONNX model of a network with these parameters and running statistics (the layout of ConvNet's buffers). */
    public static byte[] toBytes(NetSpec spec, float[] params, float[] state) {
        Proto graph = new Proto();
        Weights weights = new Weights(params, state);
        int c = spec.channels(), h = spec.height(), w = spec.width();
        String x = "image";
        if (spec.residual()) {
            x = relu(graph, "stem", convBn(graph, weights, "stem", x, c, spec.stemWidth(), 3, 1));
            c = spec.stemWidth();
            for (NetSpec.Block block : spec.blocks()) {
                String n = "stage" + block.stage() + ".block" + block.index();
                int s = block.stride();
                String main = convBn(graph, weights, n + ".conv2", relu(graph, n + ".a", convBn(graph, weights, n + ".conv1", x, c, block.outWidth(), 3, s)),
                        block.outWidth(), block.outWidth(), 3, 1);
                String shortcut = block.projects() ? convBn(graph, weights, n + ".shortcut", x, c, block.outWidth(), 1, s) : x;
                graph.message(1, node("Add", n + ".add", new String[] {main, shortcut}, n + ".sum"));
                x = relu(graph, n, n + ".sum");
                c = block.outWidth();
                h = (h - 1) / s + 1; // a 3x3 conv with padding 1 and a 1x1 conv without, stride s: both ceil(h / s)
                w = (w - 1) / s + 1;
            }
            graph.message(1, node("GlobalAveragePool", "avgpool", new String[] {x}, "pooled"));
            x = "pooled";
            h = w = 1;
        } else {
            for (int b = 0; b < spec.convWidths().length; b++) {
                String n = "block" + (b + 1);
                int out = spec.convWidths()[b];
                x = relu(graph, n, convBn(graph, weights, n, x, c, out, 3, 1));
                graph.message(1, node("MaxPool", n + ".pool", new String[] {x}, n + ".pool_out", ints("kernel_shape", 2, 2), ints("strides", 2, 2)));
                x = n + ".pool_out";
                c = out;
                h /= 2;
                w /= 2;
            }
        }
        int in = c * h * w, k = spec.classes();
        float[] weight = weights.take(k * in), bias = weights.take(k);
        if (weights.offset != params.length || weights.stateOffset != state.length) {
            throw new IllegalArgumentException("a network " + spec + " has " + weights.offset + " parameters and " + weights.stateOffset
                    + " running statistics, the model " + params.length + " and " + state.length);
        }
        graph.message(5, tensor("linear.weight", weight, k, in));
        graph.message(5, tensor("linear.bias", bias, k));
        graph.message(1, node("Flatten", "flatten", new String[] {x}, "flat", intAttribute("axis", 1)));
        graph.message(1, node("Gemm", "linear", new String[] {"flat", "linear.weight", "linear.bias"}, "logits", intAttribute("transB", 1)));
        graph.message(1, node("Softmax", "softmax", new String[] {"logits"}, "probability", intAttribute("axis", 1)));
        graph.string(2, "syncbn");
        graph.message(11, valueInfo("image", spec.channels(), spec.height(), spec.width()));
        graph.message(12, valueInfo("logits", k));
        graph.message(12, valueInfo("probability", k));
        Proto model = new Proto();
        model.varint(1, IR_VERSION);
        model.string(2, "syncbn");
        model.string(3, "0.1.0-SNAPSHOT");
        model.message(7, graph);
        model.message(8, new Proto().string(1, "").varint(2, OPSET));
        return model.bytes();
    }

    /** The parameters and running statistics, taken in the order of ConvNet's buffers. */
    private static final class Weights {
        private final float[] params, state;
        private int offset, stateOffset;

        Weights(float[] params, float[] state) {
            this.params = params;
            this.state = state;
        }

        float[] take(int count) {
            if (offset + count > params.length) throw new IllegalArgumentException("the model has only " + params.length + " parameters");
            float[] v = Arrays.copyOfRange(params, offset, offset + count);
            offset += count;
            return v;
        }
    }

    /**
     * A convolution without bias (k x k, stride, padding k / 2) and the BN after it, as one Conv node:
     * W' = W * gamma / sqrt(var + eps) per output channel, bias beta - mean * gamma / sqrt(var + eps),
     * in double. Its parameters are the conv's weights, then gamma and beta; its state the running mean,
     * then the running variance. Returns the output's name.
     */
    private static String convBn(Proto graph, Weights weights, String name, String input, int inC, int outC, int k, int stride) {
        int fan = inC * k * k;
        float[] conv = weights.take(outC * fan), gamma = weights.take(outC), beta = weights.take(outC);
        if (weights.stateOffset + 2 * outC > weights.state.length) throw new IllegalArgumentException("the model has only " + weights.state.length + " running statistics");
        float[] folded = new float[conv.length], bias = new float[outC];
        for (int o = 0; o < outC; o++) {
            double mean = weights.state[weights.stateOffset + o], var = weights.state[weights.stateOffset + outC + o];
            double scale = gamma[o] / Math.sqrt(var + BnStatistics.EPS);
            for (int i = 0; i < fan; i++) folded[o * fan + i] = (float) (conv[o * fan + i] * scale);
            bias[o] = (float) (beta[o] - mean * scale);
        }
        weights.stateOffset += 2 * outC;
        int pad = k / 2;
        graph.message(5, tensor(name + ".weight", folded, outC, inC, k, k));
        graph.message(5, tensor(name + ".bias", bias, outC));
        graph.message(1, node("Conv", name + ".conv", new String[] {input, name + ".weight", name + ".bias"}, name + ".conv_out",
                ints("kernel_shape", k, k), ints("pads", pad, pad, pad, pad), ints("strides", stride, stride)));
        return name + ".conv_out";
    }

    private static String relu(Proto graph, String name, String input) {
        graph.message(1, node("Relu", name + ".relu", new String[] {input}, name + ".relu_out"));
        return name + ".relu_out";
    }

    private static Proto tensor(String name, float[] values, int... dims) {
        Proto t = new Proto();
        for (int d : dims) t.varint(1, d);
        t.varint(2, FLOAT);
        t.string(8, name);
        ByteBuffer raw = ByteBuffer.allocate(4 * values.length).order(ByteOrder.LITTLE_ENDIAN); // raw_data is little-endian
        for (float v : values) raw.putFloat(v);
        return t.bytes(9, raw.array());
    }

    private static Proto node(String op, String name, String[] inputs, String output, Proto... attributes) {
        Proto n = new Proto();
        for (String i : inputs) n.string(1, i);
        n.string(2, output);
        n.string(3, name);
        n.string(4, op);
        for (Proto a : attributes) n.message(5, a);
        return n;
    }

    private static Proto ints(String name, long... values) {
        Proto a = new Proto().string(1, name).varint(20, 7); // AttributeType INTS
        for (long v : values) a.varint(8, v);
        return a;
    }

    private static Proto intAttribute(String name, long value) {
        return new Proto().string(1, name).varint(20, 2).varint(3, value); // AttributeType INT
    }

    /** A float tensor's name and type: the batch dimension dynamic ("N"), the others fixed. */
    private static Proto valueInfo(String name, int... dims) {
        Proto shape = new Proto().message(1, new Proto().string(2, "N"));
        for (int d : dims) shape.message(1, new Proto().varint(1, d));
        Proto tensorType = new Proto().varint(1, FLOAT).message(2, shape);
        return new Proto().string(1, name).message(2, new Proto().message(1, tensorType));
    }

    /** A protobuf message being written: fields appended in order (varints, length-delimited strings, bytes and messages). */
    static final class Proto {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Proto varint(int field, long value) {
            tag(field, 0);
            raw(value);
            return this;
        }

        Proto string(int field, String value) {
            return bytes(field, value.getBytes(StandardCharsets.UTF_8));
        }

        Proto message(int field, Proto message) {
            return bytes(field, message.bytes());
        }

        Proto bytes(int field, byte[] value) {
            tag(field, 2);
            raw(value.length);
            out.writeBytes(value);
            return this;
        }

        byte[] bytes() {
            return out.toByteArray();
        }

        private void tag(int field, int wireType) {
            raw(((long) field << 3) | wireType);
        }

        private void raw(long v) {
            while ((v & ~0x7FL) != 0) {
                out.write((int) ((v & 0x7F) | 0x80));
                v >>>= 7;
            }
            out.write((int) v);
        }
    }
}
