package dev.syncbn.data;

import java.io.DataOutputStream;
import java.io.IOException;
import java.util.EnumSet;
import java.util.UUID;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.CreateFlag;
import org.apache.hadoop.fs.FileContext;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;

/**
 * Writes a file on any Hadoop file system to a temporary name beside it, then renames it over the
 * target (an atomic replace on HDFS and on local disks): a crash leaves the old file or the new one.
 */
public final class AtomicWrite {
    public interface Body {
        void write(DataOutputStream out) throws IOException;
    }

    /** What fills a directory: it writes everything below the temporary directory it is given. */
    public interface DirectoryBody {
        void write(Path tmp) throws IOException;
    }

    private AtomicWrite() {}

    public static void write(String path, Configuration conf, Body body) throws IOException {
        Path target = new Path(path);
        Path tmp = new Path(target.getParent(), "." + target.getName() + ".tmp-" + UUID.randomUUID());
        if (isLocal(target, conf)) { // raw, without .crc side files (see isLocal); rename(2) replaces the target atomically
            FileSystem raw = readerFor(target, conf);
            raw.mkdirs(target.getParent());
            try (DataOutputStream out = raw.create(tmp, true)) {
                body.write(out);
            } catch (IOException | RuntimeException e) {
                raw.delete(tmp, false);
                throw e;
            }
            if (!raw.rename(tmp, target)) throw new IOException("could not rename " + tmp + " to " + path);
            raw.delete(checksumFile(target), false); // a stale .crc from an older, checksummed write would fail the next checked read
            return;
        }
        FileContext fc = FileContext.getFileContext(target.toUri(), conf);
        fc.mkdir(target.getParent(), null, true);
        try (DataOutputStream out = fc.create(tmp, EnumSet.of(CreateFlag.CREATE, CreateFlag.OVERWRITE))) {
            body.write(out);
        } catch (IOException | RuntimeException e) {
            fc.delete(tmp, false);
            throw e;
        }
        fc.rename(tmp, target, Options.Rename.OVERWRITE);
    }

    /**
     * True for a path on the local file system. Local files are written and read raw: Hadoop's checksummed
     * local file system keeps a hidden .crc beside each file, and a user's edit of the file (a blank line
     * appended to a metrics CSV) then fails every later read with a checksum error.
     */
    public static boolean isLocal(Path p, Configuration conf) {
        String scheme = p.toUri().getScheme() != null ? p.toUri().getScheme() : FileSystem.getDefaultUri(conf).getScheme();
        return scheme == null || scheme.equals("file");
    }

    /** The file system to read p with: the raw one for local paths (see isLocal). */
    public static FileSystem readerFor(Path p, Configuration conf) throws IOException {
        return isLocal(p, conf) ? FileSystem.getLocal(conf).getRaw() : p.getFileSystem(conf);
    }

    private static Path checksumFile(Path p) {
        return new Path(p.getParent(), "." + p.getName() + ".crc");
    }

    /** A temporary directory of an earlier writer whose newest file is older than this was left by a writer that died. */
    static final long STALE_MILLIS = 10 * 60 * 1000;

    /** Refuses an existing directory unless overwrite, and then unless it carries marker; a caller can check before it starts any work. */
    public static void checkReplaceable(String path, boolean overwrite, String marker, Configuration conf) throws IOException {
        Path target = new Path(path);
        FileSystem fs = target.getFileSystem(conf);
        if (!fs.exists(target)) return;
        if (!overwrite) throw new IOException(path + " exists; pass --overwrite to replace it");
        if (!fs.exists(new Path(target, marker))) {
            throw new IOException(path + " was not written by this program (it has no " + marker + "): --overwrite replaces only such a directory");
        }
    }

    /**
     * Fills a directory under a temporary name beside it, then puts it in place. The body must write the
     * file `marker` into it: only a directory carrying that marker is ever replaced (with overwrite; and
     * only once the new one is complete), so --overwrite cannot delete a directory this program did not
     * write. Temporaries of this target left by a writer that died (nothing written for 10 minutes) are
     * removed first; the own temporary is removed on failure.
     */
    public static void writeDirectory(String path, boolean overwrite, String marker, Configuration conf, DirectoryBody body) throws IOException {
        Path target = new Path(path);
        FileSystem fs = target.getFileSystem(conf);
        checkReplaceable(path, overwrite, marker, conf);
        String prefix = "." + target.getName() + ".tmp-";
        if (fs.exists(target.getParent())) {
            for (FileStatus st : fs.listStatus(target.getParent(), p -> p.getName().startsWith(prefix))) {
                long newest = st.getModificationTime();
                RemoteIterator<LocatedFileStatus> files = fs.listFiles(st.getPath(), true);
                while (files.hasNext()) newest = Math.max(newest, files.next().getModificationTime());
                if (System.currentTimeMillis() - newest > STALE_MILLIS && fs.delete(st.getPath(), true)) {
                    System.out.println("removed " + st.getPath() + ", left by an earlier writer that did not finish");
                }
            }
        }
        Path tmp = new Path(target.getParent(), prefix + UUID.randomUUID());
        try {
            body.write(tmp);
            if (!fs.exists(new Path(tmp, marker))) throw new IllegalStateException("the writer of " + path + " did not write its marker " + marker);
            if (fs.exists(target) && !fs.delete(target, true)) throw new IOException("could not remove the old " + path);
            if (!fs.rename(tmp, target)) throw new IOException("could not rename " + tmp + " to " + path);
        } finally {
            if (fs.exists(tmp)) fs.delete(tmp, true);
        }
    }
}
