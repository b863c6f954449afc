#pragma once
// UTF-8 helpers for the tokenizer: validation, the lossy repair the reference applies
// (maximal-subpart U+FFFD substitution, the policy of Rust's String::from_utf8_lossy and
// Python's errors="replace"), code point iteration and the whitespace classes that Rust's
// char::is_whitespace and Python's str.isspace use.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fathom::tok::detail {

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence starting at s[i], or 0 if the bytes there are not a
// complete valid sequence. `*bad_len` receives the length of the maximal invalid subpart
// (>= 1) when 0 is returned and the sequence is invalid, or 0 when it is merely truncated by
// the end of the input (`*truncated` = true then).
inline size_t utf8_seq_len(std::string_view s, size_t i, size_t* bad_len = nullptr,
                           bool* truncated = nullptr) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (truncated) *truncated = false;
  if (c < 0x80) return 1;
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) need = 2;
  else if (c == 0xE0) { need = 3; lo = 0xA0; }
  else if (c >= 0xE1 && c <= 0xEC) need = 3;
  else if (c == 0xED) { need = 3; hi = 0x9F; }
  else if (c >= 0xEE && c <= 0xEF) need = 3;
  else if (c == 0xF0) { need = 4; lo = 0x90; }
  else if (c >= 0xF1 && c <= 0xF3) need = 4;
  else if (c == 0xF4) { need = 4; hi = 0x8F; }
  else { if (bad_len) *bad_len = 1; return 0; }
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) {  // ran out of input inside a sequence that was valid so far
      if (bad_len) *bad_len = k;
      if (truncated) *truncated = true;
      return 0;
    }
    const unsigned char ck = b(i + k);
    const bool ok = (k == 1) ? (ck >= lo && ck <= hi) : (ck >= 0x80 && ck <= 0xBF);
    if (!ok) { if (bad_len) *bad_len = k; return 0; }
  }
  return need;
}

// s with every occurrence of `from` (non-empty) replaced by `to` (byte-wise; Replace steps of
// normalizers and decoders).
inline std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string_view::npos; pos = hit + from.size())
    out.append(s.substr(pos, hit - pos)).append(to);
  out.append(s.substr(pos));
  return out;
}

inline bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) { ++i; continue; }
    const size_t n = utf8_seq_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Replace every maximal invalid subpart by U+FFFD (Rust from_utf8_lossy / Python "replace").
inline std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    size_t bad = 0;
    const size_t n = utf8_seq_len(s, i, &bad);
    if (n) { out.append(s.substr(i, n)); i += n; }
    else { out.append(kReplacementChar); i += bad; }
  }
  return out;
}

// Decode the code point at s[i] (s must be valid UTF-8); advances i.
inline char32_t next_cp(std::string_view s, size_t& i) {
  const auto b = [&](size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[k])); };
  const char32_t c = b(i);
  if (c < 0x80) { i += 1; return c; }
  if (c < 0xE0) { char32_t r = ((c & 0x1F) << 6) | (b(i + 1) & 0x3F); i += 2; return r; }
  if (c < 0xF0) {
    char32_t r = ((c & 0x0F) << 12) | ((b(i + 1) & 0x3F) << 6) | (b(i + 2) & 0x3F);
    i += 3;
    return r;
  }
  char32_t r = ((c & 0x07) << 18) | ((b(i + 1) & 0x3F) << 12) | ((b(i + 2) & 0x3F) << 6) |
               (b(i + 3) & 0x3F);
  i += 4;
  return r;
}

// Start of the code point that ends at s[end-1] (s valid UTF-8, end > 0).
inline size_t prev_cp_start(std::string_view s, size_t end) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}

inline void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) out += static_cast<char>(c);
  else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// Unicode White_Space (Rust char::is_whitespace).
inline bool is_unicode_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Python str.isspace(): White_Space plus the information separators U+001C..U+001F.
inline bool is_python_space(char32_t c) {
  return is_unicode_whitespace(c) || (c >= 0x1C && c <= 0x1F);
}

// Python str.strip() with no argument (what Jinja's `trim` filter and `.strip()` do).
inline std::string_view python_strip(std::string_view s) {
  size_t b = 0;
  while (b < s.size()) {
    size_t j = b;
    if (!is_python_space(next_cp(s, j))) break;
    b = j;
  }
  size_t e = s.size();
  while (e > b) {
    const size_t st = prev_cp_start(s, e);
    size_t j = st;
    if (!is_python_space(next_cp(s, j))) break;
    e = st;
  }
  return s.substr(b, e - b);
}

}  // namespace fathom::tok::detail
