#!/usr/bin/env python3
"""Export a llama2.c checkpoint (e.g. ../shared/models/stories260K/stories260K.bin) to a Hugging
Face Llama folder (config.json + model.safetensors, f32), so that PyPI `tuned-lens` and
`transformers` can use the model.

llama2.c rotates interleaved pairs (2i, 2i+1) of each head; transformers' `rotate_half` rotates
(i, i + head_dim/2). The rows of Wq and Wk are therefore permuted to half-rotation order, exactly
as transformers' convert_llama_weights_to_hf does. The export is verified: the logits of the
exported model under `transformers` must equal those of an independent numpy implementation of
llama2.c's forward pass (run.c: interleaved RoPE, RMSNorm eps 1e-5) on the original weights.

The output is derived from ../shared data: write it to a temp/build folder, never commit it.

Usage:  python tools/export_llama2c_to_hf.py MODEL.bin OUT_DIR [--check-tokens 24]
"""
from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import argparse
import json
import struct
import sys
from pathlib import Path

import numpy as np


def read_llama2c(path: Path):
    """Header and weights of a llama2.c (legacy version 0) checkpoint as numpy arrays."""
    raw = path.read_bytes()
    if len(raw) < 28:
        sys.exit(f"{path}: header: file too short")
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // n_heads
    kv_dim = n_kv * hs
    data = np.frombuffer(raw, dtype=np.float32, offset=28)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        if off + n > data.size:
            sys.exit(f"{path}: weights: file too short for the header's shapes")
        a = data[off:off + n].reshape(shape).copy()
        off += n
        return a

    w = {
        "emb": take(vocab, dim),
        "rms_att": take(n_layers, dim),
        "wq": take(n_layers, dim, dim),
        "wk": take(n_layers, kv_dim, dim),
        "wv": take(n_layers, kv_dim, dim),
        "wo": take(n_layers, dim, dim),
        "rms_ffn": take(n_layers, dim),
        "w1": take(n_layers, hidden, dim),
        "w2": take(n_layers, dim, hidden),
        "w3": take(n_layers, hidden, dim),
        "rms_final": take(dim),
    }
    take(seq_len, hs // 2)  # freq_cis_real (unused: run.c recomputes RoPE)
    take(seq_len, hs // 2)  # freq_cis_imag
    w["wcls"] = w["emb"] if shared else take(vocab, dim)
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv,
               vocab=vocab, seq_len=seq_len, shared=shared)
    return cfg, w


def llama2c_forward(cfg, w, tokens):
    """Logits [T, vocab] of llama2.c's run.c forward pass, in float64 numpy."""
    dim, n_heads, n_kv = cfg["dim"], cfg["n_heads"], cfg["n_kv"]
    hs = dim // n_heads
    T = len(tokens)

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-5) * g

    def rope(x):  # x [T, heads, hs], interleaved pairs
        i = np.arange(0, hs, 2)
        freq = 1.0 / (10000.0 ** (i / hs))
        ang = np.arange(T)[:, None] * freq[None, :]  # [T, hs/2]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    f = lambda a: a.astype(np.float64)
    x = f(w["emb"][tokens])
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(cfg["n_layers"]):
        h = rms(x, f(w["rms_att"][l]))
        q = rope((h @ f(w["wq"][l]).T).reshape(T, n_heads, hs))
        k = rope((h @ f(w["wk"][l]).T).reshape(T, n_kv, hs))
        v = (h @ f(w["wv"][l]).T).reshape(T, n_kv, hs)
        rep = n_heads // n_kv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(hs) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", att, v).reshape(T, dim)
        x = x + o @ f(w["wo"][l]).T
        h = rms(x, f(w["rms_ffn"][l]))
        g = h @ f(w["w1"][l]).T
        x = x + ((g / (1 + np.exp(-g))) * (h @ f(w["w3"][l]).T)) @ f(w["w2"][l]).T
    return rms(x, f(w["rms_final"])) @ f(w["wcls"]).T


