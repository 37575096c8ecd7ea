package dev.syncbn.spark;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import dev.syncbn.train.Totals;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** Every class the job ships through Kryo is registered: with registration required, each round-trips. */
class KryoSetupTest {
    @SuppressWarnings("unchecked")
    static <T> T roundTrip(Kryo kryo, T value) {
        Output out = new Output(1 << 16, -1);
        kryo.writeClassAndObject(out, value);
        return (T) kryo.readClassAndObject(new Input(out.toBytes()));
    }

    @Test
    void theJobsClassesRoundTripWithRegistrationRequired() {
        Kryo kryo = new Kryo();
        kryo.setRegistrationRequired(true);
        new KryoSetup().registerClasses(kryo);
        Blocks.Block b = new Blocks.Block(new int[] {3, 1}, new byte[] {1, 2, 3, 4}, new byte[] {5, 6}, 1, 1, 2, 7);
        Blocks.Block b2 = roundTrip(kryo, b);
        assertArrayEquals(b.index(), b2.index());
        assertArrayEquals(b.pixels(), b2.pixels());
        assertEquals(7, b2.classes());
        Blocks.Part p = roundTrip(kryo, new Blocks.Part(1, new int[] {0}, new byte[] {9, 9}, new byte[] {2}));
        assertArrayEquals(new byte[] {9, 9}, p.pixels());
        assertEquals(new SparkData.Check(5, 3, "bad"), roundTrip(kryo, new SparkData.Check(5, 3, "bad")));
        assertEquals(new SparkData.Check(5, 3, null), roundTrip(kryo, new SparkData.Check(5, 3, null)));
        Evaluator.Evaluation t = roundTrip(kryo, new Evaluator.Evaluation(new Totals(1.5, 2, 3), new long[] {1, 2}));
        assertArrayEquals(new long[] {1, 2}, t.confusion());
        assertEquals(new Totals(1.5, 2, 3), t.totals());
        assertArrayEquals(new float[] {1, 2}, roundTrip(kryo, new float[][] {{1, 2}, {3}})[0]);
    }
}
