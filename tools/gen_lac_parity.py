#!/usr/bin/env python3
"""Record the Void paper's LAC decisions, computed in transformers, for the C++ parity test.

The released code of "Void in Language Models" (its lac.py) hooks every decoder layer; per token
it takes the L2 norm of the layer's output, Δ_l = n_l − n_{l−1} (n_{−1}: the norm of layer 0's
input, the embeddings), τ_l = α·(max − min) of the Δ of the *preceding* layers (τ_0 = τ_1 = 0,
the range of a single value), and calls layer l a void when Δ_l < τ_l. Its "skip" mode keeps the
residual stream unchanged and only replaces the last layer's output by the output of the last
activated layer (the embeddings if none), so the final norm and LM head read that state. Prompt
processing (PP) is one forward pass over the prompt; response generation (RG) samples the first
token from the prompt pass's logits and then feeds one token per step.

This script reimplements that logic independently with forward hooks (it is not the released
code) and records, for a few prompts of a fixture model, in two modes —
  trace:  decisions only, the model's own logits (tokens identical to full depth);
  final:  final-state substitution (the released code's skip mode);
— the greedy tokens and, for every prompt token and every fed-back generated token, each
layer's decision, Δ and τ (float32, as torch computes them). The C++ test
(tests/test_lac_parity.cpp) requires identical decisions and tokens; a decision whose |Δ − τ| is
within float rounding is reported there, never silently accepted.

SmolLM2-135M-Instruct (the GGUF in the shared folder, $FATHOM_SHARED or ../shared) is recorded too
when present (--smollm2 only / --no-smollm2 to skip): transformers dequantises its Q4_1 weights to
float32 (from_pretrained(dir, gguf_file=..., torch_dtype=float32)), fathom loads the same values
as f32. Three real prompts (a chat-rendered question, two plain sentences; their ids are stored),
α 0.8, 8 RG steps; Δ and τ are stored with 7 significant digits to keep the file small.

Usage:  python tools/gen_lac_parity.py [--out tests/fixtures/lac_parity] [--smollm2 | --no-smollm2]
Deterministic (one thread, fixed prompts); the output is small JSON.
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import argparse
import json
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
MODELS = ["llama_f32", "qwen2_f32", "mistral_f32"]
PROMPTS = [
    [1, 17, 99, 3, 250, 42, 7, 128],
    [1, 200, 31, 5, 77, 64, 9, 180, 33, 41, 2, 90],
    [1, 4, 4, 4, 12],
]
ALPHAS = [0.8, 0.4]
STEPS = 8  # RG loop steps after the token sampled from the prompt pass
SMOLLM2 = "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_TEXTS = ["The capital of France is", "def fibonacci(n):\n    if n < 2:"]
SMOLLM2_CHAT = "What is the boiling point of water at sea level?"


def shared_dir() -> Path:
    return Path(os.environ.get("FATHOM_SHARED") or ROOT.parent / "shared")


class Lac:
    """Per-layer hooks that decide voids for every token of a forward pass."""

    def __init__(self, model, alpha: float, final_state: bool):
        self.alpha, self.final_state = alpha, final_state
        self.layers = model.model.layers
        self.L = len(self.layers)
        for i, layer in enumerate(self.layers):
            layer.register_forward_hook(self._hook(i), with_kwargs=True)

    def reset(self):
        self.prev = None      # [T] n_{l-1}
        self.deltas = []      # per layer: [T]
        self.taus = []
        self.active = []      # per layer: [T] bool
        self.readout = None   # [T, H] output of the last activated layer

    def _hook(self, i):
        def hook(module, args, kwargs, output):
            h_in = args[0] if args else kwargs["hidden_states"]
            h = output[0] if isinstance(output, tuple) else output   # [1, T, H]
            h, h_in = h[0], h_in[0]
            if i == 0:
                self.prev = torch.linalg.norm(h_in, dim=-1)
                self.readout = h_in.clone()
            n = torch.linalg.norm(h, dim=-1)
            delta = n - self.prev
            if i < 2:
                tau = torch.zeros_like(delta)
            else:
                d = torch.stack(self.deltas)  # [i, T]
                tau = self.alpha * (d.max(dim=0).values - d.min(dim=0).values)
            act = ~(delta < tau)
            self.deltas.append(delta)
            self.taus.append(tau)
            self.active.append(act)
            self.readout = torch.where(act[:, None], h, self.readout)
            self.prev = n
            if self.final_state and i == self.L - 1:
                sub = self.readout[None]
                return (sub,) + tuple(output[1:]) if isinstance(output, tuple) else sub
            return output
        return hook

    def record(self):
        t = lambda xs: torch.stack(xs).T  # [T, L]
        return (t(self.active).int().tolist(), t(self.deltas).tolist(), t(self.taus).tolist())


def run(model, lac: Lac, prompt):
    lac.reset()
    out = model(input_ids=torch.tensor([prompt]), use_cache=True)
    pp, pp_d, pp_t = lac.record()
    past = out.past_key_values
    nxt = int(out.logits[0, -1].argmax())
    tokens, rg, rg_d, rg_t = [nxt], [], [], []
    for _ in range(STEPS):
        lac.reset()
        out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        a, d, t = lac.record()
        rg += a; rg_d += d; rg_t += t
        nxt = int(out.logits[0, -1].argmax())
        tokens.append(nxt)
    return {"prompt": prompt, "tokens": tokens, "pp": pp, "pp_delta": pp_d, "pp_tau": pp_t,
            "rg": rg, "rg_delta": rg_d, "rg_tau": rg_t}


def r7(x):
    """Nested lists of floats rounded to 7 significant digits (float32 precision)."""
    return [r7(v) for v in x] if isinstance(x, list) else float(f"{x:.7g}")


def smollm2(out: Path):
    from transformers import AutoTokenizer
    gguf = shared_dir() / SMOLLM2
    if not gguf.exists():
        raise SystemExit(f"SmolLM2 GGUF not found at {gguf} (set FATHOM_SHARED)")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    chat = tok.apply_chat_template([{"role": "user", "content": SMOLLM2_CHAT}], tokenize=False,
                                   add_generation_prompt=True)
    prompts = [tok(chat, add_special_tokens=False)["input_ids"]] + \
              [tok(t, add_special_tokens=False)["input_ids"] for t in SMOLLM2_TEXTS]
    cases = []
    for mode in ["trace", "final"]:
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     torch_dtype=torch.float32,
                                                     attn_implementation="eager").eval()
        lac = Lac(model, 0.8, mode == "final")
        with torch.no_grad():
            runs = [run(model, lac, p) for p in prompts]
        for r in runs:
            for k in ["pp_delta", "pp_tau", "rg_delta", "rg_tau"]:
                r[k] = r7(r[k])
        cases.append({"mode": mode, "alpha": 0.8, "runs": runs})
    doc = {"model": "smollm2-135m-instruct", "gguf": SMOLLM2, "steps": STEPS,
           "transformers": transformers.__version__, "torch": torch.__version__, "cases": cases}
    path = out / "smollm2.json"
    path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    voids = sum(1 - a for c in cases for r in c["runs"] for row in r["pp"] + r["rg"] for a in row)
    print(f"{path}: {len(cases)} cases, {voids} void decisions, {path.stat().st_size} bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "tests/fixtures/lac_parity"))
    ap.add_argument("--smollm2", action="store_true", help="only SmolLM2")
    ap.add_argument("--no-smollm2", action="store_true", help="only the fixture models")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.no_smollm2:
        smollm2(out)
    if args.smollm2:
        return
    for name in MODELS:
        cases = []
        for mode in ["trace", "final"]:
            for alpha in ALPHAS:
                model = AutoModelForCausalLM.from_pretrained(
                    ROOT / "tests/fixtures/models" / name, dtype=torch.float32,
                    attn_implementation="eager").eval()
                lac = Lac(model, alpha, mode == "final")
                with torch.no_grad():
                    runs = [run(model, lac, p) for p in PROMPTS]
                cases.append({"mode": mode, "alpha": alpha, "runs": runs})
        doc = {"model": name, "steps": STEPS, "transformers": transformers.__version__,
               "torch": torch.__version__, "cases": cases}
        path = out / f"{name}.json"
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        voids = sum(1 - a for c in cases for r in c["runs"] for row in r["pp"] + r["rg"] for a in row)
        print(f"{path}: {len(cases)} cases, {voids} void decisions, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
