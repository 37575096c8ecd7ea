package dev.syncbn;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The packages' layers, checked over the sources' imports: a package may use only packages of a lower
 * layer (none of its own layer but itself, none above), so there is no cycle; and a type of another
 * package is named in an import, where a reviewer sees the edge, not spelled out in the code.
 */
class ArchitectureTest {
    /** Each package's layer, from the bottom: nn ← optim ← data ← train ← coord ← spark ← job ← (ml, compare, bench) ← (cli, examples). */
    static final Map<String, Integer> LAYER = Map.ofEntries(Map.entry("nn", 0), Map.entry("optim", 1), Map.entry("data", 2), Map.entry("train", 3),
            Map.entry("coord", 4), Map.entry("spark", 5), Map.entry("job", 6), Map.entry("ml", 7), Map.entry("compare", 7), Map.entry("bench", 7),
            Map.entry("cli", 8), Map.entry("examples", 8));

    private static final Path MAIN = Path.of("src/main/java/dev/syncbn");
    private static final Pattern PROJECT_TYPE = Pattern.compile("dev\\.syncbn\\.([a-z]+)\\.");
    private static final Pattern QUALIFIED_TYPE = Pattern.compile("(?<![\\w.@])((?:java|javax|org|scala|dev|com)\\.(?:[a-z_]\\w*\\.)+)([A-Z][\\w$]*)");

    record Source(Path path, String pkg, List<String> imports, List<String> codeLines) {}

    static List<Source> sources() throws IOException {
        List<Source> out = new ArrayList<>();
        try (Stream<Path> files = Files.walk(MAIN)) {
            for (Path f : (Iterable<Path>) files.filter(p -> p.toString().endsWith(".java"))::iterator) {
                String pkg = MAIN.relativize(f.getParent()).toString().replace('/', '.');
                List<String> imports = new ArrayList<>(), code = new ArrayList<>();
                boolean comment = false;
                for (String line : Files.readAllLines(f)) {
                    String s = line.strip();
                    if (s.startsWith("import ")) imports.add(s.substring(7, s.length() - 1).replace("static ", ""));
                    else if (comment || s.startsWith("/*") || s.startsWith("*") || s.startsWith("//")) comment = (comment || s.startsWith("/*")) && !s.contains("*/");
                    else if (!s.startsWith("package ")) code.add(s.replaceAll("\"(?:[^\"\\\\]|\\\\.)*\"", "\"\"").replaceAll("//.*", ""));
                }
                out.add(new Source(f, pkg, imports, code));
            }
        }
        return out;
    }

    @Test
    void packagesPointDownOnly() throws IOException {
        List<String> violations = new ArrayList<>();
        Set<String> packages = new HashSet<>();
        for (Source s : sources()) {
            packages.add(s.pkg());
            Integer own = LAYER.get(s.pkg());
            if (own == null) {
                violations.add("package " + s.pkg() + " has no layer in ArchitectureTest.LAYER: place it");
                continue;
            }
            List<String> uses = new ArrayList<>(s.imports());
            uses.addAll(s.codeLines());
            for (String use : uses) {
                Matcher m = PROJECT_TYPE.matcher(use);
                while (m.find()) {
                    String target = m.group(1);
                    if (target.equals(s.pkg())) continue;
                    Integer layer = LAYER.get(target);
                    if (layer == null || layer >= own) violations.add(MAIN.relativize(s.path()) + " (" + s.pkg() + ", layer " + own + ") uses " + target + " (layer " + layer + ")");
                }
            }
        }
        assertEquals(List.of(), violations);
        assertTrue(packages.containsAll(List.of("nn", "train", "spark", "coord", "job", "cli")), "the scan found the packages: " + packages);
    }

    /** A fully-qualified type in code hides an edge between packages; only a clash of simple names (two Datasets, two Paths) needs one. */
    @Test
    void typesOfOtherPackagesAreImported() throws IOException {
        List<String> violations = new ArrayList<>();
        for (Source s : sources()) {
            Map<String, String> imported = new HashMap<>();
            for (String i : s.imports()) imported.put(i.substring(i.lastIndexOf('.') + 1), i);
            Set<String> samePackage = new HashSet<>();
            try (Stream<Path> siblings = Files.list(s.path().getParent())) {
                siblings.forEach(p -> samePackage.add(p.getFileName().toString().replace(".java", "")));
            }
            Map<String, Set<String>> spelled = new HashMap<>();
            for (String line : s.codeLines()) {
                Matcher m = QUALIFIED_TYPE.matcher(line);
                while (m.find()) spelled.computeIfAbsent(m.group(2), k -> new HashSet<>()).add(m.group(1) + m.group(2));
            }
            for (Map.Entry<String, Set<String>> e : spelled.entrySet()) {
                String simple = e.getKey();
                boolean clash = e.getValue().size() > 1 || (imported.containsKey(simple) && !e.getValue().contains(imported.get(simple)))
                        || samePackage.contains(simple);
                if (!clash) violations.add(MAIN.relativize(s.path()) + ": " + e.getValue() + " (import it)");
            }
        }
        assertEquals(List.of(), violations);
    }
}
