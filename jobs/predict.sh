#!/usr/bin/env bash
# usage: jobs/predict.sh --model PATH --output DIR [--data DIR] [--split test|train] [options]
# Predictions of a saved model for a split of a data set, as Parquet (index, label, prediction, probability). Example:
#   jobs/predict.sh --model out/model.bin --data out/fashion --output out/predictions
source "$(dirname "$0")/common.sh"
submit_main predict "$@"
