package dev.syncbn.train;

import dev.syncbn.nn.NetSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Every option with its one default and its help text: the one table of defaults. The commands parse
 * their arguments against it, the Spark ML Estimator takes its params' defaults from it, and the
 * README's options table is checked against it by a test.
 */
public final class Options {
    /** commands: the commands that take the option, comma-separated. */
    public record Option(String name, String defaultValue, String commands, String help) {
        public boolean of(String command) {
            return Arrays.asList(commands.split(",")).contains(command);
        }
    }

    /** The commands, in the order the usage lists them. */
    public static final List<String> COMMANDS = List.of("train", "train-local", "prepare", "evaluate", "predict", "export", "compare-bn", "bench");

    public static final List<Option> ALL = List.of(
            new Option("data", "/usr/share/datasets/fashion-mnist", "train,train-local,evaluate,predict,compare-bn,bench", "training/test data: a directory prepared by prepare (Parquet), of MNIST-format IDX files (.gz or plain), or of CIFAR-10 binary batches; local path or hdfs://"),
            new Option("input", "/usr/share/datasets/fashion-mnist", "prepare", "prepare: the raw data (IDX or CIFAR-10 binary directory)"),
            new Option("output", "", "prepare,predict,compare-bn", "prepare: the directory to write (Parquet); predict: the Parquet directory of predictions; compare-bn: the report directory"),
            new Option("files", "4", "prepare", "prepare: Parquet files per split"),
            new Option("overwrite", "false", "prepare,predict", "prepare and predict: replace an existing output directory"),
            new Option("model", "", "evaluate,predict,export", "evaluate, predict and export: the saved model (a model file from --model-out or a checkpoint, or a directory saved by SyncBnClassificationModel; local path or hdfs://)"),
            new Option("onnx", "", "export", "export: the ONNX file to write (opset 13; input image N x C x H x W in [0, 1], outputs logits and probability; BN folded into the convolutions; local path or hdfs://)"),
            new Option("split", "test", "evaluate,predict", "evaluate and predict: which split of --data, test or train"),
            new Option("net", NetSpec.SEED, "train,train-local,compare-bn,bench", "the network: conv widths of the plain stack (each conv 3x3 -> BN -> ReLU -> max-pool 2x2), or resnet-N (N = 6n+2: 20, 32, 44, 56; He et al. 2016's CIFAR ResNet, option B shortcuts) or resnet-NxK (K times as wide); the input shape and classes come from the data"),
            new Option("augment", "false", "train,train-local,compare-bn", "shift each training image by up to 4 pixels each way (black border) and mirror it left to right with probability 1/2, drawn from the seed, the epoch and the image's place in the epoch's shuffle: the same in one process and on any number of replicas"),
            new Option("epochs", "10", "train,train-local,compare-bn", "number of epochs to train"),
            new Option("batch", "64", "train-local,bench", "train-local: mini-batch size"),
            new Option("master", "", "train,prepare,evaluate,predict,compare-bn", "train: Spark master (default: what spark-submit set, else local[W]); local[N] runs as local[N,4] so a failed barrier stage is retried"),
            new Option("workers", "2", "train", "train: W, the number of replicas (one barrier task each)"),
            new Option("batch-per-worker", "32", "train", "train: b, each replica's share of a global batch of W*b"),
            new Option("bn", "sync", "train", "train: batch-norm statistics: local (per replica), sync (all replicas) or group:G (groups of G consecutive replicas)"),
            new Option("shuffle", "global", "train", "train: global (every epoch reshuffles the whole training set across the replicas, as DistributedSampler does: the same batches as one process; moves all blocks over the network each epoch) or partition (each replica keeps its block and reshuffles within it: no data moved after the first epoch)"),
            new Option("elastic", "0", "train", "train: 0 (off), or MIN: when executors are lost for good and fewer than W task slots are left for --elastic-wait seconds, the epoch goes on from the driver's last snapshot with the largest W' >= MIN that divides the global batch W*b and fits the slots (b' = W*b/W'; sync BN computes the same steps); at each later epoch's start it grows back up to W as slots return; below MIN the run stops (resume it with --resume)"),
            new Option("elastic-wait", "30", "train", "train, with --elastic: seconds the run waits for lost task slots to come back before it goes on with fewer replicas"),
            new Option("fail-at-step", "-1", "train", "train, for tests: replica 0 fails once at this step of every epoch's first attempt"),
            new Option("lr", "0.001", "train,train-local,compare-bn,bench", "Adam learning rate (betas 0.9/0.999, eps 1e-8)"),
            new Option("lr-schedule", "cosine", "train,train-local,compare-bn", "cosine: decay the learning rate along half a cosine to 0 at the last step; or constant"),
            new Option("seed", "1", "train,train-local,compare-bn,bench", "seed of the initialization and of every epoch's shuffle"),
            new Option("threads", "2", "train,train-local,compare-bn,bench", "train-local and bench: threads for the Java loops and ND4J's ops (train: spark.task.cpus per replica)"),
            new Option("max-train", "0", "train,train-local,compare-bn", "use only the first N training images (0: all)"),
            new Option("max-test", "0", "train,train-local,evaluate,compare-bn", "evaluate on only the first N test images (0: all)"),
            new Option("metrics-out", "", "train,train-local", "CSV file with one row per epoch (local path or hdfs://)"),
            new Option("step-log", "", "train,train-local", "CSV file step,loss: the global mean loss of every step"),
            new Option("checkpoint-dir", "", "train,train-local", "directory for a checkpoint after every epoch (local path or hdfs://)"),
            new Option("resume", "false", "train,train-local", "continue from the newest checkpoint in --checkpoint-dir"),
            new Option("model-out", "", "train,train-local", "save the final model here (local path or hdfs://)"),
            new Option("progress-s", "10", "train,train-local,compare-bn", "seconds between progress lines within an epoch (0: none)"),
            new Option("precise-bn-batches", "0", "train,train-local,compare-bn", "after the last epoch, replace the BN running statistics with the average over this many training batches through the final network (precise BN; 0: keep them); compare-bn evaluates both"),
            new Option("design", "split", "compare-bn", "compare-bn: split (hold the global batch --global-batch fixed and split it W x b for every W of --workers-grid that divides it) or grid (every W of --workers-grid with every b of --batch-grid)"),
            new Option("global-batch", "64", "compare-bn", "compare-bn, split design: the global batch W x b"),
            new Option("workers-grid", "1,2,4,8,16,32", "compare-bn", "compare-bn: worker counts W to try"),
            new Option("batch-grid", "2,8,32", "compare-bn", "compare-bn, grid design: per-worker batch sizes b to try"),
            new Option("seeds", "3", "compare-bn", "compare-bn: seeds per cell (1..N); the report gives means, standard deviations and 95% intervals"),
            new Option("max-minutes", "20", "compare-bn", "compare-bn: refuse a grid whose estimated time exceeds this (0: no limit)"),
            new Option("modes", "local,sync,group:2", "compare-bn", "compare-bn: BN modes to try (group:G only where 1 < G < W and G divides W)"),
            new Option("warmup-steps", "200", "bench", "bench: steps run before timing starts"),
            new Option("steps", "300", "bench", "bench: timed steps"),
            new Option("profile", "false", "bench", "bench: also print each layer's forward and backward milliseconds per step"));

