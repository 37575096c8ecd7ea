package dev.syncbn.coord;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.function.BooleanSupplier;

/**
 * A party's connection to the driver's Coordinator: the BN all-reduce of the sync groups the party
 * shares with others (for a party of one replica, exactly the network's BnReducer) and the per-step
 * gradient hand-in. Reads block without a timeout; a watchdog closes the socket when Spark kills a task
 * of the party, since a blocked socket read ignores thread interrupts.
 */
public final class CoordinatorClient implements DriverLink {

    private final Socket socket;
    private final DataInputStream in;
    private final DataOutputStream out;
    private final Channel channel;
    private final int epoch, paramCount, stateCount, maxFrame;
    private final Thread watchdog;
    private int step;

    /** A party of one replica. */
    public CoordinatorClient(String host, int port, byte[] key, boolean encrypt, int rank, int epoch, int attempt, int paramCount, int stateCount, int[] bnChannels,
            BooleanSupplier killed) throws IOException {
        this(host, port, key, encrypt, new int[] {rank}, epoch, attempt, paramCount, stateCount, bnChannels, killed);
    }

    /** A party speaking for these ranks (ascending). */
    public CoordinatorClient(String host, int port, byte[] key, boolean encrypt, int[] ranks, int epoch, int attempt, int paramCount, int stateCount,
            int[] bnChannels, BooleanSupplier killed) throws IOException {
        this.epoch = epoch;
        this.paramCount = paramCount;
        this.stateCount = stateCount;
        this.maxFrame = Wire.maxFrame(paramCount, stateCount, ranks.length, bnChannels);
        socket = new Socket();
        socket.setReceiveBufferSize(Wire.SOCKET_BUFFER);
        socket.setSendBufferSize(Wire.SOCKET_BUFFER);
        socket.connect(new InetSocketAddress(host, port), 30_000);
        socket.setTcpNoDelay(true);
        in = new DataInputStream(new BufferedInputStream(socket.getInputStream(), 1 << 16));
        out = new DataOutputStream(new BufferedOutputStream(socket.getOutputStream(), 1 << 16));
        watchdog = new Thread(() -> {
            while (!socket.isClosed()) {
                if (killed.getAsBoolean()) {
                    closeQuietly();
                    return;
                }
                try {
                    Thread.sleep(200);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "coordinator-client-watchdog");
        watchdog.setDaemon(true);
        watchdog.start();
        channel = Channel.connect(in, out, key, ranks, epoch, attempt, encrypt);
    }

    @Override
    public Welcome welcome() throws IOException {
        DataInputStream f = expect(Wire.WELCOME);
        int start = f.readInt();
        Welcome w = new Welcome(start, Wire.floats(f, paramCount), Wire.floats(f, stateCount));
        Wire.expectEnd(f);
        step = start;
        return w;
    }

    private DataInputStream expect(byte type) throws IOException {
        DataInputStream f = channel.receive(maxFrame);
        byte got = Wire.type(f);
        if (got != type) throw new Wire.ProtocolException("expected frame type " + type + ", got " + got);
        return f;
    }

    /** sums: for each sync group the party shares with other parties (ascending), its members' sums; replaced by the groups' totals. */
    @Override
    public void allReduce(int layer, boolean forward, double[] sums) {
        try {
            Wire.Out f = new Wire.Out(Wire.BN);
            f.data.writeInt(epoch);
            f.data.writeInt(step);
            f.data.writeInt(layer);
            f.data.writeBoolean(forward);
            channel.send(f.doubles(sums));
            double[] total = Wire.doubles(expect(Wire.BN_SUM), sums.length);
            System.arraycopy(total, 0, sums, 0, sums.length);
        } catch (IOException e) {
            throw new UncheckedIOException("BN all-reduce of layer " + layer + " at step " + step + " failed", e);
        }
    }

    @Override
    public float[] exchange(StepAggregator.Contribution c) throws IOException {
        Wire.Out f = new Wire.Out(Wire.GRAD);
        f.data.writeInt(epoch);
        f.data.writeInt(step);
        f.data.writeLong(c.count());
        f.data.writeDouble(c.lossSum());
        f.data.writeLong(c.correct());
        f.data.writeDouble(c.computeS());
        f.data.writeDouble(c.slowestComputeS());
        f.data.writeDouble(c.bnWaitS());
        channel.send(f.floats(c.grad()).floats(c.stateSum()));
        float[] params = Wire.floats(expect(Wire.PARAMS), paramCount);
        step++;
        return params;
    }

    private void closeQuietly() {
        try {
            socket.close();
        } catch (IOException ignored) {
            // closing is all that is left to do
        }
    }

    @Override
    public void close() {
        closeQuietly();
        watchdog.interrupt();
    }
}
