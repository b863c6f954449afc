#!/usr/bin/env bash
# The consumer test (run by scripts/test.sh): fathom used the way an outside project uses it.
#  1. cmake --install to a temporary prefix; README.md's code example built with
#     find_package(fathom) and run on the real stories260K model;
#  2. the same example built with add_subdirectory(fathom); both runs must print the same;
#  3. a tokenizer-only program linking fathom::tokenizer alone (find_package(fathom COMPONENTS
#     tokenizer), then add_subdirectory): encodes a sentence with the shared Qwen3 tokenizer.json
#     into the ids Hugging Face tokenizers gives, and needs no OpenMP (no libgomp in the binary).
# Consumers compile at -O1 to keep this quick. Needs FATHOM_SHARED (default ../shared).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
shared=${FATHOM_SHARED:-$(cd "$root/.." && pwd)/shared}
model=$shared/models/stories260K/stories260K.bin
tokenizer=$shared/tokenizers/qwen3
for f in "$model" "$tokenizer/tokenizer.json"; do
  [[ -f $f ]] || { echo "consumer test: $f not found (FATHOM_SHARED=$shared)" >&2; exit 1; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/fathom-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
jobs=$(nproc)
fail() { echo "consumer test: $*" >&2; exit 1; }

# consumer <build dir> <cmake args...>: configures and builds tests/consumer at -O1.
consumer() {
  local dir=$1; shift
  cmake -S "$root/tests/consumer" -B "$work/$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE= \
    -DCMAKE_CXX_FLAGS=-O1 -DFATHOM_SOURCE_DIR="$root" "$@" >"$work/$dir.log" 2>&1 \
    || { cat "$work/$dir.log" >&2; fail "configuring $dir failed"; }
  cmake --build "$work/$dir" -j"$jobs" >>"$work/$dir.log" 2>&1 \
    || { cat "$work/$dir.log" >&2; fail "building $dir failed"; }
}

# The README example generates 64 tokens under LAC and prints the text, then the usage table.
readme_run() {
  local out=$work/$1.out
  "$work/$1/readme_example" "$model" >"$out" 2>&1 || { cat "$out" >&2; fail "$1: readme_example failed"; }
  grep -q "[A-Za-z]" <(head -1 "$out") || { cat "$out" >&2; fail "$1: no generated text"; }
  grep -q "%" "$out" || { cat "$out" >&2; fail "$1: no usage table"; }
}

# The first ids of case english_prose in tests/fixtures/tokenizer/expected_qwen3.json (Hugging
# Face tokenizers on the same tokenizer.json).
sentence="The quick brown fox jumps over the lazy dog."
expected="785 3974 13876 38835 34208 916 279 15678 5562 13"
tokenizer_run() {
  local exe=$work/$1/tokenize_only out
  out=$("$exe" "$tokenizer" "$sentence") || fail "$1: tokenize_only failed"
  [[ $(sed -n 1p <<<"$out") == "$expected" ]] || fail "$1: ids '$(sed -n 1p <<<"$out")', expected '$expected'"
  [[ $(sed -n 2p <<<"$out") == "$sentence" ]] || fail "$1: decoded '$(sed -n 2p <<<"$out")'"
  if readelf -d "$exe" | grep -q 'libgomp'; then fail "$1: tokenize_only links libgomp (OpenMP)"; fi
}

cmake -S "$root" -B "$work/fathom" "${gen[@]}" -DFATHOM_BUILD_TESTS=OFF -DFATHOM_BUILD_BENCH=OFF \
  -DFATHOM_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix" >"$work/install.log" 2>&1 \
  && cmake --install "$work/fathom" >>"$work/install.log" 2>&1 \
  || { cat "$work/install.log" >&2; fail "cmake --install failed"; }

consumer package -DFATHOM_CONSUMER_VIA=package -DCMAKE_PREFIX_PATH="$work/prefix"
readme_run package
consumer subdirectory -DFATHOM_CONSUMER_VIA=subdirectory
readme_run subdirectory
cmp -s "$work/package.out" "$work/subdirectory.out" \
  || { diff "$work/package.out" "$work/subdirectory.out" >&2; fail "find_package and add_subdirectory builds print differently"; }
consumer tokenizer-package -DFATHOM_CONSUMER_VIA=package -DFATHOM_CONSUMER_PART=tokenizer \
  -DCMAKE_PREFIX_PATH="$work/prefix"
tokenizer_run tokenizer-package
consumer tokenizer-subdirectory -DFATHOM_CONSUMER_VIA=subdirectory -DFATHOM_CONSUMER_PART=tokenizer
tokenizer_run tokenizer-subdirectory
echo "consumer test: README example via find_package and add_subdirectory, fathom::tokenizer alone: ok"
head -3 "$work/package.out" | cut -c1-120
