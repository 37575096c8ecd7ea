#!/usr/bin/env bash
# usage: jobs/evaluate.sh --model PATH [--data DIR] [--split test|train] [options]
# Loss, accuracy and confusion matrix of a saved model, in Spark. Example:
#   jobs/evaluate.sh --model out/model.bin --data out/fashion-parquet --split test
source "$(dirname "$0")/common.sh"
submit_main evaluate "$@"
