#!/usr/bin/env bash
# usage: jobs/bench-spark.sh [N] [EPOCHS] [NET]     (defaults 12800, 3 and the seed network; NET as --net takes it, e.g. resnet-20)
# Spark against one process at the same global batch (64), on this machine:
#   single process, batch 64, 2 threads   vs   local[2], 2 replicas x 32, one thread each, BN local and sync.
# Each run trains EPOCHS epochs on the first N images; the figures are those of the last epoch (the first
# one warms up the JIT). Prints images/s, the step-time split (means), the medians of a step's time and of its
# time outside compute, the straggle (the mean wait for the slowest replica's compute, a share of BN sync and
# exchange) and the median overhead (time outside the slowest replica's compute), and the ratios between the runs.
source "$(dirname "$0")/common.sh"
help_if_asked "$@"
N="${1:-12800}"; EPOCHS="${2:-3}"; NET="${3:-}"
OUT="$ROOT/out/bench-spark${NET:+-$NET}"; mkdir -p "$OUT"
common=(--epochs "$EPOCHS" --max-train "$N" --max-test 2000 --seed 1 --progress-s 0 ${NET:+--net "$NET"})
build_if_needed
# shellcheck disable=SC2086
java $JAVA_OPTS dev.syncbn.cli.Main train-local "${common[@]}" --batch 64 --threads 2 --metrics-out "$OUT/single.csv" > "$OUT/single.log" 2>&1
for bn in local sync; do
  # shellcheck disable=SC2086
  java $JAVA_OPTS org.apache.spark.deploy.SparkSubmit --master 'local[2]' --conf spark.task.cpus=1 --class dev.syncbn.cli.Main "$JAR" \
    train "${common[@]}" --workers 2 --batch-per-worker 32 --bn "$bn" --metrics-out "$OUT/spark-$bn.csv" > "$OUT/spark-$bn.log" 2>&1
done
last() { tail -n 1 "$1"; }
field() { echo "$1" | cut -d, -f"$2"; }
s=$(last "$OUT/single.csv"); l=$(last "$OUT/spark-local.csv"); y=$(last "$OUT/spark-sync.csv")
echo "run                      images/s  compute_ms  bn_sync_ms  exchange_ms  update_ms  straggle_ms  median: step_ms  outside_ms  overhead_ms   (last of $EPOCHS epochs, $N images, global batch 64${NET:+, $NET})"
for row in "single-process,$s" "spark W=2 local BN,$l" "spark W=2 sync BN,$y"; do
  name="${row%%,*}"; r="${row#*,}"
  printf '%-24s %9s %11s %11s %12s %10s %12s %16s %11s %12s\n' "$name" "$(field "$r" 7)" "$(field "$r" 8)" "$(field "$r" 9)" "$(field "$r" 10)" \
    "$(field "$r" 11)" "$(field "$r" 14)" "$(field "$r" 12)" "$(field "$r" 13)" "$(field "$r" 15)"
done
# Means first (they are what the epoch cost); then medians, which a few seconds of a busy machine do not move.
awk -v s="$(field "$s" 7)" -v l="$(field "$l" 7)" -v y="$(field "$y" 7)" \
  -v lb="$(field "$l" 9)" -v le="$(field "$l" 10)" -v lu="$(field "$l" 11)" -v yb="$(field "$y" 9)" -v ye="$(field "$y" 10)" -v yu="$(field "$y" 11)" \
  -v lm="$(field "$l" 12)" -v ym="$(field "$y" 12)" -v lo="$(field "$l" 13)" -v yo="$(field "$y" 13)" \
  -v ls="$(field "$l" 14)" -v ys="$(field "$y" 14)" -v lv="$(field "$l" 15)" -v yv="$(field "$y" 15)" 'BEGIN {
  printf "spark/single throughput: local BN %.1f%%, sync BN %.1f%%\n", 100*l/s, 100*y/s
  printf "sync vs local time per step: %+.1f%%; medians: %+.1f%%\n", 100*(l/y-1), 100*(ym/lm-1)
  printf "non-compute per step: local BN %.2f ms, sync BN %.2f ms; medians: %.2f and %.2f ms\n", lb+le+lu, yb+ye+yu, lo, yo
  printf "  of which waiting for the slowest replica'"'"'s compute: %.2f and %.2f ms; the rest (overhead), medians: %.2f and %.2f ms\n", ls, ys, lv, yv
}'
