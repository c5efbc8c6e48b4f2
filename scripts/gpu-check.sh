#!/usr/bin/env bash
# The whole GPU check in one command, for a GPU machine without network or package manager
# (see README "GPU check"): unpacks .gpu-deps/ (made by scripts/gpu-deps.sh), configures against
# the LibTorch of the machine's PyTorch wheel with the lite image I/O, builds with all cores, runs
# the gpu tests, the golden selftests, and rdm_gpu_check (real 768 configuration, random weights:
# UNet step, decode, one 50-step image, images/s at batch 8, fp16 and bf16, peak GPU memory).
# Every step has a timeout; results go to ONE JSON file, $OUT/gpu-check.json, the full log to
# $OUT/gpu-check.log (OUT defaults to ./gpu-check-out).
#   scripts/gpu-check.sh                 on the GPU machine
#   scripts/gpu-check.sh --cpu-dry-run   here (Debian): same steps against Debian's LibTorch on
#                                        the CPU, a small configuration instead of 768
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=gpu
[ "${1:-}" = "--cpu-dry-run" ] && MODE=dry
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
LOG=$OUT/gpu-check.log
RESULTS=$OUT/steps.tsv
: > "$LOG"
: > "$RESULTS"
T0=$(date +%s)
DEPS=${RDM_GPU_DEPS_DIR:-/tmp/rdm-gpu-deps}
ARCH=x86_64-linux-gnu
JOBS=$(nproc)
TSCALE=1  # timeouts are sized for the GPU machine (16 cores); the dry run scales them

say() { echo "[gpu-check +$(( $(date +%s) - T0 ))s] $*" | tee -a "$LOG" >&2; }
# step NAME TIMEOUT_S CMD...: runs CMD with a timeout, output to the log, one result row.
step() {
  local name=$1 limit=$(( $2 * TSCALE )); shift 2
  say "$name (timeout ${limit}s): $*"
  local t=$(date +%s) rc
  timeout --kill-after=10 "$limit" "$@" >> "$LOG" 2>&1
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t ))" >> "$RESULTS"
  say "$name: exit $rc in $(( $(date +%s) - t ))s"
  return $rc
}
# capture NAME TIMEOUT_S FILE CMD...: like step, stdout into FILE (JSON pieces).
capture() {
  local name=$1 limit=$(( $2 * TSCALE )) file=$3; shift 3
  say "$name (timeout ${limit}s): $*"
  local t=$(date +%s) rc
  timeout --kill-after=10 "$limit" "$@" > "$file" 2>> "$LOG"
  rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t ))" >> "$RESULTS"
  say "$name: exit $rc in $(( $(date +%s) - t ))s"
  return $rc
}

UNPACK=(python3 -c 'import sys, tarfile; t = tarfile.open(sys.argv[1]); t.extractall(sys.argv[2], **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))')  # no xz binary needed

# 1. Carried dependencies and goldens.
[ -f .gpu-deps/deps.tar.xz ] || { say "no .gpu-deps/deps.tar.xz: run scripts/gpu-deps.sh first"; exit 1; }
rm -rf "$DEPS"
step unpack 120 "${UNPACK[@]}" .gpu-deps/deps.tar.xz "$DEPS" || exit 1
if [ -n "${RDM_GOLDEN_DIR:-}" ] && [ -d "$RDM_GOLDEN_DIR/ldm" ]; then
  GOLDEN=$RDM_GOLDEN_DIR
elif [ -f .gpu-deps/golden.tar.xz ]; then
  GOLDEN=$DEPS/golden
  step unpack-golden 120 "${UNPACK[@]}" .gpu-deps/golden.tar.xz "$GOLDEN"
else
  GOLDEN=$ROOT/../shared/golden
fi
export RDM_GOLDEN_DIR=$GOLDEN
export LD_LIBRARY_PATH=$DEPS/usr/lib/$ARCH${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# 2. Configure: carried dependencies first on every search path, lite image I/O.
if [ $MODE = gpu ]; then
  BUILD=$ROOT/build-gpu
  TORCH_PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || { say "no PyTorch"; exit 1; }
  export TORCH_CUDA_ARCH_LIST=9.0
  [ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH
  EXTRA=(-DCMAKE_CUDA_ARCHITECTURES=90 "-DCMAKE_PREFIX_PATH=$DEPS/usr;$TORCH_PREFIX")
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))' >> "$LOG" 2>&1
  nvidia-smi >> "$LOG" 2>&1
  DEVICE=cuda
else
  BUILD=$ROOT/build-dryrun
  EXTRA=("-DCMAKE_PREFIX_PATH=$DEPS/usr")
  DEVICE=cpu
  JOBS=${RDM_DRYRUN_JOBS:-2}
  TSCALE=${RDM_DRYRUN_TIMEOUT_SCALE:-8}
fi
step configure 300 cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRDM_IMAGE_IO=lite \
  -DRDM_BUILD_BENCH=OFF "-DRDM_GOLDEN_DIR=$GOLDEN" "${EXTRA[@]}" || { say "configure failed"; }
grep -E '^(faiss|spdlog|fmt|yaml-cpp|GTest|CLI11|nlohmann_json|Torch)_DIR|^(JPEG|PNG|SQLite3|ZLIB)_LIBRAR|_LIBRARY:' \
  "$BUILD/CMakeCache.txt" >> "$LOG" 2>/dev/null

