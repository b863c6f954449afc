// The tokenizer built from GGUF metadata against transformers' GGUF tokenizer
// (AutoTokenizer.from_pretrained(dir, gguf_file=...)); fixtures from
// tools/gen_gguf_tokenizer_fixtures.py. The real SmolLM2 file is read from the shared folder; the
// three tokenizer-only files (llama/SentencePiece, qwen2 and llama-bpe pre-tokenizers) are made
// here from the shared tokenizer.json files, byte for byte as the script made them.
#include <doctest/doctest.h>

#include <filesystem>

#include "fathom/io/gguf.hpp"
#include "fathom/tokenizer/any_tokenizer.hpp"
#include "fathom/tokenizer/gguf_tokenizer.hpp"
#include "gguf_test_writer.hpp"
#include "gguf_tokenizer_writer.hpp"
#include "tokenizer_fixtures.hpp"

using fathom::io::GgufFile;
using fathom::test::GgufBuilder;
using fathom::tok::Tokenizer;
using nlohmann::json;

namespace {

const char* const kSmolLM2 = "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf";

// Ids as recorded: the full list, or {count, fnv1a, head, tail} for long ones.
void check_ids(const std::vector<int32_t>& ids, const json& e) {
  if (e.is_array()) {
    CHECK(ids == e.get<std::vector<int32_t>>());
    return;
  }
  REQUIRE(ids.size() == e["count"].get<size_t>());
  CHECK(tokfix::fnv1a_ids(ids) == e["fnv1a"].get<std::string>());
  const auto head = e["head"].get<std::vector<int32_t>>(), tail = e["tail"].get<std::vector<int32_t>>();
  CHECK(std::vector<int32_t>(ids.begin(), ids.begin() + long(head.size())) == head);
  CHECK(std::vector<int32_t>(ids.end() - long(tail.size()), ids.end()) == tail);
}

// Every corpus case (ids with/without specials, both decodes) and the two 1 MB inputs; returns
// the number of cases compared.
size_t check_against_fixture(const Tokenizer& tok, const json& exp) {
  const auto corpus = tokfix::load_json("corpus.json");
  CHECK(tok.vocab_size() == exp["vocab_size"].get<size_t>());
  REQUIRE(tok.bos_id().has_value() == !exp["bos_id"].is_null());
  if (tok.bos_id()) CHECK(*tok.bos_id() == exp["bos_id"].get<int32_t>());
  REQUIRE(!tok.eos_ids().empty());
  CHECK(tok.eos_ids().front() == exp["eos_id"].get<int32_t>());
  for (int32_t id : exp["special_ids"].get<std::vector<int32_t>>()) CHECK(tok.is_special(id));
  size_t n = 0;
  for (const auto& c : corpus) {
    const std::string cname = c["name"].get<std::string>();
    CAPTURE(cname);
    const std::string text = tokfix::case_text(c);
    const auto& e = exp["cases"][cname];
    const auto ids = tok.encode(text, true);
    check_ids(ids, e["ids"]);
    check_ids(tok.encode(text, false), e["ids_no_special"]);
    CHECK(tok.decode(ids) == e["decode"].get<std::string>());
    CHECK(tok.decode(ids, true) == e["decode_skip_special"].get<std::string>());
    ++n;
  }
  const std::pair<const char*, std::string> inputs[] = {{"wikitext_1mb", tokfix::wikitext_1mb()},
                                                        {"random_mix", tokfix::random_mix()}};
  for (const auto& [bname, text] : inputs) {
    CAPTURE(bname);
    const auto& e = exp["big"][bname];
    const auto ids = tok.encode(text, false);
    CHECK(ids.size() == e["count"].get<size_t>());
    CHECK(tokfix::fnv1a_ids(ids) == e["fnv1a"].get<std::string>());
    const std::string back = tok.decode(ids);
    CHECK(tokfix::hex64(tokfix::fnv1a(back.data(), back.size())) == e["decode_fnv1a"].get<std::string>());
    ++n;
  }
  return n;
}

// The chat template reaches the synthesized tokenizer_config.json unchanged.
void check_template(const GgufFile& f, const json& exp) {
  const json cfg = json::parse(fathom::tok::gguf_tokenizer_files(f).config_json);
  const std::string tpl = cfg.value("chat_template", std::string());
  CHECK(tpl.size() == exp["chat_template_size"].get<size_t>());
  CHECK(tokfix::hex64(tokfix::fnv1a(tpl.data(), tpl.size())) == exp["chat_template_fnv1a"].get<std::string>());
}

GgufFile made_file(const std::string& name) {
  for (const auto& s : ggtok::made_specs()) {
    if (s.name != name) continue;
    const auto dir = fathom::shared_file("tokenizers/" + s.src);
    const std::string bytes = ggtok::make_gguf(s, json::parse(tokfix::slurp(dir / "tokenizer.json")),
                                               json::parse(tokfix::slurp(dir / "tokenizer_config.json")));
    const auto exp = tokfix::load_json("gguf_" + name + ".json");
    // The same file the reference tokenized, or the comparison would mean nothing.
    REQUIRE(bytes.size() == exp["file_size"].get<size_t>());
    REQUIRE(tokfix::hex64(tokfix::fnv1a(bytes.data(), bytes.size())) == exp["file_fnv1a"].get<std::string>());
    return GgufFile::parse(fathom::test::as_bytes(bytes), name + ".gguf");
  }
  FAIL("no made file " << name);
  throw 0;
}

}  // namespace

