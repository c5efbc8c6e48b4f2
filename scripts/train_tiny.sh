#!/usr/bin/env bash
# Trains the shipped tiny model (models/tiny/) from scratch on the procedural world, on the CPU:
# the autoencoder and the CLIP side by side (one thread each), then the retrieval-augmented
# diffusion model on both (two threads), then exports the files the demo loads.
#
#   scripts/train_tiny.sh [WORK] [DEST]     # WORK = tiny-train/, DEST = models/tiny/
#
# RDM=path/to/rdm picks the binary (default build/rdm). Every stage checkpoints into WORK and
# resumes there when the script is run again after a kill; a finished stage only rewrites its
# model. Measured on a 2-core AMD EPYC VM: see README "Training tiny models".
set -euo pipefail
RDM=${RDM:-build/rdm}
WORK=${1:-tiny-train}
DEST=${2:-models/tiny}
AE_STEPS=${AE_STEPS:-2400}
CLIP_STEPS=${CLIP_STEPS:-2400}
RDM_STEPS=${RDM_STEPS:-12000}
mkdir -p "$WORK"
start=$(date +%s)

"$RDM" train autoencoder --out "$WORK/ae" --steps "$AE_STEPS" --threads 1 2>> "$WORK/ae.log" &
ae=$!
"$RDM" train clip --out "$WORK/clip" --steps "$CLIP_STEPS" --threads 1 2>> "$WORK/clip.log" &
clip=$!
status=0
wait "$ae" || { echo "train_tiny: autoencoder failed, see $WORK/ae.log" >&2; status=1; }
wait "$clip" || { echo "train_tiny: clip failed, see $WORK/clip.log" >&2; status=1; }
[ "$status" = 0 ] || exit 1
echo "train_tiny: autoencoder + clip done in $(( $(date +%s) - start )) s" >&2

"$RDM" train rdm --out "$WORK/rdm" --autoencoder "$WORK/ae" --clip "$WORK/clip" \
  --steps "$RDM_STEPS" --lr 1e-3 --knn-pool 64 --items 50000 --style-prob 0.25 --context-init-gain 20 --threads 2 2>> "$WORK/rdm.log" \
  || { echo "train_tiny: rdm failed, see $WORK/rdm.log" >&2; exit 1; }
echo "train_tiny: all stages done in $(( $(date +%s) - start )) s" >&2

"$RDM" train export --autoencoder "$WORK/ae" --clip "$WORK/clip" --rdm "$WORK/rdm" --out "$DEST" > /dev/null
echo "train_tiny: model in $DEST ($(du -sh "$DEST" | cut -f1))" >&2
