package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * What crosses the wire between replicas and the coordination service, seen and altered by a proxy on
 * 127.0.0.1: the run's key never travels; a frame with one flipped bit, or one sent twice, ends its
 * connection, and the relaunched stage attempt ends with exactly the undisturbed parameters; encrypted
 * frames do not show the parameters.
 */
class CoordinatorWireTest {
    static final int W = 2;

    /** A relay to the service that records both directions and may rewrite each frame a replica sends (length prefix included). */
    static final class Proxy implements AutoCloseable {
        final ServerSocket server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        final ByteArrayOutputStream toService = new ByteArrayOutputStream(), toReplicas = new ByteArrayOutputStream();
        private final List<Socket> sockets = new ArrayList<>();

        /** rewrite: from one frame a replica sent, the frames to pass on (null: as it is). */
        Proxy(int servicePort, UnaryOperator<List<byte[]>> rewrite) throws IOException {
            Thread acceptor = new Thread(() -> {
                while (!server.isClosed()) {
                    try {
                        Socket replica = server.accept(), service = new Socket("127.0.0.1", servicePort);
                        synchronized (sockets) {
                            sockets.add(replica);
                            sockets.add(service);
                        }
                        pump(() -> framesFrom(replica.getInputStream(), service.getOutputStream(), rewrite), replica, service);
                        pump(() -> copy(service.getInputStream(), replica.getOutputStream()), replica, service);
                    } catch (IOException closed) {
                        return;
                    }
                }
            });
            acceptor.setDaemon(true);
            acceptor.start();
        }

        interface Pump {
            void run() throws IOException;
        }

        private static void pump(Pump p, Socket a, Socket b) {
            Thread t = new Thread(() -> {
                try {
                    p.run();
                } catch (IOException ended) {
                    // one side closed
                } finally {
                    try {
                        a.close();
                        b.close();
                    } catch (IOException ignored) {
                        // closing is all that is left
                    }
                }
            });
            t.setDaemon(true);
            t.start();
        }

        private void framesFrom(InputStream in, OutputStream out, UnaryOperator<List<byte[]>> rewrite) throws IOException {
            DataInputStream data = new DataInputStream(in);
            while (true) {
                int length = data.readInt();
                byte[] frame = new byte[4 + length];
                ByteBuffer.wrap(frame).putInt(length);
                data.readFully(frame, 4, length);
                for (byte[] f : rewrite.apply(List.of(frame))) {
                    synchronized (toService) {
                        toService.write(f);
                    }
                    out.write(f);
                }
                out.flush();
            }
        }

        private void copy(InputStream in, OutputStream out) throws IOException {
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                synchronized (toReplicas) {
                    toReplicas.write(buf, 0, n);
                }
                out.write(buf, 0, n);
                out.flush();
            }
        }

        byte[] sent() {
            synchronized (toService) {
                return toService.toByteArray();
            }
        }

        byte[] received() {
            synchronized (toReplicas) {
                return toReplicas.toByteArray();
            }
        }

        int port() {
            return server.getLocalPort();
        }

