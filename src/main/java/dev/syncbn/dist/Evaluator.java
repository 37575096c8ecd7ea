package dev.syncbn.dist;

import dev.syncbn.nn.Backend;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.train.Engine;
import dev.syncbn.train.LocalEngine;
import java.io.Serializable;
import java.util.Collections;
import java.util.Iterator;
import org.apache.spark.api.java.function.FlatMapFunction;
import org.nd4j.linalg.api.buffer.DataType;

/** Evaluation of one block of test samples in evaluation mode, on an executor. */
final class Evaluator implements FlatMapFunction<Iterator<Blocks.Block>, Evaluator.Totals> {
    record Totals(double lossSum, long correct, long count) implements Serializable {
        Totals plus(Totals o) {
            return new Totals(lossSum + o.lossSum, correct + o.correct, count + o.count);
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
        Backend.init(threads);
        Totals total = new Totals(0, 0, 0);
        try (ConvNet net = new ConvNet(spec, BATCH, threads, DataType.FLOAT)) {
            net.params.copyFrom(params);
            net.state.copyFrom(state);
            int[] labels = new int[BATCH];
            while (blocks.hasNext()) {
                Engine.Totals t = LocalEngine.evaluate(net, blocks.next().dataset(), labels);
                total = total.plus(new Totals(t.lossSum(), t.correct(), t.count()));
            }
        }
        return Collections.singletonList(total).iterator();
    }
}
