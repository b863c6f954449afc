#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the LAC void analysis (examples/voids).
# With no arguments: SmolLM2-135M-Instruct (the GGUF in ../shared, Q8 weights in memory) answers 5
# MMLU test questions (one from each of 5 subjects spread over the 57) in the Void paper's prompt
# (--preset void) and chat template, with the paper's sampling (temperature 0.6, top-p 0.9, the
# first token + 50 steps, stop at eos, fixed seed) under α = 0.8 final-state LAC. It prints each
# question with the reply, the extracted answer and whether it is right, the PP/RG layer-usage
# table, and writes out/voids/{trace.jsonl,trace.csv,usage.csv,heatmap.svg,usage-buckets.svg}.
# One thread: the model is small, and on a shared machine OpenMP's per-layer barriers wait for
# descheduled threads (5 items: 5.8 s with -t 1, 17 s with -t 2 at load 7.9 on 2 cores); pass
# -t 2 on a quiet machine.
# Any arguments replace those defaults and go to `voids` as they are (see `voids --help`), e.g.
#   scripts/voids.sh --prompt "Once upon a time"          # stories260K, the old demo
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/install-deps.sh"
build=${FATHOM_BUILD_DIR:-$root/build}
FATHOM_BUILD_DIR=$build bash "$root/scripts/build.sh" \
  -DFATHOM_BUILD_TESTS=OFF -DFATHOM_BUILD_BENCH=OFF -DFATHOM_BUILD_EXAMPLES=ON
if [[ -z ${FATHOM_SHARED:-} && -d $root/../shared ]]; then export FATHOM_SHARED=$root/../shared; fi
shared=${FATHOM_SHARED:-$root/../shared}
mkdir -p "$root/out"
if [[ $# -eq 0 ]]; then
  set -- -m "$shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf" --weights q8 -t 1 \
    --task mmlu --items 5 --preset void --alpha 0.8 --mode final-state --seed 0
fi
exec "$build/examples/voids" --out "$root/out/voids" "$@"