    private final Map<String, String> values = new LinkedHashMap<>();
    private final Set<String> given = new HashSet<>(); // the names on the command line

    private Options() {}

    /** Every option at its default. */
    public static Options defaults() {
        return parse(new String[0]);
    }

    /** This table's default of an option. */
    public static String defaultOf(String name) {
        return defaults().get(name);
    }

    /** The help text of an option. */
    public static String help(String name) {
        for (Option o : ALL) if (o.name().equals(name)) return o.help();
        throw new IllegalStateException("no option --" + name);
    }

    /** Sets an option, as if given on the command line. */
    public Options set(String name, String value) {
        get(name); // refuses an unknown name
        values.put(name, value);
        return this;
    }

    /**
     * Parses a command's arguments; an option of another command is refused, naming the commands that
     * take it, so that nothing given is silently ignored.
     */
    public static Options parse(String command, String[] args) {
        checkCommand(command);
        Options o;
        try {
            o = parse(args);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(e.getMessage() + "; see syncbn " + command + " --help", e);
        }
        List<String> foreign = new ArrayList<>();
        for (Option opt : ALL) {
            if (!opt.of(command) && o.given.contains(opt.name())) foreign.add("--" + opt.name() + " (" + opt.commands().replace(",", ", ") + ")");
        }
        if (!foreign.isEmpty()) {
            throw new IllegalArgumentException("not options of " + command + ", but of the commands named: " + String.join(", ", foreign)
                    + "; see syncbn " + command + " --help");
        }
        return o;
    }

