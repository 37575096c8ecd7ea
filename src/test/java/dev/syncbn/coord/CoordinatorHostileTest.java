package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The coordination service under hostile input: strangers, wrong keys, broken frames, wrong vector
 * lengths, a second connection for a rank, replays; and on the wire, through a recording proxy: the key
 * never travels, a flipped bit or a replayed frame ends its connection (and a relaunched attempt ends
 * exactly as an undisturbed run), and encrypted frames hide the parameters. Each attack is dropped, and
 * the run in progress ends with the same parameters as an undisturbed one.
 */
class CoordinatorHostileTest {
    static final int P = 6, S = 4, STEPS = 40;
    static final int[] CHANNELS = {2};

    /** A coordinator whose "optimizer" adds the summed gradient to the parameters: the result shows every contribution. */
    static Coordinator start(int workers, AtomicInteger stepsDone) throws IOException {
        return start(workers, stepsDone, false);
    }

    static Coordinator start(int workers, AtomicInteger stepsDone, boolean encrypt) throws IOException {
        return start(workers, stepsDone, encrypt, BnMode.parse("sync", workers));
    }

    static Coordinator start(int workers, AtomicInteger stepsDone, boolean encrypt, BnMode bn) throws IOException {
        return start(workers, stepsDone, encrypt, bn, new AtomicInteger());
    }

    /** applied counts the steps computed, those a relaunch computes again included. */
    static Coordinator start(int workers, AtomicInteger stepsDone, boolean encrypt, BnMode bn, AtomicInteger applied) throws IOException {
        Coordinator c = new Coordinator("127.0.0.1", workers, bn, P, S, CHANNELS, Coordinator.randomKey(), encrypt);
        float[] params = new float[P];
        c.runState().startEpoch(1, STEPS, 0, params, new float[S], new RunState.StepHandler() {
            @Override
            public void apply(StepAggregator.StepReport r, float[] next) {
                applied.incrementAndGet();
                for (int i = 0; i < P; i++) params[i] += (float) r.gradSum()[i];
                System.arraycopy(params, 0, next, 0, P);
            }

            @Override
            public void stepDone(StepAggregator.StepReport r, RunState.StepTimes t) {
                stepsDone.incrementAndGet();
            }

            @Override
            public void snapshot() {} // the parameters are all this optimizer's state

            @Override
            public void rollback(float[] snapshotParams) {
                System.arraycopy(snapshotParams, 0, params, 0, P);
            }
        });
        return c;
    }

    static CoordinatorClient client(Coordinator c, int rank, byte[] key) throws IOException {
        return new CoordinatorClient("127.0.0.1", c.port(), key, false, rank, 1, 0, P, S, CHANNELS, () -> false);
    }

    /** An insider's connection (it holds the key) welcomed as rank 0, to send frames of its own making. */
    record Raw(Socket socket, Channel channel) implements AutoCloseable {
        @Override
        public void close() throws IOException {
            socket.close();
        }
    }

    /**
     * A raw connection welcomed as rank 0. A rank is free again only once the service has seen its previous
     * connection end, which can be a moment after that connection's socket closed here: retry until welcomed.
     */
    static Raw session(Coordinator c) throws Exception {
        for (int attempt = 0; attempt < 200; attempt++) {
            Socket s = new Socket("127.0.0.1", c.port());
            try {
                Channel ch = Channel.connect(new DataInputStream(s.getInputStream()), new DataOutputStream(s.getOutputStream()), c.key(), new int[] {0}, 1, 0, false);
                ch.receive(1 << 20);
                return new Raw(s, ch);
            } catch (EOFException refusedWhileTheOldConnectionEnds) {
                s.close();
                Thread.sleep(10);
            }
        }
        throw new AssertionError("rank 0 was never free again");
    }

    record Session(CoordinatorClient client, DriverLink.Welcome welcome) {}

    /** A client welcomed as rank; see session() for why it may take a few tries. */
    static Session welcomed(Coordinator c, int rank) throws Exception {
        return welcomed(c, c.port(), rank, 0, false);
    }

    static Session welcomed(Coordinator c, int port, int rank, int stageAttempt, boolean encrypt) throws Exception {
        for (int attempt = 0; ; attempt++) {
            CoordinatorClient client = new CoordinatorClient("127.0.0.1", port, c.key(), encrypt, rank, 1, stageAttempt, P, S, CHANNELS, () -> false);
            try {
                return new Session(client, client.welcome());
            } catch (EOFException e) {
                client.close();
                if (attempt > 200) throw e;
                Thread.sleep(10);
            }
        }
    }

    /** The running statistics a replica hands in at a step where they are due: they depend on step and rank. */
    static float[] statistics(int step, int rank) {
        float[] st = new float[S];
        for (int i = 0; i < S; i++) st[i] = step * 10 + rank + i;
        return st;
    }

