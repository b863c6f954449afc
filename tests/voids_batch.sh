#!/usr/bin/env bash
# examples/voids --batch B against --batch 1 on stories260K (shared data): for --prompts and for
# --task mmlu (sampled, per-item seeds; LAC, and early exit under KvStrategy::Exact), every file it
# writes (trace.jsonl, trace.csv, usage.csv, heatmap.svg, usage-buckets.svg, generations.txt,
# calibration.csv) is the same byte for byte, and so is the printout but its timing figures.
# Usage: tests/voids_batch.sh <path to voids>. Reads $FATHOM_SHARED (else voids' built-in default).
set -euo pipefail
voids=$(realpath "${1:?usage: tests/voids_batch.sh <path to voids>}")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "voids_batch FAILED: $*" >&2; exit 1; }
# The printout without its timings: "(443 + 160 tokens, 7.02 s)" and the closing wall/CPU line.
printout() { sed -E -e 's/, [0-9.]+ s\)$/)/' -e '/^total \(loading included\)/d' "$1"; }

# run <name> <voids arguments...>: voids in $tmp/<name>, writing into its own out/.
run() {
  local name=$1
  shift
  mkdir -p "$tmp/$name"
  (cd "$tmp/$name" && "$voids" "$@" -o out >stdout.txt 2>stderr.txt) || { cat "$tmp/$name/stderr.txt" >&2; fail "$name"; }
}
# same <reference> <other>: every output file and the printout.
same() {
  local a=$tmp/$1 b=$tmp/$2 f
  for f in trace.jsonl trace.csv usage.csv heatmap.svg usage-buckets.svg generations.txt calibration.csv; do
    [[ -e $a/out/$f || -e $b/out/$f ]] || continue
    cmp -s "$a/out/$f" "$b/out/$f" || { diff "$a/out/$f" "$b/out/$f" | head -5; fail "$2: $f differs from $1's"; }
  done
  cmp -s <(printout "$a/stdout.txt") <(printout "$b/stdout.txt") ||
    { diff <(printout "$a/stdout.txt") <(printout "$b/stdout.txt") | head -10; fail "$2: printout differs from $1's"; }
  [[ -s $a/out/trace.jsonl ]] || fail "$1 wrote an empty trace"
}

printf '%s\n' "Once upon a time" "The little dog" "Lily saw a big red ball" "One day" "Tom and Sam went to the park" \
  >"$tmp/prompts.txt"
prompts=(--prompts "$tmp/prompts.txt" -n 24 --temperature 0.8 --seed 5 --calibrate 0.3 --no-timing)
run p1 "${prompts[@]}" --batch 1
run p3 "${prompts[@]}" --batch 3
same p1 p3
echo "voids_batch: --prompts, --batch 3 = --batch 1 ($(wc -l <"$tmp/p1/out/trace.jsonl") trace records)"

task=(--task mmlu --items 7 -n 16 --calibrate 0.1,0.5 --shortgpt 2 --no-timing)
run t1 "${task[@]}" --batch 1
run t2 "${task[@]}" --batch 2
run t4 "${task[@]}" --batch 4
same t1 t2
same t1 t4
echo "voids_batch: --task mmlu, --batch 2 and 4 = --batch 1 ($(wc -l <"$tmp/t1/out/trace.jsonl") trace records)"

exits=(--task mmlu --items 5 -n 12 --policy early-exit:softmax_max:0.05 --kv exact)
run e1 "${exits[@]}" --batch 1
run e3 "${exits[@]}" --batch 3
same e1 e3
grep -q '"exit_layer":[0-9]' "$tmp/e1/out/trace.jsonl" || fail "early exit never exited: the run shows nothing"
echo "voids_batch: --task mmlu under early exit (KV exact), --batch 3 = --batch 1"
