#!/usr/bin/env bash
# Distributed eval (examples/eval built with -DFATHOM_MPI=ON) against one process, on stories260K:
#   1. MMLU log-likelihood, three policies (a shared-pass group and a policy of its own):
#      mpirun -np 2 and -np 3 write the same results file as one process (byte for byte but the
#      per-item "seconds") and the same summary table (but its two timing columns);
#   2. MMLU generate scoring with sampling (seeds per item): the same with -np 2 and -np 3, and
#      with -np 2 --batch 4 (each rank decoding its items together);
#   3. perplexity windows over 3 ranks: the same table as one process (but the timing columns);
#   4. a rank SIGKILLed mid-run (-np 3), then rerun with -np 2: only the missing items are
#      computed (the killed run's part files, that of the rank beyond 2 included, are folded in)
#      and the file equals one process's;
#   5. a corrupted part file: every rank stops, rank 0 names the file and line (exit 1).
# Usage: tests/mpi/run.sh <path to eval>. Needs mpirun (OpenMPI) and $FATHOM_SHARED.
set -euo pipefail
eval_bin=$(realpath "${1:?usage: tests/mpi/run.sh <eval built with -DFATHOM_MPI=ON>}")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export FATHOM_SHARED=${FATHOM_SHARED:-$(cd "$root/.." && pwd)/shared}
export OMP_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none)
fail() { echo "mpi test FAILED: $*" >&2; exit 1; }
records() { sed -E 's/"seconds":[^,}]*//' "$1"; }  # the file without its timing field
# The summary table without its timing columns (tok/s, item-s / wall s) and padding.
table() { grep -v -e 'this call' -e '^plot' -e '^---' "$1" | sed -E 's/ +[^ ]+ +[^ ]+$//' | tr -s ' '; }
same() {  # same <reference stem> <other stem>
  cmp -s <(records "$1.jsonl") <(records "$2.jsonl") || { diff <(records "$1.jsonl") <(records "$2.jsonl") | head -5; fail "$2.jsonl differs from $1.jsonl"; }
  cmp -s <(table "$1.txt") <(table "$2.txt") || { diff "$1.txt" "$2.txt"; fail "$2 summary differs"; }
  ls "$2".jsonl.rank*.part >/dev/null 2>&1 && fail "$2: part files left behind"
  return 0
}
run1() { local out=$1; shift; "$eval_bin" "$@" --no-progress --out "$out.jsonl" >"$out.txt" 2>"$out.err" || { cat "$out.err"; fail "$out"; }; }
runN() { local np=$1 out=$2; shift 2; "${mpi[@]}" -np "$np" "$eval_bin" "$@" --no-progress --out "$out.jsonl" >"$out.txt" 2>"$out.err" || { cat "$out.err"; fail "$out"; }; }

t0=$SECONDS
ll=(--task mmlu --limit 36 --policies full,lac:0.8,static:pp=2)
run1 ll1 "${ll[@]}" --threads 1
runN 2 ll2 "${ll[@]}" --threads 1
runN 3 ll3 "${ll[@]}" --threads 2
same ll1 ll2 && same ll1 ll3
echo "mpi: loglik, -np 2 and -np 3 (x2 threads) = one process ($(($(wc -l <ll1.jsonl) - 1)) records)"

gen=(--task mmlu --subjects anatomy,astronomy --limit 30 --scoring generate --max-new-tokens 12 --policies full,lac:0.5)
run1 gen1 "${gen[@]}" --threads 1
runN 2 gen2 "${gen[@]}" --threads 2
runN 3 gen3 "${gen[@]}" --threads 1
runN 2 gen2b "${gen[@]}" --threads 1 --batch 4  # each rank decodes its items 4 at a time
same gen1 gen2 && same gen1 gen3 && same gen1 gen2b
echo "mpi: generate (sampled), -np 2, -np 3 and -np 2 --batch 4 = one process"

head -c 12000 "$FATHOM_SHARED/data/wikitext2/wikitext-2-raw-test.txt" >text.txt
ppl=(--task perplexity --data text.txt --window 96 --stride 40 --policies full,lac:0.8 --no-progress)
"$eval_bin" "${ppl[@]}" --threads 2 >ppl1.txt 2>/dev/null || fail "perplexity, one process"
"${mpi[@]}" -np 3 "$eval_bin" "${ppl[@]}" --threads 1 >ppl3.txt 2>/dev/null || fail "perplexity, 3 ranks"
cmp -s <(table ppl1.txt) <(table ppl3.txt) || { diff ppl1.txt ppl3.txt; fail "perplexity tables differ"; }
echo "mpi: perplexity, -np 3 = one process"

# 4. Kill rank 1 of three once its part file holds a few records; resume with two ranks.
kill_args=(--task mmlu --subjects college_biology,college_medicine --limit 150 --scoring generate --max-new-tokens 40 --policies full,lac:0.5 --threads 1)
run1 k1 "${kill_args[@]}"
"${mpi[@]}" -np 3 "$eval_bin" "${kill_args[@]}" --no-progress --out k3.jsonl >k3.txt 2>k3.err &
mpirun_pid=$!
victim=""
for _ in $(seq 1 600); do
  for p in $(pgrep -P "$mpirun_pid" || true); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx OMPI_COMM_WORLD_RANK=1 && victim=$p
  done
  [[ -n $victim && -f k3.jsonl.rank1.part ]] && (($(wc -l <k3.jsonl.rank1.part) >= 6)) && break
  sleep 0.05
done
[[ -n $victim ]] || fail "rank 1 not found"
kill -9 "$victim"
wait "$mpirun_pid" && fail "the killed run exited 0 (finished before the kill?)"
parts=$(ls k3.jsonl.rank*.part | wc -l)
done_before=$(cat k3.jsonl.rank*.part | grep -c '"policy"' || true)
runN 2 k3 "${kill_args[@]}"
total=$(($(wc -l <k1.jsonl) - 1))
computed=$(sed -nE 's/.*this call: ([0-9]+) results computed.*/\1/p' k3.txt)
((computed < total)) || fail "the resumed run recomputed everything ($computed of $total)"
((computed + done_before >= total)) || fail "resume lost results ($computed + $done_before < $total)"
same k1 k3
echo "mpi: rank 1 of 3 killed after $done_before results in $parts part files; -np 2 computed the other $computed of $total; file = one process"

# 5. A corrupted part file is a DataError naming it, on every rank's exit.
cp ll1.jsonl bad.jsonl
{ head -1 ll1.jsonl; echo '{"policy": "full", "id": '; echo '{}'; } >bad.jsonl.rank1.part
if "${mpi[@]}" -np 2 "$eval_bin" "${ll[@]}" --threads 1 --no-progress --out bad.jsonl >bad.txt 2>bad.err; then
  fail "a corrupted part file was accepted"
fi
grep -q 'rank 0: bad.jsonl.rank1.part: line 2: invalid JSON' bad.err || { cat bad.err; fail "no typed error for the corrupted part"; }
echo "mpi: a corrupted part file stops the run: $(grep -m1 error: bad.err | cut -c1-110)..."
echo "mpi: all checks passed in $((SECONDS - t0)) s"
