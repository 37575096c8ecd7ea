package dev.syncbn.cli;

import dev.syncbn.train.Options;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

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
        m = assertThrows(IllegalArgumentException.class, () -> dev.syncbn.nn.BnMode.parse("group:0", 2)).getMessage();
        assertTrue(m.contains("at least 1"), m);
    }
}
