#!/usr/bin/env python3
"""Convert a lens saved by PyPI `tuned-lens` (a folder with config.json + params.pt) into the
layout fathom loads (config.json + params.safetensors, f32), see docs/lenses.md.

The tensors keep the package's names: "{i}.weight" [d_model, d_model] and "{i}.bias" [d_model]
for i = 0..num_hidden_layers-1. Index convention (tuned-lens 0.2): translator i reads
hidden_states[i] = resid_pre[i], the input of block i (i = 0: the embedding output); the last
layer's output has no translator.

Usage:  python tools/convert_tuned_lens.py LENS_DIR OUT_DIR
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def convert(src: Path, dst: Path) -> None:
    import torch
    from safetensors.torch import save_file

    cfg_path, ckpt_path = src / "config.json", src / "params.pt"
    for p in (cfg_path, ckpt_path):
        if not p.exists():
            sys.exit(f"{p}: not found (expected a tuned-lens folder with config.json + params.pt)")
    cfg = json.loads(cfg_path.read_text())
    for key in ("d_model", "num_hidden_layers"):
        if not isinstance(cfg.get(key), int) or cfg[key] <= 0:
            sys.exit(f"{cfg_path}: {key}: expected a positive integer")
    if cfg.get("lens_type", "linear_tuned_lens") != "linear_tuned_lens":
        sys.exit(f"{cfg_path}: lens_type: only linear_tuned_lens is supported")
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    d, n = cfg["d_model"], cfg["num_hidden_layers"]
    out = {}
    for i in range(n):
        w = state.get(f"{i}.weight")
        if w is None or tuple(w.shape) != (d, d):
            sys.exit(f"{ckpt_path}: {i}.weight: missing or not [{d}, {d}]")
        out[f"{i}.weight"] = w.detach().float().contiguous()
        if cfg.get("bias", True):
            b = state.get(f"{i}.bias")
            if b is None or tuple(b.shape) != (d,):
                sys.exit(f"{ckpt_path}: {i}.bias: missing or not [{d}]")
            out[f"{i}.bias"] = b.detach().float().contiguous()
    extra = sorted(set(state) - set(out))
    if extra:
        sys.exit(f"{ckpt_path}: unexpected tensors {extra} (more translators than num_hidden_layers?)")
    dst.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dst / "params.safetensors"),
              metadata={"index_convention": "translator i reads hidden_states[i] = resid_pre[i]"})
    (dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="tuned-lens folder (config.json + params.pt)")
    ap.add_argument("dst", type=Path, help="output folder (config.json + params.safetensors)")
    a = ap.parse_args()
    convert(a.src, a.dst)
    print(f"converted {a.src} -> {a.dst}")


if __name__ == "__main__":
    main()
