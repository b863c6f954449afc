#!/usr/bin/env python3
"""Reference fixtures for fathom's Jinja chat-template renderer (tests/test_chat_template.cpp).

Renders a fixed set of conversations with transformers' `apply_chat_template(tokenize=False)`
through every template in tests/fixtures/chat_templates/*.jinja (see SOURCES.md there for where
each came from) and through the own templates of the tokenizers in ../shared/tokenizers/, and
writes tests/fixtures/chat_templates/expected.json:

and tests/fixtures/chat_templates/engine_cases.json (one Jinja construct or filter per case,
rendered by transformers' own Jinja environment):

  {"templates": {name: {"file": "<x>.jinja" | null, "tokenizer": "<shared name>" | null,
                        "special_tokens": {...}, "cases": [{"conversation", "add_generation_prompt",
                        "kwargs", "tools"?, "text" | "error", "error_type"}]}},
   "conversations": {name: [messages]}, "tools": [...]}

A case either renders (`text`, compared byte for byte) or raises (`error`: the message of the
exception; `error_type` its class name: TemplateError is raise_exception).

The fixture-file templates are rendered with a real tokenizer (../shared/tokenizers/qwen3) whose
template is replaced by the fixture's and whose special tokens are overridden through the kwargs
(transformers lets kwargs overwrite the special-token map); the map actually seen by the
template is recorded as `special_tokens`, so the C++ side passes exactly the same variables.

Usage: python tools/gen_chat_template_fixtures.py [--shared ../shared]
"""
import argparse
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "chat_templates"

# Fixture templates and the special tokens of the model each belongs to (its tokenizer_config.json).
TEMPLATES = {
    "smollm2": ("SmolLM2-135M-Instruct.jinja", {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                                                "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>"}),
    "qwen2.5": ("Qwen-Qwen2.5-7B-Instruct.jinja", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}),
    "llama3.1": ("meta-llama-Llama-3.1-8B-Instruct.jinja", {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "llama3.2": ("meta-llama-Llama-3.2-3B-Instruct.jinja", {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}),
    "mistral-v0.3": ("mistralai-Mistral-7B-Instruct-v0.3.jinja", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    "mistral-v0.1": ("mistralai-Mistral-7B-Instruct-v0.1.jinja", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    "llama2-chat": ("meta-llama-Llama-2-7b-chat-hf.jinja", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    "gemma2": ("google-gemma-2-2b-it.jinja", {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"}),
    "phi3.5": ("microsoft-Phi-3.5-mini-instruct.jinja", {"bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>", "pad_token": "<|endoftext|>"}),
}
SHARED = ["qwen3", "llama3"]  # mistral (v0.1 base) ships no template: the built-in format is tested elsewhere
ALL_TOKEN_KEYS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Zürich"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Add two numbers",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "integer"}},
                       "required": ["a", "b"]}}},
]

CALL = {"id": "call12345", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}}

U, A, S = "user", "assistant", "system"
m = lambda role, content, **kw: {"role": role, "content": content, **kw}

