package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * The coordination service under hostile input: strangers, wrong secrets, broken frames, wrong vector
 * lengths, a second connection for a rank, replays. Each is dropped, and the run in progress ends with
 * the same parameters as an undisturbed one.
 */
class CoordinatorHostileTest {
    static final int P = 6, S = 4, STEPS = 40;
    static final int[] CHANNELS = {2};

    /** A coordinator whose "optimizer" adds the summed gradient to the parameters: the result shows every contribution. */
    static Coordinator start(int workers, AtomicInteger stepsDone) throws IOException {
        Coordinator c = new Coordinator("127.0.0.1", workers, BnMode.parse("sync", workers), P, S, CHANNELS);
        float[] params = new float[P];
        c.startEpoch(1, STEPS, 0, params, new float[workers][S], new Coordinator.StepHandler() {
            @Override
            public float[] apply(StepAggregator.StepReport r) {
                for (int i = 0; i < P; i++) params[i] += (float) r.gradSum()[i];
                return params;
            }

            @Override
            public void stepDone(StepAggregator.StepReport r, Coordinator.StepTimes t) {
                stepsDone.incrementAndGet();
            }
        });
        return c;
    }

    static CoordinatorClient client(Coordinator c, int rank, byte[] secret) throws IOException {
        return new CoordinatorClient("127.0.0.1", c.port(), secret, rank, 1, 0, P, S, CHANNELS, () -> false);
    }

    /**
     * A raw connection welcomed as rank 0. A rank is free again only once the service has seen its previous
     * connection end, which can be a moment after that connection's socket closed here: retry until welcomed.
     */
    static Socket session(Coordinator c) throws Exception {
        for (int attempt = 0; attempt < 200; attempt++) {
            Socket s = new Socket("127.0.0.1", c.port());
            s.getOutputStream().write(hello(c.secret(), 0));
            try {
                Wire.read(new DataInputStream(s.getInputStream()), 1 << 20);
                return s;
            } catch (java.io.EOFException refusedWhileTheOldConnectionEnds) {
                s.close();
                Thread.sleep(10);
            }
        }
        throw new AssertionError("rank 0 was never free again");
    }

    record Session(CoordinatorClient client, CoordinatorClient.Welcome welcome) {}

    /** A client welcomed as rank; see session() for why it may take a few tries. */
    static Session welcomed(Coordinator c, int rank) throws Exception {
        for (int attempt = 0; ; attempt++) {
            CoordinatorClient client = client(c, rank, c.secret());
            try {
                return new Session(client, client.welcome());
            } catch (java.io.EOFException e) {
                client.close();
                if (attempt > 200) throw e;
                Thread.sleep(10);
            }
        }
    }

    /** One replica's steps from its welcome on: a BN all-reduce (checked) and a gradient that depends on step and rank. */
    static float[] replica(Coordinator c, int rank, int workers, int untilStep) throws Exception {
        Session session = welcomed(c, rank);
        try (CoordinatorClient client = session.client()) {
            CoordinatorClient.Welcome w = session.welcome();
            float[] params = w.params();
            for (int step = w.startStep(); step < untilStep; step++) {
                if (workers > 1) { // with one replica there is nothing to synchronize (and the service refuses BN frames)
                    double[] sums = {rank + 1, step, 1, 2, 3};
                    client.allReduce(0, true, sums);
                    assertEquals(workers * (workers + 1) / 2.0, sums[0], 0, "BN sum at step " + step);
                }
                float[] grad = new float[P];
                for (int i = 0; i < P; i++) grad[i] = (step + 1) * (rank + 1) * 0.01f + i;
                params = client.exchange(1, 0.5, 0, 0, 0, grad, new float[S]);
            }
            return params;
        }
    }

    static float[] undisturbed(int workers) throws Exception {
        AtomicInteger steps = new AtomicInteger();
        try (Coordinator c = start(workers, steps)) {
            return runReplicas(c, workers);
        }
    }

