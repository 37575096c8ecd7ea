package dev.syncbn.train;

import dev.syncbn.data.AtomicWrite;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.optim.Adam;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;

/**
 * A saved model: network description, parameters, BN running statistics, Adam's moments and step, the
 * number of finished epochs and the settings of the run (key/value text). Binary, big-endian floats.
 * Written through the Hadoop FileSystem API with AtomicWrite, so a crash never leaves half a model.
 */
public record ModelFile(NetSpec spec, float[] params, float[] state, float[] adamM, float[] adamV, long step, int epoch,
        Map<String, String> settings) {
    private static final String MAGIC = "syncbn-model-1";

    public static ModelFile of(ConvNet net, Adam adam, int epoch, Map<String, String> settings) {
        return new ModelFile(net.spec, net.params.toFloats(), net.state.toFloats(), adam.m.clone(), adam.v.clone(), adam.step(), epoch,
                new LinkedHashMap<>(settings));
    }

    /** Puts this model into net and adam; a network of another description is refused. */
    public void restore(ConvNet net, Adam adam) {
        if (!spec.equals(net.spec)) {
            throw new IllegalArgumentException("the saved model is a network " + spec + ", this run builds " + net.spec);
        }
        net.params.copyFrom(params);
        net.state.copyFrom(state);
        if (adam != null) {
            adam.restore(adamM, adamV, step);
        }
    }

    public void save(String path, Configuration conf) throws IOException {
        AtomicWrite.write(path, conf, out -> {
            out.writeUTF(MAGIC);
            out.writeUTF(spec.toString());
            out.writeInt(epoch);
            out.writeLong(step);
            out.writeInt(settings.size());
            for (Map.Entry<String, String> e : settings.entrySet()) {
                out.writeUTF(e.getKey());
                out.writeUTF(e.getValue());
            }
            for (float[] a : new float[][] {params, state, adamM, adamV}) {
                out.writeInt(a.length);
                for (float f : a) out.writeFloat(f);
            }
        });
    }

    public static ModelFile load(String path, Configuration conf) throws IOException {
        Path p = new Path(path);
        try (DataInputStream in = p.getFileSystem(conf).open(p)) {
            String magic = in.readUTF();
            if (!MAGIC.equals(magic)) throw new IOException(path + ": not a model file (starts with '" + magic + "')");
            NetSpec spec = NetSpec.parse(in.readUTF());
            int epoch = in.readInt();
            long step = in.readLong();
            int n = in.readInt();
            if (n < 0 || n > 10_000) throw new IOException(path + ": corrupt settings count " + n);
            Map<String, String> settings = new LinkedHashMap<>();
            for (int i = 0; i < n; i++) settings.put(in.readUTF(), in.readUTF());
            float[][] arrays = new float[4][];
            try (ConvNet shape = new ConvNet(spec, 1, 1, ConvNet.Kernels.FAST)) {
                int[] expected = {shape.paramCount(), shape.state.length(), shape.paramCount(), shape.paramCount()};
                for (int a = 0; a < 4; a++) {
                    int len = in.readInt();
                    if (len != expected[a]) throw new IOException(path + ": array " + a + " has " + len + " values, network " + spec + " needs " + expected[a]);
                    arrays[a] = new float[len];
                    for (int i = 0; i < len; i++) arrays[a][i] = in.readFloat();
                }
            }
            if (in.read() != -1) throw new IOException(path + ": unexpected bytes after the model");
            return new ModelFile(spec, arrays[0], arrays[1], arrays[2], arrays[3], step, epoch, settings);
        } catch (EOFException e) {
            throw new IOException(path + ": truncated model file", e);
        } catch (IllegalArgumentException e) {
            throw new IOException(path + ": " + e.getMessage(), e);
        }
    }
}
