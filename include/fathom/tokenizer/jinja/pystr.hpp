#pragma once
// Python str methods on UTF-8 text, with Python's semantics where chat templates can see the
// difference: strip/split on Unicode whitespace (str.isspace), indexes in code points,
// replace("", x) inserting between characters. Case mapping (upper/lower/title/capitalize)
// covers ASCII letters only (docs/tokenizers.md).
#include <string>
#include <string_view>
#include <vector>

#include "fathom/tokenizer/detail/utf8.hpp"
#include "fathom/tokenizer/jinja/value.hpp"

namespace fathom::tok::jinja::pystr {

using tok::detail::is_python_space;
using tok::detail::next_cp;
using tok::detail::prev_cp_start;

inline std::vector<char32_t> cps(std::string_view s) {
  std::vector<char32_t> out;  // [n_code_points]
  for (size_t i = 0; i < s.size();) out.push_back(next_cp(s, i));
  return out;
}

// strip / lstrip / rstrip: whitespace, or any of the code points of `chars`.
inline std::string strip(std::string_view s, const std::string* chars, bool left, bool right) {
  std::vector<char32_t> set;
  if (chars) set = cps(*chars);
  const auto drop = [&](char32_t c) {
    if (!chars) return is_python_space(c);
    for (char32_t x : set) if (x == c) return true;
    return false;
  };
  size_t b = 0, e = s.size();
  if (left)
    while (b < e) { size_t j = b; if (!drop(next_cp(s, j))) break; b = j; }
  if (right)
    while (e > b) { const size_t st = prev_cp_start(s, e); size_t j = st; if (!drop(next_cp(s, j))) break; e = st; }
  return std::string(s.substr(b, e - b));
}

// str.split(sep=None, maxsplit=-1)
inline std::vector<std::string> split(std::string_view s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t at = 0;
    while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
      const size_t k = s.find(*sep, at);
      if (k == std::string_view::npos) break;
      out.emplace_back(s.substr(at, k - at));
      at = k + sep->size();
    }
    out.emplace_back(s.substr(at));
    return out;
  }
  size_t i = 0;
  while (true) {
    while (i < s.size()) { size_t j = i; if (!is_python_space(next_cp(s, j))) break; i = j; }
    if (i >= s.size()) break;
    if (maxsplit >= 0 && int64_t(out.size()) >= maxsplit) {
      // The rest, with its trailing whitespace stripped (Python keeps it unsplit).
      out.push_back(strip(s.substr(i), nullptr, false, true));
      break;
    }
    size_t e = i;
    while (e < s.size()) { size_t j = e; if (is_python_space(next_cp(s, j))) break; e = j; }
    out.emplace_back(s.substr(i, e - i));
    i = e;
  }
  return out;
}

// str.rsplit(sep=None, maxsplit=-1)
inline std::vector<std::string> rsplit(std::string_view s, const std::string* sep, int64_t maxsplit) {
  if (maxsplit < 0) return split(s, sep, maxsplit);
  std::vector<std::string> out;
  if (sep) {
    size_t end = s.size();
    while (int64_t(out.size()) < maxsplit) {
      if (end < sep->size()) break;
      const size_t k = s.rfind(*sep, end - sep->size());
      if (k == std::string_view::npos) break;
      out.emplace_back(s.substr(k + sep->size(), end - k - sep->size()));
      end = k;
    }
    out.emplace_back(s.substr(0, end));
  } else {
    size_t e = s.size();
    while (true) {
      while (e > 0) { const size_t st = prev_cp_start(s, e); size_t j = st; if (!is_python_space(next_cp(s, j))) break; e = st; }
      if (e == 0) break;
      if (int64_t(out.size()) >= maxsplit) { out.push_back(strip(s.substr(0, e), nullptr, true, false)); break; }
      size_t b = e;
      while (b > 0) { const size_t st = prev_cp_start(s, b); size_t j = st; if (is_python_space(next_cp(s, j))) break; b = st; }
      out.emplace_back(s.substr(b, e - b));
      e = b;
    }
  }
  return {out.rbegin(), out.rend()};
}

