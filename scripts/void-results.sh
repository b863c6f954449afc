#!/usr/bin/env bash
# The Void paper's experiments on SmolLM2-135M-Instruct (docs/results.md): every table and plot
# there comes from this script. Each stage writes resumable JSON Lines under the output folder, so
# an interrupted run continues where it stopped when started again.
# Usage: scripts/void-results.sh [out-dir] [stage...]   (default out/results, all stages)
# Stages: mmlu-loglik gpqa boolq mmlu-generate heatmap frontier q8-vs-f32
# Sizes from the environment: MMLU_N (all: the 14,042 test questions; N: a stratified N),
#   BOOLQ_N (all: the 3,270 validation questions; N: the first N), GEN_N (2000, stratified),
#   HEAT_N (100), FRONTIER_MMLU_N (2000), FRONTIER_BOOLQ_N (500),
#   CHECK_N (300), THREADS (2), FATHOM_BUILD_DIR (build).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FATHOM_BUILD_DIR:-$root/build}
if [[ -z ${FATHOM_SHARED:-} && -d $root/../shared ]]; then export FATHOM_SHARED=$(cd "$root/../shared" && pwd); fi
model=${MODEL:-$FATHOM_SHARED/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf}
out=${1:-$root/out/results}
shift || true
stages=("$@")
((${#stages[@]})) || stages=(mmlu-loglik gpqa boolq mmlu-generate heatmap frontier q8-vs-f32)
threads=${THREADS:-2}
mkdir -p "$out"
# "all" selects the whole set, N a stratified sample (MMLU) or the first N items (BoolQ).
mmlu_n=${MMLU_N:-all}; mmlu_sel=(); [[ $mmlu_n == all ]] || mmlu_sel=(--subset "$mmlu_n")
boolq_n=${BOOLQ_N:-all}; boolq_sel=(); [[ $boolq_n == all ]] || boolq_sel=(--limit "$boolq_n")
eval_=("$build/examples/eval" --model "$model" --preset void --threads "$threads" --seed 0 --no-progress)
sweep=full,lac:0.2,lac:0.4,lac:0.6,lac:0.8,lac:1.0,lac-instream:0.8
run() { echo "== $*" >&2; local t0=$SECONDS; "$@"; echo "   wall $((SECONDS - t0)) s" >&2; }

for s in "${stages[@]}"; do
  case $s in
    mmlu-loglik)  # log-likelihood of the answer letter; full and every final-state α share one pass
      run "${eval_[@]}" --task mmlu "${mmlu_sel[@]}" --scoring loglik --policies "$sweep" \
        --per-subject --out "$out/mmlu_loglik.jsonl" --svg "$out/mmlu_alpha.svg" | tee "$out/mmlu_loglik.txt" ;;
    gpqa)  # GPQA Diamond, the paper's order (correct answer last) and shuffled
      for order in correct-last shuffled; do
        run "${eval_[@]}" --task gpqa --gpqa-order "$order" --scoring loglik \
          --policies full,lac:0.8,lac-instream:0.8 --out "$out/gpqa_${order}.jsonl" | tee "$out/gpqa_${order}.txt"
      done ;;
    boolq)
      run "${eval_[@]}" --task boolq "${boolq_sel[@]}" --scoring loglik \
        --policies full,lac:0.8,lac-instream:0.8 --out "$out/boolq_loglik.jsonl" | tee "$out/boolq_loglik.txt" ;;
    mmlu-generate)  # the paper's protocol: sampled replies (T 0.6, top-p 0.9, 51 tokens), letter extracted
      run "${eval_[@]}" --task mmlu --subset "${GEN_N:-2000}" --scoring generate \
        --policies full,lac:0.8,lac-instream:0.8 --out "$out/mmlu_generate.jsonl" | tee "$out/mmlu_generate.txt" ;;
    heatmap)  # layer usage by position over many MMLU prompts and their replies (PP and RG)
      run "$build/examples/voids" -m "$model" -t "$threads" --task mmlu --items "${HEAT_N:-100}" \
        --alpha 0.8 --out "$out/heatmap" > "$out/heatmap.txt" ;;
    frontier)  # calibrated skip sets vs ShortGPT sets: accuracy against decode speed
      MMLU_N=${FRONTIER_MMLU_N:-2000} BOOLQ_N=${FRONTIER_BOOLQ_N:-500} THREADS=$threads \
        run bash "$root/scripts/void-frontier.sh" "$out/frontier" ;;
    q8-vs-f32)  # is Q8 in memory accurate enough? the same items with exact f32 weights
      run "${eval_[@]}" --task mmlu --subset "${CHECK_N:-300}" --scoring loglik --weights f32 \
        --policies full,lac:0.8 --out "$out/check_f32.jsonl" | tee "$out/check_f32.txt"
      run "${eval_[@]}" --task mmlu --subset "${CHECK_N:-300}" --scoring loglik --weights q8 \
        --policies full,lac:0.8 --out "$out/check_q8.jsonl" | tee "$out/check_q8.txt" ;;
    *) echo "unknown stage $s" >&2; exit 2 ;;
  esac
done
