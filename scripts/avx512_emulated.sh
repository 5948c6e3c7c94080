#!/usr/bin/env bash
# Builds unit_tests with the AVX-512 paths emulated on an AVX2 host and runs them, so that a
# machine without AVX-512 can test the AVX-512 kernels (every 16-lane, NCHW16c, 14x32, VNNI
# and BF16 path; AMX stays off: it is a tile unit, not an intrinsic set).
#   scripts/avx512_emulated.sh                          all of unit_tests
#   scripts/avx512_emulated.sh --gtest_filter='*avx512*'  arguments go to unit_tests
# How: a copy of the sources (git ls-files) in which every target("...avx512...") becomes
# target("avx2,fma,f16c"), __builtin_cpu_supports("avx512f/bw/vl/dq/cd/vnni/bf16") is 1 and
# the register barriers asm("" : "+v"(x)) hold x in memory instead (a 512-bit value fits no
# AVX2 register), built with -mavx2 -mfma -mf16c and tests/emu/ in front of <immintrin.h>:
# the AVX-512 intrinsics are SIMDe's (Debian's libsimde-dev) plus tests/emu/immintrin.h's own
# for what SIMDe lacks. Not bit-exact where a kernel depends on rcp14's approximate bits;
# slow (each 512-bit operation is two or more AVX2 ones, masked loads element by element).
# The build lives in ${ANVIL_EMU_DIR:-build-avx512-emu} (22 minutes on 2 cores the first
# time, 17 after a change to tests/emu/immintrin.h; the run about a minute).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$(realpath -m "${ANVIL_EMU_DIR:-$ROOT/build-avx512-emu}")"
JOBS="${ANVIL_JOBS:-$(nproc)}"
if ! grep -qw avx2 /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo || ! grep -qw f16c /proc/cpuinfo; then
  echo "avx512_emulated: this host lacks AVX2/FMA/F16C, which the emulation is built from" >&2
  exit 2
fi
if [ ! -f /usr/include/simde/x86/avx512.h ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y libsimde-dev >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y libsimde-dev >/dev/null; }
  else
    sudo apt-get install -y libsimde-dev >/dev/null
  fi
fi

# The copy: only files that changed are rewritten, so ninja rebuilds only what changed.
SRC="$DIR/src"
mkdir -p "$SRC"
cd "$ROOT"
git ls-files -co --exclude-standard | grep -v '^build' | while IFS= read -r f; do
  [ -f "$f" ] || continue
  out="$SRC/$f"
  mkdir -p "$(dirname "$out")"
  case "$f" in
    *.cpp | *.h | *.inc | *.cc)
      perl -pe '
        s{target\("([^"]*)"\)}{
          my $t = $1;
          if ($t =~ /avx512|amx/) {
            my @isa = ("avx2", "fma", "f16c");
            push @isa, "amx-tile", "amx-int8" if $t =~ /amx/;
            push @isa, "avxvnni" if $t =~ /avxvnni/;
            "target(\"" . join(",", @isa) . "\")";
          } else { "target(\"$t\")" }
        }ge;
        s{__builtin_cpu_supports\("avx512(?:f|bw|vl|dq|cd|vnni|bf16)"\)}{1}g;
        s{((?:__)?asm(?:__)?(?:\s+volatile)?)\(""\s*:\s*"\+v"\(}{$1("" : "+m"(}g;
      ' "$f" >"$out.tmp"
      ;;
    *) cp "$f" "$out.tmp" ;;
  esac
  if cmp -s "$out.tmp" "$out"; then rm "$out.tmp"; else mv "$out.tmp" "$out"; fi
done
[ -e "$SRC/.venv" ] || ln -s "$ROOT/.venv" "$SRC/.venv"

cmake -S "$SRC" -B "$DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" \
  -DCMAKE_CXX_FLAGS="-mavx2 -mfma -mf16c -I$SRC/tests/emu -Wno-psabi" >/dev/null
cmake --build "$DIR/build" -j "$JOBS" --target unit_tests
# No instruction the host lacks may be left in the binary (an AVX-512 one would be SIGILL).
if objdump -d --no-show-raw-insn "$DIR/build/tests/unit_tests" | grep -qE '%zmm|%k[1-7]'; then
  echo "avx512_emulated: the binary still holds AVX-512 instructions" >&2
  exit 3
fi
cd "$DIR/build/tests"
exec ./unit_tests "$@"
