#!/usr/bin/env bash
# usage: jobs/bench-report.sh [--rounds R] [--no-accuracy] [--output FILE]
# Regenerates docs/performance.md (or FILE): every benchmark beside its peer from ../shared/peers, run one
# after the other in this sitting, with the machine (CPU, flags, gemm) and the date at the top:
#   single process, jobs/bench.sh, against native PyTorch (torch-native, fp32 and bf16 autocast) at 2 threads
#   batch 64 and 1 thread batch 32, R rounds (default 5; from 3 on, a median row per setting); the per-layer profile; Spark local[2], W=2 x 32,
#   local and sync BN (jobs/bench-spark.sh 25600 2) against PyTorch DDP (torch-ddp, 2 processes x 32, local BN);
#   resnet-20 the same way (one process against torch-native --net resnet-20, its profile, and Spark local[2]
#   local against sync BN on 3,200 images); the coordination service's scale model (jobs/bench-protocol.sh);
#   and, unless --no-accuracy, the 10-epoch test
#   accuracy of one process and of Spark W=2 x 32 sync BN with seed 1.
# Needs Debian's python3-torch (apt-get install -y python3-torch) for the peers. About 55 minutes on 2 cores (30 with --rounds 2);
# run it with nothing else running.
source "$(dirname "$0")/common.sh"
help_if_asked "$@"
ROUNDS=5; ACCURACY=1; REPORT="$ROOT/docs/performance.md"
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --no-accuracy) ACCURACY=0; shift ;;
    --output) REPORT="$2"; shift 2 ;;
    *) echo "error: unknown argument '$1' (see jobs/bench-report.sh --help)" >&2; exit 2 ;;
  esac
done
PEERS="${PEERS_DIR:-$ROOT/../shared/peers}"
PY=/usr/bin/python3
[ -f "$PEERS/torch-native/train.py" ] || { echo "error: no peers in $PEERS (set PEERS_DIR)" >&2; exit 2; }
"$PY" -c 'import torch' 2>/dev/null || { echo "error: $PY has no torch: apt-get install -y python3-torch" >&2; exit 2; }
OUT="$ROOT/out/bench-report"; mkdir -p "$OUT"
build_if_needed
log() { echo "bench-report: $*" >&2; }
kv() { grep -oE "(^| )$2=[^ ]*" "$1" | tail -n 1 | sed 's/.*=//'; } # the last value of key=value in a log
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# The median of the arguments (numbers), printed as given or, for an even count, the mean of the middle two.
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The median row of one setting's round rows ("| threads | batch | round | value | ... |", one a line): each value
# column's median over the rounds, to two places where the column has decimals (ratios), else whole; nothing
# below 3 rounds.
median_row() {
  [ "$ROUNDS" -ge 3 ] || return 0
  local first; first=$(head -n 1 <<< "$1")
  local row="|$(cut -d'|' -f2 <<< "$first")|$(cut -d'|' -f3 <<< "$first")| median |" j col m
  for j in $(seq 5 $(($(awk -F'|' '{ print NF }' <<< "$first") - 1))); do
    col=$(sed '/^$/d' <<< "$1" | cut -d'|' -f"$j" | tr -d ' ')
    m=$(median $col)
    case "$col" in *.*) row+=" $(printf '%.2f' "$m") |" ;; *) row+=" $(printf '%.0f' "$m") |" ;; esac
  done
  echo "$row"
}
export OMP_NUM_THREADS

