#!/usr/bin/env bash
# usage: jobs/train.sh [--conf key=value ...] [options]
# Data-parallel training on Spark, through spark-submit. Example (local mode, 2 replicas, sync BN):
#   jobs/train.sh --workers 2 --batch-per-worker 32 --bn sync --epochs 10 --metrics-out out/sync.csv
# Options: see README (or jobs/train.sh --help).
source "$(dirname "$0")/common.sh"
submit_main train "$@"
