// Bad input: malformed or truncated tokenizer.json, unsupported component types, merges naming
// unknown tokens, ids out of range. Every case must raise a typed fathom error naming the
// component, never crash or tokenize silently wrong.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <string>

#include "fathom/tokenizer/tokenizer.hpp"

using fathom::tok::ChatMessage;
using fathom::tok::Tokenizer;
using nlohmann::json;

namespace {

// A tiny valid byte-level BPE tokenizer.
json base() {
  return json::parse(R"({
    "version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [{"id": 5, "content": "<s>", "single_word": false, "lstrip": false,
                      "rstrip": false, "normalized": false, "special": true}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "post_processor": null,
    "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "vocab": {"a": 0, "b": 1, "ab": 2, "\u0120": 3, "c": 4},
              "merges": ["a b"]}})");
}

Tokenizer load(const json& j) { return Tokenizer::from_json_text(j.dump(), {}, "tiny.json"); }

// The error's message must name the component.
template <class E>
void expect_error(const json& j, const std::string& mention) {
  CAPTURE(mention);
  try {
    load(j);
    FAIL("no error raised");
  } catch (const E& e) {
    CHECK(std::string(e.what()).find(mention) != std::string::npos);
    CHECK(std::string(e.what()).find("tiny.json") != std::string::npos);
  }
}

}  // namespace

TEST_CASE("the tiny tokenizer works (so the failures below are caused by the edits)") {
  const auto t = load(base());
  CHECK(t.encode("ab") == std::vector<int32_t>{2});
  CHECK(t.encode("ab c") == std::vector<int32_t>{2, 3, 4});
  CHECK(t.encode("<s>ab") == std::vector<int32_t>{5, 2});
  CHECK(t.decode(std::vector<int32_t>{2, 3, 4}) == "ab c");
  CHECK(t.vocab_size() == 6);
}

TEST_CASE("malformed and truncated JSON raise TokenizerError") {
  const std::string text = base().dump();
  for (size_t n = 0; n < text.size(); n += 7) {  // every 7th prefix of the file
    CAPTURE(n);
    CHECK_THROWS_AS(Tokenizer::from_json_text(text.substr(0, n)), fathom::TokenizerError);
  }
  CHECK_THROWS_AS(Tokenizer::from_json_text("{\"model\": }"), fathom::TokenizerError);
  CHECK_THROWS_AS(Tokenizer::from_json_text("[1, 2]"), fathom::TokenizerError);
  CHECK_THROWS_AS(Tokenizer::from_json_text("{}"), fathom::TokenizerError);  // no model
  CHECK_THROWS_AS(Tokenizer::from_json_text(text, "{not json"), fathom::TokenizerError);
}

TEST_CASE("unknown component types raise UnsupportedError naming the component") {
  json j = base();
  j["model"]["type"] = "Unigram";
  expect_error<fathom::UnsupportedError>(j, "model.type");
  j = base();
  j["normalizer"] = {{"type", "BertNormalizer"}};
  expect_error<fathom::UnsupportedError>(j, "normalizer");
  j = base();
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Lowercase"}}}}};
  expect_error<fathom::UnsupportedError>(j, "normalizer.normalizers[1]");
  j = base();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_error<fathom::UnsupportedError>(j, "pre_tokenizer");
  j = base();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_error<fathom::UnsupportedError>(j, "decoder");
  j = base();
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  expect_error<fathom::UnsupportedError>(j, "post_processor");
  j = base();
  j["model"]["dropout"] = 0.1;
  expect_error<fathom::UnsupportedError>(j, "dropout");
  j = base();
  j["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}, {"invert", false}};
  expect_error<fathom::UnsupportedError>(j, "pre_tokenizer.pattern.Regex");
}

TEST_CASE("bad vocabularies and merges raise TokenizerError") {
  json j = base();
  j["model"]["merges"] = {"a z"};
  expect_error<fathom::TokenizerError>(j, "unknown token \"z\"");
  j = base();
  j["model"]["merges"] = {"b a"};  // "ba" is not in the vocabulary
  expect_error<fathom::TokenizerError>(j, "merged token");
  j = base();
  j["model"]["merges"] = {"a b c"};
  expect_error<fathom::TokenizerError>(j, "model.merges[0]");
  j = base();
  j["model"]["merges"] = {json::array({"a"})};
  expect_error<fathom::TokenizerError>(j, "model.merges[0]");
  j = base();
  j["model"]["vocab"]["d"] = "seven";
  expect_error<fathom::TokenizerError>(j, "model.vocab");
  j = base();
  j["model"]["vocab"]["d"] = -3;
  expect_error<fathom::TokenizerError>(j, "out of range");
  j = base();
  j["model"]["vocab"]["d"] = 1;  // id used twice
  expect_error<fathom::TokenizerError>(j, "used twice");
  j = base();
  j["model"]["unk_token"] = "<unk>";
  expect_error<fathom::TokenizerError>(j, "unk_token");
  j = base();
  j["added_tokens"][0].erase("content");
  expect_error<fathom::TokenizerError>(j, "added_tokens[0].content");
  j = base();
  j["post_processor"] = json::parse(R"({"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<nope>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}], "special_tokens": {}})");
  expect_error<fathom::TokenizerError>(j, "<nope>");
}

