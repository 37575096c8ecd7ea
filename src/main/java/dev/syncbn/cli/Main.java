package dev.syncbn.cli;

import dev.syncbn.bench.Bench;
import dev.syncbn.compare.CompareRunner;
import dev.syncbn.train.Options;
import dev.syncbn.train.TrainingStopped;
import java.io.IOException;
import java.util.Arrays;

/** Entry point: syncbn COMMAND [--option value ...]. */
public final class Main {
    private Main() {}

    /** This program's version (pom.xml's; a test keeps them equal). */
    static final String VERSION = "0.1.0-SNAPSHOT";

    public static void main(String[] args) throws Exception {
        if (args.length == 2 && args[0].equals("help") && args[1].equals("--markdown")) {
            System.out.print(Options.markdownTable());
            return;
        }
        if (args.length > 0 && (args[0].equals("--version") || args[0].equals("version"))) {
            System.out.println("syncbn " + VERSION);
            return;
        }
        if (args.length == 0 || args[0].equals("--help") || args[0].equals("-h") || args[0].equals("help")) {
            System.out.println("usage: syncbn COMMAND [options]   (syncbn COMMAND --help: that command's options; syncbn --version)\n"
                    + "commands: " + String.join(", ", Options.COMMANDS));
            return;
        }
        String command = args[0];
        String[] rest = Arrays.copyOfRange(args, 1, args.length);
        Options o;
        try {
            if (Arrays.asList(rest).contains("--help") || Arrays.asList(rest).contains("-h")) {
                String usage = Options.usage(command); // refuses an unknown command
                System.out.println("usage: syncbn " + command + " [options]\n" + usage);
                return;
            }
            o = Options.parse(command, rest);
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
            return;
        }
        try {
            dispatch(command, o);
        } catch (IllegalArgumentException | IOException e) {
            System.err.println("error: " + e.getMessage());
            System.exit(2);
        } catch (TrainingStopped e) {
            System.err.println("error: " + e.getMessage());
            System.exit(1);
        }
    }

    static void dispatch(String command, Options o) throws Exception {
        switch (command) {
            case "train" -> Commands.train(o);
            case "train-local" -> Commands.trainLocal(o);
            case "prepare" -> Commands.prepare(o);
            case "evaluate" -> Commands.evaluate(o);
            case "compare-bn" -> CompareRunner.run(o);
            case "bench" -> Bench.run(o);
            case "predict" -> Commands.predict(o);
            case "export" -> Commands.export(o);
            default -> throw new IllegalArgumentException("unknown command '" + command + "' (" + String.join(", ", Options.COMMANDS) + ")");
        }
    }

}
