#!/usr/bin/env python3
"""Writes the committed seed corpora of the fuzz targets (fuzz/corpus/<target>/): a few small,
valid inputs per reader that libFuzzer mutates from. Everything is generated here (no data from
../shared is copied). Run from anywhere: python3 fuzz/make_corpus.py"""
import json
import os
import struct

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, bytes)] -> file bytes (header padded to 8)."""
    hdr, off, blob = {}, 0, b""
    if metadata:
        hdr["__metadata__"] = metadata
    for name, dt, shape, data in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
        blob += data
    h = json.dumps(hdr).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


# llama2.c checkpoint: header (dim, hidden, layers, heads, kv heads, vocab, seq), then floats.
def llama2c(dim, hidden, layers, heads, kv, vocab, seq):
    hs = dim // heads
    V = abs(vocab)
    n = (V * dim + layers * dim + layers * dim * dim + 2 * layers * kv * hs * dim + layers * dim * dim +
         layers * dim + 3 * layers * hidden * dim + dim + seq * hs + (V * dim if vocab < 0 else 0))
    return struct.pack("<7i", dim, hidden, layers, heads, kv, vocab, seq) + f32(*[0.01 * k for k in range(n)])


put("fuzz_llama2c", "tiny_shared.bin", llama2c(2, 1, 1, 1, 1, 3, 1))
put("fuzz_llama2c", "tiny_gqa_untied.bin", llama2c(4, 3, 2, 2, 1, -5, 2))
put("fuzz_llama2c", "truncated.bin", llama2c(4, 3, 2, 2, 1, 5, 2)[:60])


# llama2.c tokenizer: 2-byte vocabulary size (fuzz target's framing), then the file:
# int32 max_token_length, per token float score, int32 length, bytes.
def tok(pieces, max_len=None):
    max_len = max_len or max(len(p) for p in pieces)
    body = struct.pack("<i", max_len)
    for i, p in enumerate(pieces):
        b = p.encode() if isinstance(p, str) else p
        body += struct.pack("<fi", -float(i), len(b)) + b
    return struct.pack("<H", len(pieces) - 3) + body


put("fuzz_llama2c_tokenizer", "words.bin",
    tok(["<unk>", "<s>", "</s>", " ", "O", "n", "c", "e", "On", "Once", " Once", "u", "p", "o", "up", "upon", " upon"]))
put("fuzz_llama2c_tokenizer", "bytes.bin",
    tok(["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(40)] + ["a", "b", "ab", "\u00e9", "a\u00e9"]))

put("fuzz_mmlu_csv", "header.csv",
    'question,choice0,choice1,choice2,choice3,answer\n'
    'What is 2+2?,3,4,5,6,1\n'
    '"A ""quoted"", multi-line\nquestion",a,"b, c",d,e,3\r\n')
put("fuzz_mmlu_csv", "hendrycks.csv", "Which is a prime?,4,6,7,9,C\nSecond?,x,y,z,w,A\n")
put("fuzz_mmlu_csv", "bom.csv", "\ufeffquestion,choice0,choice1,choice2,choice3,answer\nQ,a,b,c,d,0\n\n")

gpqa_header = "Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3,Subdomain,High-level domain\n"
put("fuzz_gpqa_csv", "toy.csv", "\x00" + gpqa_header + "Toy one?, right ,wrong a,wrong b,wrong c,Toys,Physics\n"
    '"Two,\nlines?",right,"wrong, a",wrong b,wrong c,Toys,Chemistry\n')
put("fuzz_gpqa_csv", "asis_last.csv", "\x03" + gpqa_header + "Q?,r\n,w1 ,w2,w3,S,Biology\n")

put("fuzz_boolq", "two.jsonl",
    '{"question": "is the sky blue", "title": "Sky", "answer": true, "passage": "The sky is blue."}\n'
    '{"question": "is grass red", "title": "Grass", "answer": false, "passage": "Grass is green \\u00e9."}\r\n\n')

# Tuned lens: 2-byte config length, config.json, params.safetensors.
def lens(H, L, bias=True, dtype="F32"):
    cfg = json.dumps({"base_model_name_or_path": "m", "d_model": H, "num_hidden_layers": L, "bias": bias,
                      "lens_type": "linear_tuned_lens"}).encode()
    ts = []
    for i in range(L):
        if dtype == "F32":
            ts.append((f"{i}.weight", "F32", [H, H], f32(*[0.1 * k for k in range(H * H)])))
            if bias:
                ts.append((f"{i}.bias", "F32", [H], f32(*[0.5] * H)))
        else:
            ts.append((f"{i}.weight", dtype, [H, H], b"\x80\x3f" * (H * H)))
            if bias:
                ts.append((f"{i}.bias", dtype, [H], b"\x00\x00" * H))
    return struct.pack("<H", len(cfg)) + cfg + safetensors(ts)


put("fuzz_tuned_lens", "h2_l2.bin", lens(2, 2))
put("fuzz_tuned_lens", "h3_l1_nobias.bin", lens(3, 1, bias=False))
put("fuzz_tuned_lens", "h2_l1_bf16.bin", lens(2, 1, dtype="BF16"))

put("fuzz_trace_jsonl", "two.jsonl",
    '{"sequence":0,"position":0,"phase":"PP","token":1,"text":"<s>","exit_layer":-1,"readout_layer":1,'
    '"embed_norm":1.25,"executed":[true,true],"activated":[true,false],"norm":[1.5,null],"delta":[0.25,0],'
    '"tau":[null,null]}\n'
    '{"sequence":0,"position":1,"phase":"RG","token":403,"exit_layer":1,"readout_layer":0,'
    '"embed_norm":null,"executed":[true,false],"activated":[false,false],"norm":[1e-3,2],"delta":[0,0],'
    '"tau":[0.5,-1]}\n')

run = {"type": "run", "settings": {"task": "mmlu", "shots": 0}}
rec = {"policy": "full", "id": "x/0", "subject": "x", "answer": 1, "pred": 1, "correct": True, "prompt_tokens": 12,
       "shots": 0, "truncated": False, "pp_tokens": 12, "pp_active": 60, "rg_tokens": 3, "rg_active": 15,
       "seconds": 0.012}
rec2 = dict(rec, policy="lac:0.8", pred=-1, correct=False, output="The answer is", logprobs=[-1.5, -0.25, -3, -4])
put("fuzz_results_jsonl", "resume.jsonl", "\x01" + "\n".join(json.dumps(x) for x in [run, rec, rec2]) + "\n")
put("fuzz_results_jsonl", "no_settings.jsonl", "\x00" + json.dumps(run) + "\n" + json.dumps(rec) + "\n")

# Q8: values I8 [rows, cols], scales F16 [rows, ceil(cols/32)] (1.0 = 0x3c00).
put("fuzz_q8_checkpoint", "q8.safetensors", safetensors([
    ("w", "I8", [2, 3], bytes([1, 2, 3, 0xff, 0x81, 0])),
    ("w_scale", "F16", [2, 1], struct.pack("<2H", 0x3c00, 0x3800)),
    ("big", "I8", [1, 33], bytes(range(33))),
    ("big_scale", "F16", [1, 2], struct.pack("<2H", 0x3c00, 0x0001)),
    ("norm", "F32", [2], f32(1, 1))]))

put("fuzz_ids", "three.txt", "1,403,407")
put("fuzz_ids", "signs.txt", " -1,+2,2147483647,-2147483648,")

put("fuzz_policies", "all.txt", "full,lac:0.8,lac-instream:0.5,lac-trace:0.9,lac-exit:0.7")
put("fuzz_policies", "static.txt", "static:pp=1,4,7;rg=2,3,early-exit:softmax_diff:0.9,static:1,2")
put("fuzz_policies", "lens.txt", "logit-lens:3,cos-skip:0.95,early-exit:0.5")
