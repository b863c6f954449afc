#pragma once
// Added tokens (tokenizer.json "added_tokens"): matched in the text before the model runs,
// leftmost-longest like the reference's Aho-Corasick matcher, honouring lstrip / rstrip /
// single_word. Tokens with normalized=false are matched in the raw text, those with
// normalized=true in each normalized stretch.
#include <utf8proc.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/tokenizer/detail/utf8.hpp"

namespace fathom::tok::detail {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false, lstrip = false, rstrip = false, normalized = false, single_word = false;
};

// Word characters for single_word: the reference tests `\w` (Rust regex, Unicode): letters,
// marks, decimal and letter numbers, connector punctuation, and the joiners.
inline bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

class AddedMatcher {
 public:
  void add(const AddedToken* t) {
    if (t->content.empty()) return;
    const auto first = static_cast<unsigned char>(t->content[0]);
    buckets_[first].push_back(t);
    any_ = true;
  }
  bool empty() const { return !any_; }

  // Splits `s` into alternating text stretches and added tokens, calling
  // on_text(string_view, begin_offset) and on_token(const AddedToken&).
  template <class Text, class Tok>
  void split(std::string_view s, Text&& on_text, Tok&& on_token) const {
    size_t text_begin = 0;  // start of the pending text stretch
    size_t i = 0;
    while (i < s.size()) {
      const auto& bucket = buckets_[static_cast<unsigned char>(s[i])];
      const AddedToken* best = nullptr;
      for (const AddedToken* t : bucket)
        if (s.compare(i, t->content.size(), t->content) == 0 && (!best || t->content.size() > best->content.size()))
          best = t;
      if (!best) { ++i; continue; }
      // Like the reference: a single_word match inside a word is dropped and the search goes on
      // after it (the matched text stays ordinary text; shorter tokens there are not retried).
      if (!single_word_ok(s, i, i + best->content.size(), *best)) { i += best->content.size(); continue; }
      size_t mb = i, me = i + best->content.size();
      if (best->lstrip)
        while (mb > text_begin) {
          const size_t p = prev_cp_start(s, mb);
          size_t j = p;
          if (!is_unicode_whitespace(next_cp(s, j))) break;
          mb = p;
        }
      if (best->rstrip)
        while (me < s.size()) {
          size_t j = me;
          if (!is_unicode_whitespace(next_cp(s, j))) break;
          me = j;
        }
      if (mb > text_begin) on_text(s.substr(text_begin, mb - text_begin), text_begin);
      on_token(*best);
      text_begin = i = me;
    }
    if (text_begin < s.size()) on_text(s.substr(text_begin), text_begin);
  }

 private:
  static bool single_word_ok(std::string_view s, size_t b, size_t e, const AddedToken& t) {
    if (!t.single_word) return true;
    if (b > 0) {
      size_t j = prev_cp_start(s, b);
      if (is_word_char(next_cp(s, j))) return false;
    }
    if (e < s.size()) {
      size_t j = e;
      if (is_word_char(next_cp(s, j))) return false;
    }
    return true;
  }
  std::array<std::vector<const AddedToken*>, 256> buckets_;
  bool any_ = false;
};

}  // namespace fathom::tok::detail