# --- single process against native PyTorch
single_rows=""
for setting in "2 64" "1 32"; do
  set -- $setting; threads=$1; batch=$2
  rows=""
  for round in $(seq 1 "$ROUNDS"); do
    tag="t$threads-b$batch-r$round"
    log "single process $tag"
    "$ROOT/jobs/bench.sh" --threads "$threads" --batch "$batch" > "$OUT/bench-$tag.log" 2>&1
    OMP_NUM_THREADS=$threads "$PY" "$PEERS/torch-native/train.py" --threads "$threads" --batch "$batch" --max-train 12800 > "$OUT/torch-fp32-$tag.log" 2>&1
    OMP_NUM_THREADS=$threads "$PY" "$PEERS/torch-native/train.py" --threads "$threads" --batch "$batch" --max-train 12800 --bf16 > "$OUT/torch-bf16-$tag.log" 2>&1
    ours=$(kv "$OUT/bench-$tag.log" images_per_s); gemm=$(kv "$OUT/bench-$tag.log" gemm_gflops); gflops=$(kv "$OUT/bench-$tag.log" gflops)
    fp32=$(kv "$OUT/torch-fp32-$tag.log" imgs_per_s); bf16=$(kv "$OUT/torch-bf16-$tag.log" imgs_per_s)
    rows+="| $threads | $batch | $round | $(printf '%.0f' "$ours") | $(printf '%.0f' "$fp32") | $(ratio "$ours" "$fp32") | $(printf '%.0f' "$bf16") | $(ratio "$ours" "$bf16") | $(ratio "$gflops" "$gemm") |"$'\n'
    GEMM="$gemm"
  done
  single_rows+="$rows"; m=$(median_row "$rows"); [ -z "$m" ] || single_rows+="$m"$'\n'
done
log "per-layer profile"
"$ROOT/jobs/bench.sh" --threads 2 --batch 64 --profile > "$OUT/profile.log" 2>&1
profile=$(grep '^|' "$OUT/profile.log")

# --- resnet-20: one process against native PyTorch, its profile, and Spark sync against local BN
resnet_rows=""
for setting in "2 64" "1 32"; do
  set -- $setting; threads=$1; batch=$2
  rows=""
  for round in $(seq 1 "$ROUNDS"); do
    tag="resnet-t$threads-b$batch-r$round"
    log "resnet-20 $tag"
    "$ROOT/jobs/bench.sh" --net resnet-20 --threads "$threads" --batch "$batch" --warmup-steps 30 --steps 100 > "$OUT/bench-$tag.log" 2>&1
    OMP_NUM_THREADS=$threads "$PY" "$PEERS/torch-native/train.py" --net resnet-20 --threads "$threads" --batch "$batch" --max-train 3840 > "$OUT/torch-$tag.log" 2>&1
    ours=$(kv "$OUT/bench-$tag.log" images_per_s); gemm=$(kv "$OUT/bench-$tag.log" gemm_gflops); gflops=$(kv "$OUT/bench-$tag.log" gflops)
    fp32=$(kv "$OUT/torch-$tag.log" imgs_per_s)
    rows+="| $threads | $batch | $round | $(printf '%.0f' "$ours") | $(printf '%.0f' "$fp32") | $(ratio "$ours" "$fp32") | $(ratio "$gflops" "$gemm") |"$'\n'
  done
  resnet_rows+="$rows"; m=$(median_row "$rows"); [ -z "$m" ] || resnet_rows+="$m"$'\n'
done
log "resnet-20 profile"
"$ROOT/jobs/bench.sh" --net resnet-20 --threads 2 --batch 64 --warmup-steps 30 --steps 100 --profile > "$OUT/resnet-profile.log" 2>&1
resnet_profile=$(grep '^|' "$OUT/resnet-profile.log")
log "resnet-20 in Spark local[2]"
"$ROOT/jobs/bench-spark.sh" 3200 2 resnet-20 > "$OUT/bench-spark-resnet.log" 2>&1
rl=$(tail -n 1 "$ROOT/out/bench-spark-resnet-20/spark-local.csv" | cut -d, -f7); ry=$(tail -n 1 "$ROOT/out/bench-spark-resnet-20/spark-sync.csv" | cut -d, -f7)
rs=$(tail -n 1 "$ROOT/out/bench-spark-resnet-20/single.csv" | cut -d, -f7)

# --- Spark against PyTorch DDP
log "Spark local[2] and DDP"
"$ROOT/jobs/bench-spark.sh" 25600 2 > "$OUT/bench-spark.log" 2>&1
"$PY" "$PEERS/torch-ddp/ddp.py" --workers 2 --batch-per-worker 32 --bn local --max-train 25600 > "$OUT/ddp.log" 2>&1
csv() { tail -n 1 "$ROOT/out/bench-spark/$1.csv" | cut -d, -f"$2"; }
ddp=$(kv "$OUT/ddp.log" imgs_per_s)
sl=$(csv spark-local 7); sy=$(csv spark-sync 7); single=$(csv single 7)

