#!/usr/bin/env python3
"""Generate the tuned-lens fixture under tests/fixtures/lens/.

1. A tiny randomly initialised Llama model (built from a config, no hub access) -> model/.
2. A PyPI `tuned-lens` TunedLens for it: translators initialised at random, then trained briefly
   (SGD on KL(p_final || p_lens) over random token sequences, with the package's own modules),
   saved by the package (`lens.save`: config.json + params.pt) -> a temp folder.
3. The package's lens converted with tools/convert_tuned_lens.py -> lens/ (what fathom loads).
4. The package's readout logits per layer for a fixed input -> expected.safetensors:
     tokens  [T] int64
     logits  [L+1, T, vocab] f32: index i < L is `lens(hidden_states[i], i)` (translator i reads
             hidden_states[i] = resid_pre[i], the input of block i), index L the model's logits.
   also logit_lens [L, T, vocab]: the package's LogitLens for i < L.

Usage:  python tools/gen_lens_fixtures.py [--out tests/fixtures/lens]
Deterministic (single thread, fixed seeds).
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_tuned_lens import convert  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = Path(__file__).resolve().parent.parent
    ap.add_argument("--out", type=Path, default=root / "tests" / "fixtures" / "lens")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    from tuned_lens.nn.lenses import LogitLens, TunedLens
    from tuned_lens.nn.unembed import Unembed

    cfg = LlamaConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, vocab_size=96,
                      max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                      torch_dtype="float32")
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # larger than the default init, so layers change the stream visibly
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.15)
    out = a.out
    shutil.rmtree(out, ignore_errors=True)
    (out / "model").mkdir(parents=True)
    model.save_pretrained(out / "model", safe_serialization=True)
    for extra in ("generation_config.json",):
        (out / "model" / extra).unlink(missing_ok=True)

    unembed = Unembed(model)
    lens = TunedLens.from_model(model, bias=True)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for t in lens.layer_translators:
            t.weight.copy_(torch.randn(t.weight.shape, generator=g) * 0.05)
            t.bias.copy_(torch.randn(t.bias.shape, generator=g) * 0.05)
    # Brief training with the package's modules: KL(final || lens) per layer, SGD-Nesterov.
    opt = torch.optim.SGD(lens.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    for step in range(20):
        toks = torch.randint(3, cfg.vocab_size, (4, 16), generator=g)
        with torch.no_grad():
            o = model(toks, output_hidden_states=True)
        logp_final = o.logits.log_softmax(-1)
        loss = 0
        for i in range(cfg.num_hidden_layers):
            logq = lens(o.hidden_states[i], i).log_softmax(-1)
            loss = loss + (logp_final.exp() * (logp_final - logq)).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    print(f"lens training: final summed KL {float(loss.detach()):.4f}")

    with tempfile.TemporaryDirectory() as tmp:
        lens.save(tmp)  # the package's own layout: config.json + params.pt
        convert(Path(tmp), out / "lens")

    tokens = torch.tensor([1, 5, 17, 42, 88, 3, 60, 9, 71, 30])
    with torch.no_grad():
        o = model(tokens[None], output_hidden_states=True)
        L = cfg.num_hidden_layers
        tuned = [lens(o.hidden_states[i], i)[0] for i in range(L)] + [o.logits[0]]
        ll = LogitLens(unembed)
        logit = [ll(o.hidden_states[i], i)[0] for i in range(L)]
    save_file({"tokens": tokens.to(torch.int64),
               "logits": torch.stack(tuned).float().contiguous(),
               "logit_lens": torch.stack(logit).float().contiguous()},
              str(out / "expected.safetensors"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
