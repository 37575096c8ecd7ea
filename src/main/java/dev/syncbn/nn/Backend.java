package dev.syncbn.nn;

import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.nativeblas.NativeOpsHolder;

/** ND4J set-up: which native build loaded, and how many threads its ops may use. */
public final class Backend {
    private Backend() {}

    /** True if the loaded libnd4jcpu was built with oneDNN (the fast convolutions). */
    public static boolean isOneDnn() {
        return NativeOpsHolder.getInstance().getDeviceNativeOps().buildInfo().contains("HAVE_ONEDNN");
    }

    /**
     * Limits ND4J's OpenMP and BLAS threads, and warns loudly if the oneDNN build did not load or if
     * OpenMP's threads will spin between ops.
     */
    public static void init(int threads) {
        Nd4j.getEnvironment().setMaxThreads(threads);
        Nd4j.getEnvironment().setMaxMasterThreads(threads);
        Nd4j.factory().blas().setMaxThreads(threads);
        if (!isOneDnn()) {
            System.err.println("WARNING ***********************************************************************");
            System.err.println("WARNING ND4J loaded a native library without oneDNN: convolutions will run about 12x");
            System.err.println("WARNING slower. Put nd4j-native's linux-x86_64-onednn jar on the class path and no");
            System.err.println("WARNING other nd4j-native platform jar.");
            System.err.println("WARNING ***********************************************************************");
        }
        if (!"PASSIVE".equalsIgnoreCase(System.getenv("OMP_WAIT_POLICY"))) {
            // libgomp reads this once at load time, so it must be set in the environment of the JVM.
            System.err.println("WARNING OMP_WAIT_POLICY is not PASSIVE: ND4J's OpenMP threads spin after every op and take"
                    + " the cores from the Java passes between ops (measured 1170 -> 900 images/s). Export OMP_WAIT_POLICY=PASSIVE.");
        }
    }
}
