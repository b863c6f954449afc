#pragma once
// Pre-tokenizers of tokenizer.json: Split (regex or literal, all delimiter behaviours),
// ByteLevel, Metaspace, Sequence. A pre-tokenizer chain turns one normalized stretch of text
// into the pieces ("words") the model encodes one by one. Pieces are passed down the chain as
// views through callbacks, so the common path (regex split of a large text) allocates nothing.
#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fathom/tokenizer/detail/json_util.hpp"
#include "fathom/tokenizer/detail/normalizer.hpp"
#include "fathom/tokenizer/detail/pcre.hpp"

namespace fathom::tok::detail {

// Non-owning callable reference: void(std::string_view piece, bool at_start).
class PieceSink {
 public:
  template <class F>
  PieceSink(F& f) : obj_(&f), call_([](void* o, std::string_view p, bool s) { (*static_cast<F*>(o))(p, s); }) {}
  void operator()(std::string_view p, bool at_start) const { call_(obj_, p, at_start); }

 private:
  void* obj_;
  void (*call_)(void*, std::string_view, bool);
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // at_start: the piece begins at offset 0 of the original input (Metaspace "first").
  virtual void apply(std::string_view piece, bool at_start, PieceSink next) const = 0;
};

enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };

// Spans of a pattern: literal or regex; emits (begin, end, is_match) in order, no empty spans.
class Pattern {
 public:
  Pattern(std::string literal, std::optional<Regex> re) : lit_(std::move(literal)), re_(std::move(re)) {}
  template <class F>
  void spans(std::string_view s, F&& f) const {
    if (re_) {
      regex_spans(*re_, s, [&](size_t b, size_t e) { f(b, e, false); },
                  [&](size_t b, size_t e) { f(b, e, true); });
      return;
    }
    size_t pos = 0;
    if (!lit_.empty())
      for (size_t hit; (hit = s.find(lit_, pos)) != std::string_view::npos; pos = hit + lit_.size()) {
        if (hit > pos) f(pos, hit, false);
        f(hit, hit + lit_.size(), true);
      }
    if (pos < s.size()) f(pos, s.size(), false);
  }

 private:
  std::string lit_;
  std::optional<Regex> re_;
};

// Applies a delimiter behaviour to the (begin, end, is_match) spans of `s`, exactly as the
// reference's NormalizedString::split does, and emits the resulting pieces.
inline void split_with_behavior(const Pattern& pat, SplitBehavior beh, bool invert,
                                std::string_view s, bool at_start, PieceSink next) {
  if (beh == SplitBehavior::Isolated || beh == SplitBehavior::Removed) {
    pat.spans(s, [&](size_t b, size_t e, bool m) {
      if (invert) m = !m;
      if (beh == SplitBehavior::Removed && m) return;
      next(s.substr(b, e - b), at_start && b == 0);
    });
    return;
  }
  struct Span { size_t b, e; bool m; };
  std::vector<Span> v;
  pat.spans(s, [&](size_t b, size_t e, bool m) { v.push_back({b, e, invert ? !m : m}); });
  std::vector<std::pair<size_t, size_t>> out;
  if (beh == SplitBehavior::MergedWithPrevious) {
    bool prev_match = false;
    for (const auto& sp : v) {
      if (sp.m && !prev_match && !out.empty()) out.back().second = sp.e;
      else out.emplace_back(sp.b, sp.e);
      prev_match = sp.m;
    }
  } else if (beh == SplitBehavior::MergedWithNext) {
    bool prev_match = false;  // in reverse order: "previous" is the following span
    for (size_t k = v.size(); k-- > 0;) {
      const auto& sp = v[k];
      if (sp.m && !prev_match && !out.empty()) out.back().first = sp.b;
      else out.emplace_back(sp.b, sp.e);
      prev_match = sp.m;
    }
    std::reverse(out.begin(), out.end());
  } else {  // Contiguous: runs of adjacent matches become one piece
    bool prev_match = false;
    for (const auto& sp : v) {
      if (sp.m && prev_match && !out.empty()) out.back().second = sp.e;
      else out.emplace_back(sp.b, sp.e);
      prev_match = sp.m;
    }
  }
  for (auto [b, e] : out) next(s.substr(b, e - b), at_start && b == 0);
}

class SplitPreTokenizer final : public PreTokenizer {
 public:
  SplitPreTokenizer(Pattern p, SplitBehavior b, bool invert) : pat_(std::move(p)), beh_(b), invert_(invert) {}
  void apply(std::string_view piece, bool at_start, PieceSink next) const override {
    split_with_behavior(pat_, beh_, invert_, piece, at_start, next);
  }

 private:
  Pattern pat_;
  SplitBehavior beh_;
  bool invert_;
};

// GPT-2's pattern, which ByteLevel applies itself when use_regex is true.
inline constexpr const char* kGpt2Pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

