#!/usr/bin/env python3
"""Peer comparison: fathom vs llama2.c's run.c (fp32) on random checkpoints of its 15M and 110M shapes.

Not run in CI (it writes 60 + 440 MB of checkpoints and builds run.c from its public source).

    python bench/compare/llama2c.py --build build --run-c ../llama2.c/run.c --work /tmp/llama2c
    python bench/compare/llama2c.py write --shape 15M --out /tmp/m15.bin   # a checkpoint only
    python bench/compare/llama2c.py tokenizer --out /tmp/tokenizer.bin     # a 32000-token tokenizer.bin

`run.c` comes from github.com/karpathy/llama2.c (its `run.c` file, read and run, never copied
here). What the comparison does, in order:
  1. writes one randomly initialised checkpoint per shape in llama2.c's checkpoint format (the
     "version 0" .bin that run.c reads: seven int32 header fields, then every f32 tensor for all
     layers back to back, RoPE tables included, classifier shared with the embedding) under
     --work, and a tokenizer.bin of 32000 made-up tokens in run.c's tokenizer format (run.c needs
     one to print what it generates; fathom gets the same file with --tokenizer):
       15M:  dim 288, hidden 768, 6 layers, 6 heads, 6 kv heads, vocab 32000, seq_len 256
       110M: dim 768, hidden 2048, 12 layers, 12 heads, 12 kv heads, vocab 32000, seq_len 1024
     Initialisation as llama2.c's model.py: normal(0, 0.02) for the embedding and every matrix,
     normal(0, 0.02 / sqrt(2 * layers)) for w3 and wo, norms 1. The BOS row of the embedding
     (token 1) is scaled by 1e-3: run.c stops generating when it samples BOS, and with the
     classifier tied to the embedding a near-zero row is never the argmax;
  2. builds run.c twice with the flags of its Makefile: `runfast` (gcc -Ofast, one thread) and
     `runomp` (gcc -Ofast -fopenmp -march=native; threads from OMP_NUM_THREADS);
  3. measures decode tokens/s, 256 steps from a 1-token prompt (BOS), greedy, for
       run.c:  `run <ckpt> -z tokenizer.bin -t 0 -n 256` (its own "achieved tok/s": 255 forwards
               after the first, timed in ms, sampling and printing included);
       fathom: `generate -m <ckpt> --tokenizer tokenizer.bin --ids 1 -n 256 --ignore-eos -t N`
               with the weights held as f32: `--weights as-stored` (the mapped file itself, Wq/Wk
               permuted copies) and `--weights f32` (copied into fathom's own buffers); its decode
               rate covers the same 255 forwards after the first token, sampling and printing
               included;
     at 1 and 2 threads (runfast at 1 only), plus fathom's bench_gemv read bandwidth at each
     thread count. Every run reads a copy of the checkpoint written just before it (compare.py's
     `fresh_copy`): both programs map the file, and run.c decoded the 110M checkpoint at 54-64
     tok/s from a newly written copy (mapped as huge pages) and at 44-46 from one cached hours
     earlier, whose pages had come apart in physical memory (Zen 4, 2026-12-06). Every run is a
     fresh process; configurations are interleaved round-robin, each --reps times, and medians
     are reported with fathom ÷ run.c ratios, of the medians and (in brackets) the median of the
     rounds' ratios (the `runomp` build is the peer of record: at one thread it is the faster of
     the two builds).
Both programs decode the same greedy sequence until their f32 sums (different summation orders:
-Ofast reassociates, fathom's kernels use their own) pick a different argmax at a near tie; the
script reports how many of the first generated tokens agree, as a check that both ran the model.
--passive: OMP_WAIT_POLICY=passive for every process, as in compare.py (run.c's OpenMP threads
spin at each of its ~50-100 parallel regions per token; on a shared machine its 2-thread runs
collapse without it).
"""
from __future__ import annotations

import argparse
import os
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (REPO, bandwidth_configs, fresh_copy, header_lines, log, median,  # noqa: E402
                     parse_round_robin_args, ratio_cell, round_robin, run_generate, table_notes)

SHAPES = {  # dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
    "15M": (288, 768, 6, 6, 6, 32000, 256),
    "110M": (768, 2048, 12, 12, 12, 32000, 1024),
}
STEPS = 256
VOCAB = 32000


