#!/usr/bin/env bash
# usage: jobs/train-local.sh [options]
# Trains in one process (no Spark): the reference trainer. Options: see README.
source "$(dirname "$0")/common.sh"
run_main train-local "$@"
