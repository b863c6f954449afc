#!/usr/bin/env python3
"""Reference fixtures for fathom's tokenizer (tests/test_tokenizer*.cpp).

Encodes a corpus of hard cases with PyPI `tokenizers` (the reference implementation of the
tokenizer.json format) for each real tokenizer in ../shared/tokenizers/, checks that
`transformers.AutoTokenizer` gives the same ids, renders chat conversations with transformers'
`apply_chat_template`, and measures the reference's single-thread encode throughput on WikiText-2.

Writes (all under tests/fixtures/tokenizer/):
  corpus.json              the cases: {"name", "text"} or {"name", "hex"} (raw bytes, maybe invalid UTF-8)
  expected_<tok>.json      per case: ids with/without special tokens, decode, decode skipping specials
  chat_<tok>.json          per conversation: rendered text with/without generation prompt, and its ids
  reference_speed.json     PyPI tokenizers MB/s and load time per tokenizer

Invalid UTF-8: the reference cannot take it (Python str / Rust &str are always valid), so the
input is first decoded with errors="replace" (maximal-subpart U+FFFD substitution, identical to
Rust's String::from_utf8_lossy). fathom does the same inside encode().

Big cases are generated, not committed: `wikitext_1mb` is the first 1,000,000 bytes of
WikiText-2 test (cut back to a character boundary) and `random_mix` is 300,000 code points drawn
by an LCG (see gen_random_mix; the C++ test has the same generator). For them the fixtures record
the id count and the FNV-1a 64 hash of the ids as little-endian int32, and the decode's hash.

Usage: python tools/gen_tokenizer_fixtures.py [--shared ../shared] [--no-bench]
"""
import argparse
import json
import os
import pathlib
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "tokenizer"
TOKENIZERS = ["qwen3", "llama3", "mistral"]

# Mistral-7B-v0.1 (a base model) ships no chat_template. This is the official template of
# Mistral-7B-Instruct-v0.1 (the instruct model on the same tokenizer), verbatim; it has no
# system role. fathom's "mistral" chat format follows it.
MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
    "roles are supported!') }}{% endif %}{% endfor %}")

# Llama-2-chat's official template (meta-llama/Llama-2-7b-chat-hf), verbatim. Llama-2 uses the
# same SentencePiece-BPE scheme as Mistral-7B-v0.1; fathom's "llama2" format follows this.
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
    "roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + "
    "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}"
    "{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}"
    "{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == "
    "'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}")