# --- the coordination service alone
log "protocol scale model"
"$ROOT/jobs/bench-protocol.sh" 1x2,2x4,8x8 200 > "$OUT/protocol.log" 2>&1
protocol=$(grep '^|' "$OUT/protocol.log")
for delay in 0.1 0.5; do
  log "protocol scale model, resnet-20, $delay ms each way"
  "$ROOT/jobs/bench-protocol.sh" 1x2,2x4,8x8 30 --net resnet-20 --delay-ms "$delay" > "$OUT/protocol-resnet-$delay.log" 2>&1
done

# --- accuracy
accuracy=""
if [ "$ACCURACY" = 1 ]; then
  log "10 epochs, one process"
  "$ROOT/jobs/train-local.sh" --epochs 10 --batch 64 --seed 1 --progress-s 0 --metrics-out "$OUT/acc-local.csv" > "$OUT/acc-local.log" 2>&1
  log "10 epochs, Spark W=2 x 32 sync BN"
  "$ROOT/jobs/train.sh" --master 'local[2]' --epochs 10 --seed 1 --progress-s 0 --metrics-out "$OUT/acc-spark.csv" > "$OUT/acc-spark.log" 2>&1
  pct() { awk -v v="$(tail -n 1 "$1" | cut -d, -f5)" 'BEGIN { printf "%.2f%%", 100 * v }'; }
  minutes() { awk -F, 'NR > 1 { s += $6 } END { printf "%.1f", s / 60 }' "$1"; }
  accuracy="| one process, batch 64, 2 threads | $(pct "$OUT/acc-local.csv") | $(minutes "$OUT/acc-local.csv") | \`jobs/train-local.sh --epochs 10 --batch 64 --seed 1\` |
