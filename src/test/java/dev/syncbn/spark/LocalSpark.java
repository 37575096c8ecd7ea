package dev.syncbn.spark;

import org.apache.spark.SparkConf;
import org.apache.spark.api.java.JavaSparkContext;

/** The Spark tests' context in local mode: 4 task slots, a failed task retried up to 4 times (local[4,4]), warnings only. */
public final class LocalSpark {
    private LocalSpark() {}

    public static JavaSparkContext start() {
        JavaSparkContext sc = new JavaSparkContext(SparkSetup.configure(new SparkConf().setMaster("local[4,4]").setAppName("syncbn-test")));
        sc.setLogLevel("WARN");
        return sc;
    }
}
