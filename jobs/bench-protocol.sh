#!/usr/bin/env bash
# usage: jobs/bench-protocol.sh [ExR,...] [steps] [--encrypt]     (defaults 1x2,2x1,2x4,4x4,8x8 and 200)
# The coordination service alone (no compute): a scale model of E executors x R replicas on loopback, with and
# without per-executor aggregation: wall time and driver CPU per step, bytes through the driver each way.
source "$(dirname "$0")/common.sh"
help_if_asked "$@"
build_if_needed
# shellcheck disable=SC2086
exec java $JAVA_OPTS dev.syncbn.bench.ProtocolBench "$@"
