package dev.syncbn.bench;

import dev.syncbn.coord.Coordinator;
import dev.syncbn.coord.CoordinatorClient;
import dev.syncbn.coord.ExecutorHub;
import dev.syncbn.coord.RunState;
import dev.syncbn.coord.StepAggregator;
import dev.syncbn.nn.BnMode;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.IntStream;

/**
 * The coordination service alone, without any compute: a scale model of E executors × R replicas, all
 * threads of this JVM on 127.0.0.1, running steps of a network's sizes (in sync mode two BN all-reduces
 * per BN layer, then the gradient hand-in and the new parameters) against a Coordinator, once with the
 * replicas of an executor aggregated by its hub (one connection per executor) and once with a
 * connection per replica. Prints per step: wall time (the floor of a step's non-compute time here),
 * the driver's CPU time in its connection threads, and the bytes through the driver's socket each way.
 * With --delay-ms D every connection goes through a DelayProxy that holds each chunk D ms each way, as a
 * network link's latency would.
 * Usage: ProtocolBench [ExR,...] [steps] [--encrypt] [--net NET] [--delay-ms D]
 *        (default 1x2,2x1,2x4,4x4,8x8, 200 steps, the seed network, no delay)
 */
public final class ProtocolBench {
    private ProtocolBench() {}

    public static void main(String[] args) throws Exception {
        List<String> rest = new ArrayList<>(List.of(args));
        boolean encrypt = rest.remove("--encrypt");
        String network = takeValue(rest, "--net", NetSpec.SEED), delayText = takeValue(rest, "--delay-ms", "0");
        if (!delayText.matches("\\d+(\\.\\d+)?")) {
            System.err.println("error: --delay-ms takes milliseconds like 0.1, got '" + delayText + "'");
            System.exit(2);
        }
        double delayMs = Double.parseDouble(delayText);
        String configList = rest.size() > 0 ? rest.get(0) : "1x2,2x1,2x4,4x4,8x8", stepText = rest.size() > 1 ? rest.get(1) : "200";
        if (!configList.matches("[1-9]\\d*x[1-9]\\d*(,[1-9]\\d*x[1-9]\\d*)*") || !stepText.matches("[1-9]\\d{0,6}") || rest.size() > 2) {
            System.err.println("usage: bench-protocol [ExR,...] [steps] [--encrypt] [--net NET] [--delay-ms D]   (E executors x R replicas each, e.g. 1x2,8x8; "
                    + "steps 1..9999999; NET as --net takes it, for 1x28x28 images of 10 classes; D: milliseconds each way)");
            System.exit(2);
        }
        String[] configs = configList.split(",");
        int steps = Integer.parseInt(stepText);
        NetSpec spec = NetSpec.forData(network, 1, 28, 28, 10);
        int paramCount, stateCount;
        try (ConvNet net = new ConvNet(spec, 1, 1, ConvNet.Kernels.FAST)) {
            paramCount = net.paramCount();
            stateCount = net.state.length();
        }
        System.out.printf(Locale.ROOT, "%s: %d parameters (%d KB of gradient per party and step), %d BN layers, frames %s, %s, %d steps per run "
                + "(the first run warms up)%n", spec, paramCount, paramCount * 4 / 1024, spec.bnChannels().length, encrypt ? "encrypted" : "sealed",
                delayMs > 0 ? "every connection delayed " + delayText + " ms each way" : "no added delay", steps);
        System.out.println("| executors × replicas | BN | aggregation | wall ms/step | driver CPU ms/step | KB in/step | KB out/step |");
        System.out.println("|---|---|---|---|---|---|---|");
        for (String bn : new String[] {"local", "sync"}) { // warm-up
            for (boolean aggregate : new boolean[] {true, false}) run(2, 2, bn, aggregate, encrypt, delayMs > 0 ? 20 : 300, delayMs, spec, paramCount, stateCount, false);
        }
        for (String config : configs) {
            String[] er = config.split("x");
            int executors = Integer.parseInt(er[0]), perExecutor = Integer.parseInt(er[1]);
            for (String bn : new String[] {"local", "sync"}) {
                for (boolean aggregate : perExecutor > 1 ? new boolean[] {true, false} : new boolean[] {true}) {
                    run(executors, perExecutor, bn, aggregate, encrypt, steps, delayMs, spec, paramCount, stateCount, true);
                }
            }
        }
    }

