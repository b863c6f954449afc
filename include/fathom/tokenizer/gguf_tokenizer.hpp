#pragma once
// The tokenizer of a GGUF file (llama.cpp's model format), built from its `tokenizer.*` metadata.
//
// A GGUF carries no tokenizer.json: it stores tokens, merges, token types, scores and special ids
// under llama.cpp's keys. The reference is the tokenizer transformers builds from the same file
// (AutoTokenizer.from_pretrained(dir, gguf_file=...)): we build the tokenizer.json and
// tokenizer_config.json that transformers' GGUF converter ends up with, and load them with the
// ordinary tokenizer.json loader, so one encode/decode path serves both kinds of file.
//
//   fathom::tok::Tokenizer tok = fathom::tok::tokenizer_from_gguf("SmolLM2-135M-Instruct.Q4_1.gguf");
//
// What transformers builds (and so what is built here), per tokenizer.ggml.model:
//   gpt2  byte-level BPE. Tokens are used as spelled when every character is one of GPT-2's 256
//         byte characters, else respelled from their UTF-8 bytes; merges from the file. The
//         pre-tokenizer is a regex Split + ByteLevel for the `tokenizer.ggml.pre` names transformers
//         knows (llama-bpe, qwen2, tekken, gpt-4o... see kPreSplits), and GPT-2's own ByteLevel
//         regex for every other name (smollm, default, starcoder...). No normalizer.
//   llama SentencePiece-style BPE: byte fallback, Metaspace(▁, prepend "first"), decoder
//         Replace ▁ / ByteFallback / Fuse / Strip; merges from the file, or, as usual for these
//         files, derived from the scores (transformers' generate_merges, reproduced exactly).
// Both: CONTROL tokens (type 3) become special added tokens, USER_DEFINED (4) plain added tokens;
// the converter classes' default specials (<|endoftext|> for gpt2, <s> </s> <unk> for llama) and
// the tokens named by bos/eos/unk/pad ids are added as special tokens too (a new id when absent);
// add_bos_token (default true for llama, false for gpt2) / add_eos_token make the post-processor;
// tokenizer.chat_template is passed through unchanged as the config's "chat_template".
//
// Bad metadata is a typed error naming the file and the key: FormatError from the GGUF getters
// (missing key, wrong value type), TokenizerError for values that do not make a tokenizer (array
// lengths that disagree, ids out of range, merges naming unknown tokens, duplicate tokens),
// UnsupportedError for tokenizer models transformers builds differently (t5, gemma, phi3...).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom/core/error.hpp"
#include "fathom/io/gguf.hpp"
#include "fathom/tokenizer/detail/byte_level.hpp"
#include "fathom/tokenizer/detail/utf8.hpp"
#include "fathom/tokenizer/tokenizer.hpp"

