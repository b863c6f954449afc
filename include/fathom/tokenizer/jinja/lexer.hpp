#pragma once
// Template text -> tokens, with Jinja's whitespace rules as transformers configures them
// (trim_blocks and lstrip_blocks on, keep_trailing_newline off):
//   - newlines (\r\n, \r) become \n and one trailing newline of the template is dropped;
//   - `{%- ... -%}`, `{{- ... -}}`, `{#- ... -#}` strip all whitespace on that side;
//   - trim_blocks: the first newline after a block or comment tag is dropped (not after `}}`);
//   - lstrip_blocks: spaces/tabs from the start of a line up to a block or comment tag are
//     dropped, unless the tag opens with `{%+`;
//   - `{% raw %}...{% endraw %}` is text.
// Inside tags: names, integers, floats, strings (Python escapes), operators. A tag ends only at
// bracket depth 0, so `{{ {'a': {'b': 1}} }}` works.
#include <cctype>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/tokenizer/jinja/error.hpp"

namespace fathom::tok::jinja {

enum class Tok { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // Text: the data; String: the unescaped value; Name/Op/Int/Float: as written
  Pos pos;
};

namespace detail {

inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
inline bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

class Lexer {
 public:
  Lexer(std::string src, std::string name) : s_(normalize(std::move(src))), name_(std::move(name)) {
    size_t at = 0;
    line_starts_.push_back(0);
    while ((at = s_.find('\n', at)) != std::string::npos) line_starts_.push_back(++at);
  }

  std::vector<Token> run() {
    size_t i = 0;
    bool line_starting = true;   // the text that follows starts a line (for lstrip_blocks)
    bool strip_next = false;     // the previous tag ended with '-'
    while (i <= s_.size()) {
      size_t j = s_.find('{', i);
      while (j != std::string::npos && j + 1 < s_.size() && s_[j + 1] != '{' && s_[j + 1] != '%' && s_[j + 1] != '#')
        j = s_.find('{', j + 1);
      if (j != std::string::npos && j + 1 >= s_.size()) j = std::string::npos;
      std::string text = s_.substr(i, (j == std::string::npos ? s_.size() : j) - i);
      if (strip_next) {
        size_t k = 0;
        while (k < text.size() && is_ws(text[k])) ++k;
        text.erase(0, k);
      }
      if (j == std::string::npos) {
        emit_text(std::move(text), i);
        break;
      }
      const char kind = s_[j + 1];
      const char mod = j + 2 < s_.size() ? s_[j + 2] : '\0';
      if (mod == '-') {
        while (!text.empty() && is_ws(text.back())) text.pop_back();
      } else if (mod != '+' && kind != '{') {
        // lstrip_blocks: only whitespace between the line start and the tag.
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if (l_pos > 0 || line_starting) {
          bool blank = true;
          for (size_t k = l_pos; k < text.size(); ++k) if (text[k] != ' ' && text[k] != '\t' && text[k] != '\r' && text[k] != '\f' && text[k] != '\v') blank = false;
          if (blank) text.erase(l_pos);
        }
      }
      emit_text(std::move(text), i);
      size_t k = j + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
      if (kind == '#') {
        const size_t e = s_.find("#}", k);
        if (e == std::string::npos) fail(j, "comment", "unclosed comment: no #}");
        const bool minus = e > k && s_[e - 1] == '-';
        i = e + 2;
        strip_next = minus;
        line_starting = false;
        if (!minus && i < s_.size() && s_[i] == '\n') { ++i; line_starting = true; }
        continue;
      }
      const bool block = kind == '%';
      tokens_.push_back({block ? Tok::BlockBegin : Tok::VarBegin, block ? "{%" : "{{", pos(j)});
      const size_t first_tok = tokens_.size();
      bool minus = false;
      k = lex_tag(k, block, minus, j);
      i = k;
      strip_next = minus;
      line_starting = false;
      if (block && !minus && i < s_.size() && s_[i] == '\n') { ++i; line_starting = true; }
      // {% raw %}: everything up to {% endraw %} is text.
      if (block && tokens_.size() == first_tok + 2 && tokens_[first_tok].type == Tok::Name &&
          tokens_[first_tok].text == "raw") {
        tokens_.resize(first_tok - 1);
        i = lex_raw(i, j, strip_next, line_starting);
      }
    }
    tokens_.push_back({Tok::Eof, "", pos(s_.size())});
    return std::move(tokens_);
  }