# ---------------------------------------------------------------- 1. files
def write_checkpoint(path: Path, shape: str, seed: int = 0) -> None:
    """A random checkpoint in llama2.c's version-0 format (run.c's memory_map_weights order)."""
    import numpy as np
    dim, hidden, L, heads, kv_heads, vocab, seq_len = SHAPES[shape]
    hs = dim // heads
    kv_dim = kv_heads * hs
    rng = np.random.default_rng(seed)

    def normal(n: int, std: float):
        return (rng.standard_normal(n, dtype=np.float32) * np.float32(std)).astype("<f4")

    std, std_out = 0.02, 0.02 / (2 * L) ** 0.5
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        f.write(struct.pack("<7i", dim, hidden, L, heads, kv_heads, vocab, seq_len))
        emb = normal(vocab * dim, std).reshape(vocab, dim)
        emb[1] *= np.float32(1e-3)  # BOS: never the argmax of the tied classifier (run.c stops at BOS)
        emb.tofile(f)
        np.ones(L * dim, "<f4").tofile(f)                     # rms_att
        normal(L * dim * dim, std).tofile(f)                  # wq
        normal(L * kv_dim * dim, std).tofile(f)               # wk
        normal(L * kv_dim * dim, std).tofile(f)               # wv
        normal(L * dim * dim, std_out).tofile(f)              # wo
        np.ones(L * dim, "<f4").tofile(f)                     # rms_ffn
        normal(L * hidden * dim, std).tofile(f)               # w1
        normal(L * dim * hidden, std).tofile(f)               # w2
        normal(L * hidden * dim, std_out).tofile(f)           # w3
        np.ones(dim, "<f4").tofile(f)                         # rms_final
        freqs = 1.0 / (10000.0 ** (np.arange(0, hs, 2, dtype=np.float64) / hs))
        angles = np.outer(np.arange(seq_len), freqs)
        np.cos(angles).astype("<f4").tofile(f)                # freq_cis_real (unused by run.c)
        np.sin(angles).astype("<f4").tofile(f)                # freq_cis_imag
    tmp.replace(path)


def write_tokenizer(path: Path, vocab: int = VOCAB) -> None:
    """run.c's tokenizer.bin: int32 max_token_length, then per token f32 score, int32 length, bytes.

    Ids as in Llama 2's: 0 <unk>, 1 BOS, 2 EOS, 3..258 the byte tokens <0x00>..<0xFF>, then
    made-up printable pieces " t<id>" (no real vocabulary is needed to time a random model)."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [f"<0x{b:02X}>".encode() for b in range(256)]
    pieces += [f" t{i}".encode() for i in range(len(pieces), vocab)]
    with path.open("wb") as f:
        f.write(struct.pack("<i", max(len(p) for p in pieces)))
        for i, p in enumerate(pieces):
            f.write(struct.pack("<fi", -float(i), len(p)) + p)


def build_run_c(run_c: Path, work: Path) -> dict[str, Path]:
    """run.c built with its Makefile's `runfast` and `runomp` flags (gcc)."""
    flags = {"runfast": ["-Ofast"], "runomp": ["-Ofast", "-fopenmp", "-march=native"]}
    out = {}
    for name, f in flags.items():
        exe = work / f"run-{name}"
        if not exe.exists() or exe.stat().st_mtime < run_c.stat().st_mtime:
            log("building", exe, "(gcc", " ".join(f) + ")")
            subprocess.run(["gcc", *f, str(run_c), "-lm", "-o", str(exe)], check=True)
        out[name] = exe
    return out


# ---------------------------------------------------------------- 2. runs
RUNC_STATS = re.compile(r"achieved tok/s: ([\d.]+)")


def run_runc(exe: Path, ckpt: Path, tok: Path, threads: int) -> dict:
    r = subprocess.run([str(exe), str(ckpt), "-z", str(tok), "-t", "0", "-n", str(STEPS)],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    m = RUNC_STATS.search(r.stderr)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"{exe.name} failed ({r.returncode}): {r.stderr[-2000:]}")
    # the made-up pieces " t<id>" (a byte token, ids 3..258, prints its byte and is not counted)
    return {"decode": float(m.group(1)), "tokens": [int(t) for t in re.findall(r"t(\d+)", r.stdout)]}


def run_fathom(generate: Path, ckpt: Path, tok: Path, weights: str, threads: int) -> dict:
    r = run_generate(generate, ckpt, [1], STEPS, weights, threads, extra=("--tokenizer", str(tok)))
    return {"decode": r["decode"], "tokens": [int(t) for t in re.findall(r"t(\d+)", r["stdout"])]}


# ---------------------------------------------------------------- report
def agreement(results: dict, shape: str) -> str:
    """Greedy tokens both programs generated, from each configuration's first run."""
    ref = next((r[0]["tokens"] for k, r in results.items() if k[0] == "run.c" and k[2] == shape), None)
    parts = []
    for k, runs in sorted(results.items()):
        if k[0] == "fathom" and k[2] == shape and ref is not None:
            toks = runs[0]["tokens"]
            same = next((i for i, (a, b) in enumerate(zip(ref, toks)) if a != b), min(len(ref), len(toks)))
            parts.append(f"{k[1]} {k[3]}t: first {same} of {STEPS}")
    return f"{shape}: tokens equal to run.c's (" + "; ".join(parts) + ")" if parts else ""