    /** The value after option in args (both removed), or fallback. */
    private static String takeValue(List<String> args, String option, String fallback) {
        int at = args.indexOf(option);
        if (at < 0) return fallback;
        if (at + 1 >= args.size()) {
            System.err.println("error: " + option + " needs a value");
            System.exit(2);
        }
        String value = args.remove(at + 1);
        args.remove(at);
        return value;
    }

    private static void run(int executors, int perExecutor, String mode, boolean aggregate, boolean encrypt, int steps, double delayMs, NetSpec spec,
            int paramCount, int stateCount, boolean print) throws Exception {
        int workers = executors * perExecutor;
        int[] channels = spec.bnChannels();
        BnMode bn = BnMode.parse(mode, workers);
        try (Coordinator c = new Coordinator("127.0.0.1", workers, bn, paramCount, stateCount, channels, Coordinator.randomKey(), encrypt);
                DelayProxy proxy = delayMs > 0 ? new DelayProxy(c.port(), delayMs) : null) {
            int port = proxy != null ? proxy.port() : c.port();
            c.runState().startEpoch(1, steps, 0, new float[paramCount], new float[stateCount], new RunState.StepHandler() {
                @Override
                public void apply(StepAggregator.StepReport r, float[] params) {}

                @Override
                public void stepDone(StepAggregator.StepReport r, RunState.StepTimes t) {}

                @Override
                public void snapshot() {}

                @Override
                public void rollback(float[] params) {}
            });
            // a party per executor (its replicas aggregated) or per replica
            int partySize = aggregate ? perExecutor : 1;
            List<Thread> replicas = new ArrayList<>();
            Throwable[] failure = new Throwable[1];
            for (int first = 0; first < workers; first += partySize) {
                int[] ranks = IntStream.range(first, first + partySize).toArray();
                ExecutorHub hub = new ExecutorHub(ranks, bn, (rs, killed) -> new CoordinatorClient("127.0.0.1", port, c.key(), encrypt, rs, 1, 0, paramCount,
                        stateCount, channels, killed));
                for (int rank : ranks) {
                    Thread t = new Thread(() -> {
                        try (ExecutorHub.Replica replica = hub.replica(rank, () -> false)) {
                            steps(replica, steps, bn, channels, paramCount, stateCount);
                        } catch (Throwable e) {
                            failure[0] = e;
                        }
                    });
                    replicas.add(t);
                }
            }
            long t0 = System.nanoTime();
            for (Thread t : replicas) t.start();
            for (Thread t : replicas) t.join();
            double wall = (System.nanoTime() - t0) / 1e6 / steps;
            if (failure[0] != null) throw new IllegalStateException("a replica failed", failure[0]);
            c.close();
            Thread.sleep(100); // the connection threads end and add their CPU time
            long[] bytes = c.bytesMoved();
            if (print) {
                System.out.printf(Locale.ROOT, "| %d × %d | %s | %s | %.3f | %.3f | %.1f | %.1f |%n", executors, perExecutor, mode,
                        aggregate ? "per executor" : "none", wall, c.connectionCpuNanos() / 1e6 / steps, bytes[0] / 1024.0 / steps, bytes[1] / 1024.0 / steps);
            }
        }
    }

    private static void steps(ExecutorHub.Replica replica, int steps, BnMode bn, int[] channels, int paramCount, int stateCount) throws IOException {
        replica.welcome();
        float[] grads = new float[paramCount], state = new float[stateCount];
        for (int s = 0; s < steps; s++) {
            if (bn.synced()) {
                for (int layer = 0; layer < channels.length; layer++) replica.allReduce(layer, true, new double[2 * channels[layer] + 1]);
                for (int layer = channels.length - 1; layer >= 0; layer--) replica.allReduce(layer, false, new double[2 * channels[layer]]);
            }
            replica.exchange(StepAggregator.Contribution.ofReplica(32, 1, 1, 0, 0, grads, StepAggregator.statisticsDue(s, steps) ? state : StepAggregator.NO_STATISTICS));
        }
    }
}
