#!/usr/bin/env bash
# Collects, on Debian 12, everything the GPU check (scripts/gpu-check.sh) needs besides LibTorch
# into ONE git-ignored folder, .gpu-deps/, small enough to travel with the working tree to a GPU
# machine that has no package manager or network (64 MiB for tree + carried folders):
#   .gpu-deps/deps.tar.xz    usr/{include,lib/x86_64-linux-gnu,share/cmake}: headers, CMake
#                            configs and libraries of FAISS (static) + OpenBLAS/LAPACK, spdlog +
#                            fmt 9, yaml-cpp, SQLite, PCRE2, utf8proc, libpng, zlib, libjpeg-turbo,
#                            libwebp, giflib, Nettle, CLI11, nlohmann/json, GoogleTest; the shared
#                            libraries' runtime closure (ldd), libc/libstdc++/libgcc/libgomp left out
#   .gpu-deps/golden.tar.xz  the golden sets (../shared/golden: clip/, ldm/)
#   .gpu-deps/MANIFEST       what is inside, sizes, newest glibc symbol version needed
# No OpenCV (its imgcodecs closure is ~210 MB): the GPU build uses -DRDM_IMAGE_IO=lite.
# Usage: scripts/gpu-deps.sh [--no-golden]        (then see README "GPU check")
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ARCH=x86_64-linux-gnu
OUT=$ROOT/.gpu-deps
STAGE=$ROOT/build-gpu-deps/stage
GOLDEN_SRC=${RDM_GOLDEN_DIR:-$ROOT/../shared/golden}
WITH_GOLDEN=1
[ "${1:-}" = "--no-golden" ] && WITH_GOLDEN=0
LIMIT_MIB=62   # leave room for the tracked files (~1 MiB) under the 64 MiB transfer limit

DEV_PACKAGES=(libfaiss-dev libspdlog-dev libfmt-dev libyaml-cpp-dev libsqlite3-dev libpcre2-dev
  libutf8proc-dev libpng-dev zlib1g-dev libjpeg62-turbo-dev libwebp-dev libgif-dev libcli11-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev nettle-dev)
for p in "${DEV_PACKAGES[@]}" libopenblas0-pthread; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    { echo "gpu-deps: package $p is not installed (run scripts/setup.sh or apt-get install $p)" >&2; exit 1; }
done

rm -rf "$STAGE" "$OUT"
mkdir -p "$STAGE/usr/lib/$ARCH" "$OUT"

