#!/usr/bin/env bash
# usage: jobs/quickstart.sh [training options]
# The main job on one machine, from nothing: installs the dataset package (and Maven, a JDK) if missing, builds, prepares
# Fashion-MNIST as Parquet (once) and trains 2 replicas with sync BN in Spark local mode for 10 epochs.
# Extra options go to the training command, e.g. jobs/quickstart.sh --epochs 2 --bn local
set -euo pipefail
source "$(dirname "$0")/common.sh"
help_if_asked "$@"
RAW=/usr/share/datasets/fashion-mnist
need=()
[ -d "$RAW" ] || need+=(dataset-fashion-mnist)
command -v mvn >/dev/null || need+=(maven)
command -v javac >/dev/null || need+=(openjdk-17-jdk-headless)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} ..." >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${need[@]}"
fi
if [ ! -f "$ROOT/out/fashion/_SYNCBN_PREPARED" ]; then
  "$ROOT/jobs/prepare-data.sh" --input "$RAW" --output "$ROOT/out/fashion" --files 4
fi
exec "$ROOT/jobs/train.sh" --data "$ROOT/out/fashion" --workers 2 --batch-per-worker 32 --bn sync --epochs 10 \
  --metrics-out "$ROOT/out/quickstart-metrics.csv" --step-log "$ROOT/out/quickstart-steps.csv" \
  --checkpoint-dir "$ROOT/out/quickstart-ckpt" --model-out "$ROOT/out/quickstart-model.bin" "$@"