def case_list():
    c = []
    add = lambda name, text: c.append({"name": name, "text": text})
    add("english_prose",
        "The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst "
        "of times; it was the age of wisdom, it was the age of foolishness... \"Quoted\" (parens) "
        "[brackets] {braces} -- em—dash, ellipsis… and 'single quotes'.")
    add("code_tabs",
        "def f(x):\n\tif x > 0:\n\t\treturn x  # tab-indented\n    else:\n        return -x\n"
        "\t  \tmixed = [1,\t2,  3]\n\n\nclass A:\n  \t def g(self): pass\n"
        "int main() {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n")
    add("space_runs", "a  b   c    d     e\n\n\n  \n\t\t x   \n \n\n\n\n\nend      ")
    add("crlf", "line one\r\nline two\r\n\r\n  indented\r\n\r\r\n\n\r trailing \r\n")
    add("leading_spaces", "   hello world")
    add("only_spaces", "     ")
    add("only_newlines", "\n\n\n")
    add("single_space", " ")
    add("numbers",
        "0 7 42 123 1234 12345 123456 1234567 12345678 123456789 1234567890 "
        "12345678901234567890 3.14159 -2.5e-10 1,000,000 0x1F 2024-01-01 10:30 "
        "$19.99 50% 1st 2nd 3rd ٣٤٥ १२३ 一二三 ①②③ ½")
    add("contractions_lower", "i'm you're he's she'd we'll they've it's don't can't won't y'all")
    add("contractions_upper", "I'M YOU'RE HE'S SHE'D WE'LL THEY'VE IT'S DON'T CAN'T WON'T Y'ALL")
    add("contractions_mixed", "I'm You'Re hE's She'D We'lL they'VE 's 'll 'D")
    add("cjk",
        "我爱自然语言处理。今天天气很好！日本語のテキストも含まれています。"
        "한국어 문장도 있습니다. 漢字カタカナひらがな")
    add("cjk_rare", "𠀀𠀁𪚥 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ ᚠᛇᚻ")
    add("arabic", "مرحبا بالعالم! هذه جملة باللغة العربية، مع أرقام ١٢٣ وعلامات ترقيم؟")
    add("hindi", "नमस्ते दुनिया। यह हिंदी में एक वाक्य है, जिसमें संयुक्ताक्षर क्ष त्र ज्ञ हैं।")
    add("thai", "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ")
    add("emoji",
        "Family: 👨‍👩‍👧‍👦 thumbs: 👍 👍🏻 👍🏽 👍🏿 flags: 🏳️‍🌈 🇫🇷🇯🇵 "
        "coder: 👩🏿‍💻 heart: ❤️ keycap: 1️⃣ 😀😃😄")
    add("combining",
        "cafe\u0301 vs café, A\u030a vs Å, \u1e9b\u0323, n\u0303, "
        "\u1100\u1161\u11a8 (jamo), Ω\u0308, \u0041\u0300\u0301, ﬁ ligature, ｆｕｌｌ width")
    add("nfc_changes", "\u212b \u2126 e\u0301\u0301 o\u0308\u0304 \u0958 \u2000x \uf900")
    add("special_qwen", "hello<|im_start|>user\nhi<|im_end|>\n<|endoftext|> <|im_start|x "
                        "<|im_end|><|im_end|>")
    add("special_llama3", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi"
                          "<|eot_id|> <|reserved_special_token_5|>x<|end_of_text|>")
    add("special_mistral", "<s>[INST] hi [/INST] ok</s><s> x <unk> < s > </s>tail")
    add("empty", "")
    add("long_word", "Pneumonoultramicroscopicsilicovolcanoconiosis " +
        "supercalifragilisticexpialidocious" * 3)
    add("repeat_char", "a" * 3000 + " " + "=" * 700 + "\n" + "!" * 257)
    add("controls", "nul\x00byte \x01\x02\x1b[31mred\x1b[0m \x7f del\u200b zwsp \ufeffbom")
    add("url_markdown",
        "See https://example.com/path?q=1&r=two#frag and **bold** _it_ `code` > quote\n"
        "- item 1\n- item 2\n| a | b |\n|---|---|\n{\"json\": [1, 2.5, null, true]}")
    add("mixed_scripts", "Résumé naïve façade Ελληνικά Русский текст עברית ქართული Ünïcödé ß ẞ")
    add("whitespace_unicode", "a\u00a0b\u3000c\u2009d\u202fe\u2028f\u2029g\u0085h")
    add("tokens_lookalike", "Ġhello ▁world <0x41> ĊĠĠ â€™")
    c.append({"name": "invalid_utf8",
              "hex": ("48656c6c6f20" "ff" "fe" "20" "80" "c328" "20" "e282" "20" "f09f98" "20"
                      "eda080" "20" "c0af" "20" "f4908080" "20" "776f726c64" "e4bd")})
    c.append({"name": "invalid_truncated_tail", "hex": "e4bda0e5a5bde4b8"})
    return c


def lcg_next(state):
    return (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF


# Code point pools for the random mix: ASCII words and spaces weigh most, then the hard scripts.
RANDOM_POOLS = [
    (0x61, 0x7A), (0x61, 0x7A), (0x61, 0x7A), (0x41, 0x5A), (0x30, 0x39), (0x20, 0x20),
    (0x20, 0x20), (0x20, 0x20), (0x0A, 0x0A), (0x21, 0x2F), (0xE0, 0xFF), (0x300, 0x36F),
    (0x391, 0x3C9), (0x410, 0x44F), (0x627, 0x64A), (0x905, 0x939), (0xE01, 0xE2E),
    (0x3041, 0x3096), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F600, 0x1F64F), (0x1F3FB, 0x1F3FF),
    (0x200D, 0x200D), (0x09, 0x0D), (0x10000, 0x1007F),
]


