#!/usr/bin/env bash
# usage: jobs/bench.sh [bench options, e.g. --net resnet-20 --batch 32 --threads 1 --steps 300 --profile]
# Training throughput of a network (--net, default the seed network) in one process (batch 64 after a warm-up), beside this
# machine's own float matrix-product speed. Last line: images_per_s=<x> gflops=<y> gemm_gflops=<z>
# Extra options are passed on, e.g. --batch 32 --threads 1 --steps 300.
source "$(dirname "$0")/common.sh"
run_main bench "$@"