CONVERSATIONS = {
    "user": [m(U, "What is the capital of France?")],
    "system_user": [m(S, "You are a terse assistant."), m(U, "Hello!")],
    "multi_turn": [m(U, "Hi"), m(A, "Hello! How can I help?"), m(U, "Tell me a joke.")],
    "system_multi_turn": [m(S, "Be kind."), m(U, "Hi"), m(A, "Hey."), m(U, "Count to 3"), m(A, "1, 2, 3")],
    "empty_user": [m(U, "")],
    "empty_system": [m(S, ""), m(U, "Hi")],
    "unicode": [m(U, "Grüße aus Zürich! 日本語のテキスト 😀👍🏽 — ½ ∑ ü")],
    "whitespace": [m(U, "  padded question \n\n"), m(A, "\n answer with spaces  "), m(U, "\tnext\t")],
    "assistant_last": [m(U, "2+2?"), m(A, "4")],
    "system_only": [m(S, "Only a system prompt.")],
    "template_syntax_in_content": [m(U, "{{ not a tag }} {% neither %} {# nor #} \"quotes\" 'single' \\ backslash")],
    "long": [m(S, "sys"), m(U, "a"), m(A, "b"), m(U, "c"), m(A, "d"), m(U, "e"), m(A, "f"), m(U, "g")],
    "newlines": [m(U, "line one\nline two\r\nline three"), m(A, "ok\n")],
    "two_users": [m(U, "first"), m(U, "second")],
    "assistant_first": [m(A, "I speak first."), m(U, "ok")],
    "system_in_middle": [m(U, "Hi"), m(S, "Now be formal."), m(U, "Hello")],
    "tool_call": [m(U, "Weather in Zürich?"),
                  {"role": A, "content": "", "tool_calls": [CALL]},
                  {"role": "tool", "content": "{\"temperature\": 21}", "tool_call_id": "call12345", "name": "get_weather"},
                  m(A, "It is 21 °C.")],
    "tool_call_pending": [m(U, "Weather in Zürich?"), {"role": A, "content": "", "tool_calls": [CALL]},
                          {"role": "tool", "content": "{\"temperature\": 21}", "tool_call_id": "call12345", "name": "get_weather"}],
    "reasoning": [m(U, "Why is the sky blue?"), m(A, "Rayleigh scattering.", reasoning_content="Think about light.")],
    "think_in_content": [m(U, "1+1?"), m(A, "<think>\nsimple\n</think>\n\n2"), m(U, "and 2+2?")],
    "unknown_role": [m("narrator", "Once upon a time")],
    "none_content": [m(U, "Hi"), {"role": A, "content": None, "tool_calls": [CALL]}],
}

# Extra cases: (conversation, kwargs, with tools)
EXTRA = [
    ("user", {"enable_thinking": False}, False),
    ("multi_turn", {"enable_thinking": False}, False),
    ("think_in_content", {"enable_thinking": True}, False),
    ("user", {}, True),
    ("system_user", {}, True),
    ("tool_call", {}, True),
    ("user", {"date_string": "01 Jan 2025"}, False),
    ("system_user", {"tools_in_user_message": False}, True),
]


