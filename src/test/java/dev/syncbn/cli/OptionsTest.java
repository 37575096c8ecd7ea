package dev.syncbn.cli;

import dev.syncbn.nn.BnMode;
import dev.syncbn.train.Options;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class OptionsTest {
    @Test
    void readmeOptionsTableIsTheOneSourceOfDefaults() throws Exception {
        String readme = Files.readString(Path.of("README.md"));
        int begin = readme.indexOf("<!-- options:begin -->\n"), end = readme.indexOf("<!-- options:end -->");
        assertTrue(begin >= 0 && end > begin, "README.md lacks the options markers");
        assertEquals(Options.markdownTable(), readme.substring(begin + "<!-- options:begin -->\n".length(), end),
                "README options table is stale: regenerate it with `jobs/syncbn.sh help --markdown`");
    }

    @Test
    void parsesAndRefusesWithTheOptionsName() {
        Options o = Options.parse(new String[] {"--epochs", "3", "--lr=0.01", "--resume"});
        assertEquals(3, o.getInt("epochs", 1));
        assertEquals(0.01, o.getPositiveDouble("lr"));
        assertTrue(o.getBoolean("resume"));
        assertEquals("64", o.get("batch"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Options.parse(new String[] {"--bogus", "1"})).getMessage().contains("--bogus"));
        Options bad = Options.parse(new String[] {"--batch", "0", "--lr", "-1", "--epochs", "x"});
        assertTrue(assertThrows(IllegalArgumentException.class, () -> bad.getInt("batch", 1)).getMessage().contains("--batch"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> bad.getPositiveDouble("lr")).getMessage().contains("--lr"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> bad.getInt("epochs", 1)).getMessage().contains("--epochs"));
    }

    @Test
    void numbersOutOfRangeAndGroupsOfZeroAreRefusedWithTheLimitNamed() {
        String m = assertThrows(IllegalArgumentException.class, () -> Options.parse(new String[] {"--max-train", "99999999999"}).getInt("max-train", 0))
                .getMessage();
        assertTrue(m.contains("at most 2147483647"), m);
        m = assertThrows(IllegalArgumentException.class, () -> BnMode.parse("group:0", 2)).getMessage();
        assertTrue(m.contains("at least 1"), m);
    }

    @Test
    void anOptionOfAnotherCommandIsRefusedNamingTheCommandsThatTakeIt() {
        // The reproduction: train given bench's, train-local's and prepare's options.
        String m = assertThrows(IllegalArgumentException.class,
                () -> Options.parse("train", new String[] {"--threads", "2", "--batch", "128", "--files", "9"})).getMessage();
        assertTrue(m.startsWith("not options of train") && m.contains("--batch (train-local, bench)") && m.contains("--files (prepare)"), m);
        m = assertThrows(IllegalArgumentException.class, () -> Options.parse("evaluate", new String[] {"--epochs", "2"})).getMessage();
        assertTrue(m.contains("--epochs (train, train-local, compare-bn)") && m.endsWith("see syncbn evaluate --help"), m);
        m = assertThrows(IllegalArgumentException.class, () -> Options.parse("train", new String[] {"--epoch", "2"})).getMessage();
        assertTrue(m.contains("unknown option --epoch (did you mean --epochs?)"), m);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> Options.parse("tarin", new String[0])).getMessage().contains("unknown command 'tarin'"));
        assertEquals("2", Options.parse("train", new String[] {"--threads", "2", "--bn", "local"}).get("threads"));
        // Every option belongs to at least one command, and each command's usage lists only its own.
        for (Options.Option o : Options.ALL) {
            assertTrue(Options.COMMANDS.stream().anyMatch(o::of), "--" + o.name() + " belongs to no command");
        }
        String usage = Options.usage("prepare");
        assertTrue(usage.contains("--files") && usage.contains("--input") && !usage.contains("--epochs"), usage);
    }

    @Test
    void versionIsThePomsVersion() throws Exception {
        String pom = Files.readString(Path.of("pom.xml"));
        int artifact = pom.indexOf("<artifactId>syncbn</artifactId>");
        int from = pom.indexOf("<version>", artifact) + "<version>".length();
        assertEquals(pom.substring(from, pom.indexOf("</version>", from)), Main.VERSION);
    }
}
