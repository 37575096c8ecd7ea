package dev.syncbn.examples;

import dev.syncbn.ml.SyncBnClassificationModel;
import dev.syncbn.ml.SyncBnClassifier;
import org.apache.spark.ml.Pipeline;
import org.apache.spark.ml.PipelineModel;
import org.apache.spark.ml.PipelineStage;
import org.apache.spark.ml.evaluation.MulticlassClassificationEvaluator;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

/**
 * A Spark program that uses syncbn as a library: read data prepared by `jobs/prepare-data.sh` (Parquet
 * rows of index, label, image bytes), fit a Pipeline with a SyncBnClassifier (two replicas, sync BN, a
 * tenth of the training rows held out for validation and early stopping), score the test rows, evaluate
 * them with MulticlassClassificationEvaluator and save the fitted pipeline.
 *
 * Run: jobs/example.sh PREPARED_DIR MODEL_OUT [EPOCHS]
 */
public final class FashionMnistPipeline {
    private FashionMnistPipeline() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: FashionMnistPipeline PREPARED_DIR MODEL_OUT [EPOCHS]");
            System.exit(2);
        }
        int epochs = args.length > 2 ? Integer.parseInt(args[2]) : 3;
        SparkSession spark = SparkSession.builder().appName("syncbn-example").getOrCreate();
        Dataset<Row> train = spark.read().parquet(args[0] + "/train")
                .withColumn("validation", org.apache.spark.sql.functions.expr("index % 10 = 0")); // every tenth row
        Dataset<Row> test = spark.read().parquet(args[0] + "/test");

        SyncBnClassifier classifier = new SyncBnClassifier()
                .setFeaturesCol("image") // binary: one byte per pixel; 784 bytes are a 1 x 28 x 28 image
                .setLabelCol("label")
                .setWorkers(2)
                .setBatchPerWorker(32)
                .setBnMode("sync")
                .setEpochs(epochs)
                .setValidationIndicatorCol("validation")
                .setEarlyStoppingEpochs(2);
        PipelineModel model = new Pipeline().setStages(new PipelineStage[] {classifier}).fit(train);
        System.out.println(((SyncBnClassificationModel) model.stages()[0]).summary());

        Dataset<Row> scored = model.transform(test);
        double accuracy = new MulticlassClassificationEvaluator().setLabelCol("label").setMetricName("accuracy").evaluate(scored);
        System.out.printf("test accuracy %.4f on %d images%n", accuracy, test.count());
        model.write().overwrite().save(args[1]);
        System.out.println("pipeline saved to " + args[1] + " (PipelineModel.load reads it back)");
        spark.stop();
    }
}
