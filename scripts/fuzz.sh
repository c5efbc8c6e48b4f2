#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan) in build-fuzz/ and runs each for a bounded time.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET=60] [TARGETS...]
# Crashes are written to build-fuzz/crashes/<target>/; exit status non-zero if any target failed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors torch_zip pickle npy png_record gif ico)

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DRDM_BUILD_FUZZ=ON -DRDM_BUILD_TESTS=OFF -DRDM_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"${RDM_JOBS:-2}" --target fuzz_make_seeds $(printf 'fuzz_%s ' "${targets[@]}")

work=build-fuzz/corpus
./build-fuzz/fuzz/fuzz_make_seeds "$work"
status=0
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/crashes/$t" "$work/$t"
  echo "== fuzz_$t for ${secs}s"
  # detect_leaks=0: LibTorch keeps global allocations alive until exit.
  # The committed corpus (fuzz/corpus/<target>/) seeds the run; new inputs go to $work/$t.
  # Grow the committed one with: fuzz_<t> -merge=1 fuzz/corpus/<t> $work/<t>
  seeds=()
  [ -d "fuzz/corpus/$t" ] && seeds=("fuzz/corpus/$t")
  if ! ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 ./build-fuzz/fuzz/fuzz_"$t" "$work/$t" "${seeds[@]}" \
      -max_total_time="$secs" -max_len=65536 -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
      -artifact_prefix="build-fuzz/crashes/$t/" 2>"build-fuzz/fuzz_$t.log"; then
    status=1
    echo "fuzz_$t: FAILED (see build-fuzz/fuzz_$t.log and build-fuzz/crashes/$t/)"
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb|ERROR|Done" "build-fuzz/fuzz_$t.log" || true
done
exit $status
