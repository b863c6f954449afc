#!/usr/bin/env bash
# Does skipping voids save real time at an acceptable cost? The skip-vs-accuracy frontier on one
# model (docs/evaluation.md, "The skip-vs-accuracy frontier"):
#   1. calibrate on MMLU dev (voids --task mmlu --split dev): for each threshold c, the layers
#      LAC activated for fewer than c of the calibration tokens (per phase), and ShortGPT's set of
#      the same size (highest input/output cosine over the same tokens) -> calibration.csv; the
#      decode speed of each set and of full depth (Q8, $THREADS threads) -> timing.csv;
#   2. eval every distinct set and full depth on a fixed stratified MMLU test subset and a BoolQ
#      subset (resumable: rerun the script to continue an interrupted run);
#   3. voids --frontier: frontier.csv (one row per method and c: skipped layers PP/RG, accuracy ±
#      SE, no-answer share, decode tok/s) and frontier.svg (accuracy vs tok/s).
# Usage: scripts/void-frontier.sh [out-dir]   (default out/frontier). Settings from the environment:
#   MODEL (SmolLM2 GGUF), THRESHOLDS (0.05,0.1,0.2,0.3,0.5), CAL_ITEMS (57: one dev question per
#   subject), MMLU_N (2000), BOOLQ_N (500), SCORING (loglik; generate is the paper's protocol, ~5x
#   the time), PRESET (void), THREADS (2), SEED (0), FATHOM_BUILD_DIR (build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FATHOM_BUILD_DIR:-$root/build}
if [[ -z ${FATHOM_SHARED:-} && -d $root/../shared ]]; then export FATHOM_SHARED=$root/../shared; fi
shared=${FATHOM_SHARED:-$root/../shared}
model=${MODEL:-$shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf}
thresholds=${THRESHOLDS:-0.05,0.1,0.2,0.3,0.5}
threads=${THREADS:-2}
seed=${SEED:-0}
preset=${PRESET:-void}
scoring=${SCORING:-loglik}
out=${1:-$root/out/frontier}
mkdir -p "$out"
for exe in voids eval; do
  [[ -x $build/examples/$exe ]] || { echo "build $build/examples/$exe first (scripts/build.sh)" >&2; exit 1; }
done

# 1. Calibration split and timing.
"$build/examples/voids" -m "$model" --weights q8 -t "$threads" --task mmlu --split dev \
  --items "${CAL_ITEMS:-57}" --preset "$preset" --seed "$seed" --calibrate "$thresholds" --out "$out" \
  > "$out/calibrate.log"
grep -E "^ +c = |policy|tok/s|layers used" "$out/calibrate.log"

# 2. Full depth and every distinct skip set (the policy is the CSV's last field, quoted when it
#    holds commas), on fixed subsets.
policies=full
while IFS= read -r p; do
  [[ ,$policies, == *",$p,"* ]] || policies+=",$p"
done < <(tail -n +2 "$out/calibration.csv" | sed -E 's/^([^,]*,){4}//; s/^"(.*)"$/\1/' | awk '!seen[$0]++')
echo "policies: $policies"
common=(--model "$model" --weights q8 --preset "$preset" --scoring "$scoring" --policies "$policies"
        --threads "$threads" --seed "$seed" --no-progress)
"$build/examples/eval" "${common[@]}" --task mmlu --subset "${MMLU_N:-2000}" --out "$out/mmlu.jsonl" | tee "$out/mmlu.txt"
"$build/examples/eval" "${common[@]}" --task boolq --subset "${BOOLQ_N:-500}" --out "$out/boolq.jsonl" | tee "$out/boolq.txt"

# 3. One table and one plot.
"$build/examples/voids" --frontier "$out"
