package dev.syncbn.coord;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.concurrent.atomic.LongAdder;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.Mac;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;

/**
 * One authenticated connection between a party (a replica, or an executor's hub speaking for the
 * replicas in its JVM) and the coordination service.
 *
 * The handshake proves that both sides hold the run's key without sending it: the party's hello
 * (the ranks it speaks for, epoch, stage attempt, whether frames are encrypted, a fresh nonce), then the service's
 * challenge (its own nonce and HMAC-SHA256(key, "server" | transcript)), then the replica's proof
 * (HMAC-SHA256(key, "client" | transcript)), where the transcript is the hello and the service's
 * nonce. Each direction then gets its own AES-256 key, HMAC-SHA256(key, "c2s" or "s2c" | transcript).
 *
 * Every later frame is AES-GCM sealed under its direction's key with the frame's sequence number as the
 * IV: with integrity only, the frame travels in clear and its 16-byte tag covers it whole (GMAC);
 * with encryption, its payload is encrypted too. A changed, dropped, reordered or replayed frame fails
 * its tag (the receiver expects the next sequence number), and the connection ends with a
 * ProtocolException naming the frame. Measured on AVX-512 hardware, a 201 KB gradient costs ~0.1 ms to
 * seal with GMAC and ~0.04 ms with encryption (AES-GCM's encryption path has the better intrinsics).
 */
final class Channel {
    static final int NONCE_BYTES = 32, KEY_BYTES = 32, TAG_BYTES = 16;

    private final DataInputStream in;
    private final DataOutputStream out;
    private SecretKeySpec sendKey, receiveKey;
    private boolean encrypt;
    private long sent, received;
    private final Cipher cipher;
    private byte[] lastPlain; // the last frame read before the keys exist: the hello, for the transcript
    private final LongAdder bytesIn, bytesOut; // whole frames, length prefix and seal included

    private Channel(DataInputStream in, DataOutputStream out, LongAdder bytesIn, LongAdder bytesOut) {
        this.in = in;
        this.out = out;
        this.bytesIn = bytesIn;
        this.bytesOut = bytesOut;
        try {
            cipher = Cipher.getInstance("AES/GCM/NoPadding");
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("this JVM has no AES/GCM", e);
        }
    }

    /** What a party's hello claims, once its proof has checked out: the ranks it speaks for (ascending, checked by the service), epoch, attempt. */
    record Hello(int[] ranks, int epoch, int attempt) {}

    /** A channel on which the service accepted a replica; hello is what the replica proved it holds the key for. */
    record Accepted(Channel channel, Hello hello) {}

    /** The replica's side of the handshake. */
    static Channel connect(DataInputStream in, DataOutputStream out, byte[] key, int[] ranks, int epoch, int attempt, boolean encrypt) throws IOException {
        Channel c = new Channel(in, out, new LongAdder(), new LongAdder());
        Wire.Out hello = new Wire.Out(Wire.HELLO);
        hello.data.writeInt(ranks.length);
        for (int rank : ranks) hello.data.writeInt(rank);
        hello.data.writeInt(epoch);
        hello.data.writeInt(attempt);
        hello.data.writeBoolean(encrypt);
        hello.data.write(nonce());
        byte[] helloPayload = hello.payload();
        c.sendPlain(helloPayload);
        DataInputStream challenge = c.receivePlain(1 + NONCE_BYTES + KEY_BYTES);
        if (Wire.type(challenge) != Wire.CHALLENGE) throw new Wire.ProtocolException("expected the service's challenge");
        byte[] serverNonce = new byte[NONCE_BYTES], serverProof = new byte[KEY_BYTES];
        challenge.readFully(serverNonce);
        challenge.readFully(serverProof);
        Wire.expectEnd(challenge);
        byte[] transcript = concat(helloPayload, serverNonce);
        if (!MessageDigest.isEqual(serverProof, hmac(key, "server", transcript))) {
            throw new Wire.ProtocolException("the coordination service could not prove that it holds the run's key");
        }
        Wire.Out proof = new Wire.Out(Wire.PROOF);
        proof.data.write(hmac(key, "client", transcript));
        c.sendPlain(proof.payload());
        c.protect(hmac(key, "c2s", transcript), hmac(key, "s2c", transcript), encrypt);
        return c;
    }

    /**
     * The service's side of the handshake: refuses a party that cannot prove it holds the key, that
     * disagrees about encryption, or that claims more than maxRanks ranks. Counts the bytes of every
     * frame in bytesIn and bytesOut.
     */
    static Accepted accept(DataInputStream in, DataOutputStream out, byte[] key, boolean encrypt, int maxRanks, LongAdder bytesIn, LongAdder bytesOut)
            throws IOException {
        Channel c = new Channel(in, out, bytesIn, bytesOut);
        DataInputStream hello = c.receivePlain(1 + 4 + 4 * maxRanks + 8 + 1 + NONCE_BYTES);
        if (Wire.type(hello) != Wire.HELLO) throw new Wire.ProtocolException("first frame is not a hello");
        int count = hello.readInt();
        if (count < 1 || count > maxRanks) throw new Wire.ProtocolException("a hello for " + count + " ranks (the run has " + maxRanks + ")");
        int[] ranks = new int[count];
        for (int i = 0; i < count; i++) ranks[i] = hello.readInt();
        int epoch = hello.readInt(), attempt = hello.readInt();
        boolean wantsEncryption = hello.readBoolean();
        hello.readFully(new byte[NONCE_BYTES]);
        Wire.expectEnd(hello);
        byte[] helloPayload = c.lastPlain;
        byte[] serverNonce = nonce(), transcript = concat(helloPayload, serverNonce);
        Wire.Out challenge = new Wire.Out(Wire.CHALLENGE);
        challenge.data.write(serverNonce);
        challenge.data.write(hmac(key, "server", transcript));
        c.sendPlain(challenge.payload());
        DataInputStream proof = c.receivePlain(1 + KEY_BYTES);
        if (Wire.type(proof) != Wire.PROOF) throw new Wire.ProtocolException("expected a proof of the run's key");
        byte[] presented = new byte[KEY_BYTES];
        proof.readFully(presented);
        Wire.expectEnd(proof);
        if (!MessageDigest.isEqual(presented, hmac(key, "client", transcript))) throw new Wire.ProtocolException("wrong proof of the run's key");
        if (wantsEncryption != encrypt) {
            throw new Wire.ProtocolException("the replica " + (wantsEncryption ? "encrypts" : "does not encrypt") + " frames, the service "
                    + (encrypt ? "does" : "does not"));
        }
        c.protect(hmac(key, "s2c", transcript), hmac(key, "c2s", transcript), encrypt);
        return new Accepted(c, new Hello(ranks, epoch, attempt));
    }