// str.splitlines() (\n, \r\n, \r and the other Unicode line boundaries)
inline std::vector<std::string> splitlines(std::string_view s) {
  std::vector<std::string> out;
  size_t b = 0, i = 0;
  while (i < s.size()) {
    const size_t st = i;
    const char32_t c = next_cp(s, i);
    const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 ||
                     c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    out.emplace_back(s.substr(b, st - b));
    if (c == '\r' && i < s.size() && s[i] == '\n') ++i;
    b = i;
  }
  if (b < s.size()) out.emplace_back(s.substr(b));
  return out;
}

inline std::string replace(std::string_view s, std::string_view from, std::string_view to, int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` before every character and at the end
    int64_t n = 0;
    size_t i = 0;
    while (i <= s.size()) {
      if (count < 0 || n < count) { out += to; ++n; }
      if (i == s.size()) break;
      const size_t st = i;
      next_cp(s, i);
      out += s.substr(st, i - st);
    }
    return out;
  }
  size_t at = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t k = s.find(from, at);
    if (k == std::string_view::npos) break;
    out += s.substr(at, k - at);
    out += to;
    at = k + from.size();
    ++n;
  }
  out += s.substr(at);
  return out;
}

inline char up(char c) { return c >= 'a' && c <= 'z' ? char(c - 32) : c; }
inline char down(char c) { return c >= 'A' && c <= 'Z' ? char(c + 32) : c; }

// Simple case mapping of ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic (the one-to-one
// mappings; Python's special cases such as "ß".upper() == "SS" are not reproduced).
inline char32_t cp_upper(char32_t c) {
  if (c >= 'a' && c <= 'z') return c - 32;
  if (c < 0x80) return c;
  if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
  if (c == 0xFF) return 0x178;
  if (c >= 0x100 && c <= 0x17F) {
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c % 2 == 0) ? c - 1 : c;
    if (c == 0x131) return 'I';
    if (c == 0x17F) return 'S';
    if (c < 0x138 || (c >= 0x14A && c <= 0x177)) return (c % 2 == 1) ? c - 1 : c;
    return c;
  }
  if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
  if (c == 0x3C2) return 0x3A3;
  if (c >= 0x430 && c <= 0x44F) return c - 32;
  if (c >= 0x450 && c <= 0x45F) return c - 80;
  return c;
}
inline char32_t cp_lower(char32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c < 0x80) return c;
  if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
  if (c == 0x178) return 0xFF;
  if (c >= 0x100 && c <= 0x17F) {
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c % 2 == 1) ? c + 1 : c;
    if (c == 0x130) return 'i';
    if (c < 0x138 || (c >= 0x14A && c <= 0x177)) return (c % 2 == 0) ? c + 1 : c;
    return c;
  }
  if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
  if (c >= 0x410 && c <= 0x42F) return c + 32;
  if (c >= 0x400 && c <= 0x40F) return c + 80;
  return c;
}
inline bool cp_cased(char32_t c) { return cp_upper(c) != c || cp_lower(c) != c; }

// Maps each code point: f(index, code point, previous code point was cased).
template <class F>
std::string map_cps(std::string_view s, F f) {
  std::string out;
  out.reserve(s.size());
  bool prev_cased = false;
  size_t k = 0;
  for (size_t i = 0; i < s.size(); ++k) {
    const char32_t c = next_cp(s, i);
    tok::detail::append_utf8(out, f(k, c, prev_cased));
    prev_cased = cp_cased(c);
  }
  return out;
}

inline std::string upper(std::string_view s) { return map_cps(s, [](size_t, char32_t c, bool) { return cp_upper(c); }); }
inline std::string lower(std::string_view s) { return map_cps(s, [](size_t, char32_t c, bool) { return cp_lower(c); }); }
inline std::string capitalize(std::string_view s) {
  return map_cps(s, [](size_t k, char32_t c, bool) { return k == 0 ? cp_upper(c) : cp_lower(c); });
}
// str.title(): a cased letter after an uncased character starts a word.
inline std::string title(std::string_view s) {
  return map_cps(s, [](size_t, char32_t c, bool prev) { return prev ? cp_lower(c) : cp_upper(c); });
}

// Code point index of a byte offset (valid UTF-8).
inline int64_t cp_index(std::string_view s, size_t byte) { return int64_t(detail::cp_count(s.substr(0, byte))); }

}  // namespace fathom::tok::jinja::pystr
