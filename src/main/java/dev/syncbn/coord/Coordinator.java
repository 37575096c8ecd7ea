package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;
import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.BooleanSupplier;
import java.util.logging.Logger;

/**
 * The driver's coordination service for one training run: the server in front of a RunState. The W
 * replicas of a barrier stage connect as parties: each executor's hub speaks for the replicas in its JVM
 * (which summed their parts there first), so the driver's traffic grows with the executors, not the
 * replicas; a party may also be a single replica. A party proves that it holds the run's key (Channel:
 * the key never crosses the wire, and every later frame is sealed); then per step it (1) all-reduces the
 * BN statistics of the sync groups it shares with other parties and (2) hands in its replicas' summed
 * gradient, and receives the new parameters once. This class only accepts, decodes and checks frames
 * and calls the run's state; what a step means, and what a relaunch goes back to, is RunState's. Frames
 * of the wrong length, failing their seal or without a proof of the key, and whatever RunState
 * refuses, are dropped with a log line and the connection is closed.
 *
 * A party in the driver's own JVM (Spark local mode) calls RunState directly (LocalParty).
 */
public final class Coordinator implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Coordinator.class.getName());

    private final int workers, paramCount, stateCount, maxFrame;
    private final RunState runState;
    private final byte[] key;
    private final boolean encrypt;
    private final ServerSocket server;
    private final ExecutorService connections = Executors.newCachedThreadPool(r -> {
        Thread t = new Thread(r, "coordinator-connection");
        t.setDaemon(true);
        return t;
    });
    private final Thread acceptor;
    private volatile boolean closed;

    private final LongAdder bytesIn = new LongAdder(), bytesOut = new LongAdder(),
            connectionCpuNanos = new LongAdder();

    /** A service with a fresh random key and integrity-only frames (tests, benchmarks). */
    public Coordinator(String bindHost, int workers, BnMode bn, int paramCount, int stateCount, int[] bnChannels) throws IOException {
        this(bindHost, workers, bn, paramCount, stateCount, bnChannels, randomKey(), false);
    }

    public static byte[] randomKey() {
        byte[] k = new byte[Wire.KEY_BYTES];
        new SecureRandom().nextBytes(k);
        return k;
    }

    /** bnChannels: the channel count of each BN layer, in order; key: the run's key; encrypt: frames encrypted, not only sealed. */
    public Coordinator(String bindHost, int workers, BnMode bn, int paramCount, int stateCount, int[] bnChannels, byte[] key, boolean encrypt)
            throws IOException {
        if (key.length != Wire.KEY_BYTES) throw new IllegalArgumentException("the run's key has " + key.length + " bytes, not " + Wire.KEY_BYTES);
        this.key = key.clone();
        this.encrypt = encrypt;
        this.workers = workers;
        this.paramCount = paramCount;
        this.stateCount = stateCount;
        this.maxFrame = Wire.maxFrame(paramCount, stateCount, workers, bnChannels);
        this.runState = new RunState(workers, bn, paramCount, stateCount, bnChannels);
        server = new ServerSocket();
        server.setReceiveBufferSize(Wire.SOCKET_BUFFER); // inherited by accepted sockets; must precede bind
        server.bind(new InetSocketAddress(InetAddress.getByName(bindHost), 0), 64);
        acceptor = new Thread(this::acceptLoop, "coordinator-accept");
        acceptor.setDaemon(true);
        acceptor.start();
        IN_THIS_JVM.put(port(), this);
    }

    /** The services of this JVM, by port: a party that finds the driver's service here links to it directly. */
    private static final ConcurrentHashMap<Integer, Coordinator> IN_THIS_JVM = new ConcurrentHashMap<>();

    /**
     * The service listening on port in this JVM, if its key is key (Spark local mode, where the executor
     * is the driver); else null, and the party connects through a socket.
     */
    public static Coordinator inThisJvm(int port, byte[] key) {
        Coordinator c = IN_THIS_JVM.get(port);
        return c != null && !c.closed && MessageDigest.isEqual(c.key, key) ? c : null;
    }

    /** A party of these ranks (ascending) in this JVM, for a stage attempt of an epoch; killed tells whether its task was killed. */
    public LocalParty localParty(int[] ranks, int epoch, int attempt, BooleanSupplier killed) {
        return new LocalParty(runState, ranks, epoch, attempt, killed);
    }

    /** The run's state, which the frames drive. */
    public RunState runState() {
        return runState;
    }

    public int port() {
        return server.getLocalPort();
    }

    public String host() {
        return server.getInetAddress().getHostAddress();
    }

    /** The run's key (for replicas in this JVM: tests and benchmarks; Spark replicas derive or receive it). */
    public byte[] key() {
        return key.clone();
    }

    /** Bytes received and sent by the service since it started (frames with their length and seal), for benchmarks. */
    public long[] bytesMoved() {
        return new long[] {bytesIn.sum(), bytesOut.sum()};
    }

    /** CPU time of the connection threads that have ended (a benchmark's measure of the driver's work). */
    public long connectionCpuNanos() {
        return connectionCpuNanos.sum();
    }

    private void acceptLoop() {
        while (!closed) {
            try {
                Socket s = server.accept();
                connections.submit(() -> serve(s));
            } catch (IOException e) {
                if (!closed) LOG.warning("coordinator accept failed: " + e);
            }
        }
    }

    /** One party's connection: hello, then BN and gradient frames until it closes. */
    private void serve(Socket socket) {
        String who = socket.getRemoteSocketAddress().toString();
        ThreadMXBean cpu = ManagementFactory.getThreadMXBean();
        long cpu0 = cpu.getCurrentThreadCpuTime();
        try (socket) {
            socket.setTcpNoDelay(true);
            socket.setSendBufferSize(Wire.SOCKET_BUFFER);
            socket.setSoTimeout(30_000); // a silent stranger does not hold a thread for ever
            DataInputStream in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 1 << 16));
            DataOutputStream out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream(), 1 << 16));
            Channel.Accepted accepted = Channel.accept(in, out, key, encrypt, workers, bytesIn, bytesOut);
            Channel channel = accepted.channel();
            int[] ranks = accepted.hello().ranks();
            int helloEpoch = accepted.hello().epoch(), helloAttempt = accepted.hello().attempt();
            who = "ranks " + Arrays.toString(ranks) + " (" + who + ", attempt " + helloAttempt + ")";
            welcome(ranks, helloEpoch, helloAttempt, channel);
            try {
                socket.setSoTimeout(0); // from here on the replica's own compute sets the pace
                while (true) {
                    DataInputStream frame;
                    try {
                        frame = channel.receive(maxFrame);
                    } catch (EOFException e) {
                        return; // the replica is done (or gone)
                    }
                    byte type = Wire.type(frame);
                    if (type == Wire.BN) onBn(ranks, helloAttempt, frame, channel);
                    else if (type == Wire.GRAD) onGrad(ranks, helloAttempt, frame, channel);
                    else throw new Wire.ProtocolException("unexpected frame type " + type);
                }
            } finally {
                runState.leave(ranks, helloAttempt); // before the socket closes, so whoever sees it close may reconnect at once
            }
        } catch (IOException | RuntimeException | InterruptedException e) {
            if (!closed) LOG.warning("coordinator: dropped " + who + ": " + (e.getMessage() != null ? e.getMessage() : e.toString()));
        } finally {
            connectionCpuNanos.add(cpu.getCurrentThreadCpuTime() - cpu0);
        }
    }

    private void welcome(int[] ranks, int helloEpoch, int helloAttempt, Channel channel) throws IOException {
        DriverLink.Welcome w = runState.join(ranks, helloEpoch, helloAttempt);
        Wire.Out out = new Wire.Out(Wire.WELCOME);
        out.data.writeInt(w.startStep());
        channel.send(out.floats(w.params()).floats(w.state()));
    }

    private void onBn(int[] ranks, int myAttempt, DataInputStream frame, Channel channel) throws IOException, InterruptedException {
        int frameEpoch = frame.readInt(), frameStep = frame.readInt(), layer = frame.readInt();
        boolean forward = frame.readBoolean();
        double[] sums = Wire.doubles(frame, StepAggregator.sharedGroups(runState.bn(), ranks).length * runState.aggregator().bnLength(layer, forward));
        Wire.expectEnd(frame);
        channel.send(new Wire.Out(Wire.BN_SUM).doubles(runState.reduceBn(ranks, myAttempt, frameEpoch, frameStep, layer, forward, sums, null)));
    }

    private void onGrad(int[] ranks, int myAttempt, DataInputStream frame, Channel channel) throws IOException, InterruptedException {
        int frameEpoch = frame.readInt(), frameStep = frame.readInt();
        long count = frame.readLong();
        double lossSum = frame.readDouble();
        long right = frame.readLong();
        double compute = frame.readDouble(), slowest = frame.readDouble(), bnWait = frame.readDouble();
        float[] grad = Wire.floats(frame, paramCount);
        float[] stateSum = Wire.floatsUpTo(frame, stateCount); // all or nothing, as the step requires: checked in handIn
        Wire.expectEnd(frame);
        runState.handIn(ranks, myAttempt, frameEpoch, frameStep, new StepAggregator.Contribution(count, lossSum, right, compute, slowest, bnWait, grad, stateSum),
                null);
        channel.send(runState.encodedParams(Wire::paramsPayload)); // built once per step for all connections; sealed per connection (each has its own keys)
    }

    @Override
    public void close() throws IOException {
        closed = true;
        IN_THIS_JVM.remove(port(), this);
        server.close();
        connections.shutdownNow();
        runState.end();
    }
}
