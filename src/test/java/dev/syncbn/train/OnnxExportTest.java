package dev.syncbn.train;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtSession;
import dev.syncbn.data.Dataset;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The ONNX export read back by ONNX Runtime (for Java, CPU) and run on real test images: its logits are
 * the program's own evaluation-mode logits (BN folded into the convolutions) and its probabilities their
 * softmax.
 */
class OnnxExportTest {
    @TempDir
    Path dir;

    @Test
    void onnxRuntimeComputesTheProgramsLogitsOnRealImages() throws Exception {
        onRealImages(NetSpec.SEED);
    }

    @Test
    void aResidualNetworkExportsWithTheSameLogits() throws Exception {
        onRealImages("resnet-8");
    }

    /** Trains net one epoch on 2,048 images, exports it and compares ONNX Runtime's logits with the program's on 300 test images. */
    private void onRealImages(String network) throws Exception {
        Dataset train = TestData.train(), test = TestData.test().head(300);
        Configuration conf = new Configuration();
        String modelPath = dir.resolve("model.bin").toString(), onnx = dir.resolve("model.onnx").toString();
        try (LocalEngine engine = new LocalEngine(train.head(2048), test, network, 64, 1e-3, 1, 1)) { // trained: BN's running statistics far from 0 and 1
            engine.trainEpoch(1, (s, steps, replicas, loss, soFar) -> {});
            engine.snapshot(1, Map.of()).save(modelPath, conf);
        }
        ModelFile model = ModelFile.load(modelPath, conf);
        OnnxExport.write(model, onnx, conf);
        assertTrue(Files.size(Path.of(onnx)) > 4 * model.params().length, "the weights are in the file");

        int n = test.size(), k = model.spec().classes(), size = test.sampleSize();
        float[] logits = new float[n * k];
        int[] ours = new int[n];
        try (ConvNet net = new ConvNet(model.spec(), n, 1, ConvNet.Kernels.FAST)) {
            net.params.copyFrom(model.params());
            net.state.copyFrom(model.state());
            int[] order = new int[n], labels = new int[n];
            for (int i = 0; i < n; i++) order[i] = i;
            test.fill(order, 0, n, net.input, labels);
            net.forward(n, false).copyTo(logits);
            net.lastPredictions(n, ours);
        }
        float[] pixels = new float[n * size];
        for (int i = 0; i < pixels.length; i++) pixels[i] = (test.pixels()[i] & 0xff) / 255f;
        OrtEnvironment env = OrtEnvironment.getEnvironment();
        try (OrtSession session = env.createSession(Files.readAllBytes(Path.of(onnx)), new OrtSession.SessionOptions());
                OnnxTensor image = OnnxTensor.createTensor(env, FloatBuffer.wrap(pixels), new long[] {n, 1, 28, 28});
                OrtSession.Result out = session.run(Map.of("image", image))) {
            float[][] onnxLogits = (float[][]) out.get("logits").orElseThrow().getValue();
            float[][] probability = (float[][]) out.get("probability").orElseThrow().getValue();
            double scale = 0, worst = 0;
            for (float v : logits) scale = Math.max(scale, Math.abs(v));
            for (int s = 0; s < n; s++) {
                int best = 0;
                double sum = 0;
                for (int j = 0; j < k; j++) {
                    worst = Math.max(worst, Math.abs(onnxLogits[s][j] - logits[s * k + j]) / scale);
                    if (onnxLogits[s][j] > onnxLogits[s][best]) best = j;
                    sum += probability[s][j];
                }
                assertEquals(ours[s], best, "image " + s + ": the same class");
                assertEquals(1, sum, 1e-5, "image " + s + ": probabilities sum to 1");
            }
            assertTrue(worst <= 1e-5, "largest difference of the logits, relative to the largest logit: " + worst); // measured 3e-7
        }
    }

    @Test
    void aModelOfOtherWidthsAndInputExportsToo() throws Exception {
        sameLogits(new NetSpec(3, 32, 32, new int[] {8, 16, 4}, 5));
        sameLogits(NetSpec.parse("3x15x13:resnet-14:5")); // odd sizes: the strided convs round up
    }

    private static void sameLogits(NetSpec spec) throws Exception {
        try (ConvNet net = new ConvNet(spec, 2, 1, ConvNet.Kernels.FAST)) {
            net.init(3);
            for (int i = 0; i < net.state.length(); i++) net.state.set(i, net.state.get(i) + 0.01 * (i % 7)); // running statistics away from 0 and 1
            byte[] bytes = OnnxExport.toBytes(spec, net.params.toFloats(), net.state.toFloats());
            float[] x = new float[2 * spec.inputSize()];
            for (int i = 0; i < x.length; i++) {
                x[i] = (i * 37 % 256) / 255f;
                net.input.set(i, x[i]);
            }
            float[] logits = new float[2 * 5];
            net.forward(2, false).copyTo(logits);
            OrtEnvironment env = OrtEnvironment.getEnvironment();
            try (OrtSession session = env.createSession(bytes, new OrtSession.SessionOptions());
                    OnnxTensor image = OnnxTensor.createTensor(env, FloatBuffer.wrap(x), new long[] {2, spec.channels(), spec.height(), spec.width()});
                    OrtSession.Result out = session.run(Map.of("image", image))) {
                float[][] onnxLogits = (float[][]) out.get("logits").orElseThrow().getValue();
                for (int s = 0; s < 2; s++) {
                    for (int j = 0; j < 5; j++) assertEquals(logits[s * 5 + j], onnxLogits[s][j], 1e-4 * Math.max(1, Math.abs(logits[s * 5 + j])), spec.toString());
                }
            }
        }
    }
}
