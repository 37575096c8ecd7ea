package dev.syncbn.spark;

import dev.syncbn.coord.RunState;
import dev.syncbn.train.TrainConfig;
import dev.syncbn.train.TrainingStopped;
import java.util.Locale;
import java.util.function.IntSupplier;

/**
 * An elastic run's decisions (--elastic MIN, --elastic-wait): how many replicas an epoch starts with,
 * when a stage short of task slots is given up, and how many replicas go on after it. The global batch
 * G = W*b stays fixed; a shape W' must divide it, lie between MIN and W, fit the slots and, in group
 * BN, be a multiple of G's groups. SparkEngine carries the decisions out.
 */
final class Elasticity {
    private final TrainConfig s;
    private final IntSupplier slots; // task slots a barrier stage could use now
    private boolean started; // an epoch has started: later ones take the slots as they are

    /** The barrier stage has been short of task slots for --elastic-wait seconds: it was given up. */
    static final class SlotsLost extends Exception {
        final int slots;

        SlotsLost(int slots, Throwable stageFailure) {
            super(slots + " task slots", stageFailure);
            this.slots = slots;
        }
    }

    Elasticity(TrainConfig s, IntSupplier slots) {
        this.s = s;
        this.slots = slots;
    }

    /**
     * The replicas of an epoch's start: as many as the slots now hold, up to W (the first epoch waits up to
     * --elastic-wait seconds for the slots of W, as executors register); says so when it is not `current`.
     */
    int workersForEpoch(int epoch, int current) {
        int available = awaitSlots(s.workers(), started ? 0 : s.elasticWaitSeconds());
        started = true;
        int w = workersFor(available);
        if (w == 0) throw belowMinimum(epoch, available);
        if (w != current) System.out.printf(Locale.ROOT, "elastic: %d task slot(s): epoch %d runs as %s%n", available, epoch, shapeText(w));
        return w;
    }

    /** The replicas that go on after a stage of `current` was given up (`slotsSeen` slots), from the run's last snapshot. */
    int workersAfterLoss(int epoch, int current, int slotsSeen, RunState run, int steps) {
        int w = workersFor(slots.getAsInt());
        if (w == 0) throw belowMinimum(epoch, slotsSeen);
        System.out.printf(Locale.ROOT, "elastic: %d task slot(s) for %s s, fewer than the %d replicas of epoch %d; going on after the driver's last "
                + "snapshot (step %d of %d; %d steps done) with %s%n", slotsSeen, seconds(s.elasticWaitSeconds()), current, epoch, run.snapshotStep(), steps,
                run.step(), shapeText(w));
        return w;
    }

    /** The most replicas the run can have with these slots (see the class comment); 0 if none. */
    int workersFor(int available) {
        int global = s.workers() * s.batchPerWorker();
        for (int w = Math.min(s.workers(), available); w >= s.minWorkers(); w--) {
            if (global % w == 0 && s.bn().fits(w)) return w;
        }
        return 0;
    }

    /** Starts watching the slots while a stage of `replicas` runs: below them for --elastic-wait seconds, onFire runs (once). */
    Watch watch(int replicas, Runnable onFire) {
        return new Watch(replicas, onFire);
    }

    final class Watch implements AutoCloseable {
        private final Thread thread;
        private volatile boolean fired, closed;
        private volatile int slotsSeen;

        private Watch(int replicas, Runnable onFire) {
            thread = new Thread(() -> {
                long shortSince = -1;
                while (!closed) {
                    int now = slots.getAsInt();
                    long t = System.nanoTime();
                    if (now >= replicas) {
                        shortSince = -1;
                    } else if (shortSince < 0) {
                        shortSince = t;
                    } else if ((t - shortSince) / 1e9 >= s.elasticWaitSeconds()) {
                        slotsSeen = now;
                        fired = true;
                        onFire.run();
                        return;
                    }
                    try {
                        Thread.sleep(100);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }, "syncbn-slot-watch");
            thread.setDaemon(true);
            thread.start();
        }

        boolean fired() {
            return fired;
        }

        int slotsSeen() {
            return slotsSeen;
        }

        @Override
        public void close() {
            closed = true;
            thread.interrupt();
        }
    }

    /** The task slots now, after waiting up to seconds for at least `wanted` of them. */
    private int awaitSlots(int wanted, double seconds) {
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        int now = slots.getAsInt();
        while (now < wanted && System.nanoTime() < deadline) {
            try {
                Thread.sleep(100);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            now = slots.getAsInt();
        }
        return now;
    }

    private String shapeText(int w) {
        int global = s.workers() * s.batchPerWorker();
        return w + (w == 1 ? " replica" : " replicas") + " x " + global / w + " (global batch " + global
                + (s.bn().text().equals("sync") ? ", the same steps in sync BN)" : "; " + s.bn().text() + " BN now normalizes over batches of " + global / w + ")");
    }

    private static String seconds(double s) {
        return s == Math.rint(s) ? Long.toString((long) s) : Double.toString(s);
    }

    private TrainingStopped belowMinimum(int epoch, int available) {
        String checkpoint = s.checkpointDir().isEmpty() || epoch == 1 ? "no checkpoint was written (see --checkpoint-dir)"
                : "resume from the checkpoint of epoch " + (epoch - 1) + " in " + s.checkpointDir() + " with --resume";
        return new TrainingStopped(String.format(Locale.ROOT, "training stopped in epoch %d: %d task slot(s) left, but --elastic %d needs at least %d replicas "
                + "(dividing the global batch %d): %s", epoch, available, s.minWorkers(), s.minWorkers(), s.workers() * s.batchPerWorker(), checkpoint));
    }
}
