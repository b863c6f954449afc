#!/usr/bin/env python3
"""Peer comparison: fathom against llama.cpp (and transformers) on the same model files.

Not run in CI (it installs or builds peers and takes tens of minutes on 2 cores).

    python bench/compare/compare.py --build build-cmp            # suite qwen: everything
    python bench/compare/compare.py --engines fathom,transformers --threads 1 --until 05:10
    python bench/compare/compare.py --suite smollm2 --build build \
        --llama-bench ../llama/build/bin/llama-bench
    python bench/compare/compare.py --suite qwen-q4km --build build --llama-src <sdist dir> \
        --llama-bench ../llama/build/bin/llama-bench --llama-quantize ../llama/build/bin/llama-quantize
    python bench/compare/compare.py --suite qwen-bf16 --build build --llama-src <sdist dir> \
        --llama-bench ../llama/build/bin/llama-bench                     # and --suite qwen-q8_0

Suites (--suite):

qwen (the default), in order:
  1. creates ONE randomly initialised model with Qwen2.5-0.5B's config (transformers, bf16) and
     saves it as a Hugging Face folder under <build>/compare/qwen-random (never in the repo);
  2. installs llama-cpp-python from its PyPI source distribution if it is not importable
     (CMAKE_ARGS=-DGGML_NATIVE=ON, built under `nice`), and converts the model to GGUF bf16 and
     q8_0 with the `convert_hf_to_gguf.py` shipped inside that source distribution;
  3. measures prefill-512 and decode-128 tokens/s for fathom (`examples/generate`), llama.cpp
     (the Python binding: `Llama.eval`) and transformers (eager attention, bf16 and f32), at 1 and
     2 threads. Every measurement is a fresh process (load, one 512-token prefill, 128 single-token
     decode steps, no warm-up for anyone), so OpenMP pools of different runtimes never share a
     process. The same 512 prompt ids (seeded) go to every engine; decode feeds back the argmax
     token. fathom runs its bf16 weights twice: exact products (the default) and with
     `--activations bf16` (bf16-rounded activations, as llama.cpp and torch multiply; the AMX tile
     kernel where the CPU has AMX-BF16): peers' bf16 rows get a ratio against each.

smollm2: the real SmolLM2-135M-Instruct Q4_1 GGUF in $FATHOM_SHARED (Q4_1 matrices, Q8_0
  embedding = tied LM head), read by fathom as stored (`--weights as-stored`: native Q4_1 kernels)
  and converted to Q8 at load (`--weights q8`), against llama.cpp's own benchmark program
  `llama-bench` on the same file (its CPU backend keeps the file's types).

qwen-q4km: the qwen suite's random model, converted to GGUF bf16 (as in qwen, step 2; no install:
  give --llama-src, an unpacked llama-cpp-python sdist or a llama.cpp checkout) and quantised to
  Q4_K_M by `llama-quantize` built from the same source; then measured as smollm2. K-quant blocks
  hold 256 weights and this shape's rows are 896 wide, so llama-quantize falls back for every
  matrix but ffn_down: q, k, o, gate, up and half the v matrices become Q5_0, the other v matrices
  and the embedding Q8_0, ffn_down Q4_K / Q6_K. fathom as stored multiplies Q5_0, Q4_K and Q6_K
  natively and re-lays Q8_0 exactly as its Q8 (the same bytes per weight as the file).

fathom's prompts multiply quantised weights' exact values with f32 activations (its default, exact
  prefill); the quantised suites also run it as stored with `--prefill int8` (activations
  quantised to int8 blocks, as decode and llama.cpp do).

llama-q4km: as qwen-q4km with a random model of Llama-3.2-1B's config (hidden 2048, 16 layers, 32
  / 8 heads, 8192-wide MLP, 128,256-token tied embedding; the llama3 tokenizer from
  $FATHOM_SHARED/tokenizers/llama3 for the converter). Every row is whole 256-weight K blocks, so
  the file is what a Llama Q4_K_M user has: Q4_K matrices, Q6_K for half the v and down matrices
  and for the tied embedding, which is also the head. 2.5 GB of bf16 and ~0.8 GB of Q4_K_M under
  --work.

qwen-bf16: the same model's bf16 GGUF (no quantiser needed), measured as smollm2: fathom as stored
  (bf16 weights widened exactly, f32 products), as stored with `--activations bf16` (activations
  rounded to bf16, vdpbf16ps where AVX512_BF16 is present: inexact, opt-in) and converted to Q8 at
  load, against llama-bench on the file (its CPU backend multiplies bf16 weights with bf16-rounded
  activations).

qwen-q8_0: the same model converted to GGUF q8_0 by the same script; fathom as stored (Q8_0
  re-laid exactly as its Q8) against llama-bench on the file: the Q8 cells at equal weights.

The GGUF suites measure prefill-256 and decode-128 at 256-384 tokens of context:
  fathom: `examples/generate --ids <256 seeded ids> -n 129 --ignore-eos`, a fresh process each
    time (load, one 256-token prefill, 128 single-token decode steps after the first token, no
    warm-up); prefill = 256 ÷ time to the first token, decode = 128 ÷ the time of those steps.
  llama.cpp: `llama-bench -p 256 -n 0 -r 1` and `llama-bench -p 0 -n 128 -d 256 -r 1` (the decode
    test after a 256-token context), each with llama-bench's own warm-up run; its defaults
    otherwise (f16 KV cache, flash attention auto, weight repacking on). fathom's KV cache is f32.
    On an Intel Xeon with AMX (family 6 model 207, 2026-12-04) llama.cpp built with its AMX
    kernels (-DGGML_AMX_TILE=ON -DGGML_AMX_INT8=ON -DGGML_AMX_BF16=ON) died of SIGILL at its first
    graph computation; build llama-bench there without them (docs/benchmarks.md, "AMX-INT8").

Every run of a GGUF file (fathom's and llama.cpp's, in every suite) reads a copy of it written
just before the run (`fresh_copy`): a model file mapped from the page cache decodes faster when its
pages lie contiguous in physical memory (mapped as huge pages), as a newly written file's do, and a
file cached hours earlier had come apart on these VMs (`fresh_copy` has the figures).

Every suite also measures the machine's DRAM read bandwidth in the same round robin (fathom's
`bench_gemv --benchmark_filter=BM_read_bandwidth/plain`: 512 MiB of random bytes streamed by 1 or
2 threads) when the build has bench_gemv, so every figure comes with the same minutes' limit.
Configurations are interleaved round-robin (the start rotated each repetition) and each is
repeated --reps times; medians (min–max) are reported, with fathom ÷ peer ratios at equal weights
and thread count: the ratio of the medians, and in brackets the median of the ratios within each
round (`ratio_cell`), which compares the engines in the same minutes. The table starts with the
CPU model (/proc/cpuinfo) and the date.

--passive sets OMP_WAIT_POLICY=passive for every measured process (all engines alike). On a
machine shared with other work, OpenMP threads that spin at barriers while their partner is
descheduled make 2-thread runs of OpenMP programs (llama.cpp's CPU backend, run.c) collapse to a
few tokens/s; with passive waiting they keep a fair share. fathom's own thread pool does not
spin (docs/benchmarks.md, "Decode under load"), so the setting changes nothing for it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PREFILL = 512
DECODE = 128
VOCAB_REAL = 151643  # ids below this are real Qwen2 BPE tokens (the rest is padding/special)
LLAMA_CPP_PKG = "llama-cpp-python"


def log(*a):
    print("[compare]", *a, file=sys.stderr, flush=True)


def prompt_ids(seed: int = 1234) -> list[int]:
    import random
    rng = random.Random(seed)
    return [rng.randrange(0, VOCAB_REAL) for _ in range(PREFILL)]


# ---------------------------------------------------------------- 1. the model
def make_model(model_dir: Path, shared: Path | None, shape: str = "qwen") -> None:
    if any(model_dir.glob("model*.safetensors")):
        log("model exists:", model_dir)
        return
    if shape == "llama":
        return make_llama_model(model_dir, shared)
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    # Qwen2.5-0.5B's config.json, except that the weights are random.
    cfg = Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
        num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
        rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, hidden_act="silu",
        bos_token_id=151643, eos_token_id=151643, use_sliding_window=False, attention_dropout=0.0,
        torch_dtype="bfloat16")
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(model_dir, safe_serialization=True)
    # convert_hf_to_gguf.py needs the tokenizer; Qwen3's tokenizer.json has Qwen2.5's BPE vocab.
    if shared is not None and (shared / "tokenizers" / "qwen3" / "tokenizer.json").exists():
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(shared / "tokenizers" / "qwen3" / f, model_dir / f)
    log("saved random Qwen2.5-0.5B-shaped model to", model_dir)


def make_llama_model(model_dir: Path, shared: Path | None) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    # Llama-3.2-1B's config.json, except that the weights are random: every matrix is whole
    # 256-weight K blocks wide (2048, 8192), so its Q4_K_M file is Q4_K and Q6_K throughout.
    cfg = LlamaConfig(
        vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
        num_attention_heads=32, num_key_value_heads=8, head_dim=64, max_position_embeddings=131072,
        rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                           "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        rms_norm_eps=1e-5, tie_word_embeddings=True, hidden_act="silu", bos_token_id=128000,
        eos_token_id=128001, attention_bias=False, mlp_bias=False, torch_dtype="bfloat16")
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(model_dir, safe_serialization=True)
    if shared is None or not (shared / "tokenizers" / "llama3" / "tokenizer.json").exists():
        raise SystemExit("--suite llama-q4km needs $FATHOM_SHARED/tokenizers/llama3 (convert_hf_to_gguf.py reads it)")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(shared / "tokenizers" / "llama3" / f, model_dir / f)
    log("saved random Llama-3.2-1B-shaped model to", model_dir)


# ---------------------------------------------------------------- 2. llama.cpp
def llama_cpp_importable() -> bool:
    return subprocess.run([sys.executable, "-c", "import llama_cpp"],
                          capture_output=True).returncode == 0


def llama_cpp_sdist(work: Path) -> Path:
    """Unpacked llama-cpp-python source distribution (contains llama.cpp + convert script)."""
    peers = work / "peers"
    peers.mkdir(parents=True, exist_ok=True)
    found = sorted(p for p in peers.glob("llama_cpp_python-*") if p.is_dir())
    if found:
        return found[-1]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    LLAMA_CPP_PKG, "-d", str(peers)], check=True)
    tarball = sorted(peers.glob("llama_cpp_python-*.tar.gz"))[-1]
    shutil.unpack_archive(tarball, peers)
    return sorted(p for p in peers.glob("llama_cpp_python-*") if p.is_dir())[-1]


def install_llama_cpp(src: Path) -> None:
    if llama_cpp_importable():
        return
    env = dict(os.environ, CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF "
               "-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF", CMAKE_BUILD_PARALLEL_LEVEL="2")
    subprocess.run([sys.executable, "-m", "pip", "install", "scikit-build-core"], check=True)
    log("building llama-cpp-python from source (long on 2 cores)...")
    subprocess.run(["nice", "-n", "10", sys.executable, "-m", "pip", "install",
                    "--no-build-isolation", str(src)], env=env, check=True)


def convert_gguf(src: Path, model_dir: Path, out: Path, outtype: str) -> None:
    if out.exists():
        return
    # inside a llama-cpp-python sdist, or a llama.cpp checkout itself
    script = next((p for p in (src / "vendor" / "llama.cpp" / "convert_hf_to_gguf.py",
                               src / "convert_hf_to_gguf.py") if p.exists()), None)
    if script is None:
        raise SystemExit(f"no convert_hf_to_gguf.py in {src} (or its vendor/llama.cpp)")
    log("converting to", out.name)
    # Qwen2's vocab step tries sentencepiece first and fails on the import if it is missing
    subprocess.run([sys.executable, "-m", "pip", "install", "sentencepiece"], check=True)
    # the script puts its own gguf-py on sys.path
    subprocess.run([sys.executable, str(script), str(model_dir), "--outtype", outtype,
                    "--outfile", str(out)], check=True)


# ---------------------------------------------------------------- 3. workers (one per process)
def worker_llama(gguf: str, threads: int, ids: list[int]) -> dict:
    import numpy as np
    from llama_cpp import Llama
    llm = Llama(model_path=gguf, n_ctx=1024, n_batch=PREFILL, n_ubatch=PREFILL, n_threads=threads,
                n_threads_batch=threads, logits_all=False, verbose=False)
    # without logits_all, eval() keeps no scores: read the last token's logits from the context
    last = lambda: int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))))
    t0 = time.perf_counter()
    llm.eval(ids)
    nxt = last()
    t1 = time.perf_counter()
    for _ in range(DECODE):
        llm.eval([nxt])
        nxt = last()
    t2 = time.perf_counter()
    return {"prefill": PREFILL / (t1 - t0), "decode": DECODE / (t2 - t1)}


def worker_hf(model_dir: str, dtype: str, threads: int, ids: list[int]) -> dict:
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype={"bf16": torch.bfloat16, "f32": torch.float32}[dtype],
        attn_implementation="eager")
    model.eval()
    x = torch.tensor([ids])
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model(input_ids=x, use_cache=True, logits_to_keep=1)
        nxt = out.logits[0, -1].argmax()
        t1 = time.perf_counter()
        past = out.past_key_values
        for _ in range(DECODE):
            out = model(input_ids=nxt.view(1, 1), past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[0, -1].argmax()
        t2 = time.perf_counter()
    return {"prefill": PREFILL / (t1 - t0), "decode": DECODE / (t2 - t1)}


STATS = re.compile(r"\[(\d+) prompt tokens: ([\d.]+) tok/s \| (\d+) generated: ([\d.]+) tok/s")


def run_generate(generate: Path, model: Path, ids: list[int], n: int, weights: str, threads: int,
                 extra: tuple[str, ...] = ()) -> dict:
    """One examples/generate process: `n` new tokens after the prompt `ids`, end of sequence
    ignored. Returns its prefill and decode rates and stdout; fails unless it ran exactly
    len(ids) prompt and n generated tokens."""
    r = subprocess.run([str(generate), "-m", str(model), *extra, "--ids", ",".join(map(str, ids)),
                        "-n", str(n), "--ignore-eos", "--weights", weights, "-t", str(threads)],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    m = STATS.search(r.stderr)
    if r.returncode != 0 or not m:
        raise RuntimeError(f"fathom generate failed ({r.returncode}): {r.stderr[-2000:]}")
    if int(m.group(1)) != len(ids) or int(m.group(3)) != n:
        raise RuntimeError(f"fathom ran {m.group(1)} prompt / {m.group(3)} generated tokens, not {len(ids)} / {n}")
    return {"prefill": float(m.group(2)), "decode": float(m.group(4)), "stdout": r.stdout}


def run_fathom(generate: Path, model_dir: Path, weights: str, threads: int, ids: list[int],
               extra: tuple[str, ...] = ()) -> dict:
    # generate's prefill rate is prompt tokens ÷ time to the first token; its decode rate covers
    # the 127 single-token forwards after it.
    r = run_generate(generate, model_dir, ids, DECODE, weights, threads, extra)
    return {"prefill": r["prefill"], "decode": r["decode"]}

def run_worker(args: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    r = subprocess.run([sys.executable, __file__, "worker", *args], capture_output=True, text=True,
                       env=env)
    if r.returncode != 0:
        raise RuntimeError(f"worker {args} failed: {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- shared by the suites and llama2c.py
def cpu_description() -> str:
    """The CPU as /proc/cpuinfo names it, with family / model and the vector extensions that matter."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    field = lambda k: (re.search(rf"^{k}\s*:\s*(.*)$", info, re.M) or [None, "?"])[1].strip()
    flags = set(field("flags").split())
    isa = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
           if f in flags]
    return (f"{field('model name')} (family {field('cpu family')}, model {field('model')}; "
            f"{os.cpu_count()} logical CPUs; {' '.join(isa) or 'no AVX2'})")


