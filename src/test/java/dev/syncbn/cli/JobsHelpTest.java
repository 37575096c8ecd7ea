package dev.syncbn.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.syncbn.train.Options;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Every job's --help starts with a line "usage: ..." and exits 0: a script that documents itself prints
 * its header (without building anything); a script that runs a command of the program leaves --help to
 * the program, whose answer for that command is checked here in this JVM.
 */
class JobsHelpTest {
    private static final Pattern COMMAND = Pattern.compile("(?:submit_main|run_main) ([a-z-]+)");

    @Test
    void everyJobAnswersHelpWithAUsageLine() throws Exception {
        List<String> checked = new ArrayList<>();
        try (Stream<Path> jobs = Files.list(Path.of("jobs"))) {
            for (Path job : (Iterable<Path>) jobs.filter(p -> p.toString().endsWith(".sh") && !p.endsWith("common.sh")).sorted()::iterator) {
                String text = Files.readString(job);
                assertTrue(text.split("\n")[1].startsWith("# usage: jobs/" + job.getFileName()), job + ": its header's first line is its usage");
                if (text.contains("help_if_asked")) {
                    Process p = new ProcessBuilder("bash", job.toString(), "--help").redirectErrorStream(true).start();
                    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                    assertTrue(p.waitFor(30, TimeUnit.SECONDS), job + " --help hangs");
                    assertEquals(0, p.exitValue(), job + " --help: " + out);
                    assertTrue(out.startsWith("usage: jobs/" + job.getFileName()), job + " --help: " + out);
                    assertTrue(!out.contains("building"), job + " --help built the project: " + out);
                } else {
                    Matcher m = COMMAND.matcher(text);
                    String out = m.find() ? programHelp(m.group(1), "--help") : programHelp("--help");
                    assertTrue(out.startsWith("usage: syncbn"), job + " leaves --help to the program, which prints: " + out);
                }
                checked.add(job.getFileName().toString());
            }
        }
        assertTrue(checked.containsAll(List.of("train.sh", "quickstart.sh", "example.sh", "compare-bn.sh", "bench-protocol.sh")), checked.toString());
        for (String command : Options.COMMANDS) assertTrue(programHelp(command, "-h").startsWith("usage: syncbn " + command + " [options]"), command);
    }

    /** What Main prints for these arguments (help exits normally). */
    private static String programHelp(String... args) throws Exception {
        PrintStream before = System.out;
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        System.setOut(new PrintStream(bytes, true, StandardCharsets.UTF_8));
        try {
            Main.main(args);
        } finally {
            System.setOut(before);
        }
        return bytes.toString(StandardCharsets.UTF_8);
    }
}
