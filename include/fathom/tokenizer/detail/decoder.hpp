#pragma once
// Decoders of tokenizer.json (ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace,
// Sequence). Like the reference, each works on the list of token strings and the result is
// their concatenation.
#include <memory>
#include <string>
#include <vector>

#include "fathom/tokenizer/detail/byte_level.hpp"
#include "fathom/tokenizer/detail/json_util.hpp"
#include "fathom/tokenizer/detail/utf8.hpp"

namespace fathom::tok::detail {

using Tokens = std::vector<std::string>;

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void apply(Tokens& t) const = 0;
};

class ByteLevelDecoder final : public Decoder {
 public:
  void apply(Tokens& t) const override {
    std::string bytes;
    for (const auto& tok : t)
      if (!byte_level_decode(tok, bytes)) bytes += tok;  // not byte chars: its own UTF-8
    t.assign(1, utf8_lossy(bytes));
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void apply(Tokens& t) const override {
    if (from_.empty()) return;
    for (auto& s : t) s = replace_all(s, from_, to_);
  }

 private:
  std::string from_, to_;
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void apply(Tokens& t) const override {
    Tokens out;
    std::string pending;
    const auto flush = [&] {
      if (pending.empty()) return;
      if (is_valid_utf8(pending)) out.push_back(pending);
      else for (size_t k = 0; k < pending.size(); ++k) out.emplace_back(kReplacementChar);
      pending.clear();
    };
    for (auto& s : t) {
      if (s.size() == 6 && s.compare(0, 3, "<0x") == 0 && s[5] == '>' && hex(s[3]) >= 0 && hex(s[4]) >= 0) {
        pending += static_cast<char>(hex(s[3]) * 16 + hex(s[4]));
        continue;
      }
      flush();
      out.push_back(std::move(s));
    }
    flush();
    t = std::move(out);
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
};

class FuseDecoder final : public Decoder {
 public:
  void apply(Tokens& t) const override {
    std::string all;
    for (const auto& s : t) all += s;
    t.assign(1, std::move(all));
  }
};

// Removes up to `start` leading and `stop` trailing copies of one character from each token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop) : c_(std::move(content)), start_(start), stop_(stop) {}
  void apply(Tokens& t) const override {
    if (c_.empty()) return;
    for (auto& s : t) {
      size_t b = 0, e = s.size();
      for (size_t k = 0; k < start_ && s.compare(b, c_.size(), c_) == 0 && b + c_.size() <= e; ++k) b += c_.size();
      for (size_t k = 0; k < stop_ && e >= b + c_.size() && s.compare(e - c_.size(), c_.size(), c_) == 0; ++k)
        e -= c_.size();
      s = s.substr(b, e - b);
    }
  }

 private:
  std::string c_;
  size_t start_, stop_;
};

// Replacement -> ' '; in the first token every replacement character is dropped unless the
// prepend scheme is "never" (the reference's behaviour, verified on tokenizers 0.23).
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string repl, bool drop_first) : repl_(std::move(repl)), drop_first_(drop_first) {}
  void apply(Tokens& t) const override {
    for (size_t i = 0; i < t.size(); ++i) {
      std::string out;
      const std::string& s = t[i];
      size_t pos = 0;
      for (size_t hit; (hit = s.find(repl_, pos)) != std::string::npos; pos = hit + repl_.size()) {
        out.append(s, pos, hit - pos);
        if (!(i == 0 && drop_first_)) out += ' ';
      }
      out.append(s, pos, std::string::npos);
      t[i] = std::move(out);
    }
  }

 private:
  std::string repl_;
  bool drop_first_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> v) : v_(std::move(v)) {}
  void apply(Tokens& t) const override { for (const auto& d : v_) d->apply(t); }

 private:
  std::vector<std::unique_ptr<Decoder>> v_;
};

inline std::unique_ptr<Decoder> parse_decoder(const JsonCtx& ctx, const json& j, const std::string& path) {
  if (j.is_null()) return nullptr;
  const std::string t = ctx.type(j, path);
  if (t == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (t == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (t == "Fuse") return std::make_unique<FuseDecoder>();
  if (t == "Replace") {
    const json& p = ctx.at(j, "pattern", path);
    if (!p.is_object() || !p.contains("String") || !p["String"].is_string())
      ctx.unsupported(path + ".pattern", "Replace decoder with a non-literal pattern");
    return std::make_unique<ReplaceDecoder>(p["String"].get<std::string>(), ctx.str(j, "content", path));
  }
  if (t == "Strip") {
    const long long a = ctx.integer(j, "start", path), b = ctx.integer(j, "stop", path);
    if (a < 0 || b < 0) ctx.fail(path, "start/stop must be >= 0");
    return std::make_unique<StripDecoder>(ctx.str(j, "content", path), size_t(a), size_t(b));
  }
  if (t == "Metaspace") {
    std::string scheme = ctx.str_or(j, "prepend_scheme", path, "");
    bool drop = scheme.empty() ? ctx.boolean_or(j, "add_prefix_space", path, true) : scheme != "never";
    return std::make_unique<MetaspaceDecoder>(ctx.str_or(j, "replacement", path, "\xE2\x96\x81"), drop);
  }
  if (t == "Sequence") {
    const json& arr = ctx.at(j, "decoders", path);
    if (!arr.is_array()) ctx.fail(path + ".decoders", "expected an array");
    std::vector<std::unique_ptr<Decoder>> v;
    for (size_t i = 0; i < arr.size(); ++i)
      if (auto d = parse_decoder(ctx, arr[i], path + ".decoders[" + std::to_string(i) + "]")) v.push_back(std::move(d));
    return std::make_unique<SequenceDecoder>(std::move(v));
  }
  ctx.unsupported(path + ".type", "decoder type \"" + t + "\"");
}

}  // namespace fathom::tok::detail
