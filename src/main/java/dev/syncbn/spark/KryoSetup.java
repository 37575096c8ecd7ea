package dev.syncbn.spark;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import dev.syncbn.train.Totals;
import org.apache.spark.serializer.KryoRegistrator;

/**
 * Registers every class the job ships through Kryo, each with an explicit serializer: Kryo 4's field
 * serializer cannot build Java records, and writing the fields by hand keeps the format plain.
 */
public final class KryoSetup implements KryoRegistrator {
    @Override
    public void registerClasses(Kryo kryo) {
        kryo.register(int[].class);
        kryo.register(byte[].class);
        kryo.register(float[].class);
        kryo.register(float[][].class); // a model's parameters and BN statistics, broadcast for transform
        kryo.register(double[].class);
        kryo.register(long[].class);
        kryo.register(Blocks.Block.class, new Serializer<Blocks.Block>() {
            @Override
            public void write(Kryo k, Output out, Blocks.Block b) {
                out.writeInt(b.index().length);
                out.writeInts(b.index());
                out.writeInt(b.channels());
                out.writeInt(b.height());
                out.writeInt(b.width());
                out.writeInt(b.classes());
                bytes(out, b.pixels());
                bytes(out, b.labels());
            }

            @Override
            public Blocks.Block read(Kryo k, Input in, Class<Blocks.Block> type) {
                int[] index = in.readInts(in.readInt());
                int c = in.readInt(), h = in.readInt(), w = in.readInt(), classes = in.readInt();
                return new Blocks.Block(index, bytes(in), bytes(in), c, h, w, classes);
            }
        });
        kryo.register(Blocks.Part.class, new Serializer<Blocks.Part>() {
            @Override
            public void write(Kryo k, Output out, Blocks.Part p) {
                out.writeInt(p.replica());
                out.writeInt(p.localIndex().length);
                out.writeInts(p.localIndex());
                bytes(out, p.pixels());
                bytes(out, p.labels());
            }

            @Override
            public Blocks.Part read(Kryo k, Input in, Class<Blocks.Part> type) {
                int replica = in.readInt();
                int[] local = in.readInts(in.readInt());
                return new Blocks.Part(replica, local, bytes(in), bytes(in));
            }
        });
        kryo.register(SparkData.Check.class, new Serializer<SparkData.Check>() {
            @Override
            public void write(Kryo k, Output out, SparkData.Check c) {
                out.writeLong(c.rows());
                out.writeInt(c.maxLabel());
                out.writeString(c.problem());
            }

            @Override
            public SparkData.Check read(Kryo k, Input in, Class<SparkData.Check> type) {
                return new SparkData.Check(in.readLong(), in.readInt(), in.readString());
            }
        });
        kryo.register(Evaluator.Evaluation.class, new Serializer<Evaluator.Evaluation>() {
            @Override
            public void write(Kryo k, Output out, Evaluator.Evaluation e) {
                out.writeDouble(e.totals().lossSum());
                out.writeLong(e.totals().correct());
                out.writeLong(e.totals().count());
                out.writeInt(e.confusion().length);
                out.writeLongs(e.confusion());
            }

            @Override
            public Evaluator.Evaluation read(Kryo k, Input in, Class<Evaluator.Evaluation> type) {
                double loss = in.readDouble();
                long correct = in.readLong(), count = in.readLong();
                return new Evaluator.Evaluation(new Totals(loss, correct, count), in.readLongs(in.readInt()));
            }
        });
    }

    private static void bytes(Output out, byte[] b) {
        out.writeInt(b.length);
        out.writeBytes(b);
    }

    private static byte[] bytes(Input in) {
        return in.readBytes(in.readInt());
    }
}
