#pragma once
// Prompts for the eval harness: the wording presets, k-shot examples, the model family's chat
// format, and truncation to the model's context.
//
// Presets (MC = MMLU and GPQA; labels A-D):
//   void    the Void paper's released prompt, byte for byte (docs/evaluation.md). The user content
//           is an indented multi-line string: it starts with a newline and every line after the
//           first keeps four spaces of indentation; the option lines are joined by bare
//           newlines, so only the first option is indented (⏎ newline, · space):
//             MC:    ⏎····Question:⏎····{q}⏎⏎····Options:⏎····A. {c0}⏎B. {c1}⏎C. {c2}⏎D. {c3}
//                    ⏎⏎····Output format:⏎····[Option]⏎⏎····
//             BoolQ: ⏎····Respond to the given question based on the passage with True or False.
//                    ⏎····Passage:⏎····{p}⏎⏎····Options:⏎····{q}⏎⏎····Output Format:⏎····
//                    [True/False]⏎····
//           answered as "[A]" / "[True]". With a chat template it is ONE user turn, no system
//           turn, with the generation prompt, and the rendered text is encoded as the released
//           code encodes it: with the tokenizer's own special tokens added (a template that
//           writes BOS itself then gets a second one, exactly as there).
//   lm-eval the lm-evaluation-harness wording, answered as " A" (" yes"/" no" for BoolQ):
//             MC:    "The following are multiple choice questions (with answers) about {subject}.\n\n"
//                    then per example "{q}\nA. {c0}\nB. {c1}\nC. {c2}\nD. {c3}\nAnswer:"
//             BoolQ: "{p}\nQuestion: {q}?\nAnswer:"
// k-shot examples (MMLU dev, the first k of the item's subject, as lm-eval) come before the item,
// each followed by its answer and a blank line. With a chat template the examples are
// user/assistant turns, the item is the last user turn, the generation prompt is added and the
// answer continuation carries no leading space. Without one (the 260K models) it is plain text
// that starts with the tokenizer's BOS.
//
// Truncation, when a prompt is longer than its budget: k-shot examples are dropped first (from
// the first). Then
//   - a chat prompt shortens the user content, never the template: the passage loses text from
//     its end first, then the question; the template's header and special tokens, the options
//     and the answer cue stay whole (a context too small even for those is a UsageError);
//   - a plain-text prompt loses tokens from the left (after BOS), so the end — the options and
//     the answer cue — survives.
// Any of these counts the item as truncated.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/eval/task.hpp"
#include "fathom/tokenizer/any_tokenizer.hpp"

namespace fathom::eval {

enum class Preset : uint8_t { Void, LmEval };

inline Preset parse_preset(const std::string& s) {
  if (s == "void") return Preset::Void;
  if (s == "lm-eval") return Preset::LmEval;
  throw UsageError("", "preset", "unknown preset '" + s + "' (void, lm-eval)");
}
constexpr const char* preset_name(Preset p) { return p == Preset::Void ? "void" : "lm-eval"; }

struct PromptOptions {
  Preset preset = Preset::LmEval;
  int shots = 0;
  bool chat = true;  // use the chat template when the tokenizer has one
};

struct Prompt {
  std::string text;                                // the rendered context before any token cut
  std::vector<int32_t> tokens;                     // the context, BOS included
  std::vector<std::vector<int32_t>> continuations; // per option: its answer's tokens (loglik)
  std::vector<std::string> labels;                 // per option: "A", "True", "yes", ...
  int shots = 0;                                   // examples kept
  bool truncated = false;                          // examples dropped or tokens cut
  size_t cut_tokens = 0;                           // tokens removed from the left (plain text)
  size_t cut_passage = 0, cut_question = 0;        // bytes removed from their ends (chat)
};

// Option labels of an item under a preset.
inline std::vector<std::string> option_labels(TaskKind kind, Preset preset, size_t n) {
  if (kind == TaskKind::BoolQ)
    return preset == Preset::Void ? std::vector<std::string>{"True", "False"}
                                  : std::vector<std::string>{"yes", "no"};
  std::vector<std::string> l;
  for (size_t i = 0; i < n; ++i) l.push_back(std::string(1, char('A' + i)));
  return l;
}

namespace detail {
inline std::string subject_words(std::string s) {
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}
inline std::string strip(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}
}  // namespace detail

// The item's own text (no examples, no answer).
inline std::string item_text(TaskKind kind, Preset preset, const Item& it) {
  const auto labels = option_labels(kind, preset, it.choices.size());
  if (kind == TaskKind::BoolQ) {
    if (preset == Preset::Void)
      return "\n    Respond to the given question based on the passage with True or False."
             "\n    Passage:\n    " + it.passage + "\n\n    Options:\n    " + it.question +
             "\n\n    Output Format:\n    [True/False]\n    ";
    return it.passage + "\nQuestion: " + it.question + "?\nAnswer:";
  }
  if (preset == Preset::Void) {
    std::string options;  // "A. c0\nB. c1\n...": bare newlines, no indentation
    for (size_t i = 0; i < it.choices.size(); ++i)
      options += (i ? "\n" : "") + labels[i] + ". " + it.choices[i];
    return "\n    Question:\n    " + it.question + "\n\n    Options:\n    " + options +
           "\n\n    Output format:\n    [Option]\n\n    ";
  }
  std::string s = detail::strip(it.question);
  for (size_t i = 0; i < it.choices.size(); ++i) s += "\n" + labels[i] + ". " + it.choices[i];
  return s + "\nAnswer:";
}

// The answer as the model should continue: "[A]" (void) or "A" (lm-eval; a space is put in
// front when the context does not end in whitespace).
inline std::string answer_text(Preset preset, const std::string& label) {
  return preset == Preset::Void ? "[" + label + "]" : label;
}

inline std::string task_header(TaskKind kind, Preset preset, const Item& it) {
  if (preset != Preset::LmEval || kind == TaskKind::BoolQ) return {};
  return "The following are multiple choice questions (with answers) about " +
         detail::subject_words(it.subject) + ".\n\n";
}

class PromptBuilder {
 public:
  PromptBuilder(const tok::AnyTokenizer& tok, TaskKind kind, PromptOptions o)
      : tok_(&tok), kind_(kind), o_(o), chat_(o.chat && tok.has_chat_template()) {}

