package dev.syncbn.train;

import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.optim.Adam;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ModelFileTest {
    @TempDir
    Path dir;

    private final Configuration conf = new Configuration();
    private final NetSpec spec = new NetSpec(1, 8, 8, new int[] {4, 6}, 10);

    private ModelFile sample() {
        try (ConvNet net = new ConvNet(spec, 2, 1, ConvNet.Kernels.FAST)) {
            net.init(5);
            Adam adam = new Adam(net.params, 1e-3);
            for (int i = 0; i < net.paramCount(); i++) net.grads.set(i, Math.sin(i));
            adam.apply(net.params, net.grads);
            for (int i = 0; i < net.state.length(); i++) net.state.set(i, i * 0.5);
            return ModelFile.of(net, adam, 3, Map.of("seed", "7"));
        }
    }

    @Test
    void aResidualNetworkRoundTrips() throws IOException {
        NetSpec resnet = NetSpec.parse("3x15x13:resnet-14x2:4");
        try (ConvNet net = new ConvNet(resnet, 2, 1, ConvNet.Kernels.FAST)) {
            net.init(5);
            String path = dir.resolve("resnet.bin").toString();
            ModelFile.of(net, new Adam(net.params, 1e-3), 1, Map.of()).save(path, conf);
            ModelFile loaded = ModelFile.load(path, conf);
            assertEquals(resnet, loaded.spec());
            assertArrayEquals(net.params.toFloats(), loaded.params());
            assertArrayEquals(net.state.toFloats(), loaded.state());
        }
    }

    @Test
    void roundTripRestoresEverythingAndLeavesNoTemporaryFile() throws IOException {
        ModelFile saved = sample();
        String path = dir.resolve("sub/model.bin").toUri().toString();
        saved.save(path, conf);
        saved.save(path, conf); // overwriting an existing model works too
        ModelFile loaded = ModelFile.load(path, conf);
        assertEquals(spec, loaded.spec());
        assertArrayEquals(saved.params(), loaded.params());
        assertArrayEquals(saved.state(), loaded.state());
        assertArrayEquals(saved.adamM(), loaded.adamM());
        assertArrayEquals(saved.adamV(), loaded.adamV());
        assertEquals(1, loaded.step());
        assertEquals(3, loaded.epoch());
        assertEquals("7", loaded.settings().get("seed"));
        try (var files = Files.list(dir.resolve("sub"))) {
            assertEquals(List.of("model.bin"), files.map(p -> p.getFileName().toString()).filter(n -> !n.endsWith(".crc")).toList());
        }
        try (ConvNet net = new ConvNet(spec, 2, 1, ConvNet.Kernels.FAST)) {
            Adam adam = new Adam(net.params, 1e-3);
            loaded.restore(net, adam);
            assertEquals(saved.params()[17], (float) net.params.get(17));
            assertEquals(1, adam.step());
        }
    }

    @Test
    void loadingIntoAnotherNetworkIsAClearError() throws IOException {
        String path = dir.resolve("model.bin").toString();
        sample().save(path, conf);
        ModelFile loaded = ModelFile.load(path, conf);
        try (ConvNet other = new ConvNet(new NetSpec(1, 8, 8, new int[] {4, 8}, 10), 2, 1, ConvNet.Kernels.FAST)) {
            String m = assertThrows(IllegalArgumentException.class, () -> loaded.restore(other, null)).getMessage();
            assertTrue(m.contains("1x8x8:4,6:10") && m.contains("1x8x8:4,8:10"), m);
        }
    }

    @Test
    void truncatedOrForeignFilesAreRefusedWithTheirName() throws IOException {
        Path p = dir.resolve("model.bin");
        sample().save(p.toString(), conf);
        byte[] bytes = Files.readAllBytes(p);
        Path cut = dir.resolve("cut.bin");
        Files.write(cut, Arrays.copyOf(bytes, bytes.length / 2));
        String m = assertThrows(IOException.class, () -> ModelFile.load(cut.toString(), conf)).getMessage();
        assertTrue(m.contains("cut.bin") && m.contains("truncated"), m);
        Path foreign = dir.resolve("foreign.bin");
        Files.write(foreign, "hello world, not a model".getBytes());
        m = assertThrows(IOException.class, () -> ModelFile.load(foreign.toString(), conf)).getMessage();
        assertTrue(m.contains("foreign.bin"), m);
    }
}