    private static void checkCommand(String command) {
        if (!COMMANDS.contains(command)) throw new IllegalArgumentException("unknown command '" + command + "' (" + String.join(", ", COMMANDS) + ")");
    }

    /** Parses --name value and --name=value pairs; a bare --flag means true. Unknown options are refused. */
    public static Options parse(String[] args) {
        Options o = new Options();
        for (Option opt : ALL) o.values.put(opt.name(), opt.defaultValue());
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument '" + a + "' (options look like --name value)");
            String name = a.substring(2), value;
            int eq = name.indexOf('=');
            if (eq >= 0) {
                value = name.substring(eq + 1);
                name = name.substring(0, eq);
            } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
                value = args[++i];
            } else {
                value = "true";
            }
            if (!o.values.containsKey(name)) throw new IllegalArgumentException("unknown option --" + name + suggestion(name));
            o.values.put(name, value);
            o.given.add(name);
        }
        return o;
    }

    /** " (did you mean --x?)" for the option nearest to name by edit distance, if it is near (at most 2 edits). */
    private static String suggestion(String name) {
        String best = null;
        int bestDistance = 3;
        for (Option o : ALL) {
            int d = editDistance(name, o.name());
            if (d < bestDistance) {
                best = o.name();
                bestDistance = d;
            }
        }
        return best == null ? "" : " (did you mean --" + best + "?)";
    }

    private static int editDistance(String a, String b) {
        int[] row = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) row[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int above = row[j];
                row[j] = Math.min(Math.min(row[j] + 1, row[j - 1] + 1), diagonal + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.length()];
    }

    public String get(String name) {
        String v = values.get(name);
        if (v == null) throw new IllegalStateException("no option --" + name);
        return v;
    }

    public int getInt(String name, int min) {
        long v = getLong(name);
        if (v > Integer.MAX_VALUE) throw new IllegalArgumentException("--" + name + " must be at most " + Integer.MAX_VALUE + ", got " + v);
        if (v < min) throw new IllegalArgumentException("--" + name + " must be at least " + min + ", got " + v);
        return (int) v;
    }

    public long getLong(String name) {
        try {
            return Long.parseLong(get(name).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " must be a whole number, got '" + get(name) + "'");
        }
    }

    public double getPositiveDouble(String name) {
        double v;
        try {
            v = Double.parseDouble(get(name).trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + name + " must be a number, got '" + get(name) + "'");
        }
        if (!(v > 0) || Double.isInfinite(v)) throw new IllegalArgumentException("--" + name + " must be a positive number, got " + v);
        return v;
    }

    public boolean getBoolean(String name) {
        String v = get(name).trim();
        if (v.equals("true") || v.equals("false")) return Boolean.parseBoolean(v);
        throw new IllegalArgumentException("--" + name + " must be true or false, got '" + v + "'");
    }

    /** The README's options table (README.md holds it between the options:begin/end markers; a test compares). */
    public static String markdownTable() {
        StringBuilder b = new StringBuilder("| option | default | commands | meaning |\n| --- | --- | --- | --- |\n");
        for (Option o : ALL) b.append("| `--").append(o.name()).append("` | ").append(o.defaultValue().isEmpty() ? "(none)" : "`" + o.defaultValue() + "`")
                .append(" | ").append(o.commands().replace(",", ", ")).append(" | ").append(o.help()).append(" |\n");
        return b.toString();
    }

    /** Every option, for the usage of all commands. */
    public static String help() {
        return usage(null);
    }

    /** The options of one command (all of them if command is null), a line each. */
    public static String usage(String command) {
        if (command != null) checkCommand(command);
        StringBuilder b = new StringBuilder();
        for (Option o : ALL) {
            if (command == null || o.of(command)) {
                b.append(String.format("  --%-18s %s (default: %s)%n", o.name(), o.help(), o.defaultValue().isEmpty() ? "none" : o.defaultValue()));
            }
        }
        return b.toString();
    }
}