# 1. Headers, CMake configs and libraries of the -dev packages, in Debian's layout (the CMake
#    configs compute their prefix from their own location, so they stay valid when moved).
for p in "${DEV_PACKAGES[@]}"; do
  dpkg -L "$p" | while read -r f; do
    case "$f" in
      /usr/include/*|/usr/lib/$ARCH/cmake/*|/usr/share/cmake/*|/usr/lib/$ARCH/pkgconfig/*) ;;
      /usr/lib/$ARCH/lib*.so) ;;
      /usr/lib/$ARCH/libfaiss.a|/usr/lib/$ARCH/libgtest*.a|/usr/lib/$ARCH/libgmock*.a) ;;
      *) continue ;;
    esac
    [ -f "$f" ] || [ -L "$f" ] || continue
    mkdir -p "$STAGE$(dirname "$f")"
    cp -a "$f" "$STAGE$f"
  done
done

# The -dev packages hold only the lib*.so links: copy the chain they point to (SONAME link, file).
for l in "$STAGE/usr/lib/$ARCH"/lib*.so; do
  [ -L "$l" ] || continue
  f=/usr/lib/$ARCH/$(basename "$l")
  while [ -L "$f" ]; do
    t=$(readlink "$f"); case "$t" in /*) ;; *) t=$(dirname "$f")/$t ;; esac
    [ -e "$STAGE/usr/lib/$ARCH/$(basename "$t")" ] || cp -a "$t" "$STAGE/usr/lib/$ARCH/"
    f=$t
  done
done

# 2. BLAS/LAPACK for FAISS: OpenBLAS (pthread); FAISS's CMake config names /usr/lib/... paths.
ob=/usr/lib/$ARCH/openblas-pthread
for f in libblas.so.3 liblapack.so.3 libopenblas.so.0; do cp -L "$ob/$f" "$STAGE/usr/lib/$ARCH/$f"; done
ln -sf libblas.so.3 "$STAGE/usr/lib/$ARCH/libblas.so"
ln -sf liblapack.so.3 "$STAGE/usr/lib/$ARCH/liblapack.so"
sed -i "s|/usr/lib/$ARCH/lib|\${_IMPORT_PREFIX}/lib/$ARCH/lib|g" "$STAGE/usr/lib/$ARCH/cmake/faiss/faiss-targets.cmake"

# 3. Runtime closure: every shared library the copied ones load, except the C/C++ runtime that
#    any Linux with a compiler has (and libgomp: the compiler's own is used with -fopenmp).
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|librt\.|libpthread\.|libstdc\+\+|libgcc_s|libgomp)'
changed=1
while [ $changed = 1 ]; do
  changed=0
  for so in "$STAGE/usr/lib/$ARCH"/*.so*; do
    [ -L "$so" ] && continue
    while read -r name path; do
      [[ "$name" =~ $skip ]] && continue
      [ -e "$STAGE/usr/lib/$ARCH/$name" ] && continue
      [ -n "$path" ] && [ -e "$path" ] || { echo "gpu-deps: $so needs $name, not found" >&2; exit 1; }
      cp -L "$path" "$STAGE/usr/lib/$ARCH/$name"
      changed=1
    done < <(ldd "$so" 2>/dev/null | awk '$2 == "=>" {print $1, $3}')
  done
done
# Dev symlinks that point at SONAME links (lib*.so -> lib*.so.N -> lib*.so.N.M): make every
# SONAME link exist next to the real file.
for so in "$STAGE/usr/lib/$ARCH"/*.so*; do
  [ -L "$so" ] && continue
  soname=$(objdump -p "$so" 2>/dev/null | awk '$1 == "SONAME" {print $2}')
  [ -n "$soname" ] && [ ! -e "$STAGE/usr/lib/$ARCH/$soname" ] && ln -s "$(basename "$so")" "$STAGE/usr/lib/$ARCH/$soname"
done
for l in "$STAGE/usr/lib/$ARCH"/*.so*; do
  [ -L "$l" ] && [ ! -e "$l" ] && { echo "gpu-deps: dangling link $l -> $(readlink "$l")" >&2; exit 1; }
done
# Drop what is not needed: static libraries other than FAISS/GoogleTest, docs.
find "$STAGE" -name '*.a' ! -name 'libfaiss.a' ! -name 'libgtest*.a' ! -name 'libgmock*.a' -delete

# 4. Newest glibc symbol version the carried libraries need (the GPU machine must have it).
glibc_need=$(for so in "$STAGE/usr/lib/$ARCH"/*.so*; do [ -L "$so" ] || objdump -T "$so"; done 2>/dev/null |
  grep -o 'GLIBC_[0-9.]*' | sort -t. -k2,2n -k3,3n -u | tail -1)

echo "gpu-deps: packing dependencies ($(du -sh "$STAGE" | cut -f1) unpacked)"
tar -C "$STAGE" -cf - usr | xz -T0 -6 > "$OUT/deps.tar.xz"
if [ $WITH_GOLDEN = 1 ]; then
  [ -d "$GOLDEN_SRC/ldm" ] && [ -d "$GOLDEN_SRC/clip" ] ||
    { echo "gpu-deps: no golden sets at $GOLDEN_SRC (set RDM_GOLDEN_DIR or pass --no-golden)" >&2; exit 1; }
  echo "gpu-deps: packing golden sets ($(du -shL "$GOLDEN_SRC" | cut -f1))"
  tar -C "$GOLDEN_SRC" -chf - clip ldm | xz -T0 -6 > "$OUT/golden.tar.xz"
fi
{
  echo "made $(date -u +%FT%TZ) on $(. /etc/os-release && echo "$PRETTY_NAME") by scripts/gpu-deps.sh"
  echo "needs glibc >= ${glibc_need#GLIBC_} (newest symbol version in the carried libraries)"
  echo "packages: ${DEV_PACKAGES[*]} libopenblas0-pthread"
  echo "libraries:"; (cd "$STAGE/usr/lib/$ARCH" && ls -1 *.so* *.a)
} > "$OUT/MANIFEST"
size_kib=$(du -sk "$OUT" | cut -f1)
echo "gpu-deps: $OUT = $((size_kib / 1024)) MiB ($(ls "$OUT" | tr '\n' ' '); needs glibc >= ${glibc_need#GLIBC_})"
if [ "$size_kib" -gt $((LIMIT_MIB * 1024)) ]; then
  echo "gpu-deps: $OUT is over $LIMIT_MIB MiB: it will not travel (try --no-golden)" >&2
  exit 1
fi