# 3. Build: the tool and the GPU programs first, the unit tests after (a failure there does not
#    stop the rest); rdm_gpu_check again without allocator statistics if those do not compile.
step build 420 cmake --build "$BUILD" -j "$JOBS" --target rdm rdm_gpu_tests
if ! step build-gpu-check 240 cmake --build "$BUILD" -j "$JOBS" --target rdm_gpu_check; then
  cmake "$BUILD" -DRDM_GPU_MEM_STATS=OFF >> "$LOG" 2>&1
  step build-gpu-check-nostats 240 cmake --build "$BUILD" -j "$JOBS" --target rdm_gpu_check
fi
step build-unit 300 cmake --build "$BUILD" -j "$JOBS" --target rdm_unit_tests

# 4. Tests and measurements.
step ctest-gpu 300 ctest --test-dir "$BUILD" -L gpu --output-on-failure --timeout 240
step ctest-image-io 120 ctest --test-dir "$BUILD" -R 'ImageIo' --output-on-failure --timeout 60
RDM=$BUILD/rdm
SELFTEST_DEV=()
selftest_help=$("$RDM" selftest --help 2>/dev/null || true)
if grep -q -- '--device' <<<"$selftest_help"; then SELFTEST_DEV=(--device "$DEVICE"); fi
for set in ldm clip; do
  step "selftest-$set" 300 "$RDM" selftest --golden "$GOLDEN/$set" "${SELFTEST_DEV[@]}"
done
# Low precisions against the float32 goldens: their errors are recorded (they are expected to
# exceed the fp32 tolerances, so these runs do not count towards "ok").
LOW_PRECISIONS="bf16"; [ $MODE = gpu ] && LOW_PRECISIONS="fp16 bf16"
if [ ${#SELFTEST_DEV[@]} -gt 0 ]; then
  for prec in $LOW_PRECISIONS; do
    for set in ldm clip; do
      say "selftest-$set-$prec (errors recorded, not judged)"
      timeout --kill-after=10 $(( 120 * TSCALE )) "$RDM" selftest --golden "$GOLDEN/$set" "${SELFTEST_DEV[@]}" \
        --precision "$prec" --verbose-cases > "$OUT/selftest-$set-$prec.txt" 2>&1 || true
    done
  done
fi
if [ $MODE = gpu ]; then
  capture bench-768 420 "$OUT/bench.json" "$BUILD/tests/rdm_gpu_check" --device cuda \
    --config models/rdm-768.yaml --precisions fp16,bf16 --steps 50 --batch 8
  capture bench-768-channels-last 240 "$OUT/bench_cl.json" "$BUILD/tests/rdm_gpu_check" --device cuda \
    --config models/rdm-768.yaml --precisions fp16 --steps 50 --batch 8 --channels-last
else
  capture bench-small 300 "$OUT/bench.json" "$BUILD/tests/rdm_gpu_check" --device cpu \
    --config tests/gpu_check/rdm-small.json --size 64 --precisions bf16 --steps 3 --batch 2 --repeat 1
fi

# 5. One JSON file with every step, the bench figures and where the log is.
python3 - "$RESULTS" "$OUT/bench.json" "$OUT/gpu-check.json" "$MODE" "$(( $(date +%s) - T0 ))" "${#SELFTEST_DEV[@]}" <<'EOF'
import json, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
steps = {n: {"exit": int(rc), "seconds": int(s)} for n, rc, s in rows}
def load_json(path):  # the JSON object on stdout; log lines before it (spdlog warnings) are skipped
    text = open(path).read()
    start = text.find("\n{") + 1 if not text.startswith("{") else 0
    return json.loads(text[start:])
try:
    bench = load_json(sys.argv[2])
except Exception as e:
    bench = {"error": f"no bench result ({e})"}
try:
    bench_cl = load_json(sys.argv[2].replace("bench.json", "bench_cl.json"))
except Exception:
    bench_cl = None
import glob, os, re
low = {}
for f in sorted(glob.glob(os.path.join(os.path.dirname(sys.argv[3]), "selftest-*-*.txt"))):
    name = os.path.basename(f)[len("selftest-"):-len(".txt")]
    text = open(f).read()
    summary = re.findall(r"^\d+ passed, \d+ failed, \d+ skipped$", text, re.M)
    worst, case = {}, None
    for line in text.splitlines():
        m = re.match(r"^(PASS|FAIL)  (\S+)", line)
        if m:
            case = m.group(2)
            continue
        m = re.search(r"^\s+(?:ok |BAD) (\S+)  max_abs_err (\S+)", line)
        if m and case:
            worst[case + ":" + m.group(1)] = float(m.group(2))
    low[name] = {"summary": summary[-1] if summary else text.strip().splitlines()[-1:] ,
                 "max_abs_err": worst}
out = {"mode": sys.argv[4], "total_seconds": int(sys.argv[5]), "ok": all(v["exit"] == 0 for v in steps.values()),
       "selftest_device": "cuda/cpu as asked" if sys.argv[6] != "0" else "cpu (this rdm selftest has no --device)",
       "steps": steps, "selftest_low_precision": low, "bench": bench, "bench_channels_last": bench_cl, "log": "gpu-check.log"}
json.dump(out, open(sys.argv[3], "w"), indent=2)
print(json.dumps({k: out[k] for k in ("mode", "total_seconds", "ok")}))
EOF
rm -f "$RESULTS"
say "done: $OUT/gpu-check.json"