    private void protect(byte[] send, byte[] receive, boolean encrypt) {
        this.sendKey = new SecretKeySpec(send, "AES");
        this.receiveKey = new SecretKeySpec(receive, "AES");
        this.encrypt = encrypt;
    }

    /** Sends a frame (built with Wire.Out), sealed. */
    void send(Wire.Out frame) throws IOException {
        frame.data.flush();
        send(frame.bytes.array(), frame.bytes.size());
    }

    /** Sends a frame's payload (its type byte, then its body), sealed. */
    void send(byte[] payload) throws IOException {
        send(payload, payload.length);
    }

    /** Sends the first length bytes of payload, sealed: with integrity only, the frame as it is and then its tag (no copy). */
    private void send(byte[] payload, int length) throws IOException {
        byte[] body, tag;
        int bodyLength;
        try {
            cipher.init(Cipher.ENCRYPT_MODE, sendKey, iv(sent++));
            if (encrypt) {
                cipher.updateAAD(payload, 0, 1); // the type travels in clear, covered by the tag
                body = new byte[length + TAG_BYTES];
                body[0] = payload[0];
                cipher.doFinal(payload, 1, length - 1, body, 1);
                bodyLength = body.length;
                tag = new byte[0];
            } else {
                cipher.updateAAD(payload, 0, length);
                body = payload;
                bodyLength = length;
                tag = cipher.doFinal();
            }
        } catch (GeneralSecurityException e) {
            throw new IOException("sealing frame " + (sent - 1) + " failed", e);
        }
        out.writeInt(bodyLength + tag.length);
        out.write(body, 0, bodyLength);
        out.write(tag);
        out.flush();
        bytesOut.add(4 + bodyLength + tag.length);
    }

    /** Reads the next frame of at most maxLength payload bytes and checks its tag; returns its payload, type first. */
    DataInputStream receive(int maxLength) throws IOException {
        byte[] sealed = readFrame(maxLength + TAG_BYTES);
        if (sealed.length < 1 + TAG_BYTES) throw new Wire.ProtocolException("frame " + received + " of " + sealed.length + " bytes is too short to be sealed");
        long seq = received++;
        byte[] payload;
        try {
            cipher.init(Cipher.DECRYPT_MODE, receiveKey, iv(seq));
            if (encrypt) {
                cipher.updateAAD(sealed, 0, 1);
                payload = new byte[sealed.length - TAG_BYTES];
                payload[0] = sealed[0];
                cipher.doFinal(sealed, 1, sealed.length - 1, payload, 1);
            } else {
                cipher.updateAAD(sealed, 0, sealed.length - TAG_BYTES);
                cipher.doFinal(sealed, sealed.length - TAG_BYTES, TAG_BYTES);
                return new DataInputStream(new ByteArrayInputStream(sealed, 0, sealed.length - TAG_BYTES)); // the frame without its tag, not copied
            }
        } catch (AEADBadTagException e) {
            throw new Wire.ProtocolException("frame " + seq + " (type " + sealed[0] + ") failed its integrity check: changed, dropped, reordered or replayed");
        } catch (GeneralSecurityException e) {
            throw new IOException("opening frame " + seq + " failed", e);
        }
        return new DataInputStream(new ByteArrayInputStream(payload));
    }

    private void sendPlain(byte[] payload) throws IOException {
        out.writeInt(payload.length);
        out.write(payload);
        out.flush();
        bytesOut.add(4 + payload.length);
    }

    private DataInputStream receivePlain(int maxLength) throws IOException {
        lastPlain = readFrame(maxLength);
        return new DataInputStream(new ByteArrayInputStream(lastPlain));
    }

    private byte[] readFrame(int maxLength) throws IOException {
        int length = in.readInt();
        if (length < 1 || length > maxLength) throw new Wire.ProtocolException("frame of " + length + " bytes (limit " + maxLength + ")");
        byte[] frame = new byte[length];
        in.readFully(frame);
        bytesIn.add(4 + length);
        return frame;
    }

    private static GCMParameterSpec iv(long seq) {
        return new GCMParameterSpec(8 * TAG_BYTES, ByteBuffer.allocate(12).putLong(4, seq).array());
    }

    private static byte[] nonce() {
        byte[] n = new byte[NONCE_BYTES];
        RANDOM.nextBytes(n);
        return n;
    }

    private static final SecureRandom RANDOM = new SecureRandom();

    static byte[] hmac(byte[] key, String label, byte[] message) {
        try {
            Mac mac = Mac.getInstance("HmacSHA256");
            mac.init(new SecretKeySpec(key, "HmacSHA256"));
            mac.update(label.getBytes(StandardCharsets.US_ASCII));
            mac.update((byte) 0);
            return mac.doFinal(message);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("this JVM has no HmacSHA256", e);
        }
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