def fresh_copy(src: Path, work: Path) -> Path:
    """`src` copied to <work>/fresh-<name> just now (any earlier copy deleted first) and synced:
    the file one measured run reads.

    Programs that map a model file (llama.cpp, run.c; fathom's llama2.c checkpoints as stored) read
    it through the page cache, and how those pages lie in physical memory changes their speed.
    Written in 16 MiB pieces, the file is cached in 2 MiB folios that the kernel maps as huge pages
    (/proc/self/smaps: FilePmdMapped the whole file; /proc/self/pagemap: runs of 512-1024
    contiguous 4 KiB pages), while a file cached an hour or two earlier on these VMs had come apart
    (runs of 1.9-4.5 pages, next to no huge mappings; bench/compare/page_layout.py shows a file's).
    On a Zen 4 (2026-12-06) run.c decoded llama2.c's 110M checkpoint at 54-64 tok/s from a fresh
    copy and 44-46 from the old one; a `cp` (smaller folios, no huge mappings) gave 49-56;
    llama-bench decoded the q8_0 file 1.06-1.15x as fast from a `cp` copy. A fresh copy per run
    gives every engine the same, best, layout (fathom holds GGUF weights in its own huge-page
    buffers either way). The sync keeps the copy's writeback out of the measured minutes."""
    dst = work / f"fresh-{src.name}"
    dst.unlink(missing_ok=True)
    with src.open("rb") as i, dst.open("wb") as o:
        shutil.copyfileobj(i, o, 16 << 20)
        o.flush()
        os.fsync(o.fileno())
    return dst


