package dev.syncbn.spark;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;

/**
 * A real Spark standalone cluster on 127.0.0.1: one Master and `workers` Workers (one core each) as
 * separate JVMs, run from a minimal SPARK_HOME whose jars/ holds this project's resolved jars.
 * close() stops every process it started.
 */
final class StandaloneCluster implements AutoCloseable {
    final Path home, workDir, appJar;
    final int masterPort;
    private final List<Process> processes = new ArrayList<>(), workers = new ArrayList<>();
    private final Path logs;

    /** Spark settings of the Master and Workers (as -D options), e.g. spark.authenticate and its secret. */
    private final List<String> daemonSettings;

    StandaloneCluster(Path dir, int workers, String... daemonSettings) throws Exception {
        this.daemonSettings = List.of(daemonSettings);
        home = dir.resolve("spark-home");
        workDir = dir.resolve("work");
        logs = dir.resolve("logs");
        Files.createDirectories(workDir);
        Files.createDirectories(logs);
        makeHome(home);
        appJar = appJar(dir);
        masterPort = freePort();
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", Integer.toString(masterPort), "--webui-port",
                Integer.toString(freePort()));
        waitForLog("master", "I have been elected leader", 60);
        for (int w = 0; w < workers; w++) startWorker();
        for (int w = 0; w < workers; w++) waitForLog("worker-" + w, "Successfully registered with master", 60);
    }

    /** Starts one more Worker (one core), worker-N for the N-th started; returns N. */
    int startWorker() throws IOException {
        int n = workers.size();
        workers.add(start("worker-" + n, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "1", "--memory", "3g", "--webui-port",
                Integer.toString(freePort()), "--work-dir", workDir.toString(), "spark://127.0.0.1:" + masterPort));
        return n;
    }

    /** Kills worker-N and the executors it launched (SIGKILL): a machine lost for good. */
    void killWorker(int n) {
        Process worker = workers.get(n);
        worker.descendants().forEach(ProcessHandle::destroyForcibly);
        worker.destroyForcibly();
    }

    String master() {
        return "spark://127.0.0.1:" + masterPort;
    }

    static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /** A minimal SPARK_HOME at home: jars/ holds links to this test run's jars (Spark, Hadoop, ND4J, ...). */
    static void makeHome(Path home) throws IOException {
        Files.createDirectories(home.resolve("jars"));
        Files.writeString(home.resolve("RELEASE"), "minimal SPARK_HOME made by the syncbn tests\n"); // makes Spark's launcher use jars/
        for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
            Path p = Path.of(entry);
            if (entry.endsWith(".jar") && Files.isRegularFile(p) && !entry.contains("junit") && !entry.contains("opentest4j")) {
                Path link = home.resolve("jars").resolve(p.getFileName());
                if (!Files.exists(link)) Files.createSymbolicLink(link, p);
            }
        }
    }

    /** The application jar (this project's classes) in dir. */
    static Path appJar(Path dir) throws IOException {
        Path out = dir.resolve("syncbn-app.jar");
        jar(Path.of("target/classes"), out);
        return out;
    }

    /** The java command line for mainClass with home's jars and Spark's Java 17 options. */
    static List<String> javaCommand(Path home, String mainClass) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx1g"));
        for (String opt : System.getProperty("syncbn.spark.jvm.options", "").split(" ")) if (!opt.isBlank()) cmd.add(opt);
        cmd.addAll(List.of("-cp", home.resolve("jars") + "/*", mainClass));
        return cmd;
    }

    private static void jar(Path classes, Path out) throws IOException {
        try (JarOutputStream jar = new JarOutputStream(Files.newOutputStream(out)); Stream<Path> files = Files.walk(classes)) {
            for (Path f : (Iterable<Path>) files.filter(Files::isRegularFile)::iterator) {
                jar.putNextEntry(new JarEntry(classes.relativize(f).toString().replace(File.separatorChar, '/')));
                Files.copy(f, jar);
                jar.closeEntry();
            }
        }
    }

    List<String> javaCommand(String mainClass) {
        return javaCommand(home, mainClass);
    }

    Process start(String name, String mainClass, String... args) throws IOException {
        List<String> cmd = javaCommand(mainClass);
        for (String setting : daemonSettings) cmd.add(1, "-D" + setting);
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(logs.resolve(name + ".log").toFile());
        pb.environment().put("SPARK_HOME", home.toString());
        pb.environment().put("OMP_WAIT_POLICY", "PASSIVE");
        pb.environment().put("SPARK_LOCAL_IP", "127.0.0.1");
        pb.environment().put("SPARK_SCALA_VERSION", "2.13"); // else Spark's launcher looks for a source build when it thinks it is being tested
        Process p = pb.start();
        processes.add(p);
        return p;
    }

    String log(String name) throws IOException {
        Path f = logs.resolve(name + ".log");
        return Files.exists(f) ? Files.readString(f) : "";
    }

    void waitForLog(String name, String text, int seconds) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!log(name).contains(text)) {
            if (System.nanoTime() > deadline) throw new IllegalStateException(name + " did not log '" + text + "':\n" + log(name));
            Thread.sleep(100);
        }
    }

    /** The lines the replicas printed into their executors' stdout files. */
    List<String> executorLines(String containing) throws IOException {
        return stdoutLines(workDir, containing);
    }

    /**
     * The lines containing a text in the files named stdout under dir. A directory where processes run
     * also holds files that vanish while the walk runs (fetch temporaries): a walk that meets one is made
     * again.
     */
    static List<String> stdoutLines(Path dir, String containing) throws IOException {
        for (int attempt = 1; ; attempt++) {
            List<String> lines = new ArrayList<>();
            try (Stream<Path> files = Files.walk(dir)) {
                for (Path f : (Iterable<Path>) files.filter(p -> p.getFileName().toString().equals("stdout"))::iterator) {
                    for (String l : Files.readAllLines(f)) if (l.contains(containing)) lines.add(l);
                }
                return lines;
            } catch (UncheckedIOException e) {
                if (!(e.getCause() instanceof NoSuchFileException) || attempt == 5) throw e;
            }
        }
    }

    /** The executor JVMs of this cluster (their command line names this cluster's work directory). */
    List<ProcessHandle> executors() {
        return ProcessHandle.allProcesses().filter(p -> p.info().commandLine().map(c -> c.contains("CoarseGrainedExecutorBackend")
                && c.contains(home.toString())).orElse(false)).toList();
    }

    @Override
    public void close() {
        for (ProcessHandle e : executors()) e.destroyForcibly();
        for (Process p : processes) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
        for (Process p : processes) {
            try {
                p.waitFor(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
