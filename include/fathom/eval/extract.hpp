#pragma once
// Answer extraction from generated text (the Void paper's protocol generates, then reads the
// answer). The rule, in order; the first rule that finds something decides, and within a rule
// the earliest match in the text wins:
//   1. a bracketed label, as the prompt's "Output format: [Option]" asks: "[B]", "[ true ]";
//   2. an explicit statement: "answer is C", "Answer: (C)", "answer: [C]", "option C"
//      ("answer"/"option" case-insensitive, then optional "is", ":", "(" or "[");
//   3. a standalone label: for letters, an upper-case A-D not inside a word and followed by
//      ".", ")", ":", "]", "," or the end of the text, or "(C)"; the whole reply being "C";
//      for word labels (True/False, yes/no), the word on its own, case-insensitive;
//   4. the full text of exactly one option, case-insensitive;
//   otherwise -1 (no answer; scored as wrong).
// Labels are compared case-insensitively in rules 1, 2 and 4; rule 3 wants an upper-case letter
// so that the article "a" in "a cat" is not read as option A.
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

namespace fathom::eval {

namespace detail {
inline std::string lower(std::string_view s) {
  std::string o(s);
  for (auto& c : o) c = char(std::tolower(static_cast<unsigned char>(c)));
  return o;
}
inline bool is_word(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
inline size_t skip_spaces(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) ++i;
  return i;
}
// Which label (case-insensitive) starts at s[i] and ends at a word boundary; -1 if none.
inline int label_at(std::string_view s, size_t i, const std::vector<std::string>& labels_lower) {
  int best = -1;
  size_t best_len = 0;
  for (size_t k = 0; k < labels_lower.size(); ++k) {
    const auto& l = labels_lower[k];
    if (l.empty() || i + l.size() > s.size()) continue;
    bool eq = true;
    for (size_t j = 0; j < l.size() && eq; ++j)
      eq = char(std::tolower(static_cast<unsigned char>(s[i + j]))) == l[j];
    if (!eq) continue;
    if (i + l.size() < s.size() && is_word(s[i + l.size()])) continue;
    if (l.size() > best_len) best = int(k), best_len = l.size();
  }
  return best;
}
}  // namespace detail

inline int extract_answer(std::string_view out, const std::vector<std::string>& labels,
                          const std::vector<std::string>& choices = {}) {
  using namespace detail;
  std::vector<std::string> ll;
  for (auto& l : labels) ll.push_back(lower(l));
  const std::string low = lower(out);

  // 1. [label]
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] != '[') continue;
    const size_t a = skip_spaces(out, i + 1);
    const int k = label_at(out, a, ll);
    if (k < 0) continue;
    const size_t b = skip_spaces(out, a + ll[size_t(k)].size());
    if (b < out.size() && out[b] == ']') return k;
  }
  // 2. "answer is X", "answer: (X)", "option X"
  for (size_t i = 0; i < low.size(); ++i) {
    size_t j;
    if (low.compare(i, 6, "answer") == 0) j = i + 6;
    else if (low.compare(i, 6, "option") == 0) j = i + 6;
    else continue;
    if (i > 0 && is_word(low[i - 1])) continue;
    if (j < low.size() && low[j] == 's') ++j;  // "options"/"answers"
    j = skip_spaces(low, j);
    if (low.compare(j, 2, "is") == 0 && (j + 2 >= low.size() || !is_word(low[j + 2])))
      j = skip_spaces(low, j + 2);
    if (j < low.size() && low[j] == ':') j = skip_spaces(low, j + 1);
    if (j < low.size() && (low[j] == '(' || low[j] == '[')) j = skip_spaces(low, j + 1);
    if (j >= low.size()) continue;
    // A single-letter label must be followed by a boundary so "answer is a cat" is not "A"
    // unless written upper case.
    const int k = label_at(out, j, ll);
    if (k < 0) continue;
    if (ll[size_t(k)].size() == 1 && !std::isupper(static_cast<unsigned char>(out[j]))) continue;
    return k;
  }
  // 3. standalone label
  const std::string_view trimmed = [&] {
    size_t a = skip_spaces(out, 0), b = out.size();
    while (b > a && std::isspace(static_cast<unsigned char>(out[b - 1]))) --b;
    return out.substr(a, b - a);
  }();
  for (size_t k = 0; k < labels.size(); ++k)
    if (lower(trimmed) == ll[k]) return int(k);
  for (size_t i = 0; i < out.size(); ++i) {
    if (i > 0 && is_word(out[i - 1])) continue;
    const int k = label_at(out, i, ll);
    if (k < 0) continue;
    const auto& l = ll[size_t(k)];
    if (l.size() == 1) {
      if (!std::isupper(static_cast<unsigned char>(out[i]))) continue;
      const size_t e = i + 1;
      const bool paren = i > 0 && out[i - 1] == '(' && e < out.size() && out[e] == ')';
      const bool punct = e >= out.size() || out[e] == '.' || out[e] == ')' || out[e] == ':' ||
                         out[e] == ']' || out[e] == ',';
      if (paren || punct) return k;
    } else {
      return k;
    }
  }
  // 4. exactly one option's full text
  int found = -1;
  for (size_t k = 0; k < choices.size(); ++k) {
    const std::string c = lower(choices[k]);
    if (c.empty() || low.find(c) == std::string::npos) continue;
    if (found >= 0) return -1;
    found = int(k);
  }
  return found;
}

}  // namespace fathom::eval
