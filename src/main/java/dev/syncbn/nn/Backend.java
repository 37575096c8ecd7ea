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

    /** Limits ND4J's OpenMP and BLAS threads, and warns loudly if the oneDNN build did not load. */
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
    }
}
