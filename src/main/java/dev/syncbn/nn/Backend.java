package dev.syncbn.nn;

import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.nativeblas.NativeOpsHolder;

/** ND4J set-up: which native build loaded, and how many threads its ops may use. */
public final class Backend {
    private Backend() {}

    /**
     * How many threads each ND4J op (and its BLAS calls) may use, for ops called from this thread:
     * ND4J's own setting is global, but oneDNN's OpenMP reads the calling thread's (OpenMP keeps it per
     * thread), so every thread that calls ND4J sets it (limitThisThread).
     */
    public static void setOpThreads(int threads) {
        Nd4j.getEnvironment().setMaxThreads(threads);
        Nd4j.getEnvironment().setMaxMasterThreads(threads);
        Nd4j.factory().blas().setMaxThreads(threads);
        limitThisThread(threads);
    }

    /** The OpenMP threads of the ops this thread calls. */
    public static void limitThisThread(int threads) {
        NativeOpsHolder.getInstance().getDeviceNativeOps().setOmpNumThreads(threads);
    }

    /**
     * The oneDNN 3 release of the float convolutions and the implementations it chose for those made so
     * far in this JVM ("oneDNN 3.11.0: jit:avx2, ..."): their names say which instruction set ran.
     */
    public static String convolutionKernels() {
        return "oneDNN " + OneDnnConv.version() + ": " + OneDnnConv.implementations();
    }

    /** True if the loaded libnd4jcpu was built with oneDNN (ND4J's own convolutions are then fast). */
    public static boolean isOneDnn() {
        return NativeOpsHolder.getInstance().getDeviceNativeOps().buildInfo().contains("HAVE_ONEDNN");
    }

    /**
     * Makes ND4J's ops single-threaded, and warns loudly if the oneDNN build did not load or if OpenMP's
     * threads would spin between ops. A network of T threads runs T shards of its batch,
     * each calling ND4J from its own thread (see ConvNet): ops that split themselves over the cores too
     * would only compete with the other shards.
     */
    public static void init() {
        setOpThreads(1);
        if (!isOneDnn()) {
            System.err.println("WARNING ***********************************************************************");
            System.err.println("WARNING ND4J loaded a native library without oneDNN: its convolutions (the double");
            System.err.println("WARNING reference's, and float ones with a bias) will run about 12x slower. Put");
            System.err.println("WARNING nd4j-native's linux-x86_64-onednn jar on the class path and no other.");
            System.err.println("WARNING ***********************************************************************");
        }
        if (!"PASSIVE".equalsIgnoreCase(System.getenv("OMP_WAIT_POLICY"))) {
            // libgomp reads this once at load time, so it must be set in the environment of the JVM.
            System.err.println("WARNING OMP_WAIT_POLICY is not PASSIVE: ND4J's OpenMP threads spin after every op and take"
                    + " the cores from the Java passes between ops (measured 1170 -> 900 images/s). Export OMP_WAIT_POLICY=PASSIVE.");
        }
    }
}
