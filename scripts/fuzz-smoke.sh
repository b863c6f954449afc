#!/usr/bin/env bash
# Short bounded libFuzzer runs of fathom's input parsers (safetensors header, config.json, GGUF).
# Usage: scripts/fuzz-smoke.sh BUILD_DIR [SECONDS]
# Configures BUILD_DIR with clang++ and -DFATHOM_BUILD_FUZZ=ON (tests/bench/examples off), builds
# every fuzz/fuzz_*.cpp target, runs each for SECONDS (default 15) starting from a small seed
# corpus, and exits non-zero if any target crashes, leaks or trips a sanitizer.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:?usage: fuzz-smoke.sh BUILD_DIR [SECONDS]}
seconds=${2:-15}
cxx=${FATHOM_FUZZ_CXX:-clang++}
command -v "$cxx" >/dev/null || { echo "fuzz-smoke: $cxx not found (install clang and libclang-rt-dev)" >&2; exit 1; }

CXX=$cxx cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFATHOM_BUILD_FUZZ=ON -DFATHOM_BUILD_TESTS=OFF -DFATHOM_BUILD_BENCH=OFF -DFATHOM_BUILD_EXAMPLES=OFF >/dev/null
targets=()
for src in "$root"/fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
cmake --build "$build" --target "${targets[@]}" -j2

# Seeds: valid inputs the fuzzer can mutate from (written here, nothing committed or downloaded).
seeds=$build/fuzz-seeds
rm -rf "$seeds"
mkdir -p "$seeds/fuzz_safetensors" "$seeds/fuzz_config" "$seeds/fuzz_jinja" "$seeds/fuzz_gguf"
cp "$root"/tests/fixtures/chat_templates/*.jinja "$seeds/fuzz_jinja/"
printf '{"architectures":["LlamaForCausalLM"],"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":96,"vocab_size":100,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0},"eos_token_id":[1,2]}' \
  >"$seeds/fuzz_config/llama.json"
printf '{"architectures":["Qwen2ForCausalLM"],"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":96,"vocab_size":100,"use_sliding_window":true,"max_window_layers":0,"sliding_window":16}' \
  >"$seeds/fuzz_config/qwen2.json"
for cfg in "$root"/tests/fixtures/models/*/config.json; do
  [[ -f $cfg ]] && cp "$cfg" "$seeds/fuzz_config/$(basename "$(dirname "$cfg")").json"
done
python3 - "$seeds/fuzz_safetensors/two.safetensors" <<'PY'
import json, struct, sys
hdr = json.dumps({"__metadata__": {"format": "pt"},
                  "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                  "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]}}).encode()
hdr += b" " * (-len(hdr) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(hdr)) + hdr + bytes(22))
PY

# GGUF: the small file gguf.GGUFWriter wrote for the tests (every value type, several tensor types).
cp "$root/tests/fixtures/gguf/writer.gguf" "$seeds/fuzz_gguf/writer.gguf"

status=0
for t in "${targets[@]}"; do
  corpus=$build/fuzz-corpus/$t
  mkdir -p "$corpus"
  seed_dir=$seeds/$t
  [[ -d $seed_dir ]] || seed_dir=
  echo "fuzz-smoke: $t for ${seconds}s"
  if ! (cd "$build" && "./fuzz/$t" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
          -print_final_stats=1 "$corpus" $seed_dir 2>"$build/$t.log"); then
    echo "fuzz-smoke: $t FAILED; last lines of $build/$t.log:" >&2
    tail -n 40 "$build/$t.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$build/$t.log" | sed "s/^/  $t: /" || true
  fi
done
exit $status
