#pragma once
// Normalizers of tokenizer.json: NFC/NFD/NFKC/NFKD (utf8proc), Prepend, Replace, Sequence.
// Applied, as in the reference, to each stretch of text between added tokens.
#include <utf8proc.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/tokenizer/detail/json_util.hpp"
#include "fathom/tokenizer/detail/pcre.hpp"
#include "fathom/tokenizer/detail/utf8.hpp"

namespace fathom::tok::detail {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void apply(std::string& s) const = 0;
};

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(utf8proc_option_t opts) : opts_(opts) {}
  // Only the stretches around non-ASCII text go through utf8proc. Cutting before an ASCII
  // character is exact for all four forms: ASCII characters are starters that never compose
  // with what precedes them and never decompose, so normalization cannot reach across the cut.
  // The ASCII character before a non-ASCII stretch goes with it (it may take a combining mark).
  void apply(std::string& s) const override {
    size_t i = 0;
    while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
    if (i == s.size()) return;
    std::string out;
    out.reserve(s.size() + 16);
    size_t copied = 0;
    while (i < s.size()) {
      const size_t b = i > copied ? i - 1 : i;  // include one preceding ASCII character
      size_t e = i;
      while (e < s.size() && static_cast<unsigned char>(s[e]) >= 0x80) ++e;
      out.append(s, copied, b - copied);
      normalize_into(std::string_view(s).substr(b, e - b), out);
      copied = e;
      i = e;
      while (i < s.size() && static_cast<unsigned char>(s[i]) < 0x80) ++i;
    }
    out.append(s, copied, std::string::npos);
    s = std::move(out);
  }

 private:
  void normalize_into(std::string_view part, std::string& out) const {
    utf8proc_uint8_t* res = nullptr;
    const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(part.data()),
                                static_cast<utf8proc_ssize_t>(part.size()), &res, opts_);
    if (n < 0) throw TokenizerError("", "normalizer", std::string("utf8proc: ") + utf8proc_errmsg(n));
    out.append(reinterpret_cast<const char*>(res), static_cast<size_t>(n));
    std::free(res);
  }

 public:

 private:
  utf8proc_option_t opts_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string p) : p_(std::move(p)) {}
  void apply(std::string& s) const override { if (!s.empty()) s.insert(0, p_); }

 private:
  std::string p_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::string from, std::string to, std::optional<Regex> re)
      : from_(std::move(from)), to_(std::move(to)), re_(std::move(re)) {}
  void apply(std::string& s) const override {
    std::string out;
    if (re_) {
      regex_spans(*re_, s, [&](size_t b, size_t e) { out.append(s, b, e - b); },
                  [&](size_t, size_t) { out += to_; });
    } else {
      if (from_.empty() || s.find(from_) == std::string::npos) return;
      out = replace_all(s, from_, to_);
    }
    s = std::move(out);
  }

 private:
  std::string from_, to_;
  std::optional<Regex> re_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> v) : v_(std::move(v)) {}
  void apply(std::string& s) const override { for (const auto& n : v_) n->apply(s); }

 private:
  std::vector<std::unique_ptr<Normalizer>> v_;
};

// A Replace/Split "pattern": {"String": s} or {"Regex": r}. Returns (literal, regex).
inline std::pair<std::string, std::optional<Regex>> parse_pattern(const JsonCtx& ctx, const json& j,
                                                                  const std::string& path) {
  const json& p = ctx.at(j, "pattern", path);
  if (p.is_object() && p.contains("String") && p["String"].is_string())
    return {p["String"].get<std::string>(), std::nullopt};
  if (p.is_object() && p.contains("Regex") && p["Regex"].is_string())
    return {"", Regex(p["Regex"].get<std::string>(), ctx.file, path + ".pattern.Regex")};
  ctx.fail(path + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
}

inline std::unique_ptr<Normalizer> parse_normalizer(const JsonCtx& ctx, const json& j,
                                                    const std::string& path) {
  if (j.is_null()) return nullptr;
  const std::string t = ctx.type(j, path);
  if (t == "NFC") return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (t == "NFD") return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE));
  if (t == "NFKC")
    return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (t == "NFKD")
    return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  if (t == "Prepend") return std::make_unique<PrependNormalizer>(ctx.str(j, "prepend", path));
  if (t == "Replace") {
    auto [lit, re] = parse_pattern(ctx, j, path);
    return std::make_unique<ReplaceNormalizer>(lit, ctx.str(j, "content", path), std::move(re));
  }
  if (t == "Sequence") {
    const json& arr = ctx.at(j, "normalizers", path);
    if (!arr.is_array()) ctx.fail(path + ".normalizers", "expected an array");
    std::vector<std::unique_ptr<Normalizer>> v;
    for (size_t i = 0; i < arr.size(); ++i) {
      auto n = parse_normalizer(ctx, arr[i], path + ".normalizers[" + std::to_string(i) + "]");
      if (n) v.push_back(std::move(n));
    }
    return std::make_unique<SequenceNormalizer>(std::move(v));
  }
  ctx.unsupported(path + ".type", "normalizer type \"" + t + "\"");
}

}  // namespace fathom::tok::detail
