package dev.syncbn.train;

import java.io.DataOutputStream;
import java.io.IOException;
import java.util.EnumSet;
import java.util.UUID;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.CreateFlag;
import org.apache.hadoop.fs.FileContext;
import org.apache.hadoop.fs.Options;
import org.apache.hadoop.fs.Path;

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
        FileContext fc = FileContext.getFileContext(target.toUri(), conf);
        Path tmp = new Path(target.getParent(), "." + target.getName() + ".tmp-" + UUID.randomUUID());
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
     * Fills a directory under a temporary name beside it, then puts it in place: an existing one is refused
     * unless overwrite (and then replaced only once the new one is complete); the temporary is removed on failure.
     */
    public static void writeDirectory(String path, boolean overwrite, Configuration conf, DirectoryBody body) throws IOException {
        Path target = new Path(path);
        org.apache.hadoop.fs.FileSystem fs = target.getFileSystem(conf);
        if (fs.exists(target) && !overwrite) throw new IOException(path + " exists; pass --overwrite to replace it");
        Path tmp = new Path(target.getParent(), "." + target.getName() + ".tmp-" + UUID.randomUUID());
        try {
            body.write(tmp);
            if (fs.exists(target) && !fs.delete(target, true)) throw new IOException("could not remove the old " + path);
            if (!fs.rename(tmp, target)) throw new IOException("could not rename " + tmp + " to " + path);
        } finally {
            if (fs.exists(tmp)) fs.delete(tmp, true);
        }
    }
}
