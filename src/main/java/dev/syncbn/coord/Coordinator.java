package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.LongAdder;
import java.util.function.BooleanSupplier;
import java.util.logging.Logger;
import java.io.EOFException;
import java.io.InterruptedIOException;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.Arrays;

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
 * A party in the driver's own JVM (Spark local mode) takes the same steps as direct calls (LocalParty).
 *
 * The driver owns the step counter. Every StepAggregator.STATISTICS_EVERY steps (where the parties hand
 * in their running statistics, which no step needs) it keeps a snapshot: step, parameters, statistics
 * and, through the StepHandler, the optimizer's state. A relaunched stage attempt goes back to the last
 * snapshot and recomputes the steps after it (the same computation, so the run ends as an undisturbed
 * one; stepDone hears of each step once); whatever the failed attempt left half-done is dropped. Frames from a stale
 * attempt, for a step that is over, of the wrong length, failing their seal or without a proof of the key are refused with a log
 * line and the connection is closed; the step in progress is not touched.
 */
public final class Coordinator implements AutoCloseable {
    private static final Logger LOG = Logger.getLogger(Coordinator.class.getName());

    /**
     * Per-step time split, seconds, as the replicas and the driver measured it. straggleS is not a fourth
     * part but a share of bnWait and exchange: the replicas' mean wait for the slowest one's compute (the
     * slowest replica's compute less the mean), which the protocol cannot remove.
     */
    public record StepTimes(double computeS, double bnWaitS, double exchangeS, double updateS, double straggleS) {}

    public interface StepHandler {
        /** All gradients of a step are in: apply them and write the new parameters into params. */
        void apply(StepAggregator.StepReport report, float[] params);

        /** Keep what apply changes besides the parameters (the optimizer's state) as it is now: a relaunch may go back here. */
        void snapshot();

        /** Go back to the last snapshot, whose parameters are params. */
        void rollback(float[] params);

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
    // What the parties copy after a step; the next step's update writes the other array, and the two swap
    // (a party hands in that next step only after it has copied these). No allocation per step: a run that
    // allocated 1.4 MB a step paid for fresh heap pages, up to 5 ms a step, until the heap stopped growing.
    private float[] params, nextParams;
    private byte[] paramsPayload; // the PARAMS frame of the current parameters, built once for all connections (null until one asks)
    private float[] state; // the replicas' running statistics, averaged (see StepAggregator.StepReport), as of snapshotStep
    private int snapshotStep; // where a relaunched attempt starts
    private float[] snapshotParams;
    private int firstUnreported; // stepDone has been called for the steps before it (a relaunch recomputes some)
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
        return new LocalParty(ranks.clone(), epoch, attempt, killed);
    }

    /**
     * A party in the service's own JVM: the same steps a connection's frames take, as direct calls, with
     * no socket, seal or copy of the gradient (about 1.3 ms a step of a 201 KB gradient on loopback).
     * Nothing crosses a process boundary, so there is no key to prove.
     */
    public final class LocalParty implements DriverLink {
        private final int[] ranks;
        private final int epoch, attempt;
        private final BooleanSupplier killed;
        private int step;

        private LocalParty(int[] ranks, int epoch, int attempt, BooleanSupplier killed) {
            this.ranks = ranks;
            this.epoch = epoch;
            this.attempt = attempt;
            this.killed = killed;
        }

        @Override
        public Welcome welcome() throws IOException {
            Welcome w = join(ranks, epoch, attempt);
            step = w.startStep();
            return w;
        }

