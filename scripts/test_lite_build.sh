#!/usr/bin/env bash
# CTest `dryrun.lite_build` (label dryrun): configures and builds the lite image I/O variant of
# rdm (-DRDM_IMAGE_IO=lite, the GPU machine's build; see scripts/gpu-check.sh) beside the main
# build, with the targets scripts/gpu-check.sh builds there (rdm, rdm_gpu_tests, rdm_gpu_check). Only the image I/O files differ from the main build, so with ccache warm from it the
# other files are cache hits. Usage: scripts/test_lite_build.sh MAIN_BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: test_lite_build.sh MAIN_BUILD_DIR}/lite-variant
t=$(date +%s)
cmake -S . -B "$dir" -G Ninja -DRDM_IMAGE_IO=lite -DRDM_BUILD_TESTS=ON -DRDM_BUILD_BENCH=OFF \
  ${RDM_GOLDEN_DIR:+-DRDM_GOLDEN_DIR=$RDM_GOLDEN_DIR} > "$dir.log" 2>&1 || { cat "$dir.log"; exit 1; }
cmake --build "$dir" -j2 --target rdm rdm_gpu_tests rdm_gpu_check >> "$dir.log" 2>&1 || { tail -50 "$dir.log"; exit 1; }
"$dir/rdm" --help > /dev/null
# Direct dependencies only: Debian's LibTorch itself links OpenCV (the GPU machine's wheel does
# not). The list is captured first: `ldd | grep -q` under pipefail fails at random (SIGPIPE).
needed=$(readelf -d "$dir/rdm" | grep NEEDED || true)
if grep -q libopencv <<<"$needed"; then
  echo "lite build links OpenCV: $needed" >&2; exit 1
fi
echo "lite variant built in $(( $(date +%s) - t ))s"
