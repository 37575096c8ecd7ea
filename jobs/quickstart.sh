#!/usr/bin/env bash
# The main job on one machine, from nothing: installs the dataset package if missing, builds, prepares
# Fashion-MNIST as Parquet (once) and trains 2 replicas with sync BN in Spark local mode for 10 epochs.
# Extra options go to the training command, e.g. jobs/quickstart.sh --epochs 2 --bn local
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RAW=/usr/share/datasets/fashion-mnist
if [ ! -d "$RAW" ]; then
  echo "installing dataset-fashion-mnist ..." >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist
  else sudo apt-get update -qq && sudo apt-get install -y -qq dataset-fashion-mnist; fi
fi
if [ ! -f "$ROOT/out/fashion/_SYNCBN_PREPARED" ]; then
  "$ROOT/jobs/prepare-data.sh" --input "$RAW" --output "$ROOT/out/fashion" --files 4
fi
exec "$ROOT/jobs/train.sh" --data "$ROOT/out/fashion" --workers 2 --batch-per-worker 32 --bn sync --epochs 10 \
  --metrics-out "$ROOT/out/quickstart-metrics.csv" --step-log "$ROOT/out/quickstart-steps.csv" \
  --checkpoint-dir "$ROOT/out/quickstart-ckpt" --model-out "$ROOT/out/quickstart-model.bin" "$@"
