#pragma once
// A compiled PCRE2 pattern (UTF + UCP, so \p{L}, \s and case-insensitive groups follow
// Unicode as the reference's Oniguruma does), JIT-compiled when the platform allows.
// The compiled code is shared and immutable; every search call brings its own match data and
// JIT stack (Matcher), so one Regex serves many threads.
#include <pcre2.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "fathom/core/error.hpp"

namespace fathom::tok::detail {

class Regex {
 public:
  // `where` names the file and JSON field for error messages.
  Regex(const std::string& pattern, const std::string& file, const std::string& field) {
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code* c = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                  PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (!c) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      throw UnsupportedError(file, field,
                             "regex does not compile at offset " + std::to_string(off) + ": " +
                                 reinterpret_cast<const char*>(msg));
    }
    code_.reset(c, CodeFree{});
    jit_ = pcre2_jit_compile(c, PCRE2_JIT_COMPLETE) == 0;
  }

  pcre2_code* code() const { return code_.get(); }
  bool jit() const { return jit_; }

 private:
  struct CodeFree { void operator()(pcre2_code* c) const { pcre2_code_free(c); } };
  std::shared_ptr<pcre2_code> code_;
  bool jit_ = false;
};

// Matching state: match data and a JIT stack, made once per thread and reused (creating a
// JIT stack maps memory, far too slow to repeat for every short input).
class Matcher {
 public:
  explicit Matcher(const Regex& re) : re_(re), st_(state()) {}

  // Next match in `s` starting the search at `from`; s must be valid UTF-8.
  bool find(std::string_view s, size_t from, size_t& mb, size_t& me) {
    const auto* p = reinterpret_cast<PCRE2_SPTR>(s.data());
    int rc = re_.jit() ? pcre2_jit_match(re_.code(), p, s.size(), from, 0, st_.md, st_.ctx)
                       : pcre2_match(re_.code(), p, s.size(), from, PCRE2_NO_UTF_CHECK, st_.md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(rc, msg, sizeof msg);
      throw TokenizerError("", "pre_tokenizer regex",
                           std::string("match failed: ") + reinterpret_cast<const char*>(msg));
    }
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st_.md);
    mb = ov[0];
    me = ov[1];
    return true;
  }

 private:
  struct State {
    pcre2_match_data* md;
    pcre2_match_context* ctx;
    pcre2_jit_stack* stack;
    State() {
      md = pcre2_match_data_create(32, nullptr);  // only the whole match is read
      // Long runs of one class (e.g. 10^5 spaces) need more than the 32 KiB default stack.
      stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
      ctx = pcre2_match_context_create(nullptr);
      pcre2_jit_stack_assign(ctx, nullptr, stack);
    }
    ~State() {
      pcre2_match_data_free(md);
      pcre2_match_context_free(ctx);
      pcre2_jit_stack_free(stack);
    }
  };
  static State& state() {
    thread_local State st;
    return st;
  }
  const Regex& re_;
  State& st_;
};

// Calls on_gap(b,e) / on_match(b,e) for the alternating non-matching and matching spans of s,
// in order; empty matches are skipped (the search then advances by one code point).
template <class Gap, class Match>
void regex_spans(const Regex& re, std::string_view s, Gap&& on_gap, Match&& on_match) {
  Matcher m(re);
  size_t pos = 0, last = 0, mb = 0, me = 0;
  while (pos <= s.size() && m.find(s, pos, mb, me)) {
    if (me == mb) {  // empty match: step over one code point
      if (mb >= s.size()) break;
      pos = mb + 1;
      while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;
      continue;
    }
    if (mb > last) on_gap(last, mb);
    on_match(mb, me);
    last = pos = me;
  }
  if (last < s.size()) on_gap(last, s.size());
}

}  // namespace fathom::tok::detail