TEST_CASE("SmolLM2 GGUF (gpt2, pre smollm): corpus equals transformers' GGUF tokenizer") {
  const auto exp = tokfix::load_json("gguf_smollm2.json");
  const GgufFile f = GgufFile::open(fathom::shared_file(kSmolLM2));
  const Tokenizer tok = fathom::tok::tokenizer_from_gguf(f);
  const size_t n = check_against_fixture(tok, exp);
  MESSAGE("SmolLM2 GGUF: " << n << " cases compared");
  check_template(f, exp);
  // transformers names <|im_start|> bos and <|im_end|> eos for this file (ids 1 and 2).
  CHECK(*tok.bos_id() == 1);
  CHECK(tok.eos_ids().front() == 2);
  CHECK(tok.chat_format() == fathom::tok::ChatFormat::ChatML);
}

TEST_CASE("SmolLM2 GGUF: chat prompts equal transformers' apply_chat_template") {
  // SmolLM2's template is ChatML plus a default system prompt when the chat has no system turn;
  // the conversations that open with a system turn are rendered identically by every renderer of
  // that template, the others need the template itself (the Jinja renderer).
  const auto exp = tokfix::load_json("gguf_smollm2.json");
  const Tokenizer tok = fathom::tok::tokenizer_from_gguf(fathom::shared_file(kSmolLM2));
  size_t n = 0;
  const auto chats = tokfix::load_json("chat_qwen3.json");  // the project's conversations
  for (const auto& conv : chats["conversations"]) {
    std::vector<fathom::tok::ChatMessage> msgs;
    for (const auto& m : conv["messages"]) msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    if (msgs.front().role != "system") continue;
    for (bool gen : {false, true}) {
      const std::string key = conv["name"].get<std::string>() + (gen ? "/gen" : "/nogen");
      CAPTURE(key);
      const auto& e = exp["chat"][key];
      REQUIRE(e.contains("text"));
      CHECK(tok.apply_chat_template(msgs, gen) == e["text"].get<std::string>());
      ++n;
    }
  }
  CHECK(n == 6);
}

TEST_CASE("Mistral vocabulary as a llama (SentencePiece) GGUF: merges from scores equal transformers") {
  const auto exp = tokfix::load_json("gguf_mistral_spm.json");
  const GgufFile f = made_file("mistral_spm");
  const Tokenizer tok = fathom::tok::tokenizer_from_gguf(f);
  MESSAGE("mistral_spm GGUF: " << check_against_fixture(tok, exp) << " cases compared");
  CHECK(tok.encode("Hi", true).front() == 1);  // add_bos_token
}

