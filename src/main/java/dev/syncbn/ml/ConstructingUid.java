package dev.syncbn.ml;

/**
 * A Java pitfall with Spark ML's Scala classes: the shared params (featuresCol, labelCol, ...) are built
 * in the superclass's constructor and ask uid() for their owner's id before a Java subclass has
 * assigned any field, so every param would belong to "null". A constructor therefore stashes its uid
 * here in an argument to this(...) (evaluated before super()), and uid() reads it while the field is
 * still unset.
 */
final class ConstructingUid {
    private static final ThreadLocal<String> UID = new ThreadLocal<>();

    private ConstructingUid() {}

    static Void stash(String uid) {
        UID.set(uid);
        return null;
    }

    /** The uid being constructed on this thread; cleared once read after construction. */
    static String current() {
        return UID.get();
    }

    static void done() {
        UID.remove();
    }
}