 private:
  static std::string normalize(std::string s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\r') {
        out += '\n';
        if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      } else {
        out += s[i];
      }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  Pos pos(size_t off) const {
    size_t lo = 0, hi = line_starts_.size();
    while (hi - lo > 1) {
      const size_t mid = (lo + hi) / 2;
      (line_starts_[mid] <= off ? lo : hi) = mid;
    }
    return {int(lo + 1), int(off - line_starts_[lo] + 1)};
  }

  [[noreturn]] void fail(size_t off, const std::string& construct, const std::string& why) const {
    throw SyntaxError(name_, pos(off).str(), construct + ": " + why);
  }

  void emit_text(std::string text, size_t off) {
    if (!text.empty()) tokens_.push_back({Tok::Text, std::move(text), pos(off)});
  }

  size_t lex_raw(size_t i, size_t tag_at, bool& strip_next, bool& line_starting) {
    // {% endraw %} with optional '-' / '+' and spaces.
    size_t search = i;
    while (true) {
      const size_t b = s_.find("{%", search);
      if (b == std::string::npos) fail(tag_at, "raw", "no {% endraw %}");
      size_t k = b + 2;
      const bool lminus = k < s_.size() && s_[k] == '-';
      if (k < s_.size() && (s_[k] == '-' || s_[k] == '+')) ++k;
      while (k < s_.size() && is_ws(s_[k])) ++k;
      if (s_.compare(k, 6, "endraw") != 0) { search = b + 2; continue; }
      k += 6;
      while (k < s_.size() && is_ws(s_[k])) ++k;
      bool rminus = false;
      if (k < s_.size() && s_[k] == '-') { rminus = true; ++k; }
      if (s_.compare(k, 2, "%}") != 0) { search = b + 2; continue; }
      std::string text = s_.substr(i, b - i);
      if (strip_next) { size_t z = 0; while (z < text.size() && is_ws(text[z])) ++z; text.erase(0, z); }
      if (lminus) while (!text.empty() && is_ws(text.back())) text.pop_back();
      emit_text(std::move(text), i);
      k += 2;
      strip_next = rminus;
      line_starting = false;
      if (!rminus && k < s_.size() && s_[k] == '\n') { ++k; line_starting = true; }
      return k;
    }
  }

