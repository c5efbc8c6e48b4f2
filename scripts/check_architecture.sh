#!/usr/bin/env bash
# Architecture checks (CTest: architecture.*), run from the repository root or with it as $1:
#   layers     no include from a lower layer to a higher one:
#                cli > app, selftest, train > ldm, retrieval, clip, sampler > formats, image > io, runtime
#   sizes      no source file over 600 lines (the pickle opcode switch excepted)
#   functions  no function over 120 lines, the pickle opcode switch (Unpickler::run) excepted
#              (a definition opens at column 0 and closes with the
#              first "}" at column 0; the project's clang-format style puts them there)
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"
what="${2:-all}"
status=0

rank() {  # layer rank of a path under src/ or include/rdm/
  case "$1" in
    */cli/*) echo 5 ;;
    */app/*|*/selftest/*|*/train/*) echo 4 ;;
    */ldm/*|*/retrieval/*|*/clip/*|*/sampler/*) echo 3 ;;
    */formats/*|*/image/*) echo 2 ;;
    */io/*|*/runtime/*) echo 1 ;;
    *) echo "?" ;;
  esac
}

if [[ "$what" == all || "$what" == layers ]]; then
  while IFS= read -r f; do
    r=$(rank "$f")
    if [[ "$r" == "?" ]]; then echo "layers: $f is in no layer folder"; status=1; continue; fi
    while IFS= read -r inc; do
      case "$inc" in
        rdm/*) target="include/$inc" ;;
        cli/*|app/*|selftest/*|train/*|ldm/*|retrieval/*|clip/*|sampler/*|formats/*|image/*|io/*|runtime/*) target="src/$inc" ;;
        *) continue ;;
      esac
      t=$(rank "$target")
      if [[ "$t" != "?" && "$t" -gt "$r" ]]; then
        echo "layers: $f (layer $r) includes $inc (layer $t)"; status=1
      fi
    done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/p' "$f")
  done < <(find src include -type f \( -name '*.cpp' -o -name '*.hpp' \) | sort)
fi

if [[ "$what" == all || "$what" == sizes ]]; then
  while IFS= read -r f; do
    n=$(wc -l < "$f")
    if (( n > 600 )) && [[ "$f" != src/formats/pickle.cpp ]]; then
      echo "sizes: $f has $n lines (at most 600)"; status=1
    fi
  done < <(find src include -type f \( -name '*.cpp' -o -name '*.hpp' \) | sort)
fi

if [[ "$what" == all || "$what" == functions ]]; then
  out=$(find src include -type f \( -name '*.cpp' -o -name '*.hpp' \) -print0 | sort -z | xargs -0 awk -v LIMIT="${RDM_FUNCTION_LIMIT:-120}" '
    FNR == 1 { cand = 0; start = 0; agg = 0 }
    agg { if (/^\}/) agg = 0; next }
    start > 0 {
      if (/^\}/) {
        n = FNR - start + 1
        if (n > LIMIT && !(FILENAME ~ /src\/formats\/pickle\.cpp$/ && name ~ /Unpickler::run\(/)) printf "functions: %s:%d: %d lines: %s\n", FILENAME, start, n, name
        start = 0
      }
      next
    }
    cand == 0 && /^[A-Za-z_~]/ && !/^(namespace|struct|class|enum|union|extern|using|typedef|template|public|private|protected)[ :<]/ {
      cand = FNR; name = $0
    }
    cand > 0 {
      if (/[;}][ \t]*(\/\/.*)?$/) { cand = 0; next }
      if (/\{[ \t]*$/) {
        if (/=[ \t]*\{[ \t]*$/) agg = 1; else start = cand
        cand = 0
      }
    }')
  if [[ -n "$out" ]]; then echo "$out"; status=1; fi
fi
exit $status