namespace fathom::tok {

// The two JSON texts the GGUF metadata amounts to (what transformers' converter builds).
struct GgufTokenizerFiles {
  std::string tokenizer_json;
  std::string config_json;
};

namespace detail {

// llama.cpp token types (tokenizer.ggml.token_type).
inline constexpr int64_t kGgufTokenControl = 3, kGgufTokenUserDefined = 4;

// tokenizer.ggml.pre names for which transformers replaces the pre-tokenizer by
// Split(regex, isolated) + ByteLevel(no regex) (transformers' GGUF_PRE_TOKENIZER_SPLITS).
inline const std::vector<std::pair<std::string_view, std::string_view>>& gguf_pre_splits() {
  static constexpr std::string_view llama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
      "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static constexpr std::string_view tekken =
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
      "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
      "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static constexpr std::string_view gpt4o =
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
      "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
      "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static constexpr std::string_view qwen2 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
      "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static constexpr std::string_view qwen35 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}"
      "| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  static const std::vector<std::pair<std::string_view, std::string_view>> table = {
      {"llama3", llama3}, {"llama-v3", llama3}, {"llama-bpe", llama3}, {"falcon3", llama3},
      {"falcon-h1", llama3}, {"pixtral", llama3}, {"midm-2.0", llama3}, {"lfm2", llama3},
      {"jina-v5-nano", llama3}, {"dbrx", llama3}, {"smaug-bpe", llama3}, {"tekken", tekken},
      {"qwen2", qwen2}, {"deepseek-r1-qwen", qwen2}, {"kormo", qwen2}, {"f2llmv2", qwen2},
      {"megrez", qwen2}, {"qwen35", qwen35}, {"gpt-4o", gpt4o}, {"llama4", gpt4o},
      {"kanana2", gpt4o}, {"talkie", gpt4o}, {"minimax-m2", gpt4o}};
  return table;
}

// The added-token list as transformers' tokenizers builds it: a token whose text is in the model
// vocabulary keeps the model's id, an earlier added token keeps its id, anything else gets the
// next free id after the vocabulary and the added tokens so far.
class GgufAddedTokens {
 public:
  explicit GgufAddedTokens(const std::unordered_map<std::string, int64_t>& vocab)
      : vocab_(vocab), next_(int64_t(vocab.size())) {}
  void add(const std::string& content, bool special) {
    if (content.empty()) return;  // tokenizers ignores empty added tokens
    if (auto it = index_.find(content); it != index_.end()) {
      entries_[it->second].special = entries_[it->second].special || special;
      return;
    }
    int64_t id;
    if (auto v = vocab_.find(content); v != vocab_.end()) id = v->second;
    else id = next_;
    next_ = std::max(next_, id + 1);
    index_.emplace(content, entries_.size());
    entries_.push_back({content, id, special});
  }
  nlohmann::json to_json() const {
    std::vector<Entry> sorted = entries_;
    std::stable_sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) { return a.id < b.id; });
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& e : sorted)
      arr.push_back({{"id", e.id}, {"content", e.content}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", e.special}});
    return arr;
  }

 private:
  struct Entry {
    std::string content;
    int64_t id;
    bool special;
  };
  const std::unordered_map<std::string, int64_t>& vocab_;
  int64_t next_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

inline size_t count_code_points(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// transformers' generate_merges(vocab, vocab_scores): every split of every token into two
// tokens of the vocabulary is a merge, ranked by the merged token's score (high first), then by
// the lengths in characters of the left and right parts (long first); ties keep token order,
// and within one token the splits are ordered by (id of left, id of right).
//   tokens: [n] strings, scores: [n], vocab: token -> id.
inline std::vector<std::pair<std::string, std::string>> gguf_merges_from_scores(
    const std::vector<std::string>& tokens, const std::vector<float>& scores,
    const std::unordered_map<std::string, int64_t>& vocab) {
  struct Cand {
    int64_t left, right;
    float score;
    size_t len_l, len_r;
  };
  std::vector<Cand> all;  // [number of candidate merges]
  std::vector<Cand> local;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const std::string& m = tokens[t];
    local.clear();
    for (size_t i = 0; i < m.size();) {
      next_cp(m, i);
      if (i >= m.size()) break;
      auto l = vocab.find(m.substr(0, i));
      if (l == vocab.end()) continue;
      auto r = vocab.find(m.substr(i));
      if (r == vocab.end()) continue;
      local.push_back({l->second, r->second, scores[t], count_code_points(l->first), count_code_points(r->first)});
    }
    std::stable_sort(local.begin(), local.end(), [](const Cand& a, const Cand& b) {
      return a.left != b.left ? a.left < b.left : a.right < b.right;
    });
    all.insert(all.end(), local.begin(), local.end());
  }
  // Python's sorted(reverse=True) is stable: equal keys keep their order.
  std::stable_sort(all.begin(), all.end(), [](const Cand& a, const Cand& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.len_l != b.len_l) return a.len_l > b.len_l;
    return a.len_r > b.len_r;
  });
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(all.size());
  for (const auto& c : all) out.emplace_back(tokens[size_t(c.left)], tokens[size_t(c.right)]);
  return out;
}

}  // namespace detail

