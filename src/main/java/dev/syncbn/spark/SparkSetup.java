package dev.syncbn.spark;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.sql.SparkSession;

/** The Spark settings the job relies on (conf/spark-defaults.conf), applied to every SparkConf it creates (driver and tests), and the SparkSessions it starts. */
public final class SparkSetup {
    private SparkSetup() {}

    /** Applies conf/spark-defaults.conf (packed in the jar) to every setting conf does not have yet. */
    public static SparkConf configure(SparkConf conf) {
        Properties defaults = new Properties();
        try (InputStream in = SparkSetup.class.getResourceAsStream("/dev/syncbn/spark-defaults.conf")) {
            if (in == null) throw new IllegalStateException("spark-defaults.conf is missing from the class path (the build copies conf/ into the jar)");
            defaults.load(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        for (String key : defaults.stringPropertyNames()) conf.setIfMissing(key, defaults.getProperty(key).trim());
        return conf;
    }

    /**
     * In local mode Spark gives a failed task no second try unless the master says so (local[N, maxFailures]);
     * a barrier stage that loses a task must be retried, so local[N] and local[*] become local[N, 4].
     */
    public static String withRetries(String master) {
        Matcher m = Pattern.compile("local\\[(\\d+|\\*)\\]").matcher(master.trim());
        return m.matches() ? "local[" + m.group(1) + ",4]" : master;
    }

    /**
     * A configured SparkConf with its master: the given one (--master), else what spark-submit set, else
     * local[defaultCores]. localCores: any local master not given explicitly gets defaultCores task slots
     * (a barrier stage of W tasks needs W slots at once).
     */
    public static SparkConf conf(String appName, String master, int defaultCores, boolean localCores) {
        SparkConf conf = configure(new SparkConf().setAppName(appName));
        String m = !master.isEmpty() ? master : conf.get("spark.master", "local[" + defaultCores + "]");
        if (localCores && master.isEmpty() && m.startsWith("local")) m = "local[" + defaultCores + "]";
        return conf.setMaster(withRetries(m));
    }

    /** A SparkSession of conf(...), logging at WARN. */
    public static SparkSession session(String appName, String master, int defaultCores, boolean localCores) {
        SparkSession s = SparkSession.builder().config(conf(appName, master, defaultCores, localCores)).getOrCreate();
        s.sparkContext().setLogLevel("WARN");
        return s;
    }

    /** A one-thread local SparkSession, only for reading prepared (Parquet) data in a command that has no Spark otherwise. */
    public static SparkSession reader() {
        return SparkSession.builder().config(configure(new SparkConf().setMaster("local[1]").setAppName("syncbn-read"))).getOrCreate();
    }

    /** spark.task.cpus: the threads of each replica (and of each evaluation task). */
    public static int taskCpus(SparkConf conf) {
        return conf.getInt("spark.task.cpus", 1);
    }

    /**
     * Task slots a barrier stage could use now: the registered executors' cores divided by spark.task.cpus,
     * as Spark's own check of a barrier stage counts them (SparkContext.maxNumConcurrentTasks, public in
     * the bytecode though private[spark] in Scala: no public API gives executors' cores).
     */
    public static int liveTaskSlots(JavaSparkContext sc) {
        return sc.sc().maxNumConcurrentTasks(sc.sc().resourceProfileManager().defaultResourceProfile());
    }

    /** Task slots a barrier stage can use at once: cores (local: N) divided by spark.task.cpus. */
    public static int taskSlots(JavaSparkContext sc) {
        String master = sc.master();
        Matcher m = Pattern.compile("local(?:\\[(\\d+|\\*)(?:,\\s*\\d+)?\\])?").matcher(master);
        int cores;
        if (m.matches()) {
            cores = m.group(1) == null ? 1 : m.group(1).equals("*") ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(m.group(1));
        } else {
            cores = sc.defaultParallelism();
        }
        return cores / taskCpus(sc.getConf());
    }
}