def permute(wt, n_heads):
    """Interleaved-pair rows -> half-rotation rows (transformers' convert_llama_weights_to_hf)."""
    rows, cols = wt.shape
    return wt.reshape(n_heads, rows // n_heads // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def export(cfg, w, out: Path):
    import torch
    from safetensors.torch import save_file

    n_heads, n_kv = cfg["n_heads"], cfg["n_kv"]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    tensors = {"model.embed_tokens.weight": t(w["emb"]), "model.norm.weight": t(w["rms_final"])}
    for l in range(cfg["n_layers"]):
        p = f"model.layers.{l}."
        tensors[p + "input_layernorm.weight"] = t(w["rms_att"][l])
        tensors[p + "post_attention_layernorm.weight"] = t(w["rms_ffn"][l])
        tensors[p + "self_attn.q_proj.weight"] = t(permute(w["wq"][l], n_heads))
        tensors[p + "self_attn.k_proj.weight"] = t(permute(w["wk"][l], n_kv))
        tensors[p + "self_attn.v_proj.weight"] = t(w["wv"][l])
        tensors[p + "self_attn.o_proj.weight"] = t(w["wo"][l])
        tensors[p + "mlp.gate_proj.weight"] = t(w["w1"][l])
        tensors[p + "mlp.down_proj.weight"] = t(w["w2"][l])
        tensors[p + "mlp.up_proj.weight"] = t(w["w3"][l])
    if not cfg["shared"]:
        tensors["lm_head.weight"] = t(w["wcls"])
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": cfg["dim"],
        "intermediate_size": cfg["hidden"],
        "num_hidden_layers": cfg["n_layers"],
        "num_attention_heads": n_heads,
        "num_key_value_heads": n_kv,
        "head_dim": cfg["dim"] // n_heads,
        "vocab_size": cfg["vocab"],
        "max_position_embeddings": cfg["seq_len"],
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": bool(cfg["shared"]),
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def verify(cfg, w, out: Path, n_tokens: int):
    import torch
    from transformers import LlamaForCausalLM

    rng = np.random.default_rng(0)
    tokens = [1] + list(rng.integers(3, cfg["vocab"], n_tokens - 1))
    ref = llama2c_forward(cfg, w, tokens)
    model = LlamaForCausalLM.from_pretrained(str(out), torch_dtype=torch.float32).eval()
    with torch.no_grad():
        got = model(torch.tensor([tokens])).logits[0].double().numpy()
    err = np.abs(got - ref).max() / max(1e-9, np.abs(ref).max())
    print(f"verify: max |HF - llama2.c numpy| / max |logits| = {err:.2e} over {n_tokens} tokens")
    if not err < 1e-5:
        sys.exit("verify: exported model does not reproduce llama2.c's logits")
    # The unpermuted (interleaved) order must fail, or the check would prove nothing.
    for l, layer in enumerate(model.model.layers):
        layer.self_attn.q_proj.weight.data = torch.from_numpy(w["wq"][l].copy())
        layer.self_attn.k_proj.weight.data = torch.from_numpy(w["wk"][l].copy())
    with torch.no_grad():
        bad = model(torch.tensor([tokens])).logits[0].double().numpy()
    bad_err = np.abs(bad - ref).max() / max(1e-9, np.abs(ref).max())
    print(f"verify: without the permutation the error would be {bad_err:.2e}")
    if not bad_err > 1e-3:
        sys.exit("verify: the check cannot tell permuted from unpermuted weights")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="llama2.c .bin checkpoint")
    ap.add_argument("out", type=Path, help="output folder (not inside the repository)")
    ap.add_argument("--check-tokens", type=int, default=24, help="tokens in the logits check")
    a = ap.parse_args()
    cfg, w = read_llama2c(a.model)
    export(cfg, w, a.out)
    tok = a.model.parent / "tok512.bin"
    print(f"exported {a.model} -> {a.out} ({cfg})")
    verify(cfg, w, a.out, a.check_tokens)
    if tok.exists():
        print(f"tokenizer: {tok} (llama2.c format; fathom reads it, transformers does not)")


if __name__ == "__main__":
    main()