    static float[] runReplicas(Coordinator c, int workers) throws Exception {
        List<Thread> threads = new ArrayList<>();
        float[][] results = new float[workers][];
        Throwable[] errors = new Throwable[workers];
        for (int r = 0; r < workers; r++) {
            int rank = r;
            Thread t = new Thread(() -> {
                try {
                    results[rank] = replica(c, rank, workers, STEPS);
                } catch (Throwable e) {
                    errors[rank] = e;
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) t.join(60_000);
        for (Throwable e : errors) if (e != null) throw new AssertionError("a legitimate replica failed", e);
        assertArrayEquals(results[0], results[workers - 1]);
        return results[0];
    }

    static void raw(Coordinator c, byte[] bytes) {
        try (Socket s = new Socket("127.0.0.1", c.port())) {
            OutputStream out = s.getOutputStream();
            out.write(bytes);
            out.flush();
            s.setSoTimeout(300); // a truncated frame keeps the server waiting until this side gives up
            s.getInputStream().read(); // the server closes on us (or times out); either way nothing is served
        } catch (IOException expectedWhenDropped) {
            // a reset connection is one way of being dropped
        }
    }

    static byte[] hello(byte[] secret, int rank) throws IOException {
        Wire.Out h = new Wire.Out(Wire.HELLO);
        h.data.write(secret);
        h.data.writeInt(rank);
        h.data.writeInt(1);
        h.data.writeInt(0);
        return h.toBytes();
    }

    @Test
    void strangersAndBrokenFramesDoNotDisturbARunInProgress() throws Exception {
        float[] expected = undisturbed(2);
        AtomicInteger steps = new AtomicInteger();
        try (Coordinator c = start(2, steps)) {
            java.util.Random rng = new java.util.Random(1);
            List<Runnable> attacks = new ArrayList<>();
            byte[] garbage = new byte[300];
            rng.nextBytes(garbage);
            attacks.add(() -> raw(c, garbage)); // no hello at all
            attacks.add(() -> {
                byte[] wrong = c.secret();
                wrong[0] ^= 1;
                try {
                    raw(c, hello(wrong, 0)); // a wrong secret
                } catch (IOException e) {
                    throw new AssertionError(e);
                }
            });
            attacks.add(() -> raw(c, new byte[] {0x40, 0, 0, 0})); // a hello frame claiming 1 GiB
            attacks.add(() -> raw(c, new byte[] {0, 0, 0, 45, Wire.HELLO, 1, 2})); // a truncated hello
            attacks.add(() -> {
                try {
                    raw(c, hello(c.secret(), 7)); // a rank that does not exist
                } catch (IOException e) {
                    throw new AssertionError(e);
                }
            });
            Thread attacker = new Thread(() -> {
                for (int round = 0; round < 5; round++) for (Runnable a : attacks) a.run();
            });
            attacker.start();
            float[] got = runReplicas(c, 2);
            attacker.join(60_000);
            assertArrayEquals(expected, got);
            assertEquals(STEPS, steps.get());
        }
    }

    @Test
    void aSecondConnectionForARankIsRefused() throws Exception {
        AtomicInteger steps = new AtomicInteger();
        try (Coordinator c = start(1, steps); CoordinatorClient first = client(c, 0, c.secret())) {
            first.welcome();
            try (CoordinatorClient second = client(c, 0, c.secret())) {
                assertThrows(IOException.class, second::welcome); // dropped instead of welcomed
            }
        }
    }

    @Test
    void wrongLengthsOversizedFramesAndReplaysAreDroppedAndTheStepStaysIntact() throws Exception {
        float[] expected = undisturbed(1);
        AtomicInteger steps = new AtomicInteger();
        try (Coordinator c = start(1, steps)) {
            replica(c, 0, 1, 3); // steps 0..2, then this replica goes away
            // a gradient of the wrong length
            try (Socket s = session(c)) {
                DataOutputStream out = new DataOutputStream(s.getOutputStream());
                Wire.Out g = new Wire.Out(Wire.GRAD);
                g.data.writeInt(1);
                g.data.writeInt(3);
                g.data.writeLong(1);
                g.data.writeDouble(0.5);
                g.data.writeLong(0);
                g.data.writeDouble(0);
                g.data.writeDouble(0);
                g.floats(new float[P + 1]).floats(new float[S]).send(out);
                assertEquals(-1, s.getInputStream().read(), "dropped");
            }
            // an oversized frame after a good hello, then a replay of step 1, which is over
            for (byte[] attack : new byte[][] {{0x7f, 0, 0, 0, Wire.GRAD}, replayOfStep(1)}) {
                try (Socket s = session(c)) {
                    s.getOutputStream().write(attack);
                    assertEquals(-1, s.getInputStream().read(), "dropped");
                }
            }
            assertEquals(3, c.step(), "no step was taken by the attacks");
            float[] got = replica(c, 0, 1, STEPS);
            assertArrayEquals(expected, got);
        }
    }

    static byte[] replayOfStep(int step) throws IOException {
        Wire.Out g = new Wire.Out(Wire.GRAD);
        g.data.writeInt(1);
        g.data.writeInt(step);
        g.data.writeLong(1);
        g.data.writeDouble(0.5);
        g.data.writeLong(0);
        g.data.writeDouble(0);
        g.data.writeDouble(0);
        g.floats(new float[P]).floats(new float[S]);
        return g.toBytes();
    }
}
