package dev.syncbn.spark;

import dev.syncbn.nn.Backend;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.train.Engine;
import dev.syncbn.train.LocalEngine;
import dev.syncbn.train.Totals;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import org.apache.spark.api.java.function.FlatMapFunction;

/** Evaluation of one block of test samples in evaluation mode, on an executor. */
public final class Evaluator implements FlatMapFunction<Iterator<Blocks.Block>, Evaluator.Evaluation> {
    /** Sums over test samples, and the confusion matrix: confusion[label * classes + predicted]. */
    public record Evaluation(Totals totals, long[] confusion) implements Serializable {
        Evaluation plus(Evaluation o) {
            long[] c = confusion.clone();
            for (int i = 0; i < c.length; i++) c[i] += o.confusion[i];
            return new Evaluation(totals.plus(o.totals), c);
        }
    }

    private final NetSpec spec;
    private final float[] params, state;
    private final int threads;

    Evaluator(NetSpec spec, float[] params, float[] state, int threads) {
        this.spec = spec;
        this.params = params;
        this.state = state;
        this.threads = threads;
    }

    @Override
    public Iterator<Evaluation> call(Iterator<Blocks.Block> blocks) {
        Backend.init();
        long[] confusion = new long[spec.classes() * spec.classes()];
        Totals total = Totals.NONE;
        List<Blocks.Block> mine = new ArrayList<>();
        blocks.forEachRemaining(mine::add);
        // a network sized for the samples it will see: many small blocks each paid for a full one (compare-bn's 32)
        int batch = Math.max(1, Math.min(Engine.EVALUATION_BATCH, mine.stream().mapToInt(Blocks.Block::size).max().orElse(1)));
        try (ConvNet net = new ConvNet(spec, batch, threads, ConvNet.Kernels.FAST)) {
            net.params.copyFrom(params);
            net.state.copyFrom(state);
            int[] labels = new int[batch];
            for (Blocks.Block block : mine) {
                total = total.plus(LocalEngine.evaluate(net, block.dataset(), labels, confusion));
            }
        }
        return Collections.singletonList(new Evaluation(total, confusion)).iterator();
    }
}
