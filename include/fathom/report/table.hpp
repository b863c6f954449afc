#pragma once
// A plain aligned text table (and its CSV form) that every report reuses: headers, rows of
// strings; cells that look like numbers are right-aligned so that columns of figures line up.
//
//   report::TextTable t({"layer", "PP %", "RG %"});
//   t.add_row({"0", "100.0", "97.5"});
//   std::cout << t.str();
#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fathom/core/error.hpp"

namespace fathom::report {

// One CSV field (RFC 4180): quoted when it holds a comma, a quote, CR or LF, or leading/trailing
// spaces; quotes inside are doubled.
inline std::string csv_field(std::string_view s) {
  bool quote = !s.empty() && (s.front() == ' ' || s.back() == ' ');
  for (char c : s)
    if (c == ',' || c == '"' || c == '\n' || c == '\r') quote = true;
  if (!quote) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

// printf-style formatting of one double with `decimals` digits after the point ("nan" → "-").
inline std::string fixed(double v, int decimals = 1) {
  if (v != v) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

class TextTable {
 public:
  explicit TextTable(std::vector<std::string> headers) : headers_(std::move(headers)) {
    if (headers_.empty()) throw UsageError("", "headers", "a table needs at least one column");
  }

  // A row must have exactly one cell per header.
  void add_row(std::vector<std::string> cells) {
    if (cells.size() != headers_.size())
      throw UsageError("", "row " + std::to_string(rows_.size()),
                       "has " + std::to_string(cells.size()) + " cells, the table has " +
                           std::to_string(headers_.size()) + " columns");
    rows_.push_back(std::move(cells));
  }
  // A horizontal rule before the next row (e.g. between per-layer rows and the totals).
  void add_rule() { rules_.push_back(rows_.size()); }

  size_t columns() const { return headers_.size(); }
  size_t rows() const { return rows_.size(); }

  // Aligned text: header line, dashed rule, rows; columns separated by two spaces.
  std::string str() const {
    std::vector<size_t> w(headers_.size());
    for (size_t c = 0; c < w.size(); ++c) w[c] = width(headers_[c]);
    for (const auto& r : rows_)
      for (size_t c = 0; c < w.size(); ++c) w[c] = std::max(w[c], width(r[c]));
    size_t total = 0;
    for (size_t c = 0; c < w.size(); ++c) total += w[c] + (c ? 2 : 0);
    const std::string rule(total, '-');

    std::vector<bool> numeric(w.size());
    for (size_t c = 0; c < w.size(); ++c) numeric[c] = numeric_column(c);

    std::string out;
    auto line = [&](const std::vector<std::string>& cells) {
      std::string l;
      for (size_t c = 0; c < cells.size(); ++c) {
        if (c) l += "  ";
        const size_t pad = w[c] - width(cells[c]);
        // One alignment per column: right when every non-empty cell is a number.
        const bool right = numeric[c];
        if (right) l.append(pad, ' ');
        l += cells[c];
        if (!right) l.append(pad, ' ');
      }
      while (!l.empty() && l.back() == ' ') l.pop_back();
      out += l + '\n';
    };
    line(headers_);
    out += rule + '\n';
    size_t next_rule = 0;
    for (size_t i = 0; i < rows_.size(); ++i) {
      while (next_rule < rules_.size() && rules_[next_rule] == i) {
        out += rule + '\n';
        ++next_rule;
      }
      line(rows_[i]);
    }
    return out;
  }

  // The same content as CSV (header line, one line per row; rules are dropped).
  std::string csv() const {
    std::string out;
    auto line = [&](const std::vector<std::string>& cells) {
      for (size_t c = 0; c < cells.size(); ++c) {
        if (c) out += ',';
        out += csv_field(cells[c]);
      }
      out += '\n';
    };
    line(headers_);
    for (const auto& r : rows_) line(r);
    return out;
  }

  void print(std::ostream& os) const { os << str(); }

  // "12", "-3.5", "97.5%", "1e-3", "-" (a missing value), "nan": numbers for alignment.
  static bool looks_numeric(std::string_view s) {
    if (s == "-" || s == "nan" || s == "inf" || s == "-inf") return true;
    if (!s.empty() && s.back() == '%') s.remove_suffix(1);
    if (!s.empty() && (s.front() == '-' || s.front() == '+')) s.remove_prefix(1);
    if (s.empty()) return false;
    bool digit = false, dot = false, exp = false;
    for (size_t i = 0; i < s.size(); ++i) {
      const char c = s[i];
      if (c >= '0' && c <= '9') {
        digit = true;
      } else if (c == '.' && !dot && !exp) {
        dot = true;
      } else if ((c == 'e' || c == 'E') && digit && !exp && i + 1 < s.size()) {
        exp = true;
        if (s[i + 1] == '-' || s[i + 1] == '+') ++i;
      } else {
        return false;
      }
    }
    return digit;
  }

 private:
  // Display width in code points (UTF-8 continuation bytes do not count), so "Δ" is one column.
  static size_t width(std::string_view s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  }
  bool numeric_column(size_t c) const {
    bool any = false;
    for (const auto& r : rows_) {
      if (r[c].empty()) continue;
      if (!looks_numeric(r[c])) return false;
      any = true;
    }
    return any;
  }

  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
  std::vector<size_t> rules_;  // row indices a rule precedes
};

}  // namespace fathom::report
