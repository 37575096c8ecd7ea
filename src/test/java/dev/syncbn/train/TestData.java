package dev.syncbn.train;

import dev.syncbn.data.Dataset;
import dev.syncbn.data.IdxReader;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.hadoop.conf.Configuration;

/** Real Fashion-MNIST from Debian's dataset-fashion-mnist package (.ci/run installs it), read once per JVM. */
public final class TestData {
    public static final String DIR = "/usr/share/datasets/fashion-mnist";
    private static Dataset train, test;

    private TestData() {}

    public static synchronized Dataset train() throws IOException {
        if (train == null) train = IdxReader.readSplit(checkedDir(), "train", new Configuration());
        return train;
    }

    public static synchronized Dataset test() throws IOException {
        if (test == null) test = IdxReader.readSplit(checkedDir(), "t10k", new Configuration());
        return test;
    }

    private static String checkedDir() {
        if (!Files.isDirectory(Path.of(DIR))) {
            throw new IllegalStateException(DIR + " is missing: apt-get install -y dataset-fashion-mnist");
        }
        return DIR;
    }
}
