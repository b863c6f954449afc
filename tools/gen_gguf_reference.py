#!/usr/bin/env python3
"""Reference outputs of a real GGUF model, computed by transformers, for tests/test_gguf_model.cpp.

transformers loads the GGUF file itself (`from_pretrained(dir, gguf_file=...)`: it dequantises
every tensor with PyPI `gguf` and undoes llama.cpp's Q/K row permutation), in float32, and runs a
fixed chat prompt rendered by the file's own chat template. Written to
tests/fixtures/gguf/smollm2_reference.safetensors (~0.3 MB; the model itself stays outside the
repository):

  prompt_ids      I64 [T]            the chat prompt (apply_chat_template, add_generation_prompt)
  topk_ids        I64 [T, 64]        the 64 largest logits at every prompt position, by value ...
  topk_values     F32 [T, 64]        ... and their values
  last_logits     F32 [V]            the whole logit row at the last prompt position
  resid_norms     F32 [L, T]         L2 norm of every layer's output (resid_post) per position
  greedy          I64 [24]           24 greedy tokens after the prompt (not stopped at eos)
  greedy_margins  F32 [24]           top-1 minus top-2 logit at each greedy step

Usage:  python tools/gen_gguf_reference.py [--shared ../shared] [--out tests/fixtures/gguf]
"""
import argparse
import os

import numpy as np
import torch
from safetensors.numpy import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL = "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
QUESTION = "What is the capital of France? Answer in one sentence."
TOPK = 64
GREEDY = 24


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.environ.get("FATHOM_SHARED", os.path.join(here, "..", "..", "shared")))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures", "gguf"))
    args = ap.parse_args()

    path = os.path.join(args.shared, MODEL)
    folder, name = os.path.split(path)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()

    messages = [{"role": "user", "content": QUESTION}]
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    # The template rendered and tokenised in one call gives the same ids.
    direct = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if hasattr(direct, "keys"):
        direct = direct["input_ids"]
    assert list(direct) == list(ids), (direct, ids)

    # resid_post of every decoder layer, recorded by hooks (hidden_states[-1] is after the final
    # norm in transformers, so it is not a resid_post).
    layers = model.model.layers
    norms = [None] * len(layers)

    def hook(i):
        def f(_module, _inputs, output):
            h = output[0] if isinstance(output, tuple) else output
            norms[i] = h[0].double().norm(dim=-1).float().numpy()
        return f

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(layers)]
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()  # [T, V]
    for h in handles:
        h.remove()
    top = torch.topk(logits, TOPK, dim=-1)

    # Greedy decoding with the KV cache, TOPK-free: argmax at every step, eos not special.
    greedy, margins = [], []
    with torch.no_grad():
        out = model(torch.tensor([ids]), use_cache=True)
        for _ in range(GREEDY):
            row = out.logits[0, -1].float()
            t2 = torch.topk(row, 2)
            nxt = int(t2.indices[0])
            greedy.append(nxt)
            margins.append(float(t2.values[0] - t2.values[1]))
            out = model(torch.tensor([[nxt]]), past_key_values=out.past_key_values, use_cache=True)

    os.makedirs(args.out, exist_ok=True)
    tensors = {
        "prompt_ids": np.array(ids, dtype=np.int64),
        "topk_ids": top.indices.numpy().astype(np.int64),
        "topk_values": top.values.numpy().astype(np.float32),
        "last_logits": logits[-1].numpy().astype(np.float32),
        "resid_norms": np.stack(norms).astype(np.float32),
        "greedy": np.array(greedy, dtype=np.int64),
        "greedy_margins": np.array(margins, dtype=np.float32),
    }
    out_file = os.path.join(args.out, "smollm2_reference.safetensors")
    save_file(tensors, out_file, metadata={"model": MODEL, "question": QUESTION, "prompt": text})
    print("prompt:", repr(text))
    print("prompt ids:", len(ids), ids)
    print("greedy:", greedy, repr(tok.decode(greedy)))
    print("min greedy margin: %.4f" % min(margins))
    print("wrote", out_file, os.path.getsize(out_file), "bytes")


if __name__ == "__main__":
    main()