        @Override
        public void close() throws IOException {
            server.close();
            synchronized (sockets) {
                for (Socket s : sockets) s.close();
            }
        }
    }

    /**
     * W replicas through port, as Spark runs a barrier stage: if one of them fails, the whole stage is
     * launched again as the next attempt (whose hellos void the old one). Returns the final parameters
     * and how many attempts it took.
     */
    static float[] runRelaunching(Coordinator c, int port, boolean encrypt, int[] attemptsOut) throws Exception {
        for (int attempt = 0; attempt < 5; attempt++) {
            float[][] results = new float[W][];
            Throwable[] errors = new Throwable[W];
            Thread[] threads = new Thread[W];
            for (int r = 0; r < W; r++) {
                int rank = r, stageAttempt = attempt;
                threads[r] = new Thread(() -> {
                    try {
                        results[rank] = CoordinatorHostileTest.replica(c, port, rank, W, CoordinatorHostileTest.STEPS, stageAttempt, encrypt);
                    } catch (Throwable e) {
                        errors[rank] = e;
                    }
                });
                threads[r].start();
            }
            long deadline = System.nanoTime() + 60_000_000_000L;
            while (System.nanoTime() < deadline) {
                boolean failed = false, done = true;
                for (int r = 0; r < W; r++) {
                    failed |= errors[r] != null;
                    done &= !threads[r].isAlive();
                }
                if (done && !failed) {
                    attemptsOut[0] = attempt + 1;
                    assertArrayEquals(results[0], results[W - 1]);
                    return results[0];
                }
                if (failed) break; // relaunch: the stale replicas end when the next attempt says hello
                Thread.sleep(5);
            }
        }
        throw new AssertionError("no attempt succeeded");
    }

    static boolean contains(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) if (haystack[i + j] != needle[j]) continue outer;
            return true;
        }
        return false;
    }

    static byte[] bigEndian(float[] values) {
        ByteBuffer b = ByteBuffer.allocate(4 * values.length);
        for (float v : values) b.putFloat(v);
        return b.array();
    }

    @Test
    void aRecordedRunNeverShowsTheKey() throws Exception {
        float[] expected = CoordinatorHostileTest.undisturbed(W);
        AtomicInteger steps = new AtomicInteger();
        try (Coordinator c = CoordinatorHostileTest.start(W, steps); Proxy proxy = new Proxy(c.port(), frames -> frames)) {
            int[] attempts = new int[1];
            assertArrayEquals(expected, runRelaunching(c, proxy.port(), false, attempts));
            assertEquals(1, attempts[0]);
            byte[] sent = proxy.sent(), received = proxy.received();
            assertTrue(sent.length > CoordinatorHostileTest.STEPS * W * 4 * CoordinatorHostileTest.P, "the whole run went through the proxy: " + sent.length);
            assertFalse(contains(sent, c.key()) || contains(received, c.key()), "the key crossed the wire");
        }
    }

    @Test
    void aFlippedBitOrAReplayedFrameEndsItsConnectionAndTheRelaunchedStageIsExact() throws Exception {
        float[] expected = CoordinatorHostileTest.undisturbed(W);
        AtomicInteger grads = new AtomicInteger();
        List<UnaryOperator<List<byte[]>>> attacks = List.of(
                frames -> { // one bit of the 5th gradient frame, deep in its floats
                    byte[] f = frames.get(0);
                    if (f[4] != Wire.GRAD || grads.incrementAndGet() != 5) return frames;
                    byte[] flipped = f.clone();
                    flipped[f.length - 30] ^= 0x10;
                    return List.of(flipped);
                },
                frames -> { // the 5th gradient frame twice
                    byte[] f = frames.get(0);
                    if (f[4] != Wire.GRAD || grads.incrementAndGet() != 5) return frames;
                    return List.of(f, f);
                });
        for (UnaryOperator<List<byte[]>> attack : attacks) {
            grads.set(0);
            AtomicInteger steps = new AtomicInteger();
            try (Coordinator c = CoordinatorHostileTest.start(W, steps); Proxy proxy = new Proxy(c.port(), attack)) {
                int[] attempts = new int[1];
                float[] got = runRelaunching(c, proxy.port(), false, attempts);
                assertEquals(2, attempts[0], "the altered frame ended its connection and the stage was launched again");
                assertArrayEquals(expected, got, "no altered number reached the parameters");
                assertEquals(CoordinatorHostileTest.STEPS, steps.get(), "every step exactly once");
            }
        }
    }

    /**
     * A connection that breaks after the mid-epoch snapshot (the 36th step's gradient altered): the
     * relaunched stage goes back to that snapshot, not to the epoch's start, with its statistics (each
     * replica checks them), recomputes the steps after it and ends as an undisturbed run, each step
     * reported once.
     */
    @Test
    void aRelaunchGoesBackToTheLastSnapshotAndEndsExactly() throws Exception {
        float[] expected = CoordinatorHostileTest.undisturbed(W);
        int snapshot = StepAggregator.STATISTICS_EVERY, broken = snapshot + 3;
        assertTrue(broken < CoordinatorHostileTest.STEPS);
        AtomicInteger grads = new AtomicInteger(), steps = new AtomicInteger(), applied = new AtomicInteger();
        UnaryOperator<List<byte[]>> attack = frames -> {
            byte[] f = frames.get(0);
            if (f[4] != Wire.GRAD || grads.incrementAndGet() != W * broken + 1) return frames;
            byte[] flipped = f.clone();
            flipped[f.length - 30] ^= 0x10;
            return List.of(flipped);
        };
        try (Coordinator c = CoordinatorHostileTest.start(W, steps, false, BnMode.parse("sync", W), applied); Proxy proxy = new Proxy(c.port(), attack)) {
            int[] attempts = new int[1];
            assertArrayEquals(expected, runRelaunching(c, proxy.port(), false, attempts));
            assertEquals(2, attempts[0]);
            assertEquals(CoordinatorHostileTest.STEPS, steps.get(), "every step reported once");
            assertEquals(CoordinatorHostileTest.STEPS + broken - snapshot, applied.get(), "steps " + snapshot + " to " + (broken - 1) + " computed twice");
            assertArrayEquals(CoordinatorHostileTest.statisticsAtSnapshot(CoordinatorHostileTest.STEPS, W), c.runState().state());
        }
    }

    @Test
    void encryptedFramesDoNotShowTheParameters() throws Exception {
        float[] expected = CoordinatorHostileTest.undisturbed(W);
        for (boolean encrypt : new boolean[] {false, true}) {
            AtomicInteger steps = new AtomicInteger();
            try (Coordinator c = CoordinatorHostileTest.start(W, steps, encrypt); Proxy proxy = new Proxy(c.port(), frames -> frames)) {
                int[] attempts = new int[1];
                assertArrayEquals(expected, runRelaunching(c, proxy.port(), encrypt, attempts));
                // the last PARAMS frame carries the final parameters, big-endian, as Wire writes floats
                assertEquals(!encrypt, contains(proxy.received(), bigEndian(expected)), encrypt ? "encrypted frames show the parameters"
                        : "the check must see the parameters in frames that are only sealed");
            }
        }
    }

    @Test
    void aReplicaThatDisagreesAboutEncryptionIsRefused() throws Exception {
        AtomicInteger steps = new AtomicInteger();
        try (Coordinator c = CoordinatorHostileTest.start(1, steps, true);
                CoordinatorClient plain = new CoordinatorClient("127.0.0.1", c.port(), c.key(), false, 0, 1, 0, CoordinatorHostileTest.P,
                        CoordinatorHostileTest.S, CoordinatorHostileTest.CHANNELS, () -> false)) {
            Assertions.assertThrows(IOException.class, plain::welcome);
        }
    }
}
