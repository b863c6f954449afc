// Common variants of the families (Mistral v0.3's Metaspace, Llama-3's later BOS template,
// GPT-2 ByteLevel with its own regex, Split behaviours, added-token flags, unk without byte
// fallback, NFKC), built as edits of the real files exactly as tools/gen_tokenizer_fixtures.py
// builds them, and compared with the reference's ids and decodes.
#include <doctest/doctest.h>

#include "tokenizer_fixtures.hpp"

namespace {

const nlohmann::json& base_json(const std::string& name) {
  static std::map<std::string, nlohmann::json> cache;
  auto it = cache.find(name);
  if (it == cache.end())
    it = cache.emplace(name, nlohmann::json::parse(tokfix::slurp(fathom::shared_file("tokenizers/" + name + "/tokenizer.json")))).first;
  return it->second;
}

fathom::tok::Tokenizer build(const nlohmann::json& v) {
  nlohmann::json j = base_json(v["base"].get<std::string>());
  if (v.contains("set")) for (const auto& [k, val] : v["set"].items()) j[k] = val;
  if (v.contains("model")) for (const auto& [k, val] : v["model"].items()) j["model"][k] = val;
  if (v.contains("added"))
    for (const auto& a : v["added"]) {
      bool found = false;
      for (auto& t : j["added_tokens"])
        if (t["content"] == a["content"]) { t.update(a); found = true; }
      if (!found) j["added_tokens"].push_back(a);
    }
  return fathom::tok::Tokenizer::from_json_text(j.dump(), {}, v["name"].get<std::string>());
}

}  // namespace

TEST_CASE("variants of the three families equal the reference") {
  const auto fx = tokfix::load_json("variants.json");
  const auto& texts = fx["texts"];
  for (const auto& v : fx["variants"]) {
    const std::string name = v["name"].get<std::string>();
    CAPTURE(name);
    const auto tok = build(v);
    for (size_t i = 0; i < texts.size(); ++i) {
      const std::string text = texts[i].get<std::string>();
      CAPTURE(text);
      const auto& row = v["rows"][i];
      const auto ids = tok.encode(text, true);
      CHECK(ids == row["ids"].get<std::vector<int32_t>>());
      CHECK(tok.encode(text, false) == row["ids_no_special"].get<std::vector<int32_t>>());
      CHECK(tok.decode(ids) == row["decode"].get<std::string>());
      CHECK(tok.decode(ids, true) == row["decode_skip_special"].get<std::string>());
    }
  }
}
