#pragma once
// Tokenizer-only GGUF files made from a Hugging Face tokenizer.json, byte for byte as
// tools/gen_gguf_tokenizer_fixtures.py (make_gguf) writes them with gguf.GGUFWriter: the vocabularies
// are someone else's and several MB, so they are made at test time instead of committed, and the
// test checks the file hash the script recorded before comparing ids.
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "gguf_test_writer.hpp"

namespace ggtok {

// One made file (SPECS in the script).
struct MadeSpec {
  std::string name, src, arch, model, pre;
  int64_t vocab_size = -1;  // -1: 1 + largest id
  std::optional<uint32_t> bos, eos, unk, pad;
  std::optional<bool> add_bos, add_eos, add_space_prefix;
};

inline const std::vector<MadeSpec>& made_specs() {
  static const std::vector<MadeSpec> specs = {
      {"mistral_spm", "mistral", "llama", "llama", "default", -1, 1u, 2u, 0u, std::nullopt, true, false, true},
      {"qwen3_qwen2pre", "qwen3", "qwen3", "gpt2", "qwen2", 151936, 151643u, 151645u, std::nullopt, 151643u, false,
       std::nullopt, std::nullopt},
      {"llama3_llamabpe", "llama3", "llama", "gpt2", "llama-bpe", 128256, 128000u, 128001u, std::nullopt,
       std::nullopt, true, std::nullopt, std::nullopt},
  };
  return specs;
}

// convert_hf_to_gguf.py's does_token_look_special.
inline bool looks_special(const std::string& t) {
  const auto wrapped = [&](const std::string& a, const std::string& b) {
    return t.size() >= a.size() + b.size() && t.starts_with(a) && t.ends_with(b);
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wrapped("<|", "|>") ||
         wrapped("<\xef\xbd\x9c", "\xef\xbd\x9c>") || wrapped("<unused", ">");
}

// The file's bytes (tokenizer.json and tokenizer_config.json of `dir`).
inline std::string make_gguf(const MadeSpec& s, const nlohmann::json& tj, const nlohmann::json& cfg) {
  using fathom::test::GgufBuilder;
  enum : int32_t { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6 };
  std::map<int64_t, std::string> by_id;
  for (const auto& [tok, id] : tj["model"]["vocab"].items()) by_id[id.get<int64_t>()] = tok;
  std::map<int64_t, bool> added_special;  // id -> special
  for (const auto& a : tj["added_tokens"]) {
    const int64_t id = a["id"].get<int64_t>();
    added_special[id] = a["special"].get<bool>();
    by_id.emplace(id, a["content"].get<std::string>());
  }
  const int64_t n = s.vocab_size >= 0 ? s.vocab_size : by_id.rbegin()->first + 1;
  static const std::regex byte_tok("<0x[0-9A-Fa-f]{2}>");
  std::string tokens, types, scores;  // encoded array elements
  for (int64_t i = 0; i < n; ++i) {
    int32_t type;
    std::string t;
    if (auto it = by_id.find(i); it == by_id.end()) {
      t = "[PAD" + std::to_string(i) + "]";
      type = UNUSED;
    } else {
      t = it->second;
      const auto a = added_special.find(i);
      if (s.model == "llama") {
        if (s.unk && int64_t(*s.unk) == i) type = UNKNOWN;
        else if (a != added_special.end() && a->second) type = CONTROL;
        else if (std::regex_match(t, byte_tok)) type = BYTE;
        else type = NORMAL;
        scores += GgufBuilder::raw(type != NORMAL ? 0.0f : float(259 - i));
      } else if (a != added_special.end()) {
        type = a->second || looks_special(t) ? CONTROL : USER_DEFINED;
      } else {
        type = NORMAL;
      }
    }
    GgufBuilder::put_str(tokens, t);
    types += GgufBuilder::raw(type);
  }
  GgufBuilder b;
  b.kv_str("general.architecture", s.arch).kv_str("general.type", "model").kv_str("general.name", s.name);
  b.kv_str("tokenizer.ggml.model", s.model).kv_str("tokenizer.ggml.pre", s.pre);
  b.kv("tokenizer.ggml.tokens", 9, GgufBuilder::array_value(8, uint64_t(n), tokens));
  if (!scores.empty()) b.kv("tokenizer.ggml.scores", 9, GgufBuilder::array_value(6, uint64_t(n), scores));
  b.kv("tokenizer.ggml.token_type", 9, GgufBuilder::array_value(5, uint64_t(n), types));
  if (s.model == "gpt2") {
    std::string merges;
    const auto& ms = tj["model"]["merges"];
    for (const auto& m : ms)
      GgufBuilder::put_str(merges, m.is_string() ? m.get<std::string>()
                                                 : m[0].get<std::string>() + " " + m[1].get<std::string>());
    b.kv("tokenizer.ggml.merges", 9, GgufBuilder::array_value(8, ms.size(), merges));
  }
  if (s.bos) b.kv_u32("tokenizer.ggml.bos_token_id", *s.bos);
  if (s.eos) b.kv_u32("tokenizer.ggml.eos_token_id", *s.eos);
  if (s.unk) b.kv_u32("tokenizer.ggml.unknown_token_id", *s.unk);
  if (s.pad) b.kv_u32("tokenizer.ggml.padding_token_id", *s.pad);
  const auto flag = [&](const char* key, std::optional<bool> v) {
    if (v) b.kv(key, 7, std::string(1, char(*v ? 1 : 0)));
  };
  flag("tokenizer.ggml.add_bos_token", s.add_bos);
  flag("tokenizer.ggml.add_eos_token", s.add_eos);
  flag("tokenizer.ggml.add_space_prefix", s.add_space_prefix);
  if (cfg.contains("chat_template") && cfg["chat_template"].is_string() && !cfg["chat_template"].get<std::string>().empty())
    b.kv_str("tokenizer.chat_template", cfg["chat_template"].get<std::string>());
  std::string out = b.build();
  out.append((32 - out.size() % 32) % 32, '\0');  // GGUFWriter pads the (empty) data section start
  return out;
}

}  // namespace ggtok