def gen_random_mix(n_codepoints=300000, seed=20250611):
    s = seed
    out = []
    for _ in range(n_codepoints):
        s = lcg_next(s)
        pool = RANDOM_POOLS[(s >> 33) % len(RANDOM_POOLS)]
        s = lcg_next(s)
        out.append(chr(pool[0] + (s >> 33) % (pool[1] - pool[0] + 1)))
    return "".join(out)


def wikitext_1mb(shared):
    raw = (shared / "data/wikitext2/wikitext-2-raw-test.txt").read_bytes()[:1000000]
    return raw.decode("utf-8", errors="ignore")  # cut back to the last whole character


def fnv1a_ids(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def fnv1a_bytes(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def case_text(case):
    if "text" in case:
        return case["text"]
    return bytes.fromhex(case["hex"]).decode("utf-8", errors="replace")


CONVERSATIONS = [
    {"name": "user_only", "messages": [{"role": "user", "content": "What is 2+2?"}]},
    {"name": "system_user", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello!"}]},
    {"name": "multi_turn", "messages": [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Question: 1+1?\nOptions: A. 1 B. 2\nOutput format: [Option]"}]},
    {"name": "system_multi_turn", "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "  Name a colour.  "},
        {"role": "assistant", "content": "Blue.\n"},
        {"role": "user", "content": "Another, in 日本語?"}]},
    {"name": "ends_with_assistant", "messages": [
        {"role": "user", "content": "Say hi"},
        {"role": "assistant", "content": "hi"}]},
    {"name": "assistant_think", "messages": [
        {"role": "user", "content": "Think first"},
        {"role": "assistant", "content": "<think>\nsome reasoning\n</think>\n\nThe answer."}]},
    {"name": "tool_turns", "messages": [
        {"role": "user", "content": "What's the weather?"},
        {"role": "assistant", "content": "Let me check."},
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "tool", "content": "{\"sky\": \"clear\"}"}]},
    {"name": "system_only", "messages": [{"role": "system", "content": "Be terse."}]},
    {"name": "reasoning_mid_conversation", "messages": [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "<think>r1</think>A1"},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "\n\n<think>\nr2\n\n</think>\n\nA2"}]},
]


# Common variants of the three families, as edits of the real files (so no vocabulary is
# committed): the C++ test applies the same top-level replacements to the loaded JSON.
SPM = "\u2581"
VARIANTS = [
    {"name": "mistral_v03_metaspace_first", "base": "mistral", "set": {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": SPM, "prepend_scheme": "first", "split": False},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPM}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}}},
    {"name": "metaspace_split_always", "base": "mistral", "set": {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": SPM, "prepend_scheme": "always", "split": True},
        "decoder": {"type": "Metaspace", "replacement": SPM, "prepend_scheme": "always", "split": True}}},
    {"name": "mistral_unk_no_byte_fallback", "base": "mistral", "model": {"byte_fallback": False},
     "set": {"post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "</s>", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]},
                           "</s>": {"id": "</s>", "ids": [2], "tokens": ["</s>"]}}}}},
    {"name": "llama3_bos_template", "base": "llama3", "set": {
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                      "tokens": ["<|begin_of_text|>"]}}}]}}},
    {"name": "gpt2_bytelevel_prefix", "base": "qwen3", "set": {
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}}},
    {"name": "split_merged_with_next", "base": "llama3", "set": {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\d"}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}}},
    {"name": "split_removed_merged_prev", "base": "llama3", "set": {
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "[,;]"}, "behavior": "Removed", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "Split", "pattern": {"String": "!"}, "behavior": "Contiguous", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}}},
    {"name": "qwen_added_strip_flags", "base": "qwen3", "added": [
        {"content": "<|im_start|>", "rstrip": True}, {"content": "<|im_end|>", "lstrip": True},
        {"id": 151669, "content": "hello world", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": True, "special": False},
        {"id": 151670, "content": "cat", "single_word": True, "lstrip": False, "rstrip": False,
         "normalized": False, "special": False}]},
    {"name": "nfkc_lowercase_free", "base": "llama3", "set": {"normalizer": {"type": "NFKC"}}},
]