  bool uses_chat() const { return chat_; }

  // The context text with the first `k` of `shots` examples and whether it is plain (encode
  // with BOS) or a rendered chat (special tokens already in the text).
  std::string context_text(const Item& it, const std::vector<const Item*>& shots, size_t k) const {
    const std::string head = task_header(kind_, o_.preset, it);
    const auto ex_answer = [&](const Item& e) {
      return answer_text(o_.preset, option_labels(kind_, o_.preset, e.choices.size())[size_t(e.answer)]);
    };
    if (chat_) {
      std::vector<tok::ChatMessage> msgs;
      for (size_t i = 0; i < k; ++i) {
        msgs.push_back({"user", (i == 0 ? head : "") + item_text(kind_, o_.preset, *shots[i])});
        msgs.push_back({"assistant", ex_answer(*shots[i])});
      }
      msgs.push_back({"user", (k == 0 ? head : "") + item_text(kind_, o_.preset, it)});
      return tok_->apply_chat_template(msgs, true);
    }
    std::string s = head;
    for (size_t i = 0; i < k; ++i)
      s += item_text(kind_, o_.preset, *shots[i]) + sep() + ex_answer(*shots[i]) + "\n\n";
    return s + item_text(kind_, o_.preset, it);
  }

  // Tokens of a context text: plain text gets the tokenizer's special tokens (BOS); a rendered
  // chat has them in its text already, except under the void preset, which encodes it as the
  // released code does (the tokenizer's special tokens added on top).
  std::vector<int32_t> encode_context(const std::string& text) const {
    return tok_->encode(text, add_special());
  }

  // Builds the prompt for `it` within `budget` tokens of context; `reserve_continuation` adds
  // room for the longest answer continuation (log-likelihood scoring).
  Prompt build(const Item& it, const std::vector<Item>& dev, size_t budget,
               bool reserve_continuation) const {
    std::vector<const Item*> shots;
    for (const auto& d : dev)
      if (int(shots.size()) < o_.shots && d.subject == it.subject) shots.push_back(&d);
    if (int(shots.size()) < o_.shots)
      throw UsageError("", "shots", std::to_string(o_.shots) + "-shot needs " +
                                        std::to_string(o_.shots) + " dev examples of '" +
                                        it.subject + "', found " + std::to_string(shots.size()));
    Prompt p;
    p.labels = option_labels(kind_, o_.preset, it.choices.size());
    size_t room = 0;
    for (size_t k = shots.size() + 1; k-- > 0;) {
      room = render(p, it, shots, k, budget, reserve_continuation);
      if (p.tokens.size() <= room) return p;
      p.truncated = true;
    }
    if (chat_) return shorten_content(std::move(p), it, budget, reserve_continuation);
    // Plain text, still too long without examples: cut from the left, keep BOS.
    const bool bos = !p.tokens.empty() && p.tokens[0] == tok_->bos_id() && room > 1;
    const size_t keep = room - (bos ? 1 : 0);
    p.cut_tokens = p.tokens.size() - room;
    std::vector<int32_t> t;
    if (bos) t.push_back(p.tokens[0]);
    t.insert(t.end(), p.tokens.end() - std::ptrdiff_t(keep), p.tokens.end());
    p.tokens = std::move(t);
    return p;
  }