| Spark local[2], W=2 × 32, sync BN | $(pct "$OUT/acc-spark.csv") | $(minutes "$OUT/acc-spark.csv") | \`jobs/train.sh --master 'local[2]' --epochs 10 --seed 1\` |"
fi

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
flags=$(grep -m1 -o -w -E 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' /proc/cpuinfo | sort -u | paste -sd ' ')
mkdir -p "$(dirname "$REPORT")"
{
  echo "# Performance"
  echo
  echo "Generated by \`jobs/bench-report.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'): $cpu, $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB;"
  echo "flags ${flags:-none of avx2/avx512f/avx512_bf16/amx}; float gemm 1024³ $(printf '%.0f' "$GEMM") GFLOP/s (all cores, ND4J). Every figure"
  echo "below sits beside its peer's from the same run (../shared/peers); on these virtual machines a run of either"
  echo "side can vary by 2x within minutes, so read the ratios of each round, not one absolute figure. The rounds"
  echo "alternate the two programs; a setting's median row is each column's median over its rounds (for a ratio, the"
  echo "median of the rounds' ratios)."
  echo
  echo "## One process against native PyTorch"
  echo
  echo "\`jobs/bench.sh --threads T --batch B\` (500 steps after a warm-up) against \`train.py --threads T --batch B"
  echo "--max-train 12800\` of torch-native (Debian's PyTorch 1.13, oneDNN inside), float32 and with"
  echo "\`torch.autocast(\"cpu\", torch.bfloat16)\`; the same seed network, data and Adam. The last column is the"
  echo "fraction of the machine's float gemm that this project's training reaches (22.8 MFLOP per image)."
  echo
  echo "| threads | batch | round | this project, images/s | PyTorch fp32 | ratio | PyTorch bf16 | ratio | of gemm |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s' "$single_rows"
  echo
  echo "Where a step's time goes (\`jobs/bench.sh --threads 2 --batch 64 --profile\`; with 2 threads a layer's"
  echo "figures are one shard's 32 samples while the other shard runs alongside), milliseconds per step:"
  echo
  echo "$profile"
  echo
  echo "## A residual network: resnet-20"
  echo
  echo "The same against torch-native's \`--net resnet-20\` (He et al. 2016's CIFAR ResNet, 272,186 parameters on"
  echo "1×28×28, 21 BN layers; $(grep -o '[0-9.]* MFLOP per image' "$OUT/resnet-profile.log") trained): \`jobs/bench.sh --net resnet-20 --threads T --batch B"
  echo "--warmup-steps 30 --steps 100\` against \`train.py --net resnet-20 --threads T --batch B --max-train 3840\`."
  echo
  echo "| threads | batch | round | this project, images/s | PyTorch fp32 | ratio | of gemm |"
  echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  printf '%s' "$resnet_rows"
  echo
  echo "Where a step's time goes (2 threads, batch 64; a block is conv, BN+ReLU, conv, BN+add+ReLU and the shortcut):"
  echo
  echo "$resnet_profile"
  echo
  echo "In Spark local[2], W=2 × 32 (\`jobs/bench-spark.sh 3200 2 resnet-20\`, epoch 2 of 2; 42 BN meetings a step in"
  echo "sync BN): local BN $(printf '%.0f' "$rl") images/s, sync BN $(printf '%.0f' "$ry"), one process $(printf '%.0f' "$rs"); sync BN keeps"
  echo "$(ratio "$ry" "$rl") of local BN's images/s."
  echo
  echo '```'
  grep -A 8 '^run ' "$OUT/bench-spark-resnet.log"
  echo '```'
  echo
  echo "## Spark against PyTorch DDP"
  echo
  echo "\`jobs/bench-spark.sh 25600 2\` (Spark local[2], W=2 replicas × 32, one thread each; epoch 2 of 2 on 25,600"
  echo "images) and, right after it, torch-ddp (\`ddp.py --workers 2 --batch-per-worker 32 --bn local --max-train 25600\`:"
  echo "2 processes, gloo; PyTorch's SyncBatchNorm refuses CPU modules, so DDP has no sync BN to compare)."
  echo
  echo "| run | images/s | against DDP |"
  echo "| --- | ---: | ---: |"
  echo "| Spark, local BN | $(printf '%.0f' "$sl") | $(ratio "$sl" "$ddp") |"
  echo "| Spark, sync BN | $(printf '%.0f' "$sy") | $(ratio "$sy" "$ddp") |"
  echo "| PyTorch DDP, local BN | $(printf '%.0f' "$ddp") | 1.00 |"
  echo "| one process, batch 64, 2 threads (this project) | $(printf '%.0f' "$single") | |"
  echo
  echo "Sync BN keeps $(ratio "$sy" "$sl") of local BN's images/s. The step split of each run:"
  echo
  echo '```'
  grep -A 8 '^run ' "$OUT/bench-spark.log"
  echo '```'
  echo
  echo "## The coordination service alone"
  echo
  echo "\`jobs/bench-protocol.sh 1x2,2x4,8x8 200\`: E executors × R replicas as threads of one JVM on 127.0.0.1,"
  echo "no compute, the default network's sizes; with each executor's replicas aggregated by its hub and with a"
  echo "connection per replica. The bytes are exact; the times are 2 cores running every \"executor\"."
  echo
  echo "$protocol"
  echo
  echo "The same for resnet-20 (21 BN layers: 42 meetings a step in sync BN), each connection through a proxy that"
  echo "holds every chunk 0.1 ms, then 0.5 ms, each way, as a LAN's latency would (\`jobs/bench-protocol.sh 1x2,2x4,8x8 30"
  echo "--net resnet-20 --delay-ms D\`). With one executor the BN meetings stay inside its hub; with more, each meeting"
  echo "is one round trip per executor, whatever its number of replicas."
  for delay in 0.1 0.5; do
    echo
    echo "$delay ms each way:"
    echo
    grep '^|' "$OUT/protocol-resnet-$delay.log"
  done
  if [ -n "$accuracy" ]; then
    echo
    echo "## Accuracy"
    echo
    echo "Fashion-MNIST, all 60,000 training and 10,000 test images, 10 epochs, Adam 1e-3 with cosine decay, seed 1"
    echo "(published for this kind of network, 2 conv + pooling + BN: 93.4%):"
    echo
    echo "| run | test accuracy | minutes | command |"
    echo "| --- | ---: | ---: | --- |"
    echo "$accuracy"
  fi
} > "$REPORT"
log "wrote $REPORT"
