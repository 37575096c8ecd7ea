package dev.syncbn.spark;

import org.apache.spark.SparkConf;

/** The Spark settings the job relies on (conf/spark-defaults.conf), applied to every SparkConf it creates (driver and tests). */
public final class SparkSetup {
    private SparkSetup() {}

    /** Applies conf/spark-defaults.conf (packed in the jar) to every setting conf does not have yet. */
    public static SparkConf configure(SparkConf conf) {
        java.util.Properties defaults = new java.util.Properties();
        try (java.io.InputStream in = SparkSetup.class.getResourceAsStream("/dev/syncbn/spark-defaults.conf")) {
            if (in == null) throw new IllegalStateException("spark-defaults.conf is missing from the class path (the build copies conf/ into the jar)");
            defaults.load(in);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
        for (String key : defaults.stringPropertyNames()) conf.setIfMissing(key, defaults.getProperty(key).trim());
        return conf;
    }

    /**
     * In local mode Spark gives a failed task no second try unless the master says so (local[N, maxFailures]);
     * a barrier stage that loses a task must be retried, so local[N] and local[*] become local[N, 4].
     */
    public static String withRetries(String master) {
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("local\\[(\\d+|\\*)\\]").matcher(master.trim());
        return m.matches() ? "local[" + m.group(1) + ",4]" : master;
    }

    /** Task slots a barrier stage can use at once: cores (local: N) divided by spark.task.cpus. */
    public static int taskSlots(org.apache.spark.api.java.JavaSparkContext sc) {
        int cpusPerTask = Integer.parseInt(sc.getConf().get("spark.task.cpus", "1"));
        String master = sc.master();
        java.util.regex.Matcher m = java.util.regex.Pattern.compile("local(?:\\[(\\d+|\\*)(?:,\\s*\\d+)?\\])?").matcher(master);
        int cores;
        if (m.matches()) {
            cores = m.group(1) == null ? 1 : m.group(1).equals("*") ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(m.group(1));
        } else {
            cores = sc.defaultParallelism();
        }
        return cores / cpusPerTask;
    }
}
