package dev.syncbn.cli;

import ai.onnxruntime.NodeInfo;
import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import ai.onnxruntime.TensorInfo;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.optim.Adam;
import dev.syncbn.train.ModelFile;
import dev.syncbn.train.Options;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** `syncbn export`: a saved model file becomes an ONNX file that ONNX Runtime loads, with a dynamic batch. */
class ExportTest {
    @TempDir
    Path dir;

    @Test
    void exportWritesAnOnnxModelWithADynamicBatch() throws Exception {
        String model = dir.resolve("model.bin").toString(), onnx = dir.resolve("out/model.onnx").toString();
        try (ConvNet net = new ConvNet(NetSpec.defaultFor(1, 28, 28, 10), 1, 1, ConvNet.Kernels.FAST)) {
            net.init(4);
            ModelFile.of(net, new Adam(net.params, 1e-3), 0, Map.of()).save(model, new Configuration());
        }
        Main.dispatch("export", Options.parse("export", new String[] {"--model", model, "--onnx", onnx}));
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtSession session = env.createSession(Files.readAllBytes(Path.of(onnx)), new OrtSession.SessionOptions())) {
            NodeInfo image = session.getInputInfo().get("image");
            assertArrayEquals(new long[] {-1, 1, 28, 28}, ((TensorInfo) image.getInfo()).getShape(), "N is dynamic");
            assertTrue(session.getOutputInfo().keySet().containsAll(List.of("logits", "probability")), session.getOutputInfo().toString());
            for (int n : new int[] {1, 5}) {
                try (OnnxTensor x = OnnxTensor.createTensor(env, FloatBuffer.wrap(new float[n * 784]), new long[] {n, 1, 28, 28});
                        OrtSession.Result out = session.run(Map.of("image", x))) {
                    assertEquals(n, ((float[][]) out.get("probability").orElseThrow().getValue()).length);
                }
            }
        }
        String m = assertThrows(IllegalArgumentException.class, () -> Main.dispatch("export", Options.parse("export", new String[] {"--model", model})))
                .getMessage();
        assertTrue(m.contains("--onnx"), m);
    }
}
