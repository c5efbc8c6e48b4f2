#!/usr/bin/env bash
# Downloads the real models and databases into the layout `rdm sample` looks in (for machines
# with internet access; `rdm demo` needs none of this). Resumable (curl -C -), checked by SHA-256.
#
#   scripts/download_models.sh [all|rdm|clip|vocab|artbench|openimages] ...   (default: all but openimages)
#
#   $RDM_MODELS (models/)        rdm/rdm768x768/model.ckpt + config.yaml, clip/ViT-L-14.pt,
#                                clip/bpe_simple_vocab_16e6.txt.gz
#   $RDM_DATABASES (databases/)  artbench-<style>/ (imported with `rdm db import`)
#   $RDM_DOWNLOADS (downloads/)  the zip archives
#
# Sources: CompVis/latent-diffusion README ("Retrieval Augmented Diffusion Models") and
# openai/CLIP. The CLIP weights and vocabulary have published SHA-256 sums (the CLIP URL contains
# it). CompVis publishes none for the RDM checkpoint and the database archives: their sums are
# recorded in $RDM_DOWNLOADS/SHA256SUMS.local on the first download and checked on every later
# run (set RDM_SHA256_RDM / RDM_SHA256_ARTBENCH / RDM_SHA256_OPENIMAGES to pin known values).
set -euo pipefail

MODELS=${RDM_MODELS:-models}
DATABASES=${RDM_DATABASES:-databases}
DOWNLOADS=${RDM_DOWNLOADS:-downloads}
RDM_BIN=${RDM_BIN:-$(dirname "$0")/../build/rdm}
HERE=$(cd "$(dirname "$0")/.." && pwd)

URL_RDM=https://ommer-lab.com/files/rdm/model.ckpt
URL_ARTBENCH=https://ommer-lab.com/files/rdm/artbench_databases.zip
URL_OPENIMAGES=https://ommer-lab.com/files/rdm/openimages_database.zip
SHA_CLIP=b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836
URL_CLIP=https://openaipublic.azureedge.net/clip/models/$SHA_CLIP/ViT-L-14.pt
SHA_VOCAB=924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a
URL_VOCAB=https://raw.githubusercontent.com/openai/CLIP/d05afc436d78f1c48dc0dbf8e5980a9d471f35f6/clip/bpe_simple_vocab_16e6.txt.gz
STYLES="art_nouveau baroque expressionism impressionism post_impressionism realism romanticism renaissance surrealism ukiyo_e"

command -v curl >/dev/null || { echo "download_models.sh: curl is needed" >&2; exit 1; }
mkdir -p "$MODELS/rdm/rdm768x768" "$MODELS/clip" "$DATABASES" "$DOWNLOADS"
LOCAL_SUMS="$DOWNLOADS/SHA256SUMS.local"
touch "$LOCAL_SUMS"

# fetch URL DEST [SHA256]: resumable download to DEST.part, checked, then renamed to DEST.
fetch() {
  local url=$1 dest=$2 want=${3:-}
  local name; name=$(basename "$dest")
  if [ -z "$want" ]; then want=$(awk -v n="$name" '$2 == n {print $1}' "$LOCAL_SUMS" | tail -1); fi
  if [ -f "$dest" ]; then
    if [ -z "$want" ] || [ "$(sha256sum "$dest" | cut -d' ' -f1)" = "$want" ]; then
      echo "ok      $dest"; return 0
    fi
    echo "checksum mismatch for existing $dest: downloading again" >&2
    mv "$dest" "$dest.bad"
  fi
  echo "fetch   $url -> $dest"
  curl -fL --retry 5 --retry-delay 5 -C - -o "$dest.part" "$url"
  local got; got=$(sha256sum "$dest.part" | cut -d' ' -f1)
  if [ -n "$want" ] && [ "$got" != "$want" ]; then
    echo "download_models.sh: SHA-256 of $dest is $got, expected $want (file kept as $dest.part; delete it to retry)" >&2
    exit 1
  fi
  if [ -z "$want" ]; then
    echo "$got  $name" >>"$LOCAL_SUMS"
    echo "note    no published SHA-256 for $name: recorded $got in $LOCAL_SUMS"
  fi
  mv "$dest.part" "$dest"
}

get_rdm() {
  fetch "$URL_RDM" "$MODELS/rdm/rdm768x768/model.ckpt" "${RDM_SHA256_RDM:-}"
  if [ ! -f "$MODELS/rdm/rdm768x768/config.yaml" ]; then
    cp "$HERE/models/rdm-768.yaml" "$MODELS/rdm/rdm768x768/config.yaml"
    echo "ok      $MODELS/rdm/rdm768x768/config.yaml"
  fi
}
get_clip() { fetch "$URL_CLIP" "$MODELS/clip/ViT-L-14.pt" "$SHA_CLIP"; }
get_vocab() { fetch "$URL_VOCAB" "$MODELS/clip/bpe_simple_vocab_16e6.txt.gz" "$SHA_VOCAB"; }

import_dbs() {  # import_dbs ZIP: unzip, then `rdm db import` every database folder in it
  local zip=$1 tmp="$DOWNLOADS/unpacked"
  command -v unzip >/dev/null || { echo "download_models.sh: unzip is needed" >&2; exit 1; }
  [ -x "$RDM_BIN" ] || { echo "download_models.sh: build rdm first (or set RDM_BIN)" >&2; exit 1; }
  mkdir -p "$tmp"
  unzip -q -o "$zip" -d "$tmp"
  find "$tmp" -name '*.npz' -printf '%h\n' | sort -u | while read -r dir; do
    local name; name=$(basename "$dir")
    if [ -f "$DATABASES/$name/manifest.json" ]; then echo "ok      $DATABASES/$name"; continue; fi
    echo "import  $dir -> $DATABASES/$name"
    "$RDM_BIN" db import "$dir" --out "$DATABASES/$name" --clip-identity ViT-L/14 --name "$name"
  done
}
get_artbench() {
  fetch "$URL_ARTBENCH" "$DOWNLOADS/artbench_databases.zip" "${RDM_SHA256_ARTBENCH:-}"
  import_dbs "$DOWNLOADS/artbench_databases.zip"
  for s in $STYLES; do [ -d "$DATABASES/artbench-$s" ] || echo "warning: artbench-$s not found in the archive" >&2; done
}
get_openimages() {
  fetch "$URL_OPENIMAGES" "$DOWNLOADS/openimages_database.zip" "${RDM_SHA256_OPENIMAGES:-}"
  import_dbs "$DOWNLOADS/openimages_database.zip"
}

targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(rdm clip vocab artbench)
for t in "${targets[@]}"; do
  case $t in
    all) get_rdm; get_clip; get_vocab; get_artbench ;;
    rdm) get_rdm ;;
    clip) get_clip ;;
    vocab) get_vocab ;;
    artbench) get_artbench ;;
    openimages) get_openimages ;;
    *) echo "usage: $0 [all|rdm|clip|vocab|artbench|openimages]..." >&2; exit 2 ;;
  esac
done
echo "done. Try: ./build/rdm sample \"a lighthouse in a storm\" --database artbench-ukiyo_e"
