#pragma once
// Answer extraction from generated text (the Void paper's protocol generates, then reads the
// answer; its released code has no scoring, so the rule is ours and documented in
// docs/evaluation.md).
//
// Step 0, the echo: small models often repeat the prompt. What the reply copies from the prompt
// is removed before any rule looks at it, so that "Options: A. Paris ..." is never read as A:
//   - every occurrence of the item's question and passage, and a "Question:" echo cut off by the
//     length limit (the header followed by a prefix of the question up to the end of the reply);
//   - an echoed option list: when the reply contains "L. <full text of option L>" for two or
//     more different labels, all of those, and a cut-off last line "L. <start of option L>";
//   - the prompt's headers and placeholders: "Question:", "Passage:", "Options:", "Output
//     format:", "Output Format:", "[Option]", "[True/False]" and the BoolQ instruction sentence.
// Then the rules, in order; the first rule that finds something decides:
//   1. a bracketed label, as the prompt's "Output format: [Option]" asks: "[B]", "[ true ]";
//   2. an explicit statement: "answer is C", "Answer: (C)", "answer: [C]", "option C"
//      ("answer"/"answers"/"option" case-insensitive, then optional "is", ":", "(" or "[");
//   3. a standalone label: for letters, an upper-case A-D not inside a word and followed by
//      ".", ")", ":", "]", "," or the end of the text, or "(C)"; the whole reply being "C";
//      for word labels (True/False, yes/no), the word on its own, case-insensitive;
//   4. the full text of exactly one option, case-insensitive;
// If the deciding rule finds two different labels ("A or B", "[A] ... [C]") the reply has no
// answer. No answer is -1: scored as wrong and counted as unanswered in every results table.
// Labels are compared case-insensitively in rules 1, 2 and 4; rule 3 wants an upper-case letter
// so that the article "a" in "a cat" is not read as option A.
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/eval/task.hpp"

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

// Replaces every occurrence of `what` in s by a newline (keeps word boundaries apart).
inline void erase_all(std::string& s, std::string_view what) {
  if (what.empty() || s.find(what) == std::string::npos) return;
  std::string o;
  size_t from = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, from)) {
    o.append(s, from, i - from);
    o += '\n';
    from = i + what.size();
  }
  o.append(s, from, std::string::npos);
  s = std::move(o);
}
// Whether s[p] starts a line (only spaces or tabs before it on its line).
inline bool line_start(std::string_view s, size_t p) {
  while (p > 0 && (s[p - 1] == ' ' || s[p - 1] == '\t')) --p;
  return p == 0 || s[p - 1] == '\n';
}

// Step 0: the reply without what it copied from the prompt.
inline std::string remove_echo(std::string_view out, const std::vector<std::string>& labels,
                               const std::vector<std::string>& choices, const std::string& question,
                               const std::string& passage) {
  std::string s(out);
  // A "Question:" echo cut off by the length limit: the header, then a prefix of the question
  // that runs to the end of the reply.
  if (!question.empty())
    for (size_t h = s.find("Question:"); h != std::string::npos; h = s.find("Question:", h + 1)) {
      const size_t a = skip_spaces(s, h + 9);
      if (a < s.size() && question.compare(0, s.size() - a, s, a, s.size() - a) == 0) {
        s.resize(h);
        break;
      }
    }
  if (question.size() > 1) erase_all(s, question);
  if (passage.size() > 1) erase_all(s, passage);
  // An echoed option list: "L. <option L>" for two or more labels.
  std::vector<std::string> items;
  for (size_t k = 0; k < labels.size() && k < choices.size(); ++k) {
    const std::string it = labels[k] + ". " + choices[k];
    if (!choices[k].empty() && s.find(it) != std::string::npos) items.push_back(it);
  }
  if (items.size() >= 2) {
    for (auto& it : items) erase_all(s, it);
    // The list may be cut off: a last line "L. <start of option L>".
    for (size_t k = 0; k < labels.size() && k < choices.size(); ++k) {
      const std::string head = labels[k] + ". ";
      const size_t p = s.rfind(head);
      if (p == std::string::npos || !line_start(s, p)) continue;
      const size_t a = p + head.size();
      if (a < s.size() && choices[k].compare(0, s.size() - a, s, a, s.size() - a) == 0) {
        s.resize(p);
        break;
      }
    }
  }
  for (const char* h : {"Respond to the given question based on the passage with True or False.",
                        "Question:", "Passage:", "Options:", "Output format:", "Output Format:",
                        "[Option]", "[True/False]"})
    erase_all(s, h);
  return s;
}

