package dev.syncbn.coord;

import dev.syncbn.nn.BnReducer;
import java.io.IOException;

/**
 * A party's link to the driver's coordination service (see Coordinator and RunState): the BN all-reduce of the sync
 * groups the party shares with other parties, and the per-step gradient hand-in. Over a socket
 * (CoordinatorClient), or a direct call when the service runs in the party's own JVM (Spark local mode:
 * LocalParty).
 */
public interface DriverLink extends BnReducer, AutoCloseable {
    /** Where the party starts: the driver's step, parameters and running statistics. */
    record Welcome(int startStep, float[] params, float[] state) {}

    Welcome welcome() throws IOException;

    /**
     * Hands in the party's contribution to the current step (summed over its replicas, all but the
     * slowest replica's compute time); returns the parameters after the driver's update (read them, do
     * not change them).
     */
    float[] exchange(StepAggregator.Contribution contribution) throws IOException;

    @Override
    void close();
}
