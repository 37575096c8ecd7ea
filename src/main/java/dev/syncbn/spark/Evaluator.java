package dev.syncbn.spark;

import dev.syncbn.nn.Backend;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.train.Engine;
import dev.syncbn.train.LocalEngine;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Iterator;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.nd4j.linalg.api.buffer.DataType;

/** Evaluation of one block of test samples in evaluation mode, on an executor. */
public final class Evaluator implements FlatMapFunction<Iterator<Blocks.Block>, Evaluator.Totals> {
    /** Sums over test samples; confusion[label * classes + predicted]. */
    public record Totals(double lossSum, long correct, long count, long[] confusion) implements Serializable {
        Totals plus(Totals o) {
            long[] c = confusion.clone();
            for (int i = 0; i < c.length; i++) c[i] += o.confusion[i];
            return new Totals(lossSum + o.lossSum, correct + o.correct, count + o.count, c);
        }
    }

    private static final int BATCH = 256;
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
    public Iterator<Totals> call(Iterator<Blocks.Block> blocks) {
        Backend.init();
        long[] confusion = new long[spec.classes() * spec.classes()];
        Engine.Totals total = new Engine.Totals(0, 0, 0);
        List<Blocks.Block> mine = new ArrayList<>();
        blocks.forEachRemaining(mine::add);
        // a network sized for the samples it will see: one for 256 takes ~150 MB, and many small blocks each paid for it (compare-bn's 32)
        int batch = Math.max(1, Math.min(BATCH, mine.stream().mapToInt(Blocks.Block::size).max().orElse(1)));
        try (ConvNet net = new ConvNet(spec, batch, threads, DataType.FLOAT)) {
            net.params.copyFrom(params);
            net.state.copyFrom(state);
            int[] labels = new int[batch];
            for (Blocks.Block block : mine) {
                Engine.Totals t = LocalEngine.evaluate(net, block.dataset(), labels, confusion);
                total = new Engine.Totals(total.lossSum() + t.lossSum(), total.correct() + t.correct(), total.count() + t.count());
            }
        }
        return Collections.singletonList(new Totals(total.lossSum(), total.correct(), total.count(), confusion)).iterator();
    }
}
