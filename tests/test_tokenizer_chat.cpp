// Chat formats equal, byte for byte, what transformers' apply_chat_template renders with each
// family's template (the file's own, or the official one for Mistral-7B-v0.1, which has none);
// and the ids of the rendered prompt equal the reference's.
#include <doctest/doctest.h>

#include "tokenizer_fixtures.hpp"

using fathom::tok::ChatFormat;
using fathom::tok::ChatMessage;

namespace {

std::vector<ChatMessage> messages_of(const nlohmann::json& conv) {
  std::vector<ChatMessage> out;
  for (const auto& m : conv["messages"]) out.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
  return out;
}

void check_chat(const std::string& name) {
  const auto& tok = tokfix::real(name);
  const auto fx = tokfix::load_json("chat_" + name + ".json");
  size_t checked = 0;
  for (const auto& [fmt_name, rows] : fx["formats"].items()) {
    const ChatFormat fmt = fmt_name == "file"      ? ChatFormat::Auto
                           : fmt_name == "mistral" ? ChatFormat::Mistral
                                                   : ChatFormat::Llama2;
    for (const auto& conv : fx["conversations"]) {
      for (bool gen : {false, true}) {
        const std::string key = conv["name"].get<std::string>() + (gen ? "/gen" : "/nogen");
        CAPTURE(name);
        CAPTURE(fmt_name);
        CAPTURE(key);
        const auto& row = rows[key];
        const auto msgs = messages_of(conv);
        if (row.contains("error")) {
          CHECK_THROWS_AS(tok.apply_chat_template(msgs, gen, fmt), fathom::UsageError);
          continue;
        }
        const std::string text = tok.apply_chat_template(msgs, gen, fmt);
        CHECK(text == row["text"].get<std::string>());
        CHECK(tok.encode(text, false) == row["ids"].get<std::vector<int32_t>>());
        ++checked;
      }
    }
  }
  CHECK(checked >= 8);
}

}  // namespace

TEST_CASE("qwen3 chat template (ChatML + think handling)") {
  CHECK(tokfix::real("qwen3").chat_format() == ChatFormat::Qwen3);
  check_chat("qwen3");
}
TEST_CASE("llama3 chat template (headers, eot, bos)") {
  CHECK(tokfix::real("llama3").chat_format() == ChatFormat::Llama3);
  check_chat("llama3");
}
TEST_CASE("mistral [INST] and llama2 <<SYS>> templates") {
  CHECK(tokfix::real("mistral").chat_format() == ChatFormat::Mistral);
  check_chat("mistral");
}

TEST_CASE("generation prompt is what the model continues from") {
  const auto& q = tokfix::real("qwen3");
  const std::vector<ChatMessage> msgs = {{"user", "Hi"}};
  const std::string with = q.apply_chat_template(msgs, true), without = q.apply_chat_template(msgs, false);
  CHECK(with == without + "<|im_start|>assistant\n");
  const auto ids = q.encode(with, false);
  REQUIRE(ids.size() >= 3);
  CHECK(ids[0] == 151644);  // <|im_start|> is one special token, not text
}
