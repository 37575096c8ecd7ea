#!/usr/bin/env bash
# Sync vs local vs group BN over a grid of per-worker batch sizes and worker counts, on the same data,
# seed and epochs; writes results.csv, three PNG charts and report.md. The default grid (W in 2,4;
# b in 2,8,32; local, sync, group:2; 3 epochs on the first 10,000 training and 5,000 test images) is
# sized to finish within 20 minutes on a 2-core machine. Example:
#   jobs/compare-bn.sh --output out/compare-bn
source "$(dirname "$0")/common.sh"
submit_main compare-bn --epochs 3 --max-train 10000 --max-test 5000 --progress-s 0 "$@"