 private:
  // lm-eval's pair encoding: the continuation is what encoding context+answer adds beyond the
  // context's own tokens, so merges at the boundary are tokenised as the model would see them.
  std::vector<int32_t> continuation(const std::string& ctx, const std::vector<int32_t>& ctx_ids,
                                    const std::string& answer) const {
    auto whole = tok_->encode(ctx + answer, add_special());
    if (whole.size() > ctx_ids.size() && std::equal(ctx_ids.begin(), ctx_ids.end(), whole.begin()))
      return std::vector<int32_t>(whole.begin() + std::ptrdiff_t(ctx_ids.size()), whole.end());
    return tok_->encode(answer, false);  // the boundary merged: score the answer on its own
  }
  // The void text ends in a newline and indentation already: an example's answer follows it.
  std::string sep() const { return o_.preset == Preset::Void ? "" : " "; }
  bool add_special() const { return !chat_ || o_.preset == Preset::Void; }

  // Renders `it` with the first k examples into p (text, tokens, continuations, shots); returns
  // the room the context has within `budget` once the longest continuation is reserved.
  size_t render(Prompt& p, const Item& it, const std::vector<const Item*>& shots, size_t k,
                size_t budget, bool reserve_continuation) const {
    p.text = context_text(it, shots, k);
    p.tokens = encode_context(p.text);
    p.shots = int(k);
    if (reserve_continuation) {
      p.continuations.clear();
      const bool space = !chat_ && o_.preset == Preset::LmEval;
      for (auto& l : p.labels)
        p.continuations.push_back(
            continuation(p.text, p.tokens, (space ? " " : "") + answer_text(o_.preset, l)));
    }
    size_t longest = 0;
    for (auto& c : p.continuations) longest = std::max(longest, c.size());
    return budget > longest ? budget - longest : 1;
  }

  // A chat prompt that does not fit zero-shot: the passage, then the question, loses bytes from
  // its end (at UTF-8 character boundaries) until the rendered prompt fits; the template, its
  // special tokens, the options and the answer cue are never cut. Binary search on the length
  // kept (the token count grows with it).
  Prompt shorten_content(Prompt p, const Item& it, size_t budget, bool reserve) const {
    Item cut = it;
    const auto fits = [&](Prompt& q) {
      const size_t room = render(q, cut, {}, 0, budget, reserve);
      return q.tokens.size() <= room;
    };
    for (std::string Item::*field : {&Item::passage, &Item::question}) {
      const std::string whole = it.*field;
      (cut.*field).clear();
      Prompt q = p;
      if (!fits(q)) continue;  // does not fit even without this field: the next one is cut too
      size_t lo = 0, hi = whole.size();  // a prefix of lo bytes fits, hi does not
      while (hi - lo > 1) {
        const size_t mid = utf8_floor(whole, lo + (hi - lo) / 2);
        if (mid <= lo) break;
        cut.*field = whole.substr(0, mid);
        Prompt r = p;
        (fits(r) ? lo : hi) = mid;
      }
      cut.*field = whole.substr(0, lo);
      render(p, cut, {}, 0, budget, reserve);
      p.cut_passage = it.passage.size() - cut.passage.size();
      p.cut_question = it.question.size() - cut.question.size();
      p.truncated = true;
      return p;
    }
    throw UsageError("", "context", "the prompt of '" + it.id + "' does not fit a context of " +
                                        std::to_string(budget) +
                                        " tokens even with an empty passage and question");
  }
  // The largest UTF-8 character boundary <= i.
  static size_t utf8_floor(const std::string& s, size_t i) {
    while (i > 0 && i < s.size() && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
    return i;
  }

  const tok::AnyTokenizer* tok_;
  TaskKind kind_;
  PromptOptions o_;
  bool chat_;
};

}  // namespace fathom::eval