TEST_CASE("ids out of range on decode raise TokenizerError") {
  const auto t = load(base());
  CHECK_THROWS_AS(t.decode(std::vector<int32_t>{2, 99}), fathom::TokenizerError);
  CHECK_THROWS_AS(t.decode(std::vector<int32_t>{-1}), fathom::TokenizerError);
  CHECK_THROWS_AS(t.token_text(6), fathom::TokenizerError);
  try {
    t.decode(std::vector<int32_t>{0, 1, 1000});
  } catch (const fathom::TokenizerError& e) {
    CHECK(std::string(e.what()).find("ids[2]") != std::string::npos);
    CHECK(std::string(e.what()).find("1000") != std::string::npos);
  }
  fathom::tok::StreamDecoder sd(t);
  CHECK(sd.push(0) == "a");
  CHECK_THROWS_AS(sd.push(12345), fathom::TokenizerError);
  CHECK(sd.push(1) == "b");  // the bad id left no trace
  CHECK(sd.flush().empty());
}

TEST_CASE("missing files raise IoError; config problems are typed") {
  CHECK_THROWS_AS(Tokenizer::from_file("/nonexistent/tokenizer.json"), fathom::IoError);
  CHECK_THROWS_AS(Tokenizer::from_dir("/nonexistent"), fathom::IoError);
  const std::string text = base().dump();
  CHECK_THROWS_AS(Tokenizer::from_json_text(text, R"({"tokenizer_class": "LlamaTokenizer", "add_bos_token": true})"),
                  fathom::TokenizerError);  // add_bos_token without a bos_token
  CHECK_THROWS_AS(Tokenizer::from_json_text(text, R"({"bos_token": "<missing>"})"), fathom::TokenizerError);
  // A template of no known family is rendered as it is (foo is undefined: prints nothing)...
  CHECK(Tokenizer::from_json_text(text, R"({"chat_template": "{{ foo }}x"})").apply_chat_template({{"user", "hi"}}, true) == "x");
  // ...but one that does not parse fails at load, naming the config and the spot.
  CHECK_THROWS_AS(Tokenizer::from_json_text(text, R"({"chat_template": "{% if x %}"})"), fathom::tok::jinja::SyntaxError);
  CHECK_THROWS_AS(Tokenizer::from_json_text(text, R"({"chat_template": 5})"), fathom::TokenizerError);
  // A tokenizer of no known chat family refuses chat instead of guessing.
  const auto t = load(base());
  CHECK_THROWS_AS(t.apply_chat_template({{"user", "hi"}}, true), fathom::UnsupportedError);
  // Mistral's template has no system role and requires alternation.
  CHECK_THROWS_AS(t.apply_chat_template({{"system", "s"}, {"user", "u"}}, true, fathom::tok::ChatFormat::Mistral),
                  fathom::UsageError);
  CHECK_THROWS_AS(t.apply_chat_template({{"user", "u"}, {"user", "v"}}, true, fathom::tok::ChatFormat::Llama2),
                  fathom::UsageError);
}

TEST_CASE("the Llama template's add_bos_token / add_eos_token rebuild the post-processor") {
  const std::string text = base().dump();
  const auto t = Tokenizer::from_json_text(
      text, R"({"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "c", "add_eos_token": true})");
  CHECK(t.encode("ab") == std::vector<int32_t>{5, 2, 4});
  CHECK(t.encode("ab", false) == std::vector<int32_t>{2});
  CHECK(t.bos_id() == 5);
}