def table(results: dict) -> str:
    """results: (engine, variant, shape, threads) -> [{decode, tokens}]."""
    med = lambda key: median([r["decode"] for r in results.get(key, [])])
    lines = [f"| shape | threads | engine | weights / build | runs | decode tok/s ({STEPS} steps) | "
             "fathom ÷ run.c runomp | fathom ÷ run.c runfast |", "|---|---|---|---|---|---|---|---|"]
    order = {"run.c": 0, "fathom": 1}
    keys = sorted((k for k in results if k[0] in order),
                  key=lambda k: (list(SHAPES).index(k[2]), k[3], order[k[0]], k[1]))
    for k in keys:
        eng, var, shape, th = k
        xs = [r["decode"] for r in results[k]]
        ro, rf = ("run.c", "runomp", shape, th), ("run.c", "runfast", shape, th)
        ratio = lambda peer: ratio_cell(results, k, peer, "decode") if eng == "fathom" else "—"
        lines.append(f"| {shape} | {th} | {eng} | {var} | {len(xs)} | {med(k):.1f} ({min(xs):.1f}–{max(xs):.1f}) "
                     f"| {ratio(ro)} | {ratio(rf)} |")
    lines += table_notes(results, " at the same shape and threads")
    agree = [a for a in (agreement(results, s) for s in SHAPES) if a]
    if agree:
        lines.append("Greedy check, " + "; ".join(agree) + ".")
    return "\n".join(lines)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("write", "tokenizer"):
        w = argparse.ArgumentParser(prog=f"llama2c.py {sys.argv[1]}")
        w.add_argument("--out", required=True)
        if sys.argv[1] == "write":
            w.add_argument("--shape", choices=list(SHAPES), required=True)
            w.add_argument("--seed", type=int, default=0)
        a = w.parse_args(sys.argv[2:])
        if sys.argv[1] == "write":
            write_checkpoint(Path(a.out), a.shape, a.seed)
        else:
            write_tokenizer(Path(a.out))
        return 0

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=str(REPO / "build"), help="fathom build dir (examples/generate, bench/bench_gemv)")
    ap.add_argument("--run-c", required=True, help="llama2.c's run.c")
    ap.add_argument("--work", default="/tmp/llama2c", help="checkpoints, tokenizer, run.c builds, results")
    ap.add_argument("--shapes", default="15M,110M")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fathom", action="append", default=[], metavar="LABEL=GENERATE",
                    help="another fathom build's examples/generate to time as well (--weights f32), e.g. "
                         "before and after a kernel change; repeatable")
    a = parse_round_robin_args(ap)

    build = Path(a.build).resolve()
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    shapes = a.shapes.split(",")
    threads = [int(t) for t in a.threads.split(",")]
    generate = build / "examples" / "generate"
    if not generate.exists():
        raise SystemExit(f"{generate} is missing (FATHOM_BUILD_EXAMPLES=ON)")

    tok = work / "tokenizer.bin"
    if not tok.exists():
        write_tokenizer(tok)
    ckpts = {}
    for s in shapes:
        ckpts[s] = work / f"random{s}.bin"
        if not ckpts[s].exists():
            log("writing", ckpts[s])
            write_checkpoint(ckpts[s], s)
    exes = build_run_c(Path(a.run_c).resolve(), work)

    configs = bandwidth_configs(build, threads)
    fresh = lambda s: fresh_copy(ckpts[s], work)  # every run maps a checkpoint cached just before it
    for s in shapes:
        for th in threads:
            for name, exe in exes.items():
                if name == "runomp" or th == 1:
                    configs.append((("run.c", name, s, th),
                                    lambda e=exe, s=s, th=th: run_runc(e, fresh(s), tok, th)))
            for w in ("as-stored", "f32"):
                configs.append((("fathom", w, s, th),
                                lambda w=w, s=s, th=th: run_fathom(generate, fresh(s), tok, w, th)))
            for extra in a.fathom:
                label, path = extra.split("=", 1)
                configs.append((("fathom", f"f32, {label}", s, th),
                                lambda p=Path(path), s=s, th=th: run_fathom(p, fresh(s), tok, "f32", th)))

    results = round_robin(configs, a.reps, a.until, work / "results-llama2c.jsonl")
    text = header_lines("llama2.c run.c (fp32) vs fathom, random checkpoints") + "\n" + table(results)
    (work / "results-llama2c.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