TEST_CASE("Qwen3 vocabulary as a gpt2 GGUF with pre qwen2: corpus equals transformers") {
  const auto exp = tokfix::load_json("gguf_qwen3_qwen2pre.json");
  const GgufFile f = made_file("qwen3_qwen2pre");
  const Tokenizer tok = fathom::tok::tokenizer_from_gguf(f);
  MESSAGE("qwen3_qwen2pre GGUF: " << check_against_fixture(tok, exp) << " cases compared");
  check_template(f, exp);
  CHECK(tok.token_id("<think>").value() == 151667);  // USER_DEFINED: a whole, non-special token
  CHECK(!tok.is_special(151667));
}

TEST_CASE("Llama-3 vocabulary as a gpt2 GGUF with pre llama-bpe: corpus equals transformers") {
  const auto exp = tokfix::load_json("gguf_llama3_llamabpe.json");
  const GgufFile f = made_file("llama3_llamabpe");
  const Tokenizer tok = fathom::tok::tokenizer_from_gguf(f);
  MESSAGE("llama3_llamabpe GGUF: " << check_against_fixture(tok, exp) << " cases compared");
  check_template(f, exp);
  // GPT2Tokenizer's default <|endoftext|> is not in this vocabulary: transformers appends it.
  CHECK(tok.token_id("<|endoftext|>").value() == 128256);
}

TEST_CASE("load_tokenizer / load_tokenizer_for accept a .gguf file") {
  const auto path = fathom::shared_file(kSmolLM2);
  const auto exp = tokfix::load_json("gguf_smollm2.json");
  const auto& e = exp["cases"]["english_prose"]["ids"];
  for (const auto& any : {fathom::tok::load_tokenizer(path), fathom::tok::load_tokenizer_for(path)}) {
    CHECK(any.kind() == "gguf");
    check_ids(any.encode(tokfix::case_text(tokfix::load_json("corpus.json")[0]), true), e);
    CHECK(any.bos_id() == 1);
  }
}

// ---- bad metadata: one test each ----

namespace {

std::string str_array(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) GgufBuilder::put_str(s, x);
  return GgufBuilder::array_value(8, v.size(), s);
}
std::string i32_array(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t x : v) s += GgufBuilder::raw(x);
  return GgufBuilder::array_value(5, v.size(), s);
}
std::string f32_array(const std::vector<float>& v) {
  std::string s;
  for (float x : v) s += GgufBuilder::raw(x);
  return GgufBuilder::array_value(6, v.size(), s);
}

const std::vector<std::string> kTokens = {"a", "b", "ab", "\xc4\xa0", "\xc4\xa0" "ab", "<|end|>"};

// A small valid gpt2 tokenizer; `skip` leaves a key out, `extra` adds kvs after it.
GgufBuilder small(const std::string& skip = "") {
  GgufBuilder b;
  b.kv_str("general.architecture", "llama");
  if (skip != "model") b.kv_str("tokenizer.ggml.model", "gpt2");
  if (skip != "tokens") b.kv("tokenizer.ggml.tokens", 9, str_array(kTokens));
  if (skip != "types") b.kv("tokenizer.ggml.token_type", 9, i32_array({1, 1, 1, 1, 1, 3}));
  if (skip != "merges") b.kv("tokenizer.ggml.merges", 9, str_array({"a b", "\xc4\xa0 ab"}));
  return b;
}

Tokenizer load(const GgufBuilder& b) {
  const std::string bytes = b.build();
  return fathom::tok::tokenizer_from_gguf(GgufFile::parse(fathom::test::as_bytes(bytes), "bad.gguf"));
}

