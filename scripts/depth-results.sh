#!/usr/bin/env bash
# "How Do LLMs Use Their Depth?" on SmolLM2-135M-Instruct (docs/depth-results.md): every figure
# there comes from this script.
# Usage: scripts/depth-results.sh [out-dir] [stage...]   (default out/depth, all stages)
# Stages:
#   lens       train the tuned lens on WikiText-2 (40 steps x 8 x 128 tokens; resumable), then
#              held-out KL of it and of the logit lens on the first 40 held-out sequences
#   lens-freq  the same training with the frequency-down-weighted loss (--freq-weight 0.5)
#   prepare    the analysed text (the last 300 lines of WikiText-2 test, inside the lens's
#              held-out tail), its POS tags (tools/pos_tag.pl) and corpus token counts
#   analyse    examples/depth for each lens (logit, tuned, tuned-freq when trained) and layer
#              axis: text (earliest layer, frequency buckets, flips), POS, MMLU 4-shot, BoolQ
# Sizes from the environment: MMLU_ITEMS (40), BOOLQ_ITEMS (60), POS_DOCS (12),
#   TOKENS (1024), THREADS (1), FATHOM_BUILD_DIR (build), LENSES (the analyse stage's lenses:
#   default every one that is trained, e.g. LENSES="tuned-freq" to add one without the others),
#   PRODUCTS (exact: the readouts' products, examples/depth --products; the published figures
#   were made with the int8 kernels: FATHOM_PREFILL=int8 PRODUCTS=model).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FATHOM_BUILD_DIR:-$root/build}
if [[ -z ${FATHOM_SHARED:-} && -d $root/../shared ]]; then export FATHOM_SHARED=$(cd "$root/../shared" && pwd); fi
model=${MODEL:-$FATHOM_SHARED/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf}
wiki=$FATHOM_SHARED/data/wikitext2/wikitext-2-raw-test.txt
out=${1:-$root/out/depth}
shift || true
stages=("$@")
((${#stages[@]})) || stages=(lens prepare analyse)
threads=${THREADS:-1}
mkdir -p "$out"
run() { echo "== $*" >&2; local t0=$SECONDS; "$@"; echo "   wall $((SECONDS - t0)) s" >&2; }
train=("$build/examples/train_lens" -m "$model" --text "$wiki" --steps 40 --seqs-per-step 8 --seq-len 128
       --eval-fraction 0.1 --eval-seqs 40 -t "$threads" --checkpoint-every 4)
resume_flag() { [[ -f $1/train_state.json ]] && echo --resume || true; }

for s in "${stages[@]}"; do
  case $s in
    lens)
      run "${train[@]}" --out "$out/lens-smollm2" $(resume_flag "$out/lens-smollm2") | tee "$out/lens-smollm2.txt" ;;
    lens-freq)
      [[ -f $out/wikitext2.counts ]] || { echo "run the prepare stage first (token counts)" >&2; exit 1; }
      run "${train[@]}" --out "$out/lens-smollm2-freq" --freq-weight 0.5 --freq-counts "$out/wikitext2.counts" \
        $(resume_flag "$out/lens-smollm2-freq") | tee "$out/lens-smollm2-freq.txt" ;;
    prepare)
      tail -n 300 "$wiki" > "$out/wikitext-tail.txt"
      perl -MLingua::EN::Tagger -e1 2>/dev/null ||
        { echo "the POS tagger is missing: apt-get install liblingua-en-tagger-perl" >&2; exit 1; }
      perl "$root/tools/pos_tag.pl" "$out/wikitext-tail.txt" "$out/wikitext-tail.pos.jsonl" --skip-headings
      # Token counts over the whole WikiText-2 test split (the largest text in the shared folder).
      run "$build/examples/depth" -m "$model" --freq-text "$wiki" --freq-counts "$out/wikitext2.counts" -o "$out/counts" ;;
    analyse)
      if [[ -n ${LENSES:-} ]]; then
        read -r -a lenses <<< "$LENSES"
      else
        lenses=(logit)
        [[ -f $out/lens-smollm2/params.safetensors ]] && lenses+=(tuned)
        [[ -f $out/lens-smollm2-freq/params.safetensors ]] && lenses+=(tuned-freq)
      fi
      for l in "${lenses[@]}"; do
        case $l in
          logit) lens=() ;;
          tuned) lens=(--lens "$out/lens-smollm2") ;;
          tuned-freq) lens=(--lens "$out/lens-smollm2-freq") ;;
          *) echo "unknown lens $l (logit, tuned, tuned-freq)" >&2; exit 1 ;;
        esac
        for axis in hidden-states block-output; do
          d=$out/$l-$axis
          [[ $axis == block-output && $l == logit ]] && continue  # the logit lens only relabels the axis
          common=("$build/examples/depth" -m "$model" "${lens[@]}" --layer-axis "$axis" -t "$threads"
                  --products "${PRODUCTS:-exact}")
          # A finished output is kept (delete the folder to recompute it).
          [[ -f $d/text/pos_summary.csv ]] ||
            run "${common[@]}" --text "$out/wikitext-tail.txt" --max-tokens "${TOKENS:-1024}" \
              --freq-counts "$out/wikitext2.counts" --pos "$out/wikitext-tail.pos.jsonl" --pos-docs "${POS_DOCS:-12}" -o "$d/text"
          [[ $axis == block-output ]] && continue  # option ranks on the tuned-lens axis only
          [[ -f $d/mmlu/option_summary.csv ]] || run "${common[@]}" --task mmlu --items "${MMLU_ITEMS:-40}" --shots 4 -o "$d/mmlu"
          [[ -f $d/boolq/option_summary.csv ]] || run "${common[@]}" --task boolq --items "${BOOLQ_ITEMS:-60}" -o "$d/boolq"
        done
      done ;;
    *) echo "unknown stage $s" >&2; exit 1 ;;
  esac
done
