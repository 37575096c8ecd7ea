#!/usr/bin/env bash
# usage: jobs/compare-bn.sh [--output DIR] [compare-bn options]
# Sync vs local vs group BN: the global batch of 64 split W x b for W in 1..32, each cell with 3 seeds,
# each model evaluated with its running statistics and with precise BN; writes results.csv, three PNG
# charts and report.md. The presets here (2 epochs on the first 4,096 training and 2,000 test images)
# size the default grid to about 20 minutes on a 2-core machine; compare-bn prints its estimate first and
# refuses a grid over --max-minutes. Examples (the second a residual network, about 20 minutes):
#   jobs/compare-bn.sh --output out/compare-bn
#   jobs/compare-bn.sh --net resnet-20 --workers-grid 1,4,16,32 --modes local,sync --seeds 4 --output out/compare-bn-resnet-20
source "$(dirname "$0")/common.sh"
submit_main compare-bn --epochs 2 --max-train 4096 --max-test 2000 --precise-bn-batches 20 --progress-s 0 "$@"
