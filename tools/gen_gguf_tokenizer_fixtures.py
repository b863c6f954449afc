#!/usr/bin/env python3
"""Reference fixtures for fathom's tokenizer built from GGUF metadata (tests/test_gguf_tokenizer.cpp).

The reference is the tokenizer transformers builds from the same file:
`AutoTokenizer.from_pretrained(folder, gguf_file=name)` (transformers/integrations/gguf/
gguf_tokenizer_mapping.py). For every case of the project's tokenizer corpus
(tests/fixtures/tokenizer/corpus.json, made by gen_tokenizer_fixtures.py) it records the ids with and
without special tokens and transformers' decode of those ids with and without skip_special_tokens.

Files:
  smollm2         the real ../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
                  (tokenizer.ggml.model gpt2, pre smollm)
  mistral_spm     tokenizer-only GGUF made here from ../shared/tokenizers/mistral (model llama:
                  SentencePiece BPE, byte fallback, scores, no merges)
  qwen3_qwen2pre  tokenizer-only GGUF from ../shared/tokenizers/qwen3 (gpt2, pre qwen2)
  llama3_llamabpe tokenizer-only GGUF from ../shared/tokenizers/llama3 (gpt2, pre llama-bpe)

The made files are several MB of someone else's vocabulary, so they are not committed: the C++ test
writes the same bytes from the same tokenizer.json (tests/gguf_tokenizer_writer.hpp follows
make_*_gguf below rule for rule) and checks the FNV-1a 64 hash of the file recorded here before it
compares any id.

How the made files fill the metadata, following llama.cpp's convert_hf_to_gguf.py:
  - gpt2 files (get_vocab_base): tokens are the vocabulary strings by id (byte-level spelling), ids
    without a token become "[PAD<id>]" of type UNUSED (5) up to the model's vocab_size; an added token
    is CONTROL (3) when it is special or looks special ("<|...|>"), USER_DEFINED (4) otherwise; all
    other tokens NORMAL (1). Merges as "left right" strings in file order.
  - the llama (SentencePiece) file (_set_vocab_sentencepiece, from a tokenizer.model): the
    SentencePiece convention for a BPE model, score = -(merge rank) = 259 - id for pieces, 0 for
    <unk>/<s>/</s> and the 256 <0xNN> pieces; types UNKNOWN (2) for <unk>, CONTROL for <s> </s>,
    BYTE (6) for <0xNN>, NORMAL otherwise. No merges (transformers derives them from the scores).
  - bos/eos/unk/pad ids, add_bos_token/add_eos_token and the chat template as SpecialVocab writes
    them (values listed in SPECS).

For files with a chat template, transformers' apply_chat_template of the conversations of
gen_tokenizer_fixtures.py (with and without generation prompt) is recorded too.

Cases whose ids are longer than 256 are stored as count + FNV-1a of the ids + first/last 16 ids; the
two generated 1 MB inputs of gen_tokenizer_fixtures.py (WikiText-2 head, LCG random mix) as count
and hashes of ids and decode.

Usage: python tools/gen_gguf_tokenizer_fixtures.py [--shared ../shared]
Writes tests/fixtures/tokenizer/gguf_<name>.json
"""
import argparse
import json
import os
import pathlib
import re
import sys
import tempfile

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tokenizer"
sys.path.insert(0, str(ROOT / "tools"))
from gen_tokenizer_fixtures import (CONVERSATIONS, case_text, fnv1a_bytes, fnv1a_ids,  # noqa: E402
                                    gen_random_mix, wikitext_1mb)

LONG = 256  # ids beyond this many are stored as a hash

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Made files: source tokenizer, architecture, model, pre, vocab size, special ids, flags.
SPECS = {
    "mistral_spm": {"src": "mistral", "arch": "llama", "model": "llama", "pre": "default",
                    "bos": 1, "eos": 2, "unk": 0, "pad": None, "add_bos": True, "add_eos": False,
                    "add_space_prefix": True},
    # Qwen3-0.6B's config.json pads the vocabulary to 151,936; Qwen GGUFs carry bos = eos-of-text.
    "qwen3_qwen2pre": {"src": "qwen3", "arch": "qwen3", "model": "gpt2", "pre": "qwen2",
                       "vocab_size": 151936, "bos": 151643, "eos": 151645, "unk": None, "pad": 151643,
                       "add_bos": False, "add_eos": None},
    "llama3_llamabpe": {"src": "llama3", "arch": "llama", "model": "gpt2", "pre": "llama-bpe",
                        "vocab_size": 128256, "bos": 128000, "eos": 128001, "unk": None, "pad": None,
                        "add_bos": True, "add_eos": None},
}


def looks_special(t):  # convert_hf_to_gguf.py's does_token_look_special
    return (t in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (t.startswith("<|") and t.endswith("|>"))
            or (t.startswith("<\uff5c") and t.endswith("\uff5c>")) or (t.startswith("<unused") and t.endswith(">")))


def vocab_by_id(j):
    by_id = {int(i): t for t, i in j["model"]["vocab"].items()}
    added = {int(a["id"]): a for a in j["added_tokens"]}
    for i, a in added.items():
        by_id.setdefault(i, a["content"])
    return by_id, added


def merge_strings(j):
    return [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]


