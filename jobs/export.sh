#!/usr/bin/env bash
# usage: jobs/export.sh --model PATH --onnx FILE
# A saved model (a --model-out file, a checkpoint, or a directory saved by SyncBnClassificationModel) as an ONNX
# model for serving elsewhere: input image [N, C, H, W] in [0, 1], outputs logits and probability. Example:
#   jobs/export.sh --model out/model.bin --onnx out/model.onnx
source "$(dirname "$0")/common.sh"
run_main export "$@"
