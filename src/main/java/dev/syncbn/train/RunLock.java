package dev.syncbn.train;

import dev.syncbn.data.AtomicWrite;
import java.io.IOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileAlreadyExistsException;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * A run's claim on its outputs (checkpoint directory, metrics, step log, model): a file OUTPUT.lock beside
 * each, created atomically, holding the owner's host, pid and start time; removed when the run ends. A
 * second run with any of the same outputs is refused, naming the first, instead of both running and
 * overwriting each other's files. A lock left by a process that no longer runs on this host is taken
 * over; one from another host cannot be checked from here, and the message says which file to delete.
 */
final class RunLock implements AutoCloseable {
    private final List<Path> taken = new ArrayList<>();
    private final Configuration conf;

    private RunLock(Configuration conf) {
        this.conf = conf;
    }

    static RunLock acquire(List<String> outputs, Configuration conf) throws IOException {
        RunLock lock = new RunLock(conf);
        try {
            for (String output : outputs) {
                if (!output.isEmpty()) lock.take(new Path(output + ".lock"));
            }
        } catch (IOException | RuntimeException e) {
            lock.close();
            throw e;
        }
        return lock;
    }

    private static String host() {
        try {
            return InetAddress.getLocalHost().getHostName();
        } catch (IOException e) {
            return "unknown-host";
        }
    }

    private void take(Path lockFile) throws IOException {
        FileSystem fs = lockFile.getFileSystem(conf);
        String me = host() + " " + ProcessHandle.current().pid() + " " + Instant.now();
        for (int attempt = 0; attempt < 2; attempt++) {
            try {
                if (AtomicWrite.isLocal(lockFile, conf)) { // O_EXCL: Hadoop's local create(overwrite false) checks, then opens
                    java.nio.file.Path p = java.nio.file.Path.of(lockFile.toUri().getPath());
                    Files.createDirectories(p.getParent());
                    Files.writeString(p, me + "\n", StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
                } else {
                    try (var out = fs.create(lockFile, false)) {
                        out.write((me + "\n").getBytes(StandardCharsets.UTF_8));
                    }
                }
                taken.add(lockFile);
                return;
            } catch (java.nio.file.FileAlreadyExistsException | FileAlreadyExistsException e) {
                String owner = readOwner(fs, lockFile);
                String[] f = owner.split(" ");
                boolean sameHost = f.length >= 2 && f[0].equals(host());
                long pid = f.length >= 2 ? parsePid(f[1]) : -1;
                if (sameHost && pid > 0 && ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false) == false && attempt == 0) {
                    System.out.println("removing a stale lock " + lockFile + " (process " + pid + " on this host has ended)");
                    fs.delete(lockFile, false);
                    continue;
                }
                throw new IOException("another run holds " + lockFile + " (" + (owner.isEmpty() ? "owner unknown" : "host, pid, since: " + owner)
                        + "): two runs with the same output would overwrite each other's files; if that run has ended, delete " + lockFile);
            }
        }
    }

    private static long parsePid(String s) {
        try {
            return Long.parseLong(s);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    private static String readOwner(FileSystem fs, Path lockFile) {
        try (var in = fs.open(lockFile)) {
            return new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
        } catch (IOException e) {
            return "";
        }
    }

    @Override
    public void close() {
        for (Path p : taken) {
            try {
                p.getFileSystem(conf).delete(p, false);
            } catch (IOException e) {
                System.err.println("could not remove the lock " + p + ": " + e.getMessage());
            }
        }
        taken.clear();
    }
}
