#!/usr/bin/env bash
# Trains in one process (no Spark): the reference trainer. Options: see README.
source "$(dirname "$0")/common.sh"
run_main train-local "$@"