// The tokenizer.json / tokenizer_config.json texts for the file's tokenizer metadata.
inline GgufTokenizerFiles gguf_tokenizer_files(const io::GgufFile& f) {
  using nlohmann::json;
  const std::string& file = f.path();
  const auto fail = [&](const std::string& key, const std::string& reason) -> void {
    throw TokenizerError(file, key, reason);
  };
  const std::string arch = f.has("general.architecture") ? f.get_string("general.architecture") : "";
  const std::string model = f.get_string("tokenizer.ggml.model");
  const std::string pre = f.has("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "";
  if (model != "gpt2" && model != "llama")
    throw UnsupportedError(file, "tokenizer.ggml.model",
                           "unsupported: tokenizer model \"" + model + "\" (supported: gpt2, llama)");
  if (model == "llama" && (arch.starts_with("gemma") || arch == "phi3"))
    throw UnsupportedError(file, "general.architecture",
                           "unsupported: the " + arch + " SentencePiece tokenizer (transformers rebuilds it differently)");
  const bool byte_level = model == "gpt2";

  // tokens: [n]; token_type, scores: [n] when present.
  const std::vector<std::string> raw = f.get_string_array("tokenizer.ggml.tokens");
  const size_t n = raw.size();
  if (n == 0) fail("tokenizer.ggml.tokens", "empty token list");
  std::vector<int64_t> types;
  if (f.has("tokenizer.ggml.token_type")) {
    types = f.get_int_array("tokenizer.ggml.token_type");
    if (types.size() != n)
      fail("tokenizer.ggml.token_type", std::to_string(types.size()) + " entries for " + std::to_string(n) + " tokens");
  }
  std::vector<float> scores;
  if (f.has("tokenizer.ggml.scores")) {
    scores = f.get_float_array("tokenizer.ggml.scores");
    if (scores.size() != n)
      fail("tokenizer.ggml.scores", std::to_string(scores.size()) + " entries for " + std::to_string(n) + " tokens");
    for (size_t i = 0; i < n; ++i)
      if (std::isnan(scores[i])) fail("tokenizer.ggml.scores[" + std::to_string(i) + "]", "NaN score");
  }

  // The model vocabulary: byte-level tokens respelled into GPT-2's byte alphabet when needed.
  const auto& bl = detail::byte_level_tables();
  const auto in_alphabet = [&](std::string_view t) {
    for (size_t i = 0; i < t.size();) {
      const char32_t c = detail::next_cp(t, i);
      if (c >= 512 || bl.cp_to_byte[c] < 0) return false;
      if (c < 256 && bl.byte_to_cp[c] != c) return false;  // e.g. U+0020 is not a byte character
    }
    return true;
  };
  std::vector<std::string> spelled(n);  // [n]
  std::unordered_map<std::string, int64_t> vocab;
  vocab.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string key = "tokenizer.ggml.tokens[" + std::to_string(i) + "]";
    if (!detail::is_valid_utf8(raw[i])) fail(key, "not valid UTF-8");
    if (byte_level && !in_alphabet(raw[i])) {
      for (unsigned char b : raw[i]) spelled[i] += bl.byte_to_utf8[b];
    } else {
      spelled[i] = raw[i];
    }
    if (spelled[i].empty()) fail(key, "empty token");
    auto [it, fresh] = vocab.emplace(spelled[i], int64_t(i));
    if (!fresh) fail(key, "\"" + spelled[i] + "\" is also token " + std::to_string(it->second));
  }

  // Merges: from the file ("left right"), else derived from the scores.
  std::vector<std::pair<std::string, std::string>> merges;
  if (f.has("tokenizer.ggml.merges")) {
    const auto ms = f.get_string_array("tokenizer.ggml.merges");
    merges.reserve(ms.size());
    for (size_t i = 0; i < ms.size(); ++i) {
      const std::string key = "tokenizer.ggml.merges[" + std::to_string(i) + "]";
      const size_t sp = ms[i].find(' ');
      if (sp == std::string::npos || ms[i].find(' ', sp + 1) != std::string::npos)
        fail(key, "expected \"left right\" (two tokens separated by one space), got \"" + ms[i] + "\"");
      std::string l = ms[i].substr(0, sp), r = ms[i].substr(sp + 1);
      for (const std::string* part : std::initializer_list<const std::string*>{&l, &r, nullptr}) {
        const std::string t = part ? *part : l + r;
        if (!vocab.count(t))
          fail(key, "\"" + ms[i] + "\": " + (part ? "token" : "merged token") + " \"" + t + "\" is not in tokenizer.ggml.tokens");
      }
      merges.emplace_back(std::move(l), std::move(r));
    }
  } else {
    if (scores.empty()) (void)f.get_float_array("tokenizer.ggml.scores");  // FormatError: missing
    // generate_merges works on the tokens as the file spells them.
    std::unordered_map<std::string, int64_t> raw_vocab;
    for (size_t i = 0; i < n; ++i) raw_vocab[raw[i]] = int64_t(i);
    merges = detail::gguf_merges_from_scores(raw, scores, raw_vocab);
    for (size_t i = 0; i < merges.size(); ++i)
      for (const std::string* t : {&merges[i].first, &merges[i].second})
        if (!vocab.count(*t))
          fail("tokenizer.ggml.scores", "a merge derived from the scores names \"" + *t +
                                            "\", which the byte-level vocabulary spells differently");
  }

  // Special ids: bos/eos/unk/pad name tokens by index.
  const auto special_token = [&](const char* key) -> std::optional<std::string> {
    if (!f.has(key)) return std::nullopt;
    const uint64_t id = f.get_uint(key);
    if (id >= n) fail(key, "token id " + std::to_string(id) + " out of range (" + std::to_string(n) + " tokens)");
    return raw[size_t(id)];
  };
  const auto bos = special_token("tokenizer.ggml.bos_token_id");
  const auto eos = special_token("tokenizer.ggml.eos_token_id");
  const auto unk = special_token("tokenizer.ggml.unknown_token_id");
  const auto pad = special_token("tokenizer.ggml.padding_token_id");
  // llama.cpp adds BOS to a SentencePiece vocabulary that does not say otherwise.
  const bool add_bos = f.has("tokenizer.ggml.add_bos_token") ? f.get_bool("tokenizer.ggml.add_bos_token") : !byte_level;
  const bool add_eos = f.has("tokenizer.ggml.add_eos_token") && f.get_bool("tokenizer.ggml.add_eos_token");

  // Added tokens, in the order transformers adds them (which decides the ids of new ones).
  detail::GgufAddedTokens added(vocab);
  if (byte_level) {
    added.add("<|endoftext|>", true);  // GPT2Tokenizer's default unk/bos/eos
  } else {
    for (const char* t : {"<s>", "</s>", "<unk>"}) added.add(t, true);  // LlamaTokenizer's defaults
  }
  for (size_t i = 0; i < types.size(); ++i)  // byte-level: a CONTROL token outside the alphabet is a mislabel
    if (types[i] == detail::kGgufTokenControl && (!byte_level || in_alphabet(raw[i]))) added.add(raw[i], true);
  for (size_t i = 0; i < types.size(); ++i)
    if (types[i] == detail::kGgufTokenUserDefined && vocab.count(raw[i])) added.add(raw[i], false);
  for (const auto* t : {&bos, &eos, &unk, &pad})
    if (*t) added.add(**t, true);

  json tj;
  tj["version"] = "1.0";
  tj["truncation"] = nullptr;
  tj["padding"] = nullptr;
  tj["added_tokens"] = added.to_json();
  tj["normalizer"] = nullptr;
  if (byte_level)
    tj["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  else
    tj["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "first"}, {"split", false}};
  for (const auto& [name, regex] : detail::gguf_pre_splits())
    if (name == pre)
      tj["pre_tokenizer"] = {{"type", "Sequence"},
                             {"pretokenizers",
                              {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
                               {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  json single = json::array(), specials = json::object();
  const auto template_token = [&](const std::string& t) {
    single.push_back({{"SpecialToken", {{"id", t}, {"type_id", 0}}}});
    specials[t] = {{"id", t}, {"tokens", {t}}};
  };
  if (add_bos && bos) template_token(*bos);
  single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
  if (add_eos && eos) template_token(*eos);
  tj["post_processor"] = {{"type", "TemplateProcessing"}, {"single", single}, {"special_tokens", specials}};
  if (byte_level)
    tj["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  else
    tj["decoder"] = {{"type", "Sequence"},
                     {"decoders",
                      {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                       {{"type", "ByteFallback"}},
                       {{"type", "Fuse"}},
                       {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  json m = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", !byte_level},
            {"byte_fallback", !byte_level}, {"ignore_merges", false}};
  json v = json::object();
  for (size_t i = 0; i < n; ++i) v[spelled[i]] = int64_t(i);
  m["vocab"] = std::move(v);
  json mj = json::array();
  for (auto& [l, r] : merges) mj.push_back(json::array({std::move(l), std::move(r)}));
  m["merges"] = std::move(mj);
  tj["model"] = std::move(m);

  json cfg = json::object();
  const std::pair<const char*, const std::optional<std::string>*> named[] = {
      {"bos_token", &bos}, {"eos_token", &eos}, {"unk_token", &unk}, {"pad_token", &pad}};
  for (const auto& [key, tok] : named) cfg[key] = *tok ? json(**tok) : json(nullptr);
  cfg["add_bos_token"] = add_bos;
  cfg["add_eos_token"] = add_eos;
  if (f.has("tokenizer.chat_template")) cfg["chat_template"] = f.get_string("tokenizer.chat_template");
  return {tj.dump(), cfg.dump()};
}

inline Tokenizer tokenizer_from_gguf(const io::GgufFile& f) {
  const auto files = gguf_tokenizer_files(f);
  // Messages name the GGUF file and the synthesized part, e.g. "x.gguf (tokenizer.json)"; the
  // chat template is named by its GGUF key ("x.gguf: tokenizer.chat_template").
  const std::string tpl = f.has("tokenizer.chat_template") ? f.get_string("tokenizer.chat_template") : "";
  return Tokenizer::from_json_text(files.tokenizer_json, files.config_json, f.path() + " (tokenizer.json)",
                                   f.path() + " (tokenizer_config.json)", tpl, f.path() + ": tokenizer.chat_template");
}

inline Tokenizer tokenizer_from_gguf(const std::filesystem::path& path) {
  return tokenizer_from_gguf(io::GgufFile::open(path));
}

}  // namespace fathom::tok
