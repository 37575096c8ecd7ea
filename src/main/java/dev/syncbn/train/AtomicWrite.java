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
}
