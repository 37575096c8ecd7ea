package dev.syncbn.nn;

import java.io.Serializable;

/**
 * How batch-norm statistics are shared among W replicas: "local" (each its own), "sync" (all W), or
 * "group:G" (sync within groups of G consecutive replicas; G divides W).
 */
public record BnMode(String text, int groupSize) implements Serializable {
    public static BnMode parse(String text, int workers) {
        String t = text.trim();
        if (t.equals("local")) return new BnMode("local", 1);
        if (t.equals("sync")) return new BnMode("sync", workers);
        if (t.startsWith("group:")) {
            int g;
            try {
                g = Integer.parseInt(t.substring(6));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--bn group:G needs a whole number G, got '" + t + "'");
            }
            if (g < 1) throw new IllegalArgumentException("--bn " + t + ": G must be at least 1");
            if (workers % g != 0) throw new IllegalArgumentException("--bn " + t + ": G must divide --workers " + workers);
            return new BnMode(t, g);
        }
        throw new IllegalArgumentException("--bn must be local, sync or group:G, got '" + text + "'");
    }

    /** The same mode over another number of replicas (an elastic run's): sync spans them all; group:G needs G to divide them. */
    public BnMode forWorkers(int workers) {
        return parse(text, workers);
    }

    /** Whether the mode can span this many replicas (group:G only a multiple of G). */
    public boolean fits(int workers) {
        return !text.startsWith("group:") || workers % groupSize == 0;
    }

    /** True if replicas exchange BN statistics at all. */
    public boolean synced() {
        return groupSize > 1;
    }

    public int groupOf(int rank) {
        return rank / groupSize;
    }
}
