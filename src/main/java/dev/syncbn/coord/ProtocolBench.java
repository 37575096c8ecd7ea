package dev.syncbn.coord;

import dev.syncbn.nn.BnMode;

import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The coordination service alone, without any compute: W replica threads in this JVM run steps of the
 * default network's sizes (4 BN all-reduces in sync mode, then the gradient hand-in and the new
 * parameters) against a Coordinator on 127.0.0.1, with frames sealed (integrity) and with frames
 * encrypted too. What it prints is the floor of a step's non-compute time on this machine.
 * Usage: ProtocolBench [workers] [steps]
 */
public final class ProtocolBench {
    private ProtocolBench() {}

    public static void main(String[] args) throws Exception {
        int workers = args.length > 0 ? Integer.parseInt(args[0]) : 2, steps = args.length > 1 ? Integer.parseInt(args[1]) : 500;
        int paramCount, stateCount;
        NetSpec spec = NetSpec.defaultFor(1, 28, 28, 10);
        try (ConvNet net = new ConvNet(spec, 1, 1, DataType.FLOAT)) {
            paramCount = net.paramCount();
            stateCount = net.state.length();
        }
        int[] channels = spec.convWidths();
        for (String run : new String[] {"local", "sync", "local+enc", "sync+enc", "local", "sync", "local+enc", "sync+enc"}) {
            String mode = run.replace("+enc", "");
            boolean encrypt = run.endsWith("+enc");
            BnMode bn = BnMode.parse(mode, workers);
            try (Coordinator c = new Coordinator("127.0.0.1", workers, bn, paramCount, stateCount, channels, Coordinator.randomKey(), encrypt)) {
                float[][] states = new float[workers][stateCount];
                c.startEpoch(1, steps, 0, new float[paramCount], states, new Coordinator.StepHandler() {
                    @Override
                    public float[] apply(StepAggregator.StepReport r) {
                        return new float[paramCount];
                    }

                    @Override
                    public void stepDone(StepAggregator.StepReport r, Coordinator.StepTimes t) {}
                });
                Thread[] replicas = new Thread[workers];
                long t0 = System.nanoTime();
                for (int r = 0; r < workers; r++) {
                    int rank = r;
                    replicas[r] = new Thread(() -> replica(c, encrypt, rank, steps, bn, paramCount, stateCount, channels));
                    replicas[r].start();
                }
                for (Thread t : replicas) t.join();
                System.out.printf(java.util.Locale.ROOT, "W=%d %-5s frames %-9s: %.3f ms per step without compute (%d params of gradient each way per replica%s)%n",
                        workers, mode, encrypt ? "encrypted" : "sealed", (System.nanoTime() - t0) / 1e6 / steps, paramCount,
                        bn.synced() ? ", 4 BN all-reduces" : "");
            }
        }
    }

    private static void replica(Coordinator c, boolean encrypt, int rank, int steps, BnMode bn, int paramCount, int stateCount, int[] channels) {
        try (CoordinatorClient client = new CoordinatorClient("127.0.0.1", c.port(), c.key(), encrypt, rank, 1, 0, paramCount, stateCount, channels, () -> false)) {
            client.welcome();
            float[] grads = new float[paramCount], state = new float[stateCount];
            for (int s = 0; s < steps; s++) {
                if (bn.synced()) {
                    for (int layer = 0; layer < channels.length; layer++) client.allReduce(layer, true, new double[2 * channels[layer] + 1]);
                    for (int layer = channels.length - 1; layer >= 0; layer--) client.allReduce(layer, false, new double[2 * channels[layer]]);
                }
                client.exchange(32, 1, 1, 0, 0, grads, state);
            }
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
