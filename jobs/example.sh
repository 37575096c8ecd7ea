#!/usr/bin/env bash
# usage: jobs/example.sh PREPARED_DATA OUTPUT_DIR EPOCHS
# The Spark ML example (src/main/java/dev/syncbn/examples/FashionMnistPipeline.java) through spark-submit:
#   jobs/prepare-data.sh --output out/fashion && jobs/example.sh out/fashion out/pipeline 3
source "$(dirname "$0")/common.sh"
help_if_asked "$@"
submit_class dev.syncbn.examples.FashionMnistPipeline "$@"
