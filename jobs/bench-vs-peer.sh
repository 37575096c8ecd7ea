#!/usr/bin/env bash
# usage: jobs/bench-vs-peer.sh [threads list, default "1 2"] [batch list, default "16 32 64 128 256"]
# This project's single-process training speed against PyTorch through DJL (../shared/peers/djl-pytorch,
# or $PEER_DIR), one after the other at each thread count and batch size, for ratios measured in one
# sitting. Prints a Markdown table: threads, batch, images/s of each, ratio; then the machine's gemm speed.
# Takes about 15 minutes on 2 cores. Run it with nothing else running.
set -euo pipefail
source "$(dirname "$0")/common.sh"
help_if_asked "$@"
PEER_DIR="${PEER_DIR:-$ROOT/../shared/peers/djl-pytorch}"
THREAD_LIST="${1:-1 2}"
BATCH_LIST="${2:-16 32 64 128 256}"
[ -x "$PEER_DIR/run.sh" ] || { echo "error: no peer at $PEER_DIR/run.sh (set PEER_DIR)" >&2; exit 2; }
# Both sides see about the same number of images: ours 12,800 warm-up + 19,200 timed; the peer warms up on
# its own and times one epoch of 20,000.
echo "| threads | batch | this project, images/s | PyTorch (DJL), images/s | ratio |"
echo "| ---: | ---: | ---: | ---: | ---: |"
gemm=""
for threads in $THREAD_LIST; do
  for batch in $BATCH_LIST; do
    ours_line="$("$ROOT/jobs/bench.sh" --threads "$threads" --batch "$batch" \
      --warmup-steps $((12800 / batch)) --steps $((19200 / batch)) 2>/dev/null | tail -1)"
    ours="$(sed -n 's/.*images_per_s=\([0-9.]*\).*/\1/p' <<<"$ours_line")"
    gemm="$(sed -n 's/.*gemm_gflops=\([0-9.]*\).*/\1/p' <<<"$ours_line")"
    peer="$(THREADS="$threads" BATCH="$batch" "$PEER_DIR/run.sh" 1 20000 2>/dev/null | sed -n 's/.*RESULT.*imgs_per_s=\([0-9.]*\).*/\1/p')"
    [ -n "$ours" ] && [ -n "$peer" ] || { echo "error: a run failed (threads $threads, batch $batch)" >&2; exit 1; }
    awk -v t="$threads" -v b="$batch" -v o="$ours" -v p="$peer" 'BEGIN { printf "| %s | %s | %.0f | %.0f | %.2f |\n", t, b, o, p, o / p }'
  done
done
echo "float gemm 1024^3 on this machine: $gemm GFLOP/s"
