package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.SecureRandom;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.LongAdder;
import java.util.logging.Logger;

/**
 * The driver's coordination service for one training run. The W replicas of a barrier stage connect as
 * parties: each executor's hub speaks for the replicas in its JVM (which summed their parts there
 * first), so the driver's traffic grows with the executors, not the replicas; a party may also be a
 * single replica. A party proves that it holds the run's key (Channel: the key never crosses the wire,
 * and every later frame is sealed), and then per step (1) all-reduces the BN statistics of the sync
 * groups it shares with other parties (summed in the order of the parties' lowest ranks, so the result
 * does not depend on arrival order) and (2) hands in its replicas' summed gradient; when every rank's
 * gradient of a step is in, the StepHandler (the driver: sum, Adam) returns the new parameters, which
 * every party receives once.
 *
 * The driver owns the step counter: a relaunched stage attempt is told the current step and gets the
 * current parameters, and whatever the failed attempt left half-done is dropped. Frames from a stale
 * attempt, for a step that is over, of the wrong length, failing their seal or without a proof of the key are refused with a log
 * line and the connection is closed; the step in progress is not touched.
 */
public final class Coordinator implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Coordinator.class.getName());

    /** Per-step time split, seconds, as the replicas and the driver measured it. */
    public record StepTimes(double computeS, double bnWaitS, double exchangeS, double updateS) {}

    public interface StepHandler {
        /** All gradients of a step are in: apply them and return the new parameters. */
        float[] apply(StepAggregator.StepReport report);

        /** After each step, with its time split; exchange is the step's wall time less the other three. */
        void stepDone(StepAggregator.StepReport report, StepTimes times);
    }

    private final int workers, paramCount, stateCount, maxFrame;
    private final BnMode bn;
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

    // The run's state, guarded by this.
    private StepHandler handler;
    private int epoch = -1, stepsInEpoch, step, attempt = -1;
    private float[] params;
    private byte[] paramsPayload; // the PARAMS reply for the current parameters, built once for all replicas
    private float[] state; // the replicas' running statistics, averaged (see StepAggregator.StepReport)
    private final StepAggregator aggregator;
    private long lastStepEnd; // nanoTime when the last step (or the attempt) began
    private final boolean[] connected; // ranks with a live connection in the current attempt
    private Throwable failure;
    private volatile Runnable onFailure = () -> {};
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
        this.bn = bn;
        int widest = 0;
        for (int c : bnChannels) widest = Math.max(widest, c);
        // a gradient frame, or a BN frame with a sum for each of (at most) W groups
        this.maxFrame = 128 + Math.max(4 * (paramCount + stateCount), 8 * workers * (2 * widest + 1));
        this.aggregator = new StepAggregator(workers, bn, paramCount, stateCount, bnChannels);
        this.connected = new boolean[workers];
        server = new ServerSocket();
        server.setReceiveBufferSize(Wire.SOCKET_BUFFER); // inherited by accepted sockets; must precede bind
        server.bind(new InetSocketAddress(InetAddress.getByName(bindHost), 0), 64);
        acceptor = new Thread(this::acceptLoop, "coordinator-accept");
        acceptor.setDaemon(true);
        acceptor.start();
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

    /** Opens an epoch of stepsInEpoch steps, starting at step startStep, from these parameters and running statistics. */
    public synchronized void startEpoch(int epoch, int stepsInEpoch, int startStep, float[] params, float[] state, StepHandler handler) {
        this.epoch = epoch;
        this.stepsInEpoch = stepsInEpoch;
        this.step = startStep;
        this.params = params.clone();
        this.state = state.clone();
        this.handler = handler;
        this.attempt = -1;
        this.failure = null;
        java.util.Arrays.fill(connected, false);
        clearPending();
        notifyAll();
    }

    /** The step the driver will compute next (== stepsInEpoch once the epoch is done). */
    public synchronized int step() {
        return step;
    }

    /** The replicas' running statistics after the last step, averaged over the replicas. */
    public synchronized float[] state() {
        return state.clone();
    }

    /** Bytes received and sent by the service since it started (frames with their length and seal), for benchmarks. */
    public long[] bytesMoved() {
        return new long[] {bytesIn.sum(), bytesOut.sum()};
    }

    /** CPU time of the connection threads that have ended (a benchmark's measure of the driver's work). */
    public long connectionCpuNanos() {
        return connectionCpuNanos.sum();
    }

    /** Called (on a thread of its own) when the step handler fails: the failure is the driver's and deterministic, so retrying the stage is pointless. */
    public void onFailure(Runnable listener) {
        this.onFailure = listener;
    }

    /** A failure in the step handler (the driver's side), or null. */
    public synchronized Throwable failure() {
        return failure;
    }

    private void clearPending() {
        aggregator.clear();
        lastStepEnd = System.nanoTime();
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
        java.lang.management.ThreadMXBean cpu = java.lang.management.ManagementFactory.getThreadMXBean();
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
            who = "ranks " + java.util.Arrays.toString(ranks) + " (" + who + ", attempt " + helloAttempt + ")";
            welcome(ranks, helloEpoch, helloAttempt, channel);
            try {
                socket.setSoTimeout(0); // from here on the replica's own compute sets the pace
                while (true) {
                    DataInputStream frame;
                    try {
                        frame = channel.receive(maxFrame);
                    } catch (java.io.EOFException e) {
                        return; // the replica is done (or gone)
                    }
                    byte type = Wire.type(frame);
                    if (type == Wire.BN) onBn(ranks, helloAttempt, frame, channel);
                    else if (type == Wire.GRAD) onGrad(ranks, helloAttempt, frame, channel);
                    else throw new Wire.ProtocolException("unexpected frame type " + type);
                }
            } finally {
                // the rank is free again before the socket closes, so whoever sees it close may reconnect at once
                synchronized (this) {
                    if (helloAttempt == attempt) for (int r : ranks) connected[r] = false;
                }
            }
        } catch (IOException | RuntimeException | InterruptedException e) {
            if (!closed) LOG.warning("coordinator: dropped " + who + ": " + (e.getMessage() != null ? e.getMessage() : e.toString()));
        } finally {
            connectionCpuNanos.add(cpu.getCurrentThreadCpuTime() - cpu0);
        }
    }

    private void welcome(int[] ranks, int helloEpoch, int helloAttempt, Channel channel) throws IOException {
        float[] p, st;
        int start;
        synchronized (this) {
            aggregator.checkParty(ranks);
            if (helloEpoch != epoch) throw new Wire.ProtocolException("hello for epoch " + helloEpoch + ", the run is in epoch " + epoch);
            if (helloAttempt < attempt) throw new Wire.ProtocolException("stale stage attempt " + helloAttempt + " (now " + attempt + ")");
            if (helloAttempt > attempt) {
                // a relaunched stage: what the failed attempt left half-done is void
                attempt = helloAttempt;
                java.util.Arrays.fill(connected, false);
                clearPending();
                notifyAll();
            }
            for (int r : ranks) if (connected[r]) throw new Wire.ProtocolException("rank " + r + " is already connected in attempt " + attempt);
            for (int r : ranks) connected[r] = true;
            p = params;
            st = state;
            start = step;
        }
        Wire.Out w = new Wire.Out(Wire.WELCOME);
        w.data.writeInt(start);
        channel.send(w.floats(p).floats(st));
    }

    private void checkLive(int myAttempt, int frameEpoch, int frameStep) throws Wire.ProtocolException {
        if (myAttempt != attempt) throw new Wire.ProtocolException("stage attempt " + myAttempt + " was superseded by " + attempt);
        if (frameEpoch != epoch || frameStep != step) {
            throw new Wire.ProtocolException("frame for epoch " + frameEpoch + " step " + frameStep + ", the run is at epoch " + epoch + " step " + step);
        }
    }

    private void onBn(int[] ranks, int myAttempt, DataInputStream frame, Channel channel) throws IOException, InterruptedException {
        int frameEpoch = frame.readInt(), frameStep = frame.readInt(), layer = frame.readInt();
        boolean forward = frame.readBoolean();
        double[] sums = Wire.doubles(frame, StepAggregator.sharedGroups(bn, ranks).length * aggregator.bnLength(layer, forward));
        Wire.expectEnd(frame);
        double[] result;
        synchronized (this) {
            checkLive(myAttempt, frameEpoch, frameStep);
            aggregator.addBn(frameStep, layer, forward, ranks, sums);
            if (aggregator.bnSums(frameStep, layer, forward, ranks) != null) notifyAll();
            while ((result = aggregator.bnSums(frameStep, layer, forward, ranks)) == null) {
                wait();
                checkLive(myAttempt, frameEpoch, frameStep);
            }
        }
        channel.send(new Wire.Out(Wire.BN_SUM).doubles(result));
    }

    private void onGrad(int[] ranks, int myAttempt, DataInputStream frame, Channel channel) throws IOException, InterruptedException {
        int frameEpoch = frame.readInt(), frameStep = frame.readInt();
        long count = frame.readLong();
        double lossSum = frame.readDouble();
        long right = frame.readLong();
        double compute = frame.readDouble(), bnWait = frame.readDouble();
        float[] grad = Wire.floats(frame, paramCount);
        float[] stateSum = Wire.floats(frame, stateCount);
        Wire.expectEnd(frame);
        byte[] reply;
        synchronized (this) {
            checkLive(myAttempt, frameEpoch, frameStep);
            if (aggregator.addGradient(ranks, new StepAggregator.Contribution(count, lossSum, right, compute, bnWait, grad, stateSum))) completeStep();
            while (step == frameStep) {
                wait();
                if (myAttempt != attempt) throw new Wire.ProtocolException("stage attempt " + myAttempt + " was superseded by " + attempt);
            }
            reply = paramsPayload;
        }
        channel.send(reply); // sealed per connection: each has its own keys
    }

    /** All gradients of the current step are in (called holding the lock). */
    private void completeStep() {
        StepAggregator.StepReport report = aggregator.sum(epoch, step);
        try {
            long t0 = System.nanoTime();
            params = handler.apply(report).clone();
            paramsPayload = new Wire.Out(Wire.PARAMS).floats(params).payload();
            long t1 = System.nanoTime();
            double update = (t1 - t0) / 1e9, wall = (t1 - lastStepEnd) / 1e9;
            state = report.meanState();
            step++;
            handler.stepDone(report, new StepTimes(report.computeS(), report.bnWaitS(), Math.max(0, wall - report.computeS() - report.bnWaitS() - update), update));
        } catch (RuntimeException | IOException e) {
            failure = e; // kept whole: the user sees the driver's own error, with its cause, not the replicas' echoes of it
            LOG.severe(String.valueOf(e.getMessage()));
            Thread t = new Thread(onFailure, "coordinator-failure");
            t.setDaemon(true);
            t.start();
            attempt = Integer.MAX_VALUE; // no replica of this epoch goes on
        }
        clearPending();
        notifyAll();
    }

    @Override
    public void close() throws IOException {
        closed = true;
        server.close();
        connections.shutdownNow();
        synchronized (this) {
            attempt = Integer.MAX_VALUE;
            notifyAll();
        }
    }
}