// The label all matches agree on; -1 when there are none or they disagree (-2: none found).
inline int agreed(const std::vector<int>& found) {
  if (found.empty()) return -2;
  for (int k : found)
    if (k != found[0]) return -1;
  return found[0];
}
}  // namespace detail

// The option a reply chose (index into labels), or -1. `question`/`passage`: the prompt's text
// the reply may echo (step 0).
inline int extract_answer(std::string_view reply, const std::vector<std::string>& labels,
                          const std::vector<std::string>& choices = {},
                          const std::string& question = {}, const std::string& passage = {}) {
  using namespace detail;
  const std::string text = remove_echo(reply, labels, choices, question, passage);
  const std::string_view out = text;
  std::vector<std::string> ll;
  for (auto& l : labels) ll.push_back(lower(l));
  const std::string low = lower(out);
  std::vector<int> found;

  // 1. [label]
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] != '[') continue;
    const size_t a = skip_spaces(out, i + 1);
    const int k = label_at(out, a, ll);
    if (k < 0) continue;
    const size_t b = skip_spaces(out, a + ll[size_t(k)].size());
    if (b < out.size() && out[b] == ']') found.push_back(k);
  }
  if (int k = agreed(found); k != -2) return k;
  // 2. "answer is X", "answer: (X)", "option X"
  for (size_t i = 0; i < low.size(); ++i) {
    size_t j;
    const bool answer = low.compare(i, 6, "answer") == 0;
    if (answer || low.compare(i, 6, "option") == 0) j = i + 6;
    else continue;
    if (i > 0 && is_word(low[i - 1])) continue;
    if (answer && j < low.size() && low[j] == 's') ++j;  // "answers"; "options" is a header
    j = skip_spaces(low, j);
    if (low.compare(j, 2, "is") == 0 && (j + 2 >= low.size() || !is_word(low[j + 2])))
      j = skip_spaces(low, j + 2);
    if (j < low.size() && low[j] == ':') j = skip_spaces(low, j + 1);
    if (j < low.size() && (low[j] == '(' || low[j] == '[')) j = skip_spaces(low, j + 1);
    if (j >= low.size()) continue;
    // A single-letter label must be upper case so "answer is a cat" is not "A".
    const int k = label_at(out, j, ll);
    if (k < 0) continue;
    if (ll[size_t(k)].size() == 1 && !std::isupper(static_cast<unsigned char>(out[j]))) continue;
    found.push_back(k);
  }
  if (int k = agreed(found); k != -2) return k;
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
      if (paren || punct) found.push_back(k);
    } else {
      found.push_back(k);
    }
  }
  if (int k = agreed(found); k != -2) return k;
  // 4. exactly one option's full text
  int one = -1;
  for (size_t k = 0; k < choices.size(); ++k) {
    const std::string c = lower(choices[k]);
    if (c.empty() || low.find(c) == std::string::npos) continue;
    if (one >= 0) return -1;
    one = int(k);
  }
  return one;
}

// For an item: its options and the prompt text a reply may echo.
inline int extract_answer(std::string_view reply, const std::vector<std::string>& labels,
                          const Item& item) {
  return extract_answer(reply, labels, item.choices, item.question, item.passage);
}

}  // namespace fathom::eval
