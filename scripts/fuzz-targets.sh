# Sourced by fuzz-smoke.sh and fuzz-long.sh: the fuzz targets, their committed seed corpora and
# dictionaries, and the seeds written at run time for the targets that have no committed corpus.
# Expects $root (the repository) to be set.

# UBSan only prints a report and carries on unless told to stop: a finding must end the run (and
# leave its input) like an ASan one.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# Every fuzz/fuzz_*.cpp is a target (fuzz/CMakeLists.txt globs the same files).
fuzz_targets() {
  local src
  for src in "$root"/fuzz/fuzz_*.cpp; do basename "$src" .cpp; done
}

# The dictionary a target mutates with (fuzz/dict/), if any.
fuzz_dict() {
  case $1 in
    fuzz_boolq|fuzz_trace_jsonl|fuzz_results_jsonl|fuzz_tuned_lens|fuzz_q8_checkpoint|fuzz_config|fuzz_safetensors)
      echo "$root/fuzz/dict/json.dict" ;;
    fuzz_mmlu_csv|fuzz_gpqa_csv) echo "$root/fuzz/dict/csv.dict" ;;
    fuzz_policies) echo "$root/fuzz/dict/policies.dict" ;;
    fuzz_ids) echo "$root/fuzz/dict/ids.dict" ;;
  esac
}

# Writes seeds for the older targets into $1/<target>/ (nothing downloaded; fixtures of tests/).
write_runtime_seeds() {
  local seeds=$1 cfg
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
}

# Seed folders of a target: its committed corpus and its run-time seeds (those that exist).
fuzz_seed_dirs() {
  local t=$1 seeds=$2
  [[ -d $root/fuzz/corpus/$t ]] && echo "$root/fuzz/corpus/$t"
  [[ -d $seeds/$t ]] && echo "$seeds/$t"
  return 0
}