def make_gguf(path, name, spec, shared):
    import gguf
    j = json.loads((shared / "tokenizers" / spec["src"] / "tokenizer.json").read_text(encoding="utf-8"))
    cfg = json.loads((shared / "tokenizers" / spec["src"] / "tokenizer_config.json").read_text(encoding="utf-8"))
    by_id, added = vocab_by_id(j)
    tokens, types, scores = [], [], []
    n = spec.get("vocab_size", max(by_id) + 1)
    for i in range(n):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
            continue
        t = by_id[i]
        tokens.append(t)
        if spec["model"] == "llama":
            if i == spec["unk"]:
                types.append(UNKNOWN)
            elif i in added and added[i]["special"]:
                types.append(CONTROL)
            elif re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", t):
                types.append(BYTE)
            else:
                types.append(NORMAL)
            scores.append(0.0 if types[-1] != NORMAL else float(259 - i))
        elif i in added:
            types.append(CONTROL if added[i]["special"] or looks_special(t) else USER_DEFINED)
        else:
            types.append(NORMAL)
    w = gguf.GGUFWriter(str(path), spec["arch"])
    w.add_type("model")
    w.add_name(name)
    w.add_tokenizer_model(spec["model"])
    w.add_tokenizer_pre(spec["pre"])
    w.add_token_list(tokens)
    if scores:
        w.add_token_scores(scores)
    w.add_token_types(types)
    if spec["model"] == "gpt2":
        w.add_token_merges(merge_strings(j))
    for key, add in (("bos", w.add_bos_token_id), ("eos", w.add_eos_token_id),
                     ("unk", w.add_unk_token_id), ("pad", w.add_pad_token_id)):
        if spec[key] is not None:
            add(spec[key])
    if spec["add_bos"] is not None:
        w.add_add_bos_token(spec["add_bos"])
    if spec["add_eos"] is not None:
        w.add_add_eos_token(spec["add_eos"])
    if spec.get("add_space_prefix") is not None:
        w.add_add_space_prefix(spec["add_space_prefix"])
    if cfg.get("chat_template"):
        w.add_chat_template(cfg["chat_template"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def ids_entry(ids):
    if len(ids) <= LONG:
        return ids
    return {"count": len(ids), "fnv1a": fnv1a_ids(ids), "head": ids[:16], "tail": ids[-16:]}


def record(folder, file, shared, cases, big):
    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(str(folder), gguf_file=file)
    backend = hf.backend_tokenizer
    path = pathlib.Path(folder) / file
    from gguf import GGUFReader
    r = GGUFReader(str(path))
    tpl = r.fields["tokenizer.chat_template"].contents() if "tokenizer.chat_template" in r.fields else ""
    out = {"transformers_class": type(hf).__name__,
           "file_fnv1a": fnv1a_bytes(path.read_bytes()), "file_size": path.stat().st_size,
           "vocab_size": len(hf), "bos_id": hf.bos_token_id, "eos_id": hf.eos_token_id,
           "unk_id": hf.unk_token_id, "pad_id": hf.pad_token_id,
           "special_ids": sorted(hf.all_special_ids),
           "added_ids": sorted(backend.get_added_tokens_decoder().keys()),
           "chat_template_fnv1a": fnv1a_bytes(tpl.encode("utf-8")), "chat_template_size": len(tpl.encode("utf-8")),
           "pre_tokenizer": json.loads(backend.to_str())["pre_tokenizer"],
           "cases": {}, "big": {}, "decode_differs_from_backend": []}
    for case in cases:
        text = case_text(case)
        ids = hf(text, add_special_tokens=True)["input_ids"]
        plain = hf(text, add_special_tokens=False)["input_ids"]
        dec, dec_skip = hf.decode(ids, skip_special_tokens=False), hf.decode(ids, skip_special_tokens=True)
        if dec != backend.decode(ids, skip_special_tokens=False) or dec_skip != backend.decode(ids, skip_special_tokens=True):
            out["decode_differs_from_backend"].append(case["name"])
        out["cases"][case["name"]] = {"ids": ids_entry(ids), "ids_no_special": ids_entry(plain),
                                      "decode": dec, "decode_skip_special": dec_skip}
    # The file's chat template rendered by transformers (conversations of gen_tokenizer_fixtures.py).
    out["chat"] = {}
    if tpl:
        for conv in CONVERSATIONS:
            for gen in (False, True):
                key = f"{conv['name']}/{'gen' if gen else 'nogen'}"
                try:
                    out["chat"][key] = {"text": hf.apply_chat_template(conv["messages"], tokenize=False,
                                                                       add_generation_prompt=gen)}
                except Exception as e:  # the template refuses the conversation: record it
                    out["chat"][key] = {"error": str(e)}
    for bname, text in big.items():
        ids = hf(text, add_special_tokens=False)["input_ids"]
        out["big"][bname] = {"count": len(ids), "fnv1a": fnv1a_ids(ids),
                             "decode_fnv1a": fnv1a_bytes(hf.decode(ids).encode("utf-8"))}
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--only", nargs="*", help="names to regenerate (default: all)")
    args = ap.parse_args()
    shared = pathlib.Path(args.shared)
    import transformers
    cases = json.loads((OUT / "corpus.json").read_text(encoding="utf-8"))
    big = {"wikitext_1mb": wikitext_1mb(shared), "random_mix": gen_random_mix()}
    names = args.only or ["smollm2", *SPECS]
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            if name == "smollm2":
                folder, file = shared / "models/smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"
            else:
                folder, file = pathlib.Path(tmp), f"{name}.gguf"
                make_gguf(folder / file, name, SPECS[name], shared)
            exp = record(folder, file, shared, cases, big)
        exp = {"name": name, "transformers_version": transformers.__version__, **exp}
        (OUT / f"gguf_{name}.json").write_text(
            json.dumps(exp, ensure_ascii=False, indent=None, separators=(",", ":")) + "\n", encoding="utf-8")
        print(f"{name}: {len(cases)} cases + {len(big)} big inputs, vocab {exp['vocab_size']}, "
              f"file {exp['file_size']} bytes fnv {exp['file_fnv1a']}; decode differs from backend on "
              f"{exp['decode_differs_from_backend']}")


if __name__ == "__main__":
    main()