# Engine cases: one construct or filter each, rendered by transformers' own Jinja environment
# (the one apply_chat_template compiles templates with). Written to engine_cases.json.
ENGINE_CASES = [
    ("text_only", "plain text\n", {}),
    ("trailing_newline_kept_once", "a\n\n", {}),
    ("output_types", "{{ 1 }}|{{ 1.5 }}|{{ 1.0 }}|{{ 1e20 }}|{{ 0.0001 }}|{{ 1e-5 }}|{{ true }}|{{ none }}|{{ 'x' }}", {}),
    ("output_containers", "{{ [1, 'a', none, true, 2.5] }}|{{ {'k': 'v', 'n': [1]} }}|{{ \"it's\" }}|{{ ['it\\'s'] }}", {}),
    ("undefined_prints_empty", "[{{ missing }}][{{ m.nothere }}]", {"m": {"a": 1}}),
    ("comment", "a{# a comment #}b", {}),
    ("trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter", {}),
    ("lstrip_blocks", "line\n    {% if true %}\n    body\n    {% endif %}\nend", {}),
    ("lstrip_not_for_output", "  {{ 'x' }}\n  {% if true %}y{% endif %}", {}),
    ("minus_strips", "a   {{- 'b' -}}   c\n\n{%- if true -%}\n  d  \n{%- endif -%}\n e", {}),
    ("plus_keeps_indent", "x\n  {%+ if true %}y{% endif %}", {}),
    ("comment_trim", "a\n  {# c #}\nb {#- c -#} c", {}),
    ("raw", "{% raw %}{{ not rendered }}{% endraw %}", {}),
    ("if_elif_else", "{% for x in [1, 2, 3] %}{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %},{% endfor %}", {}),
    ("for_loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", {}),
    ("for_prev_next", "{% for x in [1, 2, 3] %}{{ loop.previtem }}<{{ x }}>{{ loop.nextitem }} {% endfor %}", {}),
    ("for_cycle", "{% for x in range(5) %}{{ loop.cycle('a', 'b') }}{% endfor %}", {}),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}", {}),
    ("for_filter", "{% for x in range(10) if x is even %}{{ x }}{{ loop.length }} {% endfor %}", {}),
    ("for_unpack_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("for_dict_keys", "{% for k in d %}{{ k }}{% endfor %}", {"d": {"z": 1, "y": 2}}),
    ("nested_loops", "{% for a in [1, 2] %}{% for b in [3, 4] %}{{ loop.index }}{% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("set_scoping", "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{{ x }}{% endfor %}{{ x }}{% if true %}{% set x = 3 %}{% endif %}{{ x }}", {}),
    ("namespace", "{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("set_unpack", "{% set a, b = [1, 2] %}{{ b }}{{ a }}", {}),
    ("set_block", "{% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}]", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', '?') }} {{ greet(name='C', punct='.') }}", {}),
    ("macro_caller", "{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}inner{% endcall %}", {}),
    ("macro_recursion", "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(4) }}", {}),
    ("filter_block", "{% filter upper %}shout {{ 'this' }}{% endfilter %}", {}),
    ("with_block", "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", {}),
    ("generation_block", "{% generation %}kept{% endgeneration %}", {}),
    ("arithmetic", "{{ 7 + 2 }} {{ 7 - 2 }} {{ 7 * 2 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 1 + 2.0 }} {{ 4 / 2 }}", {}),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 * 3 ~ 4 }} {{ not true or true }} {{ 1 < 2 and 2 < 3 }}", {}),
    ("string_ops", "{{ 'a' + 'b' }} {{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ 'b' in 'abc' }} {{ 'z' not in 'abc' }} {{ 2 in [1, 2] }} {{ 'k' in {'k': 1} }}", {}),
    ("comparisons", "{{ 1 == 1.0 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 != 2 }} {{ none == none }} {{ 2 >= 2 }} {{ true == 1 }}", {}),
    ("and_or_values", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }} {{ none or [] }}|", {}),
    ("ternary", "{{ 'y' if 1 else 'n' }} {{ 'y' if 0 else 'n' }} [{{ 'y' if 0 }}]", {}),
    ("subscript_slice", "{{ s[0] }}{{ s[-1] }} {{ s[1:3] }} {{ s[::-1] }} {{ s[::2] }} {{ l[1:] }} {{ l[:-1] }} {{ l[-2:] }} {{ l[5:] }} {{ l[::-2] }}", {"s": "hello", "l": [1, 2, 3, 4]}),
    ("unicode_strings", "{{ s|length }} {{ s[1] }} {{ s[::-1] }} {{ s.upper() }} {{ s|reverse }}", {"s": "añ😀z"}),
    ("attr_and_item", "{{ d.a }} {{ d['a'] }} {{ d.l[1] }} {{ d.l.0 }} {{ d.get('a') }} {{ d.get('x', 'def') }} {{ d.get('x') }}", {"d": {"a": 1, "l": [5, 6]}}),
    ("dict_methods", "{{ d.keys()|list }} {{ d.values()|list }} {% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}", {"d": {"a": 1, "b": 2}}),
    ("str_methods", "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ s.strip(' x') }}] {{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a b c'.rsplit(' ', 1) }}", {"s": " x hi x "}),
    ("str_methods2", "{{ 'ab'.startswith('a') }} {{ 'ab'.endswith(('x', 'b')) }} {{ 'Ab'.lower() }} {{ 'ab'.upper() }} {{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }} {{ 'aaa'.replace('a', 'b', 2) }} {{ 'abc'.replace('', '-') }} {{ 'abcb'.find('b') }} {{ 'abcb'.rfind('b') }} {{ 'abcb'.count('b') }} {{ '-'.join(['a', 'b']) }} {{ 'l1\nl2'.splitlines() }} {{ '12'.isdigit() }}", {}),
    ("tests", "{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 is number }} {{ 1 is integer }} {{ 1.0 is float }} {{ {} is mapping }} {{ [] is iterable }} {{ 'a' is iterable }} {{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ true is boolean }} {{ true is sameas true }} {{ 1 is eq 1 }} {{ 1 is lt 2 }} {{ 'a' is in 'abc' }} {{ 'ABC' is upper }} {{ x is not none }}", {"x": 1}),
    ("filter_trim_length", "[{{ '  a b  '|trim }}][{{ 'xxaxx'|trim('x') }}] {{ [1, 2]|length }} {{ 'abc'|count }} {{ {'a': 1}|length }} {{ missing|length }}", {}),
    ("filter_tojson", "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ d|tojson(separators=(',', ':')) }}|{{ d|tojson(sort_keys=true) }}|{{ 'ü\"\\n'|tojson }}|{{ 'ü'|tojson(ensure_ascii=true) }}|{{ [1.0, none, true, 1e100]|tojson }}|{{ []|tojson(indent=2) }}", {"d": {"b": [1, {"c": "ü"}], "a": None, "e": {}}}),
    ("filter_join_first_last", "{{ [1, 2, 3]|join }} {{ ['a', 'b']|join(', ') }} {{ l|join('/', attribute='n') }} {{ [1, 2]|first }} {{ [1, 2]|last }} {{ 'abc'|first }} [{{ []|first }}]", {"l": [{"n": "x"}, {"n": "y"}]}),
    ("filter_default", "{{ missing|default('d') }} {{ ''|default('d') }} {{ ''|default('d', true) }} {{ none|default('d') }} {{ missing|d('x') }}", {}),
    ("filter_map_select", "{{ l|map(attribute='n')|list }} {{ ['a', 'b']|map('upper')|list }} {{ l|selectattr('k')|map(attribute='n')|list }} {{ l|rejectattr('k')|map(attribute='n')|list }} {{ l|selectattr('n', 'equalto', 'y')|list|length }} {{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3, 4]|reject('odd')|list }} {{ l|selectattr('k', 'defined')|list|length }} {{ l|map(attribute='zz', default='-')|list }}", {"l": [{"n": "x", "k": True}, {"n": "y"}]}),
    ("filter_conversions", "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ '2.5'|float }} {{ 2|float }} {{ 12|string ~ 'a' }} {{ 'abc'|list }} {{ {'a': 1}|list }} {{ {'a': 1}|items|list }}", {}),
    ("filter_text", "{{ 'hello world'|capitalize }} {{ 'hello big-world (x)'|title }} {{ 'aXb'|upper }} {{ 'aXb'|lower }} {{ 'a-b-c'|replace('-', '+') }} {{ 'a-b-c'|replace('-', '+', 1) }} {{ '<a & \"b\">'|e }} {{ '<x>'|safe }} {{ 'one two  three'|wordcount }}", {}),
    ("filter_indent", "[{{ 'a\nb\n\nc'|indent }}][{{ 'a\nb'|indent(2, true) }}][{{ 'a\n\nb'|indent(1, blank=true) }}]", {}),
    ("filter_numbers", "{{ -3|abs }} {{ -2.5|abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.567|round(2) }} {{ 2.1|round(0, 'ceil') }} {{ [3, 1, 2]|sum }} {{ [3, 1, 2]|min }} {{ [3, 1, 2]|max }} {{ l|sum(attribute='n') }}", {"l": [{"n": 1}, {"n": 2.5}]}),
    ("filter_sort_unique", "{{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A', 'a']|sort }} {{ ['b', 'A', 'a']|sort(case_sensitive=true) }} {{ l|sort(attribute='n')|map(attribute='n')|list }} {{ [1, 2, 1, 3]|unique|list }} {{ ['a', 'A']|unique|list }} {{ {'b': 1, 'a': 2}|dictsort }} {{ [1, 2]|reverse|list }}", {"l": [{"n": 2}, {"n": 1}]}),
    ("globals", "{{ range(3)|list }} {{ range(1, 7, 2)|list }} {{ range(5, 0, -2)|list }} {{ dict(a=1, b='x') }} {{ namespace(a=1).a }}", {}),
    ("string_escapes", "{{ 'a\\tb\\\\c\\x41\\u00e9\\'' }}|{{ \"q\\\"\" }}|{{ 'a' 'b' }}", {}),
    ("whitespace_in_tags", "{{\n  'x'\n}}{%\nif true\n%}y{%\nendif\n%}", {}),
    ("message_loop", "{% for m in messages %}{{ m.role }}: {{ m['content'] | trim }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}", {"messages": [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo"}], "add_generation_prompt": True}),
]


def render_engine_cases():
    from transformers.utils.chat_template_utils import _compile_jinja_template
    rows = []
    for name, tpl, ctx in ENGINE_CASES:
        try:
            rows.append({"name": name, "template": tpl, "context": ctx, "text": _compile_jinja_template(tpl).render(**ctx)})
        except Exception as e:  # recorded: the C++ test expects the same failure
            rows.append({"name": name, "template": tpl, "context": ctx, "error": str(e), "error_type": type(e).__name__})
    return rows


def render(tok, conv, gen, kwargs, tools, special):
    try:
        text = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen,
                                       tools=tools, **special, **kwargs)
        return {"text": text}
    except Exception as e:  # the expected outcome of the case, not a failure of the script
        return {"error": str(e), "error_type": type(e).__name__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = ap.parse_args()
    from transformers import AutoTokenizer
    import transformers, jinja2
    shared = pathlib.Path(args.shared)

    out = {"generator": f"transformers {transformers.__version__}, jinja2 {jinja2.__version__}",
           "conversations": CONVERSATIONS, "tools": TOOLS, "templates": {}}
    base = AutoTokenizer.from_pretrained(shared / "tokenizers" / "qwen3")
    jobs = [(n, f, sp, None) for n, (f, sp) in TEMPLATES.items()] + [(n, None, None, n) for n in SHARED]
    for name, file, special, shared_name in jobs:
        if shared_name:
            tok = AutoTokenizer.from_pretrained(shared / "tokenizers" / shared_name)
            seen = dict(tok.special_tokens_map)
            call_special = {}
        else:
            tok = base
            tok.chat_template = (OUT / file).read_text(encoding="utf-8")
            # Overrides every special token the base tokenizer has, so only `special` is seen.
            call_special = {k: special.get(k) for k in ALL_TOKEN_KEYS if k in special or k in base.special_tokens_map}
            seen = {k: v for k, v in call_special.items() if v is not None}
        cases = []
        plan = [(c, gen, {}, False) for c in CONVERSATIONS for gen in (False, True)]
        plan += [(c, gen, kw, t) for c, kw, t in EXTRA for gen in (False, True)]
        for conv_name, gen, kwargs, with_tools in plan:
            if name == "llama3.2" and "date_string" not in kwargs:
                # Its template reads today's date (strftime_now) unless date_string is given.
                kwargs = {**kwargs, "date_string": "26 Jul 2024"}
            conv = json.loads(json.dumps(CONVERSATIONS[conv_name]))  # a fresh copy per call
            row = {"conversation": conv_name, "add_generation_prompt": gen, "kwargs": kwargs, "tools": with_tools}
            row.update(render(tok, conv, gen, kwargs, TOOLS if with_tools else None, call_special))
            cases.append(row)
        out["templates"][name] = {"file": file, "tokenizer": shared_name, "special_tokens": seen, "cases": cases}
        n_err = sum("error" in c for c in cases)
        print(f"{name}: {len(cases)} cases ({len(cases) - n_err} rendered, {n_err} raise)")
    # The prompt ids `generate --chat` must feed for SmolLM2: transformers' own GGUF tokenizer
    # (template from the file's metadata), apply_chat_template(tokenize=True).
    gguf = shared / "models" / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    hf = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    out["smollm2_gguf_ids"] = {}
    for conv_name in ("user", "system_user", "multi_turn", "unicode"):
        enc = hf.apply_chat_template(CONVERSATIONS[conv_name], tokenize=True, add_generation_prompt=True)
        ids = enc["input_ids"] if hasattr(enc, "keys") else enc
        out["smollm2_gguf_ids"][conv_name] = [int(i) for i in ids]
    engine = render_engine_cases()
    print(f"engine: {len(engine)} cases ({sum('error' in r for r in engine)} raise)")
    (OUT / "engine_cases.json").write_text(json.dumps(engine, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (OUT / "expected.json").write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
