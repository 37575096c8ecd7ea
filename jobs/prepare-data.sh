#!/usr/bin/env bash
# usage: jobs/prepare-data.sh --output DIR [--input DIR] [--files N] [options]
# Raw data (MNIST-format IDX or CIFAR-10 binary batches) to Parquet, on a local path or hdfs://. Example:
#   jobs/prepare-data.sh --input /usr/share/datasets/fashion-mnist --output out/fashion-parquet --files 4
source "$(dirname "$0")/common.sh"
submit_main prepare "$@"
