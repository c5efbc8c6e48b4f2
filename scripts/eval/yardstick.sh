#!/usr/bin/env bash
# The samplers' quality yardstick on the tiny model (README "Fast solvers: quality measured"):
# one `rdm eval` (retrieval mode) per sampler x step count, each scored against DDIM with 250
# steps from the same seeds (--against: PSNR and CLIP similarity), then one table and one plot.
#
#   scripts/eval/yardstick.sh [OUT]          # OUT = outputs/yardstick
#
# RDM=path/to/rdm picks the binary (default build/rdm); MODEL (tiny), DEMO (the `rdm demo`
# folder whose databases are the styles; made with `rdm demo --no-sample` when missing), SEEDS
# (2), STEPS ("10 15 20 25 50"), SAMPLERS ("ddim plms dpmpp2m unipc euler_a"), REF_STEPS (250),
# THREADS (0 = all CPUs).
# Every eval resumes where it stopped, so a rerun after a kill continues.
set -euo pipefail
RDM=${RDM:-build/rdm}
OUT=${1:-outputs/yardstick}
MODEL=${MODEL:-tiny}
DEMO=${DEMO:-demo}
SEEDS=${SEEDS:-2}
STEPS=${STEPS:-"10 15 20 25 50"}
SAMPLERS=${SAMPLERS:-"ddim plms dpmpp2m unipc euler_a"}
REF_STEPS=${REF_STEPS:-250}
THREADS=${THREADS:-0}
here=$(cd "$(dirname "$0")" && pwd)
[ -d "$DEMO/databases" ] || "$RDM" demo --no-sample --out "$DEMO" > /dev/null
mkdir -p "$OUT"
start=$(date +%s)
common=(--model "$MODEL" --databases "$DEMO/databases" --prompts "$here/yardstick_prompts.txt" --n-seeds "$SEEDS"
        -k 4 --scale 5 --modes retrieval --threads "$THREADS")
ref="$OUT/ddim-$REF_STEPS"
"$RDM" eval "${common[@]}" --steps "$REF_STEPS" --out "$ref" > /dev/null
runs=("$ref")
for s in $SAMPLERS; do
  for n in $STEPS; do
    "$RDM" eval "${common[@]}" --sampler "$s" --steps "$n" --out "$OUT/$s-$n" --against "$ref" > /dev/null
    runs+=("$OUT/$s-$n")
  done
done
"$RDM" eval --tabulate "${runs[@]}" --plot "$OUT/yardstick.png" > "$OUT/yardstick.md"
"$RDM" eval --tabulate "${runs[@]}" --json > "$OUT/yardstick.json"
cat "$OUT/yardstick.md"
echo "yardstick: ${#runs[@]} evals in $(( $(date +%s) - start )) s; table $OUT/yardstick.md, plot $OUT/yardstick.png" >&2
