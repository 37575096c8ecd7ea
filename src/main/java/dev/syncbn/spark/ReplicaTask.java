package dev.syncbn.spark;

import dev.syncbn.nn.BnMode;
import dev.syncbn.coord.CoordinatorClient;

import dev.syncbn.data.Dataset;
import dev.syncbn.data.Sampler;
import dev.syncbn.nn.Backend;
import dev.syncbn.nn.BnReducer;
import dev.syncbn.nn.ConvNet;
import dev.syncbn.nn.NetSpec;
import dev.syncbn.nn.SoftmaxCrossEntropy;
import java.io.Serializable;
import java.util.Collections;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.TaskContext;
import org.nd4j.linalg.api.buffer.DataType;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;
import scala.runtime.AbstractFunction1;

/**
 * One replica's epoch, run as a task of the barrier stage: it gathers its share of the epoch's samples,
 * connects to the driver's coordinator, and from the driver's current step on, per step computes the
 * forward and backward pass of its part of the global batch (BN statistics all-reduced through the
 * coordinator in sync modes), hands in its gradient and takes the new parameters.
 */
public final class ReplicaTask extends AbstractFunction1<Iterator<Blocks.Part>, Iterator<Integer>> implements Serializable {
    /** Everything a replica needs to know about the run; shipped in the task closure. */
    public record Job(String host, int port, CoordinatorKey key, int workers, int batchPerWorker, int trainSize, NetSpec spec, BnMode bn,
            int threads, int epoch, int failAtStep) implements Serializable {}

    private final Job job;

    public ReplicaTask(Job job) {
        this.job = job;
    }

    @Override
    public Iterator<Integer> apply(Iterator<Blocks.Part> parts) {
        BarrierTaskContext ctx = BarrierTaskContext.get();
        int rank = ctx.partitionId();
        // one line in the executor's log per replica and epoch: where each replica ran
        System.out.println("syncbn replica " + rank + " of " + job.workers() + ", epoch " + job.epoch() + ", stage attempt " + ctx.stageAttemptNumber()
                + ", on executor " + org.apache.spark.SparkEnv.get().executorId());
        try {
            run(rank, ctx.stageAttemptNumber(), CollectionConverters.asJava(parts), ctx);
        } catch (Exception e) {
            throw new IllegalStateException("replica " + rank + " failed in epoch " + job.epoch() + ": " + e.getMessage(), e);
        }
        return CollectionConverters.asScala(Collections.singletonList(rank).iterator());
    }

    private void run(int rank, int attempt, java.util.Iterator<Blocks.Part> parts, TaskContext ctx) throws Exception {
        int w = job.workers(), b = job.batchPerWorker();
        Dataset mine = Blocks.merge(parts, Sampler.countFor(rank, job.trainSize(), w), job.spec());
        Backend.init();
        try (ConvNet net = new ConvNet(job.spec(), b, job.threads(), DataType.FLOAT);
                CoordinatorClient client = new CoordinatorClient(job.host(), job.port(), job.key().key(), job.key().encrypt(), rank, job.epoch(), attempt, net.paramCount(),
                        net.state.length(), job.spec().convWidths(), ctx::isInterrupted)) {
            CoordinatorClient.Welcome welcome = client.welcome();
            net.params.copyFrom(welcome.params());
            net.state.copyFrom(welcome.state());
            net.setReducer(job.bn().synced() ? client : BnReducer.LOCAL);
            int steps = Sampler.steps(job.trainSize(), w * b);
            int[] order = new int[mine.size()];
            for (int i = 0; i < order.length; i++) order[i] = i;
            int[] labels = new int[b];
            float[] grads = new float[net.paramCount()], state = new float[net.state.length()];
            for (int step = welcome.startStep(); step < steps; step++) {
                if (step == job.failAtStep() && rank == 0 && attempt == 0) {
                    throw new IllegalStateException("injected failure at step " + step + " (--fail-at-step, for tests)");
                }
                int from = Math.min(step * b, mine.size()), n = Math.min(b, mine.size() - from);
                int global = Math.min(w * b, job.trainSize() - step * w * b);
                long t0 = System.nanoTime();
                mine.fill(order, from, n, net.input, labels);
                SoftmaxCrossEntropy.Result r;
                if (n == 0 && !job.bn().synced()) {
                    // nothing to compute and no statistics to share: a zero gradient
                    net.grads.fill(0);
                    r = new SoftmaxCrossEntropy.Result(0, 0);
                } else {
                    r = net.trainStep(n, labels, global);
                }
                double bnWait = client.takeBnWaitSeconds();
                double compute = (System.nanoTime() - t0) / 1e9 - bnWait;
                net.grads.copyTo(grads);
                net.state.copyTo(state);
                net.params.copyFrom(client.exchange(n, r.lossSum(), r.correct(), compute, bnWait, grads, state));
            }
        }
    }

}