    /** The statistics a party is welcomed with when the last snapshot is at step: their mean over the ranks at the step before (zero at the start). */
    static float[] statisticsAtSnapshot(int step, int workers) {
        float[] mean = new float[S];
        if (step == 0) return mean;
        double[] sum = new double[S];
        for (int r = 0; r < workers; r++) for (int i = 0; i < S; i++) sum[i] += statistics(step - 1, r)[i];
        for (int i = 0; i < S; i++) mean[i] = (float) (sum[i] / workers);
        return mean;
    }

    /**
     * One replica's steps from its welcome on: a BN all-reduce (checked) and a gradient that depends on
     * step and rank, with running statistics where due; a replica welcomed where no step is under way
     * starts from the last snapshot, whose statistics it checks.
     */
    static float[] replica(Coordinator c, int rank, int workers, int untilStep) throws Exception {
        return replica(c, c.port(), rank, workers, untilStep, 0, false);
    }

    static float[] replica(Coordinator c, int port, int rank, int workers, int untilStep, int stageAttempt, boolean encrypt) throws Exception {
        return replica(c, port, rank, workers, workers, untilStep, stageAttempt, encrypt);
    }

    /** snapshotWorkers: the replicas whose statistics the last snapshot averaged (a reshaped run had others). */
    static float[] replica(Coordinator c, int port, int rank, int workers, int snapshotWorkers, int untilStep, int stageAttempt, boolean encrypt)
            throws Exception {
        Session session = welcomed(c, port, rank, stageAttempt, encrypt);
        try (CoordinatorClient client = session.client()) {
            DriverLink.Welcome w = session.welcome();
            int snapshot = w.startStep();
            while (snapshot > 0 && !StepAggregator.statisticsDue(snapshot - 1, STEPS)) snapshot--;
            assertArrayEquals(statisticsAtSnapshot(snapshot, snapshotWorkers), w.state(), "welcomed at step " + w.startStep());
            float[] params = w.params();
            for (int step = w.startStep(); step < untilStep; step++) {
                if (workers > 1) { // with one replica there is nothing to synchronize (and the service refuses BN frames)
                    double[] sums = {rank + 1, step, 1, 2, 3};
                    client.allReduce(0, true, sums);
                    assertEquals(workers * (workers + 1) / 2.0, sums[0], 0, "BN sum at step " + step);
                }
                float[] grad = new float[P];
                for (int i = 0; i < P; i++) grad[i] = (step + 1) * (rank + 1) * 0.01f + i;
                float[] st = StepAggregator.statisticsDue(step, STEPS) ? statistics(step, rank) : StepAggregator.NO_STATISTICS;
                params = client.exchange(new StepAggregator.Contribution(1, 0.5, 0, 0, 0, 0, grad, st));
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
        return runReplicas(c, workers, workers, STEPS, 0);
    }

    /** workers replicas of a stage attempt, each in a thread of its own, up to untilStep; see replica(...). */
    static float[] runReplicas(Coordinator c, int workers, int snapshotWorkers, int untilStep, int stageAttempt) throws Exception {
        List<Thread> threads = new ArrayList<>();
        float[][] results = new float[workers][];
        Throwable[] errors = new Throwable[workers];
        for (int r = 0; r < workers; r++) {
            int rank = r;
            Thread t = new Thread(() -> {
                try {
                    results[rank] = replica(c, c.port(), rank, workers, snapshotWorkers, untilStep, stageAttempt, false);
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

    /** A stranger without the key: a well-formed hello, then, after the challenge, a proof made with a wrong key. */
    static void wrongProof(Coordinator c) {
        try (Socket s = new Socket("127.0.0.1", c.port())) {
            s.setSoTimeout(2000);
            DataOutputStream out = new DataOutputStream(s.getOutputStream());
            DataInputStream in = new DataInputStream(s.getInputStream());
            Wire.Out hello = new Wire.Out(Wire.HELLO);
            hello.data.writeInt(1); // one rank: 0
            hello.data.writeInt(0);
            hello.data.writeInt(1);
            hello.data.writeInt(0);
            hello.data.writeBoolean(false);
            hello.data.write(new byte[Channel.NONCE_BYTES]);
            out.write(hello.toBytes());
            in.readFully(new byte[in.readInt()]); // the challenge
            Wire.Out proof = new Wire.Out(Wire.PROOF);
            proof.data.write(Channel.hmac(Coordinator.randomKey(), "client", new byte[1]));
            out.write(proof.toBytes());
            if (in.read() != -1) throw new AssertionError("a wrong proof was answered");
        } catch (IOException expectedWhenDropped) {
            // dropped
        }
    }

    @Test
    void aReshapedRunDropsTheSupersededPartiesAndStartsTheNewShapeAtTheSnapshot() throws Exception {
        AtomicInteger reported = new AtomicInteger(), applied = new AtomicInteger();
        try (Coordinator c = start(3, reported, false, BnMode.parse("sync", 3), applied)) {
            runReplicas(c, 3, 3, 35, 0); // steps 0-34: the last snapshot is after step 31
            c.runState().reshape(2, BnMode.parse("sync", 2), 1000);
            for (int[] rankAndAttempt : new int[][] {{0, 0}, {2, 1000}}) { // a party of the superseded attempt; a rank the new shape has not
                try (CoordinatorClient refused = new CoordinatorClient("127.0.0.1", c.port(), c.key(), false, rankAndAttempt[0], 1, rankAndAttempt[1], P, S,
                        CHANNELS, () -> false)) {
                    assertThrows(IOException.class, refused::welcome, "rank " + rankAndAttempt[0] + " of attempt " + rankAndAttempt[1]);
                }
            }
            // two replicas authenticate as any party, start from the snapshot (the 3 replicas' statistics) and end the epoch
            runReplicas(c, 2, 3, STEPS, 1000);
            assertEquals(STEPS, reported.get(), "each step reported once");
            assertEquals(STEPS + 3, applied.get(), "steps 32-34 computed again");
        }
    }

    @Test
    void strangersAndBrokenFramesDoNotDisturbARunInProgress() throws Exception {
        float[] expected = undisturbed(2);
        AtomicInteger steps = new AtomicInteger();
        try (Coordinator c = start(2, steps)) {
            Random rng = new Random(1);
            List<Runnable> attacks = new ArrayList<>();
            byte[] garbage = new byte[300];
            rng.nextBytes(garbage);
            attacks.add(() -> raw(c, garbage)); // no hello at all
            attacks.add(() -> wrongProof(c)); // no key
            attacks.add(() -> raw(c, new byte[] {0x40, 0, 0, 0})); // a hello frame claiming 1 GiB
            attacks.add(() -> raw(c, new byte[] {0, 0, 0, 45, Wire.HELLO, 1, 2})); // a truncated hello
            attacks.add(() -> { // a rank that does not exist, from someone who holds the key
                try (CoordinatorClient stranger = client(c, 7, c.key())) {
                    stranger.welcome();
                    throw new AssertionError("rank 7 was welcomed");
                } catch (IOException expectedWhenDropped) {
                    // dropped
                }
            });
            for (int[] ranks : new int[][] {{1, 0}, {0, 0}, new int[1000], {0, 1, 2}}) { // parties that cannot be: not ascending, repeated, too many
                attacks.add(() -> {
                    try (CoordinatorClient party = new CoordinatorClient("127.0.0.1", c.port(), c.key(), false, ranks, 1, 0, P, S, CHANNELS, () -> false)) {
                        party.welcome();
                        throw new AssertionError("the party " + Arrays.toString(ranks) + " was welcomed");
                    } catch (IOException expectedWhenDropped) {
                        // dropped
                    }
                });
            }
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
        try (Coordinator c = start(1, steps); CoordinatorClient first = client(c, 0, c.key())) {
            first.welcome();
            try (CoordinatorClient second = client(c, 0, c.key())) {
                assertThrows(IOException.class, second::welcome); // dropped instead of welcomed
            }
        }
    }

    @Test
    void wrongLengthsOversizedFramesAndReplaysAreDroppedAndTheStepStaysIntact() throws Exception {
        float[] expected = undisturbed(1);
        AtomicInteger steps = new AtomicInteger();
        int at = StepAggregator.STATISTICS_EVERY; // a snapshot: a party welcomed here starts here
        try (Coordinator c = start(1, steps)) {
            replica(c, 0, 1, at); // steps 0 .. at-1, then this replica goes away
            assertFalse(StepAggregator.statisticsDue(at, STEPS));
            for (Wire.Out frame : List.of(gradient(at, P + 1, 0), // a gradient of the wrong length
                    gradient(at, P, S), // running statistics at a step where they are not due
                    gradient(at, P, S + 1), // more statistics than there are
                    gradient(1, P, 0))) { // a correctly sealed gradient for step 1, which is over
                try (Raw s = session(c)) {
                    s.channel().send(frame);
                    assertEquals(-1, s.socket().getInputStream().read(), "dropped");
                }
            }
            // an oversized frame after a good handshake
            try (Raw s = session(c)) {
                s.socket().getOutputStream().write(new byte[] {0x7f, 0, 0, 0, Wire.GRAD});
                assertEquals(-1, s.socket().getInputStream().read(), "dropped");
            }
            assertEquals(at, c.runState().step(), "no step was taken by the attacks");
            float[] got = replica(c, 0, 1, STEPS);
            assertArrayEquals(expected, got);
            assertArrayEquals(statisticsAtSnapshot(STEPS, 1), c.runState().state(), "the statistics of the epoch's last step");
        }
    }

    /** A party's gradient frame for step, with a gradient of params values and running statistics of state values. */
    static Wire.Out gradient(int step, int params, int state) throws IOException {
        Wire.Out g = new Wire.Out(Wire.GRAD);
        g.data.writeInt(1);
        g.data.writeInt(step);
        g.data.writeLong(1);
        g.data.writeDouble(0.5);
        g.data.writeLong(0);
        g.data.writeDouble(0);
        g.data.writeDouble(0);
        g.data.writeDouble(0);
        return g.floats(new float[params]).floats(new float[state]);
    }
}