        @Override
        public void allReduce(int layer, boolean forward, double[] sums) {
            try {
                double[] totals = reduceBn(ranks, attempt, epoch, step, layer, forward, sums, killed);
                System.arraycopy(totals, 0, sums, 0, sums.length);
            } catch (IOException e) {
                throw new UncheckedIOException("BN all-reduce of layer " + layer + " at step " + step + " failed", e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("BN all-reduce of layer " + layer + " at step " + step + " interrupted", e);
            }
        }

        @Override
        public float[] exchange(long count, double lossSum, long correct, double computeS, double slowestComputeS, double bnWaitS, float[] grads,
                float[] stateSum) throws IOException {
            try {
                synchronized (Coordinator.this) {
                    handIn(ranks, attempt, epoch, step, new StepAggregator.Contribution(count, lossSum, correct, computeS, slowestComputeS, bnWaitS, grads, stateSum),
                            killed);
                    step++;
                    return params; // not changed until every party has handed in the next step
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("hand-in of step " + step + " interrupted: " + e.getMessage());
            }
        }

        @Override
        public void close() {
            leave(ranks, attempt);
        }
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
        this.nextParams = new float[params.length];
        this.state = state.clone();
        this.handler = handler;
        this.snapshotStep = startStep;
        this.snapshotParams = params.clone();
        this.firstUnreported = startStep;
        handler.snapshot();
        this.attempt = -1;
        this.failure = null;
        Arrays.fill(connected, false);
        clearPending();
        notifyAll();
    }

    /** The step the driver will compute next (== stepsInEpoch once the epoch is done). */
    public synchronized int step() {
        return step;
    }

    /** The replicas' running statistics, averaged over the replicas, as of the last step that carried them (the epoch's last, once it is done). */
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
                leave(ranks, helloAttempt); // before the socket closes, so whoever sees it close may reconnect at once
            }
        } catch (IOException | RuntimeException | InterruptedException e) {
            if (!closed) LOG.warning("coordinator: dropped " + who + ": " + (e.getMessage() != null ? e.getMessage() : e.toString()));
        } finally {
            connectionCpuNanos.add(cpu.getCurrentThreadCpuTime() - cpu0);
        }
    }

    /** Where a party starts: its ranks join the stage attempt (a newer attempt voids what an older one left half-done). */
    private synchronized DriverLink.Welcome join(int[] ranks, int helloEpoch, int helloAttempt) throws Wire.ProtocolException {
        aggregator.checkParty(ranks);
        if (helloEpoch != epoch) throw new Wire.ProtocolException("hello for epoch " + helloEpoch + ", the run is in epoch " + epoch);
        if (helloAttempt < attempt) throw new Wire.ProtocolException("stale stage attempt " + helloAttempt + " (now " + attempt + ")");
        if (helloAttempt > attempt) {
            // a relaunched stage: what the failed attempt left half-done is void
            attempt = helloAttempt;
            Arrays.fill(connected, false);
        }
        boolean first = true;
        for (boolean c : connected) first &= !c;
        if (first) {
            // no party is in the middle of a step: start from the last snapshot, where the statistics are
            clearPending();
            if (step != snapshotStep) {
                step = snapshotStep;
                params = snapshotParams.clone(); // a new array: a replica of a failed attempt may still be reading the old one
                paramsPayload = null;
                handler.rollback(params);
            }
            notifyAll();
        }
        for (int r : ranks) if (connected[r]) throw new Wire.ProtocolException("rank " + r + " is already connected in attempt " + attempt);
        for (int r : ranks) connected[r] = true;
        return new DriverLink.Welcome(step, params, state);
    }

    /** The party has gone: its ranks are free again (for a party of the current attempt). */
    private synchronized void leave(int[] ranks, int partyAttempt) {
        if (partyAttempt == attempt) for (int r : ranks) connected[r] = false;
    }

    private void welcome(int[] ranks, int helloEpoch, int helloAttempt, Channel channel) throws IOException {
        DriverLink.Welcome w = join(ranks, helloEpoch, helloAttempt);
        Wire.Out out = new Wire.Out(Wire.WELCOME);
        out.data.writeInt(w.startStep());
        channel.send(out.floats(w.params()).floats(w.state()));
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
        channel.send(new Wire.Out(Wire.BN_SUM).doubles(reduceBn(ranks, myAttempt, frameEpoch, frameStep, layer, forward, sums, null)));
    }

    /** A party's part of a BN all-reduce; returns the totals of its shared groups once every part is in. */
    private synchronized double[] reduceBn(int[] ranks, int myAttempt, int partyEpoch, int partyStep, int layer, boolean forward, double[] sums,
            BooleanSupplier gone) throws Wire.ProtocolException, InterruptedException {
        checkLive(myAttempt, partyEpoch, partyStep);
        aggregator.addBn(partyStep, layer, forward, ranks, sums);
        double[] result = aggregator.bnSums(partyStep, layer, forward, ranks);
        if (result != null) notifyAll();
        while (result == null) {
            await(gone);
            checkLive(myAttempt, partyEpoch, partyStep);
            result = aggregator.bnSums(partyStep, layer, forward, ranks);
        }
        return result;
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
        byte[] reply;
        synchronized (this) {
            handIn(ranks, myAttempt, frameEpoch, frameStep, new StepAggregator.Contribution(count, lossSum, right, compute, slowest, bnWait, grad, stateSum), null);
            if (paramsPayload == null) paramsPayload = new Wire.Out(Wire.PARAMS).floats(params).payload(); // once per step for all connections
            reply = paramsPayload;
        }
        channel.send(reply); // sealed per connection: each has its own keys
    }

    /** A party's gradient report of a step; returns when the step is complete (the new parameters are in params). */
    private synchronized void handIn(int[] ranks, int myAttempt, int partyEpoch, int partyStep, StepAggregator.Contribution c, BooleanSupplier gone)
            throws Wire.ProtocolException, InterruptedException {
        checkLive(myAttempt, partyEpoch, partyStep);
        if (aggregator.addGradient(ranks, c, StepAggregator.statisticsDue(partyStep, stepsInEpoch))) completeStep();
        while (step == partyStep) {
            await(gone);
            if (myAttempt != attempt) throw new Wire.ProtocolException("stage attempt " + myAttempt + " was superseded by " + attempt);
        }
    }

    /**
     * Waits (holding the lock) for another party's part. A connection's thread needs no more: a killed
     * replica closes its socket. A party in this JVM runs on its replica's own thread, which Spark may
     * mark killed without interrupting it, so it looks up every 200 ms.
     */
    private void await(BooleanSupplier gone) throws InterruptedException {
        if (gone == null) {
            wait();
            return;
        }
        wait(200);
        if (gone.getAsBoolean()) throw new InterruptedException("the party's task was killed");
    }

    /** All gradients of the current step are in (called holding the lock). */
    private void completeStep() {
        StepAggregator.StepReport report = aggregator.sum(epoch, step);
        try {
            long t0 = System.nanoTime();
            handler.apply(report, nextParams);
            float[] read = params;
            params = nextParams;
            nextParams = read;
            paramsPayload = null;
            if (report.meanState() != null) { // the end of a snapshot interval
                state = report.meanState();
                snapshotStep = step + 1;
                System.arraycopy(params, 0, snapshotParams, 0, params.length);
                handler.snapshot();
            }
            long t1 = System.nanoTime();
            double update = (t1 - t0) / 1e9, wall = (t1 - lastStepEnd) / 1e9;
            step++;
            if (step > firstUnreported) {
                firstUnreported = step;
                handler.stepDone(report, new StepTimes(report.computeS(), report.bnWaitS(), Math.max(0, wall - report.computeS() - report.bnWaitS() - update),
                        update, Math.max(0, report.slowestComputeS() - report.computeS())));
            }
        } catch (RuntimeException e) {
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
        IN_THIS_JVM.remove(port(), this);
        server.close();
        connections.shutdownNow();
        synchronized (this) {
            attempt = Integer.MAX_VALUE;
            notifyAll();
        }
    }
}
