#pragma once
// Text helpers shared by the report writers: UTF-8 decoding that survives invalid bytes (token
// pieces are often partial UTF-8), JSON string escaping, shortest round-trip float formatting.
#include <charconv>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace fathom::report {
// Token id → its text (e.g. [&](int32_t id) { return tok.decode({id}, false); }); used by the
// trace writers and the heatmap. An empty function means "no text".
using TokenText = std::function<std::string(int32_t)>;
}  // namespace fathom::report

namespace fathom::report::detail {

// Decodes the code point at s[i] and advances i. Returns -1 (and advances one byte) for a byte
// that does not start a valid, minimal UTF-8 sequence, so callers can show it as \xNN.
inline int32_t utf8_next(std::string_view s, size_t& i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return ++i, c;
  int len = 0;
  int32_t cp = 0;
  if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
  else return ++i, -1;
  if (i + size_t(len) > s.size()) return ++i, -1;
  for (int k = 1; k < len; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return ++i, -1;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  static constexpr int32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return ++i, -1;
  i += size_t(len);
  return cp;
}

inline void utf8_append(std::string& out, int32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18)), out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
  }
}

inline std::string hex_byte(unsigned char c) {
  static constexpr char digits[] = "0123456789ABCDEF";
  return std::string("\\x") + digits[c >> 4] + digits[c & 15];
}

// A JSON string literal (with quotes). Control characters are \u-escaped; bytes that are not
// valid UTF-8 become U+FFFD, since JSON text must be UTF-8.
inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    const int32_t cp = utf8_next(s, i);
    if (cp < 0) {
      out += "\xEF\xBF\xBD";
    } else if (cp == '"') {
      out += "\\\"";
    } else if (cp == '\\') {
      out += "\\\\";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || cp == 0x7F) {
      static constexpr char digits[] = "0123456789abcdef";
      out += "\\u00";
      out += digits[cp >> 4];
      out += digits[cp & 15];
    } else {
      utf8_append(out, cp);
    }
  }
  return out + '"';
}

// Shortest decimal that reads back to the same float; empty for NaN/inf (the caller writes
// null in JSON, an empty field in CSV).
inline std::string float_text(float v) {
  if (!std::isfinite(v)) return {};
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
inline std::string json_number(float v) {
  auto s = float_text(v);
  return s.empty() ? "null" : s;
}

}  // namespace fathom::report::detail
