package dev.syncbn.train;

import dev.syncbn.data.AtomicWrite;
import dev.syncbn.nn.BnStatistics;
import dev.syncbn.nn.NetSpec;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import org.apache.hadoop.conf.Configuration;

/**
 * A trained network as an ONNX model (opset 13) in evaluation mode, for serving elsewhere (ONNX Runtime,
 * SynapseML's ONNXModel, Triton). Input `image`: float N x C x H x W, pixels in [0, 1] as this program
 * reads them, N dynamic. Outputs `logits` (N x classes) and `probability` (their softmax). BN is folded
 * into the convolution before it, as serving wants: W' = W * gamma / sqrt(var + eps) per output channel
 * and a bias beta - mean * gamma / sqrt(var + eps), computed in double from the running statistics. The
 * protobuf is written by hand: the few messages and fields of onnx.proto the graph needs.
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
        int c = spec.channels(), h = spec.height(), w = spec.width(), offset = 0, stateOffset = 0;
        String x = "image";
        int[] widths = spec.convWidths();
        for (int b = 0; b < widths.length; b++) {
            int out = widths[b], weights = out * c * 9;
            float[] folded = new float[weights], bias = new float[out];
            for (int o = 0; o < out; o++) {
                double gamma = params[offset + weights + o], beta = params[offset + weights + out + o];
                double mean = state[stateOffset + o], var = state[stateOffset + out + o];
                double scale = gamma / Math.sqrt(var + BnStatistics.EPS);
                for (int i = 0; i < c * 9; i++) folded[o * c * 9 + i] = (float) (params[offset + o * c * 9 + i] * scale);
                bias[o] = (float) (beta - mean * scale);
            }
            offset += weights + 2 * out;
            stateOffset += 2 * out;
            String n = "block" + (b + 1);
            graph.message(5, tensor(n + ".weight", folded, out, c, 3, 3));
            graph.message(5, tensor(n + ".bias", bias, out));
            graph.message(1, node("Conv", n + ".conv", new String[] {x, n + ".weight", n + ".bias"}, n + ".conv_out",
                    ints("kernel_shape", 3, 3), ints("pads", 1, 1, 1, 1), ints("strides", 1, 1)));
            graph.message(1, node("Relu", n + ".relu", new String[] {n + ".conv_out"}, n + ".relu_out"));
            graph.message(1, node("MaxPool", n + ".pool", new String[] {n + ".relu_out"}, n + ".pool_out", ints("kernel_shape", 2, 2), ints("strides", 2, 2)));
            x = n + ".pool_out";
            c = out;
            h /= 2;
            w /= 2;
        }
        int in = c * h * w, k = spec.classes();
        float[] weight = new float[k * in], bias = new float[k];
        System.arraycopy(params, offset, weight, 0, weight.length);
        System.arraycopy(params, offset + weight.length, bias, 0, k);
        if (offset + weight.length + k != params.length) {
            throw new IllegalArgumentException("a network " + spec + " has " + (offset + weight.length + k) + " parameters, the model " + params.length);
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