VARIANT_TEXTS = [
    "Hello world", " Hello  world ", "   leading and trailing   ", "", "a\nb\r\nc\td",
    "numbers 1234567 and 3.14, semi; colon! wow!!! yes", "I'M don't", "我爱自然语言处理",
    "emoji 👩🏿‍💻 🇫🇷", "cafe\u0301 ﬁ ｆｕｌｌ ①", "𠀀 rare ꙮ",
    "<s>[INST] hi [/INST]</s> <unk>", "x <|im_start|>   user\nhi   <|im_end|> y",
    "say hello world twice: hello world", "cat concatenate cat, bobcat cat_ cat.",
    "<|begin_of_text|>text<|eot_id|>", "▁already▁spaced ▁", "  \n\n  ",
]


def build_variant(shared, v):
    j = json.loads((shared / "tokenizers" / v["base"] / "tokenizer.json").read_text(encoding="utf-8"))
    for k, val in v.get("set", {}).items():
        j[k] = val
    for k, val in v.get("model", {}).items():
        j["model"][k] = val
    for a in v.get("added", []):
        hit = [t for t in j["added_tokens"] if t["content"] == a["content"]]
        if hit:
            hit[0].update(a)
        else:
            j["added_tokens"].append(a)
    return j


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--no-bench", action="store_true")
    args = ap.parse_args()
    shared = pathlib.Path(args.shared)

    import tokenizers
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    OUT.mkdir(parents=True, exist_ok=True)
    cases = case_list()
    (OUT / "corpus.json").write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n",
                                     encoding="utf-8")
    big = {"wikitext_1mb": wikitext_1mb(shared), "random_mix": gen_random_mix()}

    speed = {"tokenizers_version": tokenizers.__version__,
             "transformers_version": transformers.__version__, "results": {}}
    for name in TOKENIZERS:
        d = shared / "tokenizers" / name
        t0 = time.perf_counter()
        tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        load_s = time.perf_counter() - t0
        hf = AutoTokenizer.from_pretrained(str(d))
        exp = {"tokenizer": name, "vocab_size": tok.get_vocab_size(with_added_tokens=True),
               "cases": {}, "big": {}, "transformers_differs": []}
        for case in cases:
            text = case_text(case)
            ids = tok.encode(text, add_special_tokens=True).ids
            ids_plain = tok.encode(text, add_special_tokens=False).ids
            hf_ids = hf(text, add_special_tokens=True)["input_ids"]
            if hf_ids != ids:  # see docs/tokenizers.md: transformers 5 rebuilds Llama tokenizers
                exp["transformers_differs"].append(case["name"])
            exp["cases"][case["name"]] = {
                "ids": ids, "ids_no_special": ids_plain,
                "decode": tok.decode(ids, skip_special_tokens=False),
                "decode_skip_special": tok.decode(ids, skip_special_tokens=True)}
        for bname, text in big.items():
            ids = tok.encode(text, add_special_tokens=False).ids
            exp["big"][bname] = {"count": len(ids), "fnv1a": fnv1a_ids(ids),
                                 "decode_fnv1a": fnv1a_bytes(tok.decode(ids).encode("utf-8"))}
        (OUT / f"expected_{name}.json").write_text(
            json.dumps(exp, ensure_ascii=False, indent=None, separators=(",", ":")) + "\n",
            encoding="utf-8")

        chat = {"tokenizer": name, "formats": {}}
        templates = {}
        if hf.chat_template:
            templates["file"] = hf.chat_template
        if name == "mistral":
            assert not hf.chat_template, "mistral file now carries a template: update fathom"
            templates["mistral"] = MISTRAL_TEMPLATE
            templates["llama2"] = LLAMA2_TEMPLATE
        for fmt, template in templates.items():
            rows = {}
            for conv in CONVERSATIONS:
                for gen in (False, True):
                    key = f"{conv['name']}/{'gen' if gen else 'nogen'}"
                    try:
                        text = hf.apply_chat_template(conv["messages"], chat_template=template,
                                                      tokenize=False, add_generation_prompt=gen)
                    except Exception as e:  # the template refuses (e.g. system role): record it
                        rows[key] = {"error": str(e)}
                        continue
                    # apply_chat_template(tokenize=True) is encode(text, add_special_tokens=False)
                    rows[key] = {"text": text,
                                 "ids": tok.encode(text, add_special_tokens=False).ids}
            chat["formats"][fmt] = rows
        chat["conversations"] = CONVERSATIONS
        (OUT / f"chat_{name}.json").write_text(
            json.dumps(chat, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

        if not args.no_bench:
            text = (shared / "data/wikitext2/wikitext-2-raw-test.txt").read_text(encoding="utf-8")
            nbytes = len(text.encode("utf-8"))
            # Best of 3; CPU time as well as wall time, since a shared machine inflates wall time
            # (the C++ benchmark reports CPU-time MB/s too). One thread: a single encode() call
            # is sequential in the reference, and RAYON_NUM_THREADS=1 is set above.
            best, best_cpu = float("inf"), float("inf")
            for _ in range(3):
                t0, c0 = time.perf_counter(), time.process_time()
                tok.encode(text, add_special_tokens=False)
                best = min(best, time.perf_counter() - t0)
                best_cpu = min(best_cpu, time.process_time() - c0)
            # The same text as one encode() per line (TOKENIZERS_PARALLELISM=false keeps
            # encode_batch on one thread): the reference is much faster on short inputs.
            lines = text.splitlines(keepends=True)
            best_lines = float("inf")
            for _ in range(3):
                c0 = time.process_time()
                tok.encode_batch(lines, add_special_tokens=False)
                best_lines = min(best_lines, time.process_time() - c0)
            speed_lines = nbytes / best_lines / 1e6
            c0 = time.process_time()
            Tokenizer.from_file(str(d / "tokenizer.json"))
            load_cpu = time.process_time() - c0
            speed["results"][name] = {"encode_MBps": nbytes / best / 1e6,
                                      "encode_MBps_cpu": nbytes / best_cpu / 1e6,
                                      "encode_lines_MBps_cpu": speed_lines, "bytes": nbytes,
                                      "load_s": load_s, "load_cpu_s": load_cpu}
            print(f"{name}: transformers differs on {exp['transformers_differs']}")
            print(f"{name}: {nbytes / best / 1e6:.2f} MB/s wall, {nbytes / best_cpu / 1e6:.2f} MB/s CPU "
                  f"per line {speed_lines:.2f} MB/s CPU (load {load_s:.3f} s wall, {load_cpu:.3f} s CPU)")
    from tokenizers import Tokenizer as _T
    variants = {"texts": VARIANT_TEXTS, "variants": []}
    for v in VARIANTS:
        tok = _T.from_str(json.dumps(build_variant(shared, v)))
        rows = []
        for text in VARIANT_TEXTS:
            ids = tok.encode(text, add_special_tokens=True).ids
            rows.append({"ids": ids, "ids_no_special": tok.encode(text, add_special_tokens=False).ids,
                         "decode": tok.decode(ids, skip_special_tokens=False),
                         "decode_skip_special": tok.decode(ids, skip_special_tokens=True)})
        variants["variants"].append({**v, "rows": rows})
    (OUT / "variants.json").write_text(json.dumps(variants, ensure_ascii=False, indent=None) + "\n",
                                       encoding="utf-8")

    if not args.no_bench:
        (OUT / "reference_speed.json").write_text(json.dumps(speed, indent=1) + "\n")


if __name__ == "__main__":
    main()
