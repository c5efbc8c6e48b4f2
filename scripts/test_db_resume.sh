#!/usr/bin/env bash
# Kill-and-resume test of `rdm db build`: builds a small collection once without interruption,
# then TRIALS times from scratch with kill -9 at random points (one or two kills per trial)
# followed by the same command until it finishes. Every resumed database must equal the
# uninterrupted one byte for byte (embeddings, index, report, item count), and whenever a
# killed build left a manifest, the database must open. Exit 77 (CTest skip) without the
# tiny CLIP model. Usage: RDM_BIN=build/rdm RDM_GOLDEN_DIR=../shared/golden scripts/test_db_resume.sh
set -euo pipefail
RDM=${RDM_BIN:?set RDM_BIN to the rdm binary}
MODEL=${RDM_GOLDEN_DIR:-}/clip/models/tiny_clip.safetensors
TRIALS=${TRIALS:-10}        # at least this many trials ...
MIN_KILLS=${MIN_KILLS:-10}  # ... and more (up to MAX_TRIALS) until this many kills hit a running build
MAX_TRIALS=${MAX_TRIALS:-60}
N_IMAGES=${N_IMAGES:-40}
[ -f "$MODEL" ] || { echo "SKIP: $MODEL not found"; exit 77; }

work=$(mktemp -d "${TMPDIR:-/tmp}/rdm_db_resume.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Tiny distinct 16x16 24-bit BMPs in a few style folders, plus one broken file and a duplicate.
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"; }
make_bmp() {  # file r g b
  local w=16 h=16 row=48
  { printf 'BM'; le32 $((54 + row * h)); le32 0; le32 54; le32 40; le32 $w; le32 $h
    printf '\x01\x00\x18\x00'; le32 0; le32 $((row * h)); le32 2835; le32 2835; le32 0; le32 0
    local px="" x
    for ((x = 0; x < w; x++)); do px+=$(printf '\\x%02x\\x%02x\\x%02x' $((($3 + x * 7) & 255)) $2 $4); done
    for ((y = 0; y < h; y++)); do printf "$px"; done; } > "$1"
}
for ((i = 0; i < N_IMAGES; i++)); do
  d="$work/images/style_$((i % 4))"; mkdir -p "$d"
  make_bmp "$d/img_$i.bmp" $(((i * 37) & 255)) $(((i * 91) & 255)) $(((i * 13 + 7) & 255))
done
printf 'not an image' > "$work/images/style_0/broken.bmp"
cp "$work/images/style_1/img_1.bmp" "$work/images/style_3/copy_of_1.bmp"

build() {  # out-dir  (exec: in the background, $! is then the rdm process itself)
  exec "$RDM" -q --threads 1 db build --images "$work/images" --clip "$MODEL" --out "$1" --batch 2 --workers 1
}
same_db() {  # a b
  for f in embeddings.npy index.faiss build_report.tsv; do
    cmp -s "$1/$f" "$2/$f" || { echo "FAIL: $f differs between $1 and $2"; return 1; }
  done
  local ca cb
  ca=$(grep -m1 '"count"' "$1/manifest.json"); cb=$(grep -m1 '"count"' "$2/manifest.json")
  [ "$ca" = "$cb" ] || { echo "FAIL: counts differ: $ca vs $cb"; return 1; }
}

start=$(date +%s%N)
(build "$work/ref")
ms=$((($(date +%s%N) - start) / 1000000))
echo "uninterrupted build: ${ms} ms, $(grep -m1 '"count"' "$work/ref/manifest.json")"
[ "$ms" -gt 0 ] || ms=1

kills=0
# A kill only counts when it hits a build still running: on a loaded machine build times vary
# and a resumed build has less left to do, so trials go on until MIN_KILLS kills landed.
for ((t = 1; t <= MAX_TRIALS && (t <= TRIALS || kills < MIN_KILLS); t++)); do
  out="$work/trial_$t"
  nk=$((1 + RANDOM % 2))
  for ((k = 0; k < nk; k++)); do
    delay_ms=$((RANDOM % (ms * 9 / 10 + 1)))
    (build "$out") & pid=$!
    sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
    if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
    wait "$pid" 2>/dev/null || true
    if [ -f "$out/manifest.json" ]; then
      "$RDM" -q db info "$out" >/dev/null || { echo "FAIL: trial $t: killed build left a broken database"; exit 1; }
    fi
  done
  (build "$out")
  same_db "$work/ref" "$out" || { echo "FAIL: trial $t (kills at random points) differs"; exit 1; }
  echo "trial $t: $nk kill(s), resumed database identical"
done
echo "OK: $((t - 1)) trials, $kills processes killed, every resumed build equals the uninterrupted one"
[ "$kills" -ge "$MIN_KILLS" ] || { echo "FAIL: only $kills kills landed in $((t - 1)) trials (want >= $MIN_KILLS)"; exit 1; }