template <class E>
void expect_error(const GgufBuilder& b, const std::string& field, const std::string& reason_part) {
  try {
    (void)load(b);
    FAIL("no error for " << field);
  } catch (const E& e) {
    CAPTURE(e.what());
    CHECK(e.file() == "bad.gguf");
    CHECK(e.field() == field);
    CHECK(e.reason().find(reason_part) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("the small valid file loads and encodes") {
  const Tokenizer tok = load(small());
  CHECK(tok.encode("ab ab<|end|>", true) == std::vector<int32_t>{2, 4, 5});
  CHECK(tok.decode(std::vector<int32_t>{2, 4, 5}, true) == "ab ab");
  CHECK(tok.token_id("<|endoftext|>").value() == 6);  // GPT2Tokenizer's default special, appended
}

TEST_CASE("bad GGUF tokenizer: tokens missing") {
  expect_error<fathom::FormatError>(small("tokens"), "tokenizer.ggml.tokens", "missing");
}
TEST_CASE("bad GGUF tokenizer: tokenizer model missing") {
  expect_error<fathom::FormatError>(small("model"), "tokenizer.ggml.model", "missing");
}
TEST_CASE("bad GGUF tokenizer: tokens of the wrong type") {
  GgufBuilder b = small("tokens");
  b.kv("tokenizer.ggml.tokens", 9, i32_array({1, 2}));
  expect_error<fathom::FormatError>(b, "tokenizer.ggml.tokens", "expected array of string");
}
TEST_CASE("bad GGUF tokenizer: empty token list") {
  GgufBuilder b = small("tokens");
  b.kv("tokenizer.ggml.tokens", 9, GgufBuilder::array_value(8, 0, ""));
  expect_error<fathom::TokenizerError>(b, "tokenizer.ggml.tokens", "empty token list");
}
TEST_CASE("bad GGUF tokenizer: merge names a token that does not exist") {
  GgufBuilder b = small("merges");
  b.kv("tokenizer.ggml.merges", 9, str_array({"a b", "a zz"}));
  expect_error<fathom::TokenizerError>(b, "tokenizer.ggml.merges[1]", "\"zz\" is not in tokenizer.ggml.tokens");
}
TEST_CASE("bad GGUF tokenizer: merge whose result is not a token") {
  GgufBuilder b = small("merges");
  b.kv("tokenizer.ggml.merges", 9, str_array({"b a"}));
  expect_error<fathom::TokenizerError>(b, "tokenizer.ggml.merges[0]", "merged token \"ba\"");
}
TEST_CASE("bad GGUF tokenizer: merge without exactly one space") {
  GgufBuilder b = small("merges");
  b.kv("tokenizer.ggml.merges", 9, str_array({"ab"}));
  expect_error<fathom::TokenizerError>(b, "tokenizer.ggml.merges[0]", "two tokens separated by one space");
}
TEST_CASE("bad GGUF tokenizer: token_type of the wrong length") {
  GgufBuilder b = small("types");
  b.kv("tokenizer.ggml.token_type", 9, i32_array({1, 1, 3}));
  expect_error<fathom::TokenizerError>(b, "tokenizer.ggml.token_type", "3 entries for 6 tokens");
}
TEST_CASE("bad GGUF tokenizer: scores of the wrong length") {
  GgufBuilder b = small();
  b.kv("tokenizer.ggml.scores", 9, f32_array({0.f, 1.f}));
  expect_error<fathom::TokenizerError>(b, "tokenizer.ggml.scores", "2 entries for 6 tokens");
}
TEST_CASE("bad GGUF tokenizer: NaN score") {
  GgufBuilder b = small();
  b.kv("tokenizer.ggml.scores", 9, f32_array({0.f, 0.f, std::nanf(""), 0.f, 0.f, 0.f}));
  expect_error<fathom::TokenizerError>(b, "tokenizer.ggml.scores[2]", "NaN");
}
TEST_CASE("bad GGUF tokenizer: bos id out of range") {
  GgufBuilder b = small();
  b.kv_u32("tokenizer.ggml.bos_token_id", 6);
  expect_error<fathom::TokenizerError>(b, "tokenizer.ggml.bos_token_id", "token id 6 out of range (6 tokens)");
}
TEST_CASE("bad GGUF tokenizer: eos id out of range") {
  GgufBuilder b = small();
  b.kv_u32("tokenizer.ggml.eos_token_id", 4000000000u);
  expect_error<fathom::TokenizerError>(b, "tokenizer.ggml.eos_token_id", "out of range");
}
TEST_CASE("bad GGUF tokenizer: add_bos_token not a bool") {
  GgufBuilder b = small();
  b.kv_u32("tokenizer.ggml.add_bos_token", 1);
  expect_error<fathom::FormatError>(b, "tokenizer.ggml.add_bos_token", "expected bool");
}
TEST_CASE("bad GGUF tokenizer: duplicate token") {
  GgufBuilder b = small("tokens");
  b.kv("tokenizer.ggml.tokens", 9, str_array({"a", "b", "ab", "\xc4\xa0", "\xc4\xa0" "ab", "a"}));
  expect_error<fathom::TokenizerError>(b, "tokenizer.ggml.tokens[5]", "is also token 0");
}
TEST_CASE("bad GGUF tokenizer: token not valid UTF-8") {
  GgufBuilder b = small("tokens");
  b.kv("tokenizer.ggml.tokens", 9, str_array({"a", "b", "ab", "\xc4\xa0", "\xc4\xa0" "ab", "\xff"}));
  expect_error<fathom::TokenizerError>(b, "tokenizer.ggml.tokens[5]", "not valid UTF-8");
}
TEST_CASE("bad GGUF tokenizer: llama model without merges or scores") {
  GgufBuilder b;
  b.kv_str("tokenizer.ggml.model", "llama").kv("tokenizer.ggml.tokens", 9, str_array({"a", "b"}));
  expect_error<fathom::FormatError>(b, "tokenizer.ggml.scores", "missing");
}
TEST_CASE("bad GGUF tokenizer: unsupported tokenizer model") {
  GgufBuilder b = small("model");
  b.kv_str("tokenizer.ggml.model", "t5");
  expect_error<fathom::UnsupportedError>(b, "tokenizer.ggml.model", "\"t5\"");
}
TEST_CASE("bad GGUF tokenizer: SentencePiece vocabulary of an architecture transformers rebuilds") {
  GgufBuilder b;
  b.kv_str("general.architecture", "gemma2").kv_str("tokenizer.ggml.model", "llama");
  b.kv("tokenizer.ggml.tokens", 9, str_array({"a"}));
  expect_error<fathom::UnsupportedError>(b, "general.architecture", "gemma2");
}

TEST_CASE("SentencePiece merges from scores: generate_merges order on a small vocabulary") {
  // Scores rank merges (high first); equal scores put the longer left part first.
  GgufBuilder b;
  b.kv_str("tokenizer.ggml.model", "llama");
  b.kv("tokenizer.ggml.tokens", 9, str_array({"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "ab", "\xe2\x96\x81" "ab", "aab", "aa"}));
  b.kv("tokenizer.ggml.scores", 9, f32_array({0, 0, 0, -1, -2, -3, -4, -5, -6, -7}));
  b.kv("tokenizer.ggml.token_type", 9, i32_array({2, 3, 3, 1, 1, 1, 1, 1, 1, 1}));
  const auto files = fathom::tok::gguf_tokenizer_files(
      GgufFile::parse(fathom::test::as_bytes(b.build()), "spm.gguf"));
  const json tj = json::parse(files.tokenizer_json);
  // ab (-4): a+b; ▁ab (-5): ▁+ab; aab (-6): aa+b (len 2,1) before a+ab (len 1,2); aa (-7): a+a.
  const json want = json::parse(R"([["a","b"],["▁","ab"],["aa","b"],["a","ab"],["a","a"]])");
  CHECK(tj["model"]["merges"] == want);
  const Tokenizer tok = Tokenizer::from_json_text(files.tokenizer_json, files.config_json);
  // No bos id in the metadata: add_bos_token (true by default for llama) has nothing to add,
  // as in transformers (checked there: [7, 3, 8]).
  CHECK(tok.encode("ab aab", true) == std::vector<int32_t>{7, 3, 8});
}
