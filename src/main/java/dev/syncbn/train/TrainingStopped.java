package dev.syncbn.train;

/**
 * Training stopped on purpose, for a reason the user can act on (a non-finite loss): the command line
 * reports its message alone, not a stack trace.
 */
public final class TrainingStopped extends IllegalStateException {
    public TrainingStopped(String message) {
        super(message);
    }
}
