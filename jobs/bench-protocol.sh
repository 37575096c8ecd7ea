#!/usr/bin/env bash
# The coordination service alone (no compute): the floor of a step's non-compute time. Usage: jobs/bench-protocol.sh [W] [steps]
source "$(dirname "$0")/common.sh"
help_if_asked "$@"
build_if_needed
# shellcheck disable=SC2086
exec java $JAVA_OPTS dev.syncbn.coord.ProtocolBench "$@"
