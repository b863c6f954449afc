#pragma once
// Reads tokenizer.json in one SAX pass: everything becomes a normal JSON DOM except
// model.vocab and model.merges (hundreds of thousands of entries), which stream straight into
// flat vectors. Building those two as DOM objects (std::map nodes) dominated load time.
#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "fathom/core/error.hpp"

namespace fathom::tok::detail {

struct TokenizerJson {
  nlohmann::json dom;                                     // model.vocab / model.merges are null here
  bool has_vocab = false, has_merges = false;
  std::vector<std::pair<std::string, long long>> vocab;   // in file order
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::string> merge_text;                    // "a b" form, kept for the error message
};

class TokenizerSax {
 public:
  using json = nlohmann::json;
  TokenizerSax(TokenizerJson& out, std::string file) : out_(out), dom_(out.dom, true), file_(std::move(file)) {}

  bool null() { return mode_ == Mode::Normal ? dom_.null() : bad("null"); }
  bool boolean(bool v) { return mode_ == Mode::Normal ? dom_.boolean(v) : bad("a boolean"); }
  bool number_integer(json::number_integer_t v) {
    if (mode_ == Mode::Vocab) { out_.vocab.emplace_back(std::move(vocab_key_), v); return true; }
    return mode_ == Mode::Normal ? dom_.number_integer(v) : bad("a number");
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (mode_ == Mode::Vocab) { out_.vocab.emplace_back(std::move(vocab_key_), static_cast<long long>(v)); return true; }
    return mode_ == Mode::Normal ? dom_.number_unsigned(v) : bad("a number");
  }
  bool number_float(json::number_float_t v, const std::string& s) {
    return mode_ == Mode::Normal ? dom_.number_float(v, s) : bad("a number");
  }
  bool string(std::string& v) {
    if (mode_ == Mode::Normal) return dom_.string(v);
    if (mode_ == Mode::Merges) {
      if (merge_depth_ == 0) {  // "left right"
        const size_t sp = v.find(' ');
        if (sp == std::string::npos || v.find(' ', sp + 1) != std::string::npos)
          throw TokenizerError(file_, "model.merges[" + std::to_string(out_.merges.size()) + "]",
                               "expected \"left right\" (two tokens separated by one space), got \"" + v + "\"");
        out_.merges.emplace_back(v.substr(0, sp), v.substr(sp + 1));
        return true;
      }
      if (merge_parts_ == 0) pending_left_ = std::move(v);
      else if (merge_parts_ == 1) pending_right_ = std::move(v);
      ++merge_parts_;
      return true;
    }
    return bad("a string");
  }
  bool binary(json::binary_t& v) { return mode_ == Mode::Normal ? dom_.binary(v) : bad("binary"); }

  bool start_object(std::size_t n) {
    if (mode_ == Mode::Normal && in_model_field("vocab")) { mode_ = Mode::Vocab; ++depth_; return true; }
    if (mode_ != Mode::Normal) return bad("an object");
    ++depth_;
    keys_.resize(depth_ + 1);
    return dom_.start_object(n);
  }
  bool key(std::string& k) {
    if (mode_ == Mode::Vocab) { vocab_key_ = std::move(k); return true; }
    if (mode_ != Mode::Normal) return bad("a key");
    keys_[depth_] = k;
    return dom_.key(k);
  }
  bool end_object() {
    --depth_;
    if (mode_ == Mode::Vocab) { mode_ = Mode::Normal; out_.has_vocab = true; return dom_.null(); }
    return dom_.end_object();
  }
  bool start_array(std::size_t n) {
    if (mode_ == Mode::Normal && in_model_field("merges")) { mode_ = Mode::Merges; merge_depth_ = 0; ++depth_; return true; }
    if (mode_ == Mode::Merges) {
      if (merge_depth_ != 0) return bad("a nested array");
      merge_depth_ = 1;
      merge_parts_ = 0;
      return true;
    }
    if (mode_ != Mode::Normal) return bad("an array");
    ++depth_;
    keys_.resize(depth_ + 1);
    keys_[depth_].clear();
    return dom_.start_array(n);
  }
  bool end_array() {
    if (mode_ == Mode::Merges) {
      if (merge_depth_ == 1) {
        if (merge_parts_ != 2)
          throw TokenizerError(file_, "model.merges[" + std::to_string(out_.merges.size()) + "]",
                               "expected [left, right]");
        out_.merges.emplace_back(std::move(pending_left_), std::move(pending_right_));
        merge_depth_ = 0;
        return true;
      }
      --depth_;
      mode_ = Mode::Normal;
      out_.has_merges = true;
      return dom_.null();
    }
    --depth_;
    return dom_.end_array();
  }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& ex) {
    throw TokenizerError(file_, "byte " + std::to_string(pos), std::string("malformed JSON: ") + ex.what());
  }

 private:
  enum class Mode { Normal, Vocab, Merges };
  // The value about to start is model.<field> (depth 2, parent key "model" at depth 1).
  bool in_model_field(const char* field) const {
    return depth_ == 2 && keys_.size() > 2 && keys_[1] == "model" && keys_[2] == field;
  }
  bool bad(const char* what) {
    throw TokenizerError(file_, mode_ == Mode::Vocab ? "model.vocab" : "model.merges",
                         std::string("unexpected ") + what);
  }

  TokenizerJson& out_;
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  std::string file_;
  Mode mode_ = Mode::Normal;
  size_t depth_ = 0;
  std::vector<std::string> keys_{std::string()};
  std::string vocab_key_, pending_left_, pending_right_;
  int merge_depth_ = 0, merge_parts_ = 0;
};

inline TokenizerJson read_tokenizer_json(const std::string& text, const std::string& file) {
  TokenizerJson out;
  TokenizerSax sax(out, file);
  bool ok = false;
  try {
    ok = nlohmann::json::sax_parse(text, &sax);
  } catch (const nlohmann::json::exception& e) {
    throw TokenizerError(file, "", std::string("malformed JSON: ") + e.what());
  }
  if (!ok) throw TokenizerError(file, "", "malformed JSON");
  return out;
}

}  // namespace fathom::tok::detail