// ByteLevel: the byte -> printable-char mapping itself is folded into the model (which then
// reads raw bytes), so this stage only does the optional prefix space and GPT-2 split.
class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, std::optional<Pattern> split)
      : prefix_(add_prefix_space), split_(std::move(split)) {}
  void apply(std::string_view piece, bool at_start, PieceSink next) const override {
    std::string tmp;
    if (prefix_ && (piece.empty() || piece[0] != ' ')) {
      tmp.reserve(piece.size() + 1);
      tmp += ' ';
      tmp += piece;
      piece = tmp;
    }
    if (split_) split_with_behavior(*split_, SplitBehavior::Isolated, false, piece, at_start, next);
    else next(piece, at_start);
  }

 private:
  bool prefix_;
  std::optional<Pattern> split_;
};

enum class PrependScheme { Always, First, Never };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string repl, PrependScheme scheme, bool split)
      : repl_(std::move(repl)), scheme_(scheme), split_(split), pat_(repl_, std::nullopt) {}
  void apply(std::string_view piece, bool at_start, PieceSink next) const override {
    std::string s;
    s.reserve(piece.size() + piece.size() / 4 + repl_.size());
    for (char c : piece) { if (c == ' ') s += repl_; else s += c; }
    const bool starts = s.compare(0, repl_.size(), repl_) == 0;
    if (!starts && (scheme_ == PrependScheme::Always || (scheme_ == PrependScheme::First && at_start)))
      s.insert(0, repl_);
    if (split_) split_with_behavior(pat_, SplitBehavior::MergedWithNext, false, s, at_start, next);
    else next(s, at_start);
  }

 private:
  std::string repl_;
  PrependScheme scheme_;
  bool split_;
  Pattern pat_;
};

inline SplitBehavior parse_behavior(const JsonCtx& ctx, const std::string& b, const std::string& path) {
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  ctx.unsupported(path, "Split behavior \"" + b + "\"");
}

inline PrependScheme parse_prepend_scheme(const JsonCtx& ctx, const json& j, const std::string& path) {
  // Older files carry add_prefix_space instead of prepend_scheme.
  if (!j.contains("prepend_scheme") || j["prepend_scheme"].is_null())
    return ctx.boolean_or(j, "add_prefix_space", path, true) ? PrependScheme::Always : PrependScheme::Never;
  const std::string s = ctx.str(j, "prepend_scheme", path);
  if (s == "always") return PrependScheme::Always;
  if (s == "first") return PrependScheme::First;
  if (s == "never") return PrependScheme::Never;
  ctx.unsupported(path + ".prepend_scheme", "prepend_scheme \"" + s + "\"");
}

// Flattens the pre_tokenizer JSON into `out`; sets *byte_level when a ByteLevel stage is seen
// (it must be the last stage, since the model then consumes raw bytes).
inline void parse_pre_tokenizer(const JsonCtx& ctx, const json& j, const std::string& path,
                                std::vector<std::unique_ptr<PreTokenizer>>& out, bool* byte_level) {
  if (j.is_null()) return;
  const std::string t = ctx.type(j, path);
  if (*byte_level) ctx.unsupported(path, "pre-tokenizer \"" + t + "\" after ByteLevel");
  if (t == "Sequence") {
    const json& arr = ctx.at(j, "pretokenizers", path);
    if (!arr.is_array()) ctx.fail(path + ".pretokenizers", "expected an array");
    for (size_t i = 0; i < arr.size(); ++i)
      parse_pre_tokenizer(ctx, arr[i], path + ".pretokenizers[" + std::to_string(i) + "]", out, byte_level);
    return;
  }
  if (t == "Split") {
    auto [lit, re] = parse_pattern(ctx, j, path);
    const auto beh = parse_behavior(ctx, ctx.str(j, "behavior", path), path + ".behavior");
    out.push_back(std::make_unique<SplitPreTokenizer>(Pattern(lit, std::move(re)), beh,
                                                      ctx.boolean_or(j, "invert", path, false)));
    return;
  }
  if (t == "ByteLevel") {
    std::optional<Pattern> split;
    if (ctx.boolean_or(j, "use_regex", path, true))
      split.emplace("", Regex(kGpt2Pattern, ctx.file, path + " (GPT-2 pattern)"));
    out.push_back(std::make_unique<ByteLevelPreTokenizer>(ctx.boolean_or(j, "add_prefix_space", path, true),
                                                          std::move(split)));
    *byte_level = true;
    return;
  }
  if (t == "Metaspace") {
    const std::string repl = ctx.str_or(j, "replacement", path, "\xE2\x96\x81");
    out.push_back(std::make_unique<MetaspacePreTokenizer>(repl, parse_prepend_scheme(ctx, j, path),
                                                          ctx.boolean_or(j, "split", path, true)));
    return;
  }
  ctx.unsupported(path + ".type", "pre-tokenizer type \"" + t + "\"");
}

}  // namespace fathom::tok::detail
