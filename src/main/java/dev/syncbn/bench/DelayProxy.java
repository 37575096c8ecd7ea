package dev.syncbn.bench;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.locks.LockSupport;

/**
 * A TCP proxy on 127.0.0.1 that holds every chunk of bytes for a fixed delay before passing it on, in
 * each direction: the latency of a network link without its bandwidth limit (chunks in flight overlap,
 * as on a wire). For the scale model: a meeting through it costs at least two delays, a round trip.
 */
final class DelayProxy implements AutoCloseable {
    private final ServerSocket server;
    private final long delayNanos;
    private final List<Socket> sockets = new ArrayList<>();
    private volatile boolean closed;

    private record Chunk(byte[] bytes, long due) {}

    /** Listens on an ephemeral port of 127.0.0.1 and connects each accepted socket to targetPort there. */
    DelayProxy(int targetPort, double delayMs) throws IOException {
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.delayNanos = (long) (delayMs * 1e6);
        Thread acceptor = new Thread(() -> {
            while (!closed) {
                try {
                    Socket client = server.accept(), upstream = new Socket(InetAddress.getLoopbackAddress(), targetPort);
                    for (Socket s : new Socket[] {client, upstream}) s.setTcpNoDelay(true);
                    synchronized (sockets) {
                        sockets.add(client);
                        sockets.add(upstream);
                    }
                    pipe(client, upstream);
                    pipe(upstream, client);
                } catch (IOException e) {
                    if (!closed) throw new IllegalStateException("delay proxy: " + e.getMessage(), e);
                }
            }
        }, "delay-proxy-accept");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    int port() {
        return server.getLocalPort();
    }

    /** A reader that stamps each chunk with its due time and a writer that sends it then. */
    private void pipe(Socket from, Socket to) {
        BlockingQueue<Chunk> queue = new LinkedBlockingQueue<>();
        Thread reader = new Thread(() -> {
            byte[] buffer = new byte[1 << 16];
            try (InputStream in = from.getInputStream()) {
                for (int n; (n = in.read(buffer)) > 0; ) queue.put(new Chunk(Arrays.copyOf(buffer, n), System.nanoTime() + delayNanos));
            } catch (IOException | InterruptedException e) {
                // the connection ended
            }
            queue.add(new Chunk(null, 0));
        }, "delay-proxy-read");
        Thread writer = new Thread(() -> {
            try (OutputStream out = to.getOutputStream()) {
                for (Chunk c; (c = queue.take()).bytes() != null; ) {
                    // parkNanos, not sleep: Java 17's Thread.sleep rounds any fraction of a millisecond up to a whole one
                    for (long wait; (wait = c.due() - System.nanoTime()) > 0; ) LockSupport.parkNanos(wait);
                    out.write(c.bytes());
                    out.flush();
                }
            } catch (IOException | InterruptedException e) {
                // the connection ended
            }
        }, "delay-proxy-write");
        for (Thread t : new Thread[] {reader, writer}) {
            t.setDaemon(true);
            t.start();
        }
    }

    @Override
    public void close() throws IOException {
        closed = true;
        server.close();
        synchronized (sockets) {
            for (Socket s : sockets) s.close();
        }
    }
}