def read_bandwidth(build: Path, threads: int) -> dict:
    """DRAM read bandwidth now, GB/s: bench_gemv's BM_read_bandwidth/plain (512 MiB of random bytes)."""
    exe = build / "bench" / "bench_gemv"
    r = subprocess.run([str(exe), "--benchmark_filter=BM_read_bandwidth/plain", "--benchmark_format=json"],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if r.returncode != 0:
        raise RuntimeError(f"bench_gemv failed ({r.returncode}): {r.stderr[-2000:]}")
    bench = [b for b in json.loads(r.stdout)["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
    return {"GB/s": float(bench[0]["GB/s"])}


def bandwidth_configs(build: Path, threads: list[int]) -> list:
    if not (build / "bench" / "bench_gemv").exists():
        log("no", build / "bench" / "bench_gemv", "(FATHOM_BUILD_BENCH=ON): no same-run bandwidth")
        return []
    return [(("read bandwidth", "plain", th), lambda th=th: read_bandwidth(build, th)) for th in threads]


def round_robin(configs: list, reps: int, until: str | None, raw: Path) -> dict:
    """Runs every (key, fn) `reps` times, interleaved; start rotated each repetition. -> key: [results]"""
    results: dict = {}

    def out_of_time() -> bool:
        if not until:
            return False
        now = time.gmtime()
        return f"{now.tm_hour:02d}:{now.tm_min:02d}" >= until

    for rep in range(reps):
        # rotate the start so no configuration always runs first / after the same neighbour
        order = configs[rep % len(configs):] + configs[:rep % len(configs)]
        for key, fn in order:
            if out_of_time():
                log("--until reached: no more runs")
                return results
            t = time.perf_counter()
            r = fn()
            results.setdefault(key, []).append(r)
            log(f"rep {rep} {key}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items() if isinstance(v, float))
                + f" ({time.perf_counter() - t:.0f} s)")
            with raw.open("a") as f:
                f.write(json.dumps({"rep": rep, "key": key, **r, "time": time.time()}) + "\n")
    return results


def bandwidth_line(results: dict) -> str:
    bw = sorted((k for k in results if k[0] == "read bandwidth"), key=lambda k: k[2])
    if not bw:
        return ""
    parts = []
    for k in bw:
        xs = [r["GB/s"] for r in results[k]]
        parts.append(f"{k[2]} thread{'s' if k[2] > 1 else ''} {median(xs):.1f} GB/s "
                     f"({min(xs):.1f}–{max(xs):.1f}, {len(xs)} runs)")
    return "Same-run DRAM read bandwidth (bench_gemv BM_read_bandwidth/plain, medians): " + "; ".join(parts) + "."


def ratio_cell(results: dict, mine: tuple, peer: tuple, what: str) -> str:
    """mine ÷ peer for `what`: the ratio of the medians, then in brackets the median of the ratios
    within each round. A round runs every configuration once, within a minute or two, so its
    ratio compares the engines at the same state of the host (on these VMs the read bandwidth moves
    by 1.5-2x between minutes); where both engines decode at the read bound, the two can differ."""
    a, b = results.get(mine, []), results.get(peer, [])
    if not a or not b:
        return "—"
    per_round = [x[what] / y[what] for x, y in zip(a, b)]  # results[key][i] ran in round i
    return f"{median([x[what] for x in a]) / median([y[what] for y in b]):.2f}× ({median(per_round):.2f}×)"


def table_notes(results: dict, ratios: str = "") -> list[str]:
    """The lines under a results table: how to read it, then the same-run read bandwidth."""
    notes = [f"\nMedians over the runs (min–max in brackets); ratios compare medians{ratios}, and in "
             "brackets give the median of the ratios within each round (both engines in the same minutes)."]
    bw = bandwidth_line(results)
    return notes + [bw] if bw else notes


def header_lines(title: str) -> str:
    wait = os.environ.get("OMP_WAIT_POLICY")
    return (f"{title}\n\nCPU: {cpu_description()}. Run finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
            f"{f'; OMP_WAIT_POLICY={wait} for every process' if wait else ''}; load average at the end "
            f"{os.getloadavg()[0]:.1f}.\n")


# ---------------------------------------------------------------- GGUF suites: fathom vs llama-bench
GGUF_PREFILL = 256
GGUF_DECODE = 128


def gguf_prompt_ids(vocab: int, seed: int = 1234) -> list[int]:
    import random
    rng = random.Random(seed)
    return [rng.randrange(0, vocab) for _ in range(GGUF_PREFILL)]


def run_fathom_gguf(generate: Path, gguf: Path, weights: str, threads: int, ids: list[int],
                    extra: tuple[str, ...] = ()) -> dict:
    # -n DECODE + 1: the first token comes from the prefill, then DECODE single-token forwards at
    # context 256..383, which generate times as its decode rate (like llama-bench's tg at depth 256).
    r = run_generate(generate, gguf, ids, GGUF_DECODE + 1, weights, threads, extra)
    return {"prefill": r["prefill"], "decode": r["decode"]}

def llama_bench_once(bench: Path, gguf: Path, threads: int, args: list[str]) -> float:
    r = subprocess.run([str(bench), "-m", str(gguf), "-t", str(threads), "-r", "1", "-o", "json", *args],
                       capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)))
    if r.returncode != 0:
        raise RuntimeError(f"llama-bench {args} failed ({r.returncode}): {r.stderr[-2000:]}")
    tests = json.loads(r.stdout)
    if len(tests) != 1:
        raise RuntimeError(f"llama-bench {args}: expected one test, got {len(tests)}")
    return float(tests[0]["avg_ts"])


def run_llama_bench(bench: Path, gguf: Path, threads: int) -> dict:
    return {"prefill": llama_bench_once(bench, gguf, threads, ["-p", str(GGUF_PREFILL), "-n", "0"]),
            "decode": llama_bench_once(bench, gguf, threads,
                                       ["-p", "0", "-n", str(GGUF_DECODE), "-d", str(GGUF_PREFILL)])}


def gguf_table(results: dict, file_type: str) -> str:
    """results: (engine, weights, threads) -> [{prefill, decode}]; llama.cpp keeps `file_type`."""
    def med(key, what):
        return median([r[what] for r in results.get(key, [])])

    lines = [f"| engine | weights in memory | threads | runs | prefill-{GGUF_PREFILL} tok/s | "
             f"decode-{GGUF_DECODE} tok/s (context {GGUF_PREFILL}–{GGUF_PREFILL + GGUF_DECODE}) | "
             "÷ llama.cpp, prefill | ÷ llama.cpp, decode |",
             "|---|---|---|---|---|---|---|---|"]
    order = {"fathom": 0, "llama.cpp": 1}
    for key in sorted((k for k in results if k[0] in order), key=lambda k: (k[2], order[k[0]], k[1])):
        eng, w, th = key
        runs = results[key]
        p, d = med(key, "prefill"), med(key, "decode")
        span = lambda what: f"{min(r[what] for r in runs):.1f}–{max(r[what] for r in runs):.1f}"
        lk = ("llama.cpp", file_type, th)
        if eng == "fathom" and lk in results:
            rp, rd = ratio_cell(results, key, lk, "prefill"), ratio_cell(results, key, lk, "decode")
        else:
            rp = rd = "—"
        lines.append(f"| {eng} | {w} | {th} | {len(runs)} | {p:.1f} ({span('prefill')}) | {d:.1f} ({span('decode')}) "
                     f"| {rp} | {rd} |")
    lines += table_notes(results, " (fathom ÷ llama.cpp, same threads)")
    return "\n".join(lines)


def quantize_q4km(quantize: Path, src_gguf: Path, out: Path, threads: int) -> None:
    if out.exists():
        return
    log("quantising", src_gguf.name, "to", out.name)
    subprocess.run(["nice", "-n", "10", str(quantize), str(src_gguf), str(out), "Q4_K_M", str(threads)], check=True)


def gguf_suite(a, build: Path, work: Path, shared: Path | None, engines: list[str], threads: list[int]) -> str:
    generate = build / "examples" / "generate"
    if a.suite == "smollm2":
        if shared is None:
            raise SystemExit("--suite smollm2 needs $FATHOM_SHARED (the SmolLM2 GGUF)")
        gguf = shared / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
        file_type, vocab, title = "Q4_1", 49152, "SmolLM2-135M-Instruct Q4_1 GGUF"
        as_stored = "Q4_1 (as stored: native Q4_1, Q8_0 embedding)"
    else:
        q4km = a.suite.endswith("-q4km")
        if not a.llama_src or (q4km and not a.llama_quantize):
            raise SystemExit(f"--suite {a.suite} needs --llama-src" + (" and --llama-quantize" if q4km else ""))
        shape = a.suite.split("-")[0]  # qwen or llama
        model_dir = work / f"{shape}-random"
        make_model(model_dir, shared, shape)
        src = Path(a.llama_src).resolve()
        bf16 = work / f"{shape}-random-bf16.gguf"
        convert_gguf(src, model_dir, bf16, "bf16")
    fathom_weights = [("as-stored", None, ()), ("q8", "Q8 (converted at load)", ())]
    if a.suite == "qwen-bf16":
        gguf, file_type, vocab = bf16, "BF16", VOCAB_REAL
        title = "Qwen2.5-0.5B-shaped random model, bf16 GGUF"
        as_stored = "bf16 (as stored: exact f32 products)"
    elif a.suite == "qwen-q8_0":
        gguf = work / "qwen-random-q8_0.gguf"
        convert_gguf(src, model_dir, gguf, "q8_0")
        file_type, vocab, title = "Q8_0", VOCAB_REAL, "Qwen2.5-0.5B-shaped random model, q8_0 GGUF"
        as_stored = "Q8_0 as stored (re-laid as Q8, the same bytes)"
        fathom_weights = fathom_weights[:1]  # --weights q8 would hold the same matrices
    elif a.suite == "qwen-q4km":
        gguf = work / "qwen-random-Q4_K_M.gguf"
        quantize_q4km(Path(a.llama_quantize), bf16, gguf, max(threads))
        file_type, vocab, title = "Q4_K_M", VOCAB_REAL, "Qwen2.5-0.5B-shaped random model, Q4_K_M GGUF"
        # 896-wide rows are not whole 256-weight K blocks: llama-quantize falls back to Q5_0 / Q8_0
        # for them; only ffn_down is Q4_K / Q6_K. All are held natively (io/gguf_weights.hpp).
        as_stored = "as stored (Q5_0/Q4_K/Q6_K native, Q8_0 as Q8)"
    elif a.suite == "llama-q4km":
        gguf = work / "llama-random-Q4_K_M.gguf"
        quantize_q4km(Path(a.llama_quantize), bf16, gguf, max(threads))
        file_type, vocab, title = "Q4_K_M", 128000, "Llama-3.2-1B-shaped random model, Q4_K_M GGUF"
        # every row whole K blocks: Q4_K, with Q6_K for half the v and down matrices and for the
        # tied embedding (the head), all held natively
        as_stored = "as stored (Q4_K/Q6_K native)"
    if a.suite != "qwen-bf16":  # quantised weights as stored, prompts through the int8 kernels too
        fathom_weights.insert(1, ("as-stored", as_stored + ", --prefill int8", ("--prefill", "int8")))
    else:  # the bf16 weights with bf16-rounded activations, as llama.cpp multiplies them (vdpbf16ps)
        fathom_weights.insert(1, ("as-stored", "bf16 as stored, --activations bf16 (inexact)",
                                  ("--activations", "bf16")))
    ids = gguf_prompt_ids(vocab)
    configs = bandwidth_configs(build, threads)
    fresh = lambda: fresh_copy(gguf, work)  # every run reads a file cached just before it
    for th in threads:
        if "fathom" in engines:
            for w, name, extra in fathom_weights:
                name = name or as_stored
                configs.append((("fathom", name, th),
                                lambda w=w, th=th, extra=extra: run_fathom_gguf(generate, fresh(), w, th, ids, extra)))
        if "llama.cpp" in engines:
            if not a.llama_bench:
                raise SystemExit("llama.cpp in a GGUF suite needs --llama-bench")
            configs.append((("llama.cpp", file_type, th),
                            lambda th=th: run_llama_bench(Path(a.llama_bench), fresh(), th)))
    results = round_robin(configs, a.reps, a.until, work / f"results-{a.suite}.jsonl")
    return header_lines(f"{title}: {gguf.name}") + "\n" + gguf_table(results, file_type)


# ---------------------------------------------------------------- report
def median(xs):
    return statistics.median(xs) if xs else float("nan")


def table(results: dict) -> str:
    """results: key (engine, precision, threads) -> list of {prefill, decode}."""
    def med(key, what):
        return median([r[what] for r in results.get(key, [])])

    # fathom's counterparts at equal precision: bf16 ↔ bf16 (exact products, the default) and
    # bf16-acts (bf16-rounded activations, as the peers), q8 ↔ q8_0; transformers f32 is compared
    # with fathom bf16 (fathom's default for a bf16 checkpoint).
    fathom_of = {"bf16": ("bf16", "bf16-acts"), "q8_0": ("q8",), "f32": ("bf16",)}
    lines = ["| engine | weights | threads | runs | prefill-512 tok/s | decode-128 tok/s | "
             "fathom ÷ it, prefill | fathom ÷ it, decode |",
             "|---|---|---|---|---|---|---|---|"]
    order = {"fathom": 0, "llama.cpp": 1, "transformers": 2}
    for key in sorted((k for k in results if k[0] in order), key=lambda k: (k[2], order[k[0]], k[1])):
        eng, prec, th = key
        runs = results[key]
        p, d = med(key, "prefill"), med(key, "decode")
        span = lambda w: f"{min(r[w] for r in runs):.1f}–{max(r[w] for r in runs):.1f}"
        cells = [(prec, "—", "—")]
        if eng != "fathom":
            cells = []
            for i, f in enumerate(fathom_of[prec]):
                fk = ("fathom", f, th)
                if i and fk not in results:
                    continue
                rp = ratio_cell(results, fk, key, "prefill") if fk in results else "n/a"
                rd = ratio_cell(results, fk, key, "decode") if fk in results else "n/a"
                cells.append((prec if not i else f"{prec} (÷ fathom {f})", rp, rd))
        for name, rp, rd in cells:
            lines.append(f"| {eng} | {name} | {th} | {len(runs)} | {p:.1f} ({span('prefill')}) | {d:.1f} ({span('decode')}) "
                         f"| {rp} | {rd} |")
    lines += table_notes(results)
    return "\n".join(lines)


def parse_round_robin_args(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """--until and --passive (shared by the comparison scripts), then parses; --passive sets
    OMP_WAIT_POLICY=passive for every process measured from here on."""
    ap.add_argument("--until", default=None,
                    help="HH:MM (UTC): start no run after this time; medians of what finished")
    ap.add_argument("--passive", action="store_true",
                    help="OMP_WAIT_POLICY=passive for every measured process (compare.py's docstring)")
    a = ap.parse_args()
    if a.passive:
        os.environ["OMP_WAIT_POLICY"] = "passive"
    return a


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        w = argparse.ArgumentParser()
        w.add_argument("engine", choices=["llama", "hf"])
        w.add_argument("path")
        w.add_argument("precision")
        w.add_argument("threads", type=int)
        a = w.parse_args(sys.argv[2:])
        ids = prompt_ids()
        res = (worker_llama(a.path, a.threads, ids) if a.engine == "llama"
               else worker_hf(a.path, a.precision, a.threads, ids))
        print(json.dumps(res))
        return 0

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", choices=["qwen", "smollm2", "qwen-q4km", "qwen-bf16", "qwen-q8_0", "llama-q4km"],
                    default="qwen")
    ap.add_argument("--build", default=str(REPO / "build-cmp"), help="fathom build dir (examples/generate)")
    ap.add_argument("--work", default=None, help="scratch dir (default: <build>/compare)")
    ap.add_argument("--engines", default=None,
                    help="default: fathom,llama.cpp,transformers (qwen), fathom,llama.cpp (GGUF suites)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-install", action="store_true", help="do not build llama-cpp-python")
    ap.add_argument("--llama-bench", default=None, help="llama.cpp's llama-bench (GGUF suites)")
    ap.add_argument("--llama-quantize", default=None, help="llama.cpp's llama-quantize (qwen-q4km)")
    ap.add_argument("--llama-src", default=None,
                    help="unpacked llama-cpp-python sdist or llama.cpp checkout (qwen-q4km: its convert_hf_to_gguf.py)")
    a = parse_round_robin_args(ap)

    build = Path(a.build).resolve()
    work = Path(a.work).resolve() if a.work else build / "compare"
    work.mkdir(parents=True, exist_ok=True)
    gguf_suite_ = a.suite != "qwen"
    engines = (a.engines or ("fathom,llama.cpp" if gguf_suite_ else "fathom,llama.cpp,transformers")).split(",")
    threads = [int(t) for t in a.threads.split(",")]
    shared = Path(os.environ.get("FATHOM_SHARED", REPO.parent / "shared"))
    shared = shared if shared.exists() else None

    generate = build / "examples" / "generate"
    if "fathom" in engines and not generate.exists():
        log("building fathom's generate...")
        subprocess.run(["cmake", "--build", str(build), "--target", "generate", "-j2"], check=True)

    if gguf_suite_:
        text = gguf_suite(a, build, work, shared, engines, threads)
        (work / f"results-{a.suite}.md").write_text(text + "\n")
        print(text)
        return 0

    model_dir = work / "qwen-random"
    make_model(model_dir, shared)

    ggufs = {}
    if "llama.cpp" in engines:
        src = Path(a.llama_src).resolve() if a.llama_src else llama_cpp_sdist(work)
        if not a.no_install:
            install_llama_cpp(src)
        if not llama_cpp_importable():
            log("llama_cpp is not importable: llama.cpp left out")
            engines.remove("llama.cpp")
        else:
            for outtype in ("bf16", "q8_0"):
                ggufs[outtype] = work / f"qwen-random-{outtype}.gguf"
                convert_gguf(src, model_dir, ggufs[outtype], outtype)

    configs = bandwidth_configs(build, threads)  # (key, runner)
    ids = prompt_ids()
    for th in threads:
        if "fathom" in engines:
            # bf16-acts: bf16 weights with bf16-rounded activations (opt-in, inexact; the AMX tile
            # kernel on a CPU with AMX-BF16, vdpbf16ps elsewhere), as llama.cpp and torch multiply
            for w, name, extra in (("as-stored", "bf16", ()), ("as-stored", "bf16-acts", ("--activations", "bf16")),
                                   ("q8", "q8", ())):
                configs.append((("fathom", name, th),
                                lambda w=w, th=th, x=extra: run_fathom(generate, model_dir, w, th, ids, x)))
        if "llama.cpp" in engines:
            for prec, path in ggufs.items():
                configs.append((("llama.cpp", prec, th), lambda p=path, pr=prec, th=th: run_worker(
                    ["llama", str(fresh_copy(p, work)), pr, str(th)], th)))
        if "transformers" in engines:
            for prec in ("bf16", "f32"):
                configs.append((("transformers", prec, th),
                                lambda pr=prec, th=th: run_worker(["hf", str(model_dir), pr, str(th)], th)))

    results = round_robin(configs, a.reps, a.until, work / "results.jsonl")
    text = header_lines("Qwen2.5-0.5B-shaped random model") + "\n" + table(results)
    (work / f"results-{'+'.join(engines)}.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
