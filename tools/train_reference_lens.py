#!/usr/bin/env python3
"""Train a reference tuned lens with PyPI `tuned-lens` on exactly the data and budget of a
fathom run (examples/train_lens), for the quality comparison in docs/lenses.md.

Inputs: a Hugging Face model folder (e.g. stories260K exported by tools/export_llama2c_to_hf.py)
and the data.safetensors that examples/train_lens wrote ("train", "eval": [n, context] int32).
Step k uses training sequences k*S .. k*S+S-1 (mod n), as fathom does.

The lens is the package's `TunedLens` (translators h + A_i h + b_i, zero-initialised) on the
package's `Unembed`. The training step replicates tuned_lens/scripts/train_loop.py with the
defaults of its `Optimizer` ingredient (importing the script itself needs torchdata.dataloader2,
which current torchdata no longer has): per layer KL(p_final || p_lens) averaged over tokens,
gradients summed over layers, clip_grad_norm_(1.0), torch.optim.SGD(lr=1.0*(1-0.9), momentum=0.9,
nesterov=True, weight_decay=1e-3), get_linear_schedule_with_warmup(opt, 0, steps). On CPU in
float32 (the script autocasts to bfloat16 on GPU).

Output: OUT/config.json + OUT/params.pt (the package's layout) and OUT/fathom/ (converted with
tools/convert_tuned_lens.py), plus OUT/heldout_kl.csv computed here in torch.

Usage:  python tools/train_reference_lens.py HF_MODEL DATA.safetensors OUT --steps 250 --seqs-per-step 8
        python tools/train_reference_lens.py ../shared/models/smollm2-135m-instruct DATA OUT \
            --gguf-file SmolLM2-135M-Instruct.Q4_1.gguf --steps 4 --seqs-per-step 4 --threads 1
It prints the training throughput (tokens/s over the training loop, model loading excluded).
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import argparse
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, get_linear_schedule_with_warmup

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_tuned_lens import convert  # noqa: E402


def kl_per_layer(model, lens, seqs):
    """Mean over tokens of KL(p_final || p_lens) for each translator."""
    with torch.no_grad():
        out = model(seqs, output_hidden_states=True)
        logp = out.logits.float().log_softmax(-1)
        return [float(torch.sum(logp.exp() * (logp - lens(h, idx=i).log_softmax(-1)), -1).mean())
                for i, h in enumerate(out.hidden_states[:-1])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("data", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--seqs-per-step", type=int, default=8)
    ap.add_argument("--gguf-file", help="load the model from this .gguf file inside HF_MODEL's folder "
                    "(transformers dequantises it to f32; needs the gguf package)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    from tuned_lens.nn.lenses import TunedLens

    extra = {"gguf_file": a.gguf_file} if a.gguf_file else {}
    model = AutoModelForCausalLM.from_pretrained(str(a.model), torch_dtype=torch.float32,
                                                 **extra).eval()
    model.requires_grad_(False)
    data = load_file(str(a.data))
    train, held = data["train"].long(), data["eval"].long()
    lens = TunedLens.from_model(model, bias=True)
    beta = 0.9
    opt = torch.optim.SGD(lens.parameters(), lr=1.0 * (1 - beta), momentum=beta, nesterov=True,
                          weight_decay=1e-3)
    sched = get_linear_schedule_with_warmup(opt, 0, a.steps)
    t0 = time.time()
    for step in range(a.steps):
        idx = [(step * a.seqs_per_step + j) % len(train) for j in range(a.seqs_per_step)]
        batch = train[idx]
        with torch.no_grad():
            out = model(batch, output_hidden_states=True)
        labels = out.logits.float().log_softmax(dim=-1)
        total = 0.0
        for i, h in enumerate(out.hidden_states[:-1]):
            logits = lens(h, idx=i)
            loss = torch.sum(labels.exp() * (labels - logits.log_softmax(-1)), dim=-1).mean()
            loss.backward()
            total += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(lens.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=False)
        sched.step()
        print(f"\rstep {step + 1}/{a.steps}  mean KL {total / len(lens):.4f}  {time.time() - t0:.1f}s",
              end="", file=sys.stderr)
    print(file=sys.stderr)
    secs = time.time() - t0
    tokens = a.steps * a.seqs_per_step * train.shape[1]
    print(f"training: {a.steps} steps, {tokens / secs:.1f} tokens/s ({secs:.1f} s, "
          f"process CPU {time.process_time():.1f} s)")
    a.out.mkdir(parents=True, exist_ok=True)
    lens.save(a.out)
    convert(a.out, a.out / "fathom")
    kl = kl_per_layer(model, lens, held)
    with open(a.out / "heldout_kl.csv", "w") as f:
        f.write("translator,kl\n")
        for i, v in enumerate(kl):
            f.write(f"{i},{v}\n")
            print(f"translator {i}: held-out KL {v:.5f}")


if __name__ == "__main__":
    main()
