package dev.syncbn.coord;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * The coordination service's frames: int length (of what follows), byte type, body. Plain binary,
 * read field by field; nothing from the network is ever deserialized as an object. A frame longer than
 * the reader's limit, or a vector of another length than expected, is a protocol error. After the
 * handshake every frame is sealed by its connection's Channel.
 */
final class Wire {
    static final byte HELLO = 1, WELCOME = 2, BN = 3, BN_SUM = 4, GRAD = 5, PARAMS = 6, CHALLENGE = 8, PROOF = 9;
    /** The run's key: 32 random bytes, or derived from Spark's own secret when spark.authenticate is on. */
    static final int KEY_BYTES = 32;
    /** Room for a whole gradient frame in the kernel's socket buffers, so a step's exchange needs no flow-control round trips. */
    static final int SOCKET_BUFFER = 1 << 20;

    private Wire() {}

    static final class ProtocolException extends IOException {
        ProtocolException(String message) {
            super(message);
        }
    }

    /** A frame's bytes, written in place: a 201 KB gradient is not copied on its way to the socket. */
    static final class Bytes extends ByteArrayOutputStream {
        Bytes() {
            super(256);
        }

        /** The floats, big-endian like the rest of the frame, straight into the buffer. */
        void writeFloats(float[] a) {
            int n = 4 * a.length;
            if (count + n > buf.length) buf = Arrays.copyOf(buf, Math.max(2 * buf.length, count + n));
            ByteBuffer.wrap(buf, count, n).asFloatBuffer().put(a);
            count += n;
        }

        /** The buffer itself; its first size() bytes are the frame. */
        byte[] array() {
            return buf;
        }
    }

    /** A frame being built in memory and then sent in one write. */
    static final class Out {
        final Bytes bytes = new Bytes();
        final DataOutputStream data = new DataOutputStream(bytes);

        Out(byte type) {
            bytes.write(type);
        }

        Out floats(float[] a) throws IOException {
            data.writeInt(a.length);
            data.flush();
            bytes.writeFloats(a);
            return this;
        }

        Out doubles(double[] a) throws IOException {
            data.writeInt(a.length);
            for (double d : a) data.writeDouble(d);
            return this;
        }

        /** The type byte and the body, without the length. */
        byte[] payload() throws IOException {
            data.flush();
            return bytes.toByteArray();
        }

        /** The whole frame, length first, as it travels before the keys exist (and as a test writes raw). */
        byte[] toBytes() throws IOException {
            byte[] payload = payload(), frame = new byte[4 + payload.length];
            ByteBuffer.wrap(frame).putInt(payload.length);
            System.arraycopy(payload, 0, frame, 4, payload.length);
            return frame;
        }
    }

    /**
     * The largest frame a side accepts: a gradient frame (with the running statistics), or a BN frame with
     * a sum for each of at most `groups` sync groups (the service: W; a party: its ranks), plus headers.
     */
    static int maxFrame(int paramCount, int stateCount, int groups, int[] bnChannels) {
        int widest = 0;
        for (int c : bnChannels) widest = Math.max(widest, c);
        return 128 + Math.max(4 * (paramCount + stateCount), 8 * groups * (2 * widest + 1));
    }

    /** The payload of a PARAMS frame. */
    static byte[] paramsPayload(float[] params) {
        try {
            return new Out(PARAMS).floats(params).payload();
        } catch (IOException e) {
            throw new UncheckedIOException(e); // a byte array's stream does not fail
        }
    }

    static float[] floats(DataInputStream in, int expected) throws IOException {
        int n = in.readInt();
        if (n != expected) throw new ProtocolException("vector of " + n + " floats, expected " + expected);
        return floatsOf(in, n);
    }

    /** A vector of 0 to max floats, for a length that only the receiver's state can check. */
    static float[] floatsUpTo(DataInputStream in, int max) throws IOException {
        int n = in.readInt();
        if (n < 0 || n > max) throw new ProtocolException("vector of " + n + " floats, expected at most " + max);
        return floatsOf(in, n);
    }

    private static float[] floatsOf(DataInputStream in, int n) throws IOException {
        byte[] b = new byte[4 * n];
        in.readFully(b);
        float[] a = new float[n];
        ByteBuffer.wrap(b).asFloatBuffer().get(a);
        return a;
    }

    static double[] doubles(DataInputStream in, int expected) throws IOException {
        int n = in.readInt();
        if (n != expected) throw new ProtocolException("vector of " + n + " doubles, expected " + expected);
        double[] a = new double[n];
        for (int i = 0; i < n; i++) a[i] = in.readDouble();
        return a;
    }

    static void expectEnd(DataInputStream frame) throws IOException {
        if (frame.available() > 0) throw new ProtocolException(frame.available() + " unexpected bytes at the end of a frame");
    }

    static byte type(DataInputStream frame) throws IOException {
        try {
            return frame.readByte();
        } catch (EOFException e) {
            throw new ProtocolException("empty frame");
        }
    }
}