  // Lexes the inside of a tag starting at k; returns the offset after its end.
  size_t lex_tag(size_t k, bool block, bool& minus, size_t tag_at) {
    const char close = block ? '%' : '}';
    int depth = 0;
    while (true) {
      while (k < s_.size() && is_ws(s_[k])) ++k;
      if (k >= s_.size()) fail(tag_at, block ? "block tag" : "expression tag", std::string("unclosed tag: no ") + (block ? "%}" : "}}"));
      if (depth == 0) {
        if (s_[k] == '-' && k + 2 < s_.size() + 0 && s_[k + 1] == close && s_[k + 2] == '}') {
          minus = true;
          tokens_.push_back({block ? Tok::BlockEnd : Tok::VarEnd, "", pos(k)});
          return k + 3;
        }
        if (block && s_[k] == '+' && k + 2 < s_.size() && s_[k + 1] == '%' && s_[k + 2] == '}') {
          tokens_.push_back({Tok::BlockEnd, "", pos(k)});
          return k + 3;
        }
        if (s_[k] == close && k + 1 < s_.size() && s_[k + 1] == '}') {
          tokens_.push_back({block ? Tok::BlockEnd : Tok::VarEnd, "", pos(k)});
          return k + 2;
        }
      }
      const size_t start = k;
      const char c = s_[k];
      if (is_name_start(c)) {
        while (k < s_.size() && (is_name_start(s_[k]) || is_digit(s_[k]))) ++k;
        tokens_.push_back({Tok::Name, s_.substr(start, k - start), pos(start)});
      } else if (is_digit(c)) {
        k = lex_number(k);
      } else if (c == '\'' || c == '"') {
        k = lex_string(k);
      } else {
        static const char* two[] = {"//", "**", "==", "!=", ">=", "<="};
        std::string op;
        for (const char* t : two) if (s_.compare(k, 2, t) == 0) op = t;
        if (op.empty()) {
          if (std::string_view("+-*/%~<>=.,:|()[]{}").find(c) == std::string_view::npos)
            fail(k, "expression", std::string("unexpected character '") + c + "'");
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if (op == ")" || op == "]" || op == "}") {
          if (depth == 0) fail(k, "expression", "unbalanced '" + op + "'");
          --depth;
        }
        k += op.size();
        tokens_.push_back({Tok::Op, std::move(op), pos(start)});
      }
    }
  }

  size_t lex_number(size_t k) {
    const size_t start = k;
    const auto digits = [&] { while (k < s_.size() && (is_digit(s_[k]) || (s_[k] == '_' && k + 1 < s_.size() && is_digit(s_[k + 1])))) ++k; };
    digits();
    bool is_float = false;
    // `x.0.1` is attribute access: no float right after a '.' token.
    const bool after_dot = !tokens_.empty() && tokens_.back().type == Tok::Op && tokens_.back().text == ".";
    if (!after_dot && k + 1 < s_.size() && s_[k] == '.' && is_digit(s_[k + 1])) { ++k; digits(); is_float = true; }
    if (!after_dot && k < s_.size() && (s_[k] == 'e' || s_[k] == 'E')) {
      size_t e = k + 1;
      if (e < s_.size() && (s_[e] == '+' || s_[e] == '-')) ++e;
      if (e < s_.size() && is_digit(s_[e])) { k = e; digits(); is_float = true; }
    }
    std::string t;
    for (size_t z = start; z < k; ++z) if (s_[z] != '_') t += s_[z];
    tokens_.push_back({is_float ? Tok::Float : Tok::Int, std::move(t), pos(start)});
    return k;
  }

  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;  // Python would keep a lone surrogate
    if (cp < 0x80) out += char(cp);
    else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) { out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F)); }
    else { out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F)); }
  }

  // Python string literal escapes (Jinja decodes literals with "unicode-escape").
  size_t lex_string(size_t k) {
    const size_t start = k;
    const char q = s_[k++];
    std::string out;
    while (true) {
      if (k >= s_.size()) fail(start, "string literal", "unterminated string");
      const char c = s_[k];
      if (c == q) { ++k; break; }
      if (c != '\\') { out += c; ++k; continue; }
      if (k + 1 >= s_.size()) fail(start, "string literal", "unterminated string");
      const char e = s_[k + 1];
      k += 2;
      const auto hex = [&](int n) -> uint32_t {
        uint32_t v = 0;
        for (int z = 0; z < n; ++z, ++k) {
          if (k >= s_.size() || !std::isxdigit(static_cast<unsigned char>(s_[k])))
            fail(start, "string literal", "truncated \\x/\\u escape");
          const char h = s_[k];
          v = v * 16 + uint32_t(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        return v;
      };
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\n': break;  // line continuation
        case 'x': put_utf8(out, hex(2)); break;
        case 'u': put_utf8(out, hex(4)); break;
        case 'U': put_utf8(out, hex(8)); break;
        default:
          if (e >= '0' && e <= '7') {
            uint32_t v = uint32_t(e - '0');
            for (int z = 0; z < 2 && k < s_.size() && s_[k] >= '0' && s_[k] <= '7'; ++z, ++k) v = v * 8 + uint32_t(s_[k] - '0');
            put_utf8(out, v);
          } else {
            out += '\\';
            out += e;
          }
      }
    }
    tokens_.push_back({Tok::String, std::move(out), pos(start)});
    return k;
  }

  std::string s_, name_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
};

}  // namespace detail

inline std::vector<Token> lex(std::string source, std::string name) {
  return detail::Lexer(std::move(source), std::move(name)).run();
}

}  // namespace fathom::tok::jinja
