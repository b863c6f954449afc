// Eval harness, data side: CSV parsing, the MMLU/BoolQ/GPQA readers (and one test per kind of
// malformed input), answer extraction (table-driven), prompt wording and truncation.
#include <doctest/doctest.h>

#include <filesystem>
#include <iterator>
#include <set>

#include "fathom/core/shared_path.hpp"
#include "fathom/eval/boolq.hpp"
#include "fathom/eval/extract.hpp"
#include "fathom/eval/gpqa.hpp"
#include "fathom/eval/mc_tokens.hpp"
#include "fathom/eval/mmlu.hpp"
#include "fathom/eval/pos_tags.hpp"
#include "fathom/eval/prompt.hpp"
#include "io_test_util.hpp"
#include "test_eval_util.hpp"

using namespace fathom;
using namespace fathom::eval;

namespace {
const std::filesystem::path kFix = std::filesystem::path(FATHOM_SOURCE_DIR) / "tests/fixtures/eval";

// The DataError a call throws (fails the test when none).
template <class F>
DataError data_error(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e;
  }
  FAIL("no DataError thrown");
  return DataError("", "", "");
}
}  // namespace

TEST_CASE("csv: quotes, doubled quotes, embedded commas and newlines, CRLF, line numbers") {
  auto r = parse_csv("a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\n\"two\nlines\",z\n\nlast,\n", "t.csv");
  REQUIRE(r.size() == 4);
  CHECK(r[0].fields == std::vector<std::string>{"a", "b"});
  CHECK(r[1].fields == std::vector<std::string>{"x, y", "say \"hi\""});
  CHECK(r[2].fields == std::vector<std::string>{"two\nlines", "z"});
  CHECK(r[3].fields == std::vector<std::string>{"last", ""});
  CHECK(r[0].line == 1);
  CHECK(r[2].line == 3);
  CHECK(r[3].line == 6);  // the record after a two-line record and a blank line
}

TEST_CASE("csv malformed: unterminated quoted field") {
  auto e = data_error([] { parse_csv("a,b\n\"open,c\n", "bad.csv"); });
  CHECK(e.file() == "bad.csv");
  CHECK(e.field() == "line 2");
  CHECK(e.reason().find("unterminated") != std::string::npos);
}

TEST_CASE("csv malformed: text after a closing quote") {
  auto e = data_error([] { parse_csv("a,b\n\"x\"y,c\n", "bad.csv"); });
  CHECK(e.field() == "line 2");
}

TEST_CASE("mmlu: header layout with answers 0-3, subjects, dev examples") {
  auto t = read_mmlu(kFix / "mmlu");
  REQUIRE(t.items.size() == 6);
  CHECK(t.items[0].subject == "arith");
  CHECK(t.items[0].id == "arith/0");
  CHECK(t.items[0].answer == 1);
  CHECK(t.items[2].question == "Which is written \"two\"?");
  CHECK(t.items[2].choices[2] == "2, or two");
  CHECK(t.items[3].question == "A question\non two lines?");
  CHECK(t.items[4].subject == "colors");
  CHECK(t.dev.size() == 4);
  auto only = read_mmlu(kFix / "mmlu", {"colors"});
  CHECK(only.items.size() == 2);
  CHECK_THROWS_AS(read_mmlu(kFix / "mmlu", {"nope"}), UsageError);
}

TEST_CASE("mmlu: original header-less layout with letter answers") {
  auto items = read_mmlu_csv(kFix / "hendrycks/test/arith_test.csv");
  REQUIRE(items.size() == 2);
  CHECK(items[0].answer == 1);
  CHECK(items[1].answer == 3);
  CHECK(items[1].question == "Quoted, with comma");
  CHECK(items[0].subject == "arith");
}

TEST_CASE("mmlu malformed: wrong number of fields") {
  auto e = data_error([] {
    parse_mmlu_csv("question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,1\n", "m.csv", "s");
  });
  CHECK(e.field() == "line 2");
  CHECK(e.reason().find("6 fields") != std::string::npos);
}

TEST_CASE("mmlu malformed: answer out of range") {
  auto e = data_error([] {
    parse_mmlu_csv("question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,1\nq,a,b,c,d,4\n",
                   "m.csv", "s");
  });
  CHECK(e.field() == "line 3, field answer");
  auto e2 = data_error([] { parse_mmlu_csv("q,a,b,c,d,E\n", "h.csv", "s"); });
  CHECK(e2.field() == "line 1, field answer");
}

TEST_CASE("mmlu malformed: empty question") {
  auto e = data_error([] { parse_mmlu_csv("q,a,b,c,d,A\n,a,b,c,d,B\n", "h.csv", "s"); });
  CHECK(e.field() == "line 2, field question");
}

TEST_CASE("boolq: reads question, passage, answer") {
  auto t = read_boolq((kFix / "boolq.jsonl").string());
  REQUIRE(t.items.size() == 2);
  CHECK(t.items[0].answer == 0);  // true -> option 0 (True)
  CHECK(t.items[1].answer == 1);
  CHECK(t.items[1].passage == "Grass is green.");
}

TEST_CASE("boolq malformed: invalid JSON") {
  auto e = data_error([] { parse_boolq_jsonl("{\"question\": \"q\"\n", "b.jsonl"); });
  CHECK(e.field() == "line 1");
}

TEST_CASE("boolq malformed: missing field") {
  auto e = data_error([] {
    parse_boolq_jsonl("{\"question\":\"q\",\"answer\":true,\"passage\":\"p\"}\n{\"question\":\"q\",\"answer\":true}\n",
                      "b.jsonl");
  });
  CHECK(e.field() == "line 2, field passage");
}

TEST_CASE("boolq malformed: answer not a boolean") {
  auto e = data_error([] { parse_boolq_jsonl("{\"question\":\"q\",\"answer\":\"yes\",\"passage\":\"p\"}", "b.jsonl"); });
  CHECK(e.field() == "line 1, field answer");
}

TEST_CASE("boolq malformed: a number beyond double is a DataError (found by fuzzing)") {
  // nlohmann throws out_of_range, not parse_error, for 1e999: it escaped the reader untyped.
  auto e = data_error([] { parse_boolq_jsonl("{\"question\":\"q\",\"answer\":true,\"passage\":\"p\",\"x\":1e999}\n", "b.jsonl"); });
  CHECK(e.field() == "line 1");
  CHECK(e.reason().find("invalid JSON") != std::string::npos);
}

TEST_CASE("gpqa: seeded shuffle keeps the correct answer, correct-last order") {
  const auto f = (kFix / "gpqa_toy.csv").string();
  auto a = read_gpqa(f, GpqaOrder::Shuffled, 1), b = read_gpqa(f, GpqaOrder::Shuffled, 1);
  auto c = read_gpqa(f, GpqaOrder::Shuffled, 2), last = read_gpqa(f, GpqaOrder::CorrectLast);
  REQUIRE(a.items.size() == 4);
  std::set<int> positions;
  bool differs = false;
  for (size_t i = 0; i < 4; ++i) {
    CHECK(a.items[i].choices[size_t(a.items[i].answer)] == "right");  // trimmed
    CHECK(a.items[i].choices == b.items[i].choices);                   // reproducible
    differs |= a.items[i].choices != c.items[i].choices;
    positions.insert(a.items[i].answer);
    CHECK(last.items[i].answer == 3);
    CHECK(last.items[i].choices[3] == "right");
    CHECK(last.items[i].choices[0] == "wrong a");
  }
  CHECK(differs);                 // the seed matters
  CHECK(positions.size() > 1);    // not always the same position
  CHECK(a.items[1].subject == "Chemistry");
}

TEST_CASE("gpqa malformed: missing column, short row") {
  auto e = data_error([] { parse_gpqa_csv("Question,Correct Answer\nq,a\n", "g.csv", GpqaOrder::Shuffled, 0); });
  CHECK(e.field() == "line 1, column Incorrect Answer 1");
  auto e2 = data_error([] {
    parse_gpqa_csv("Question,Correct Answer,Incorrect Answer 1,Incorrect Answer 2,Incorrect Answer 3\nq,a,b,c\n",
                   "g.csv", GpqaOrder::Shuffled, 0);
  });
  CHECK(e2.field() == "line 2");
}

TEST_CASE("gpqa: the real password zip is extracted to a temporary folder and removed") {
  const auto zip = shared_dir() / "data/gpqa/gpqa_diamond.zip";
  if (!std::filesystem::exists(zip)) return;  // shared data absent: nothing to check
  // A private temporary folder: other tests running at the same time create their own
  // "fathom-" files in the shared one.
  const test::TempDir own;
  const test::ScopedEnv tmpdir("TMPDIR", own.path.string());
  auto t = read_gpqa(zip.string(), GpqaOrder::Shuffled, 0);
  const auto after = std::distance(std::filesystem::directory_iterator(own.path),
                                   std::filesystem::directory_iterator());
  CHECK(t.items.size() == 198);
  for (auto& it : t.items) CHECK((it.answer >= 0 && it.answer < 4));
  CHECK(after == 0);  // no plain-text copy left behind
  CHECK_THROWS_AS(read_gpqa(zip.string(), GpqaOrder::Shuffled, 0, "wrong-password"), IoError);
}

TEST_CASE("extract_answer: the documented rule, table-driven") {
  const std::vector<std::string> L = {"A", "B", "C", "D"};
  const std::vector<std::string> C = {"Paris", "London", "Rome", "Berlin"};
  struct Case { const char* out; int want; };
  const Case cases[] = {
      {"[B]", 1},                                  // 1. bracketed
      {"I think [ c ] is right", 2},               // 1. spaces, lower case
      {"Answer: D. Berlin [A]", 0},                // 1 beats 2
      {"The answer is C.", 2},                     // 2.
      {"answer: (D)", 3},                          // 2.
      {"Final answer is B because", 1},            // 2.
      {"The correct option is A", 0},              // 2. "option"
      {"the answer is a cat", -1},                 // 2. lower-case "a" is an article; 3. nothing
      {"B", 1},                                    // 3. the whole reply
      {"(C) Rome", 2},                             // 3. parenthesised
      {"A. Paris", 0},                             // 3. letter and period
      {"A cat sat on the mat", -1},                // 3. the article is not a label
      {"I would say London.", 1},                  // 4. one option's text
      {"Paris or London", -1},                     // 4. two options: no answer
      {"", -1},
      {"BCD", -1},                                 // letters inside a word
  };
  for (const auto& c : cases) {
    CAPTURE(c.out);
    CHECK(extract_answer(c.out, L, C) == c.want);
  }
  const std::vector<std::string> TF = {"True", "False"};
  CHECK(extract_answer("[False]", TF) == 1);
  CHECK(extract_answer("The answer is true.", TF) == 0);
  CHECK(extract_answer("false, because", TF) == 1);
  CHECK(extract_answer("It is untrue", TF) == -1);
  const std::vector<std::string> YN = {"yes", "no"};
  CHECK(extract_answer(" no", YN) == 1);
}

TEST_CASE("prompts: lm-eval and void wording, k-shot, chat-less plain text with BOS") {
  auto tok = evaltest::byte_tokenizer();
  auto t = read_mmlu(kFix / "mmlu");
  const Item& it = t.items[0];
  PromptBuilder lm(tok, TaskKind::MMLU, {Preset::LmEval, 0, true});
  CHECK(lm.context_text(it, {}, 0) ==
        "The following are multiple choice questions (with answers) about arith.\n\n"
        "What is 1 + 1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:");
  PromptBuilder vo(tok, TaskKind::MMLU, {Preset::Void, 0, true});
  CHECK(vo.context_text(it, {}, 0) == item_text(TaskKind::MMLU, Preset::Void, it));
  // 2-shot lm-eval: dev examples of the same subject with their answers.
  PromptBuilder lm2(tok, TaskKind::MMLU, {Preset::LmEval, 2, true});
  auto p = lm2.build(it, t.dev, 1000, true);
  CHECK(p.shots == 2);
  CHECK_FALSE(p.truncated);
  const std::string text = tok.decode(p.tokens);
  CHECK(text.find("What is 0 + 1?\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\nWhat is 3 + 0?") != std::string::npos);
  CHECK(p.tokens[0] == 1);  // BOS
  REQUIRE(p.continuations.size() == 4);
  CHECK(tok.decode(p.continuations[2]) == " C");
  auto v = vo.build(it, t.dev, 1000, true);
  CHECK(tok.decode(v.continuations[3]) == "[D]");
  // BoolQ wording.
  auto bq = read_boolq((kFix / "boolq.jsonl").string());
  PromptBuilder bv(tok, TaskKind::BoolQ, {Preset::Void, 0, true});
  CHECK(bv.context_text(bq.items[0], {}, 0) == item_text(TaskKind::BoolQ, Preset::Void, bq.items[0]));
  PromptBuilder bl(tok, TaskKind::BoolQ, {Preset::LmEval, 0, true});
  auto bp = bl.build(bq.items[1], {}, 1000, true);
  CHECK(tok.decode(bp.continuations[0]) == " yes");
  CHECK(tok.decode(bp.tokens) == "Grass is green.\nQuestion: is grass red?\nAnswer:");
}

TEST_CASE("prompts: truncation drops examples first, then cuts from the left keeping BOS") {
  auto tok = evaltest::byte_tokenizer();
  auto t = read_mmlu(kFix / "mmlu");
  const Item& it = t.items[0];
  PromptBuilder lm2(tok, TaskKind::MMLU, {Preset::LmEval, 2, true});
  const size_t full = lm2.build(it, t.dev, 10000, true).tokens.size();
  const size_t zero = PromptBuilder(tok, TaskKind::MMLU, {Preset::LmEval, 0, true})
                          .build(it, t.dev, 10000, true).tokens.size();
  // Room for 1 example but not 2: one example dropped.
  auto p = lm2.build(it, t.dev, full - 1 + 2, true);
  CHECK(p.shots == 1);
  CHECK(p.truncated);
  CHECK(p.cut_tokens == 0);
  // Not even zero-shot fits: left-truncated, BOS kept, the end (options + "Answer:") intact.
  auto q = lm2.build(it, t.dev, zero - 10 + 2, true);
  CHECK(q.shots == 0);
  CHECK(q.truncated);
  CHECK(q.tokens.size() == zero - 10);
  CHECK(q.cut_tokens == 10);
  CHECK(q.tokens[0] == 1);
  CHECK(tok.decode(q.tokens).ends_with("What is 1 + 1?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:"));
  // shots > available examples is a usage error.
  PromptBuilder lm5(tok, TaskKind::MMLU, {Preset::LmEval, 5, true});
  CHECK_THROWS_AS(lm5.build(it, t.dev, 1000, true), UsageError);
}

TEST_CASE("AnyTokenizer: the tokenizer of a llama2.c model is found beside it") {
  const auto model = shared_dir() / "models/stories260K/stories260K.bin";
  if (!std::filesystem::exists(model)) return;
  auto tok = tok::load_tokenizer_for(model);
  CHECK(tok.kind() == "llama2c");
  CHECK(tok.vocab_size() == 512);
  CHECK_FALSE(tok.has_chat_template());
  auto ids = tok.encode("Once upon a time", true);
  CHECK(ids.at(0) == 1);
  CHECK(tok.decode(ids) == "Once upon a time");
  CHECK(tok.eos_ids() == std::vector<int32_t>{2});
  CHECK_THROWS_AS(tok::load_tokenizer_for(shared_dir() / "models/none.bin"), IoError);
}

TEST_CASE("prompts with a chat template: user turn, generation prompt, answer without a space") {
  const auto dir = shared_dir() / "tokenizers/qwen3";
  if (!std::filesystem::exists(dir / "tokenizer.json")) return;
  auto tok = tok::load_tokenizer(dir);
  REQUIRE(tok.has_chat_template());
  auto t = read_mmlu(kFix / "mmlu");
  PromptBuilder b(tok, TaskKind::MMLU, {Preset::LmEval, 1, true});
  CHECK(b.uses_chat());
  auto p = b.build(t.items[0], t.dev, 4096, true);
  const std::string text = tok.decode(p.tokens, false);
  CHECK(text.starts_with("<|im_start|>user\nThe following are multiple choice questions"));
  CHECK(text.find("<|im_start|>assistant\n") != std::string::npos);
  CHECK(text.find("Answer:<|im_end|>") != std::string::npos);
  CHECK(text.ends_with("<|im_start|>assistant\n"));
  CHECK(tok.decode(p.continuations[1], false) == "B");
  // --no-chat: plain text.
  PromptBuilder plain(tok, TaskKind::MMLU, {Preset::LmEval, 0, false});
  CHECK_FALSE(plain.uses_chat());
}

// The released eval.py builds the user content as an indented triple-quoted f-string: a newline
// first, four spaces before every later line, the options joined by bare newlines.
TEST_CASE("void preset: the released prompt bytes for MMLU, GPQA (correct answer last) and BoolQ") {
  auto t = read_mmlu(kFix / "mmlu");
  CHECK(item_text(TaskKind::MMLU, Preset::Void, t.items[0]) ==
        "\n    Question:\n    What is 1 + 1?\n\n    Options:\n    A. 1\nB. 2\nC. 3\nD. 4\n\n"
        "    Output format:\n    [Option]\n\n    ");
  auto g = read_gpqa((kFix / "gpqa_toy.csv").string(), GpqaOrder::CorrectLast);
  CHECK(item_text(TaskKind::GPQA, Preset::Void, g.items[1]) ==
        "\n    Question:\n    Toy question two?\n\n    Options:\n    A. wrong a\nB. wrong b\n"
        "C. wrong c\nD. right\n\n    Output format:\n    [Option]\n\n    ");
  auto b = read_boolq((kFix / "boolq.jsonl").string());
  CHECK(item_text(TaskKind::BoolQ, Preset::Void, b.items[0]) ==
        "\n    Respond to the given question based on the passage with True or False.\n"
        "    Passage:\n    The sky is blue on a clear day.\n\n    Options:\n    is the sky blue\n\n"
        "    Output Format:\n    [True/False]\n    ");
  // Answers follow the content directly: "[B]" is the continuation scored.
  auto tok = evaltest::byte_tokenizer();
  auto p = PromptBuilder(tok, TaskKind::MMLU, {Preset::Void, 0, true}).build(t.items[0], {}, 1000, true);
  CHECK(tok.decode(p.continuations[1]) == "[B]");
}

namespace {
// A byte tokenizer with a toy chat template, to check what the prompt builder keeps whole.
struct ChatBytes : evaltest::ByteTokenizer {
  bool has_chat_template() const { return true; }
  std::string apply_chat_template(const std::vector<tok::ChatMessage>& m, bool gen) const {
    std::string s = "<|sys|>default<|end|>";
    for (auto& x : m) s += "<|" + x.role + "|>" + x.content + "<|end|>";
    return gen ? s + "<|assistant|>" : s;
  }
};
}  // namespace

TEST_CASE("void preset with a chat template: one user turn with the generation prompt") {
  tok::AnyTokenizer tok{ChatBytes{}};
  auto t = read_mmlu(kFix / "mmlu");
  PromptBuilder b(tok, TaskKind::MMLU, {Preset::Void, 0, true});
  REQUIRE(b.uses_chat());
  auto p = b.build(t.items[0], t.dev, 1000, true);
  CHECK(p.text == "<|sys|>default<|end|><|user|>" + item_text(TaskKind::MMLU, Preset::Void, t.items[0]) +
                      "<|end|><|assistant|>");
  // Encoded as the released code does: the tokenizer's special tokens added (here BOS).
  CHECK(p.tokens == tok.encode(p.text, true));
  CHECK_FALSE(p.truncated);
}

TEST_CASE("chat truncation: the passage, then the question, are shortened; the template stays") {
  tok::AnyTokenizer tok{ChatBytes{}};
  auto bq = read_boolq((kFix / "boolq.jsonl").string());
  Item it = bq.items[0];
  it.passage = std::string(300, 'p');
  it.question = std::string(100, 'q');
  PromptBuilder b(tok, TaskKind::BoolQ, {Preset::Void, 0, true});
  const size_t whole = b.build(it, {}, 10000, false).tokens.size();
  // 120 tokens too many: the passage loses exactly 120 bytes (1 byte = 1 token here).
  auto p = b.build(it, {}, whole - 120, false);
  CHECK(p.truncated);
  CHECK(p.tokens.size() == whole - 120);
  CHECK(p.cut_passage == 120);
  CHECK(p.cut_question == 0);
  CHECK(p.cut_tokens == 0);
  CHECK(p.text.starts_with("<|sys|>default<|end|><|user|>\n    Respond to the given question"));
  CHECK(p.text.find("Passage:\n    " + std::string(180, 'p') + "\n\n    Options:") != std::string::npos);
  CHECK(p.text.ends_with("    [True/False]\n    <|end|><|assistant|>"));
  // 350 too many: the passage goes entirely, the question loses 50 bytes.
  auto q = b.build(it, {}, whole - 350, false);
  CHECK(q.tokens.size() == whole - 350);
  CHECK(q.cut_passage == 300);
  CHECK(q.cut_question == 50);
  CHECK(q.text.find("Options:\n    " + std::string(50, 'q') + "\n\n    Output Format:") != std::string::npos);
  CHECK(q.text.ends_with("<|end|><|assistant|>"));
  CHECK(q.tokens[0] == 1);  // BOS kept
  // Too small even for the template, the options and the answer cue: a usage error.
  CHECK_THROWS_AS(b.build(it, {}, whole - 410, false), UsageError);
  // UTF-8: a cut never splits a character (2-byte 'é' everywhere, budget one byte short).
  it.passage.clear();
  for (int i = 0; i < 100; ++i) it.passage += "\xc3\xa9";
  const size_t w2 = b.build(it, {}, 10000, false).tokens.size();
  auto u = b.build(it, {}, w2 - 3, false);
  CHECK(u.cut_passage == 4);
  CHECK(u.tokens.size() == w2 - 4);
}

// Small models repeat the prompt: what a reply copies from it must not be read as an answer.
TEST_CASE("extract_answer: echoes of the prompt, late answers, words, two letters, none") {
  Item it;
  it.question = "What is the capital of England?";
  it.choices = {"Paris", "London", "Rome", "Berlin"};
  const std::vector<std::string> L = {"A", "B", "C", "D"};
  struct Case { const char* out; int want; };
  const Case cases[] = {
      // The whole prompt echoed (the void preset's layout), no answer after it.
      {"\n    Question:\n    What is the capital of England?\n\n    Options:\n    A. Paris\nB. London\n"
       "C. Rome\nD. Berlin\n\n    Output format:\n    [Option]", -1},
      // ... with the answer after it.
      {"Question: What is the capital of England?\nOptions:\nA. Paris\nB. London\nC. Rome\n"
       "D. Berlin\n\nOutput format:\n[B]", 1},
      {"Options:\nA. Paris\nB. London\nC. Rome\nD. Berlin\nThe answer is C.", 2},
      // The old single-line options echo ("Options: A. ...") is not answer A.
      {"Options: A. Paris B. London C. Rome D. Berlin", -1},
      // An echo cut off by the length limit, in the question and in the option list.
      {"Question: What is the capital of Eng", -1},
      {"Options:\nA. Paris\nB. London\nC. Ro", -1},
      // Answers late, after reasoning.
      {"Let me think. England's capital is not Paris. So the final answer is D.", 3},
      {"Hmm, thinking about it step by step, I'd go with [B]", 1},
      // In words: the option's text.
      {"The capital is London.", 1},
      {"london, of course", 1},
      // Two different letters: no answer.
      {"[A] or [B]", -1},
      {"The answer is A. No wait, the answer is C.", -1},
      {"A. or C.", -1},
      // The same letter twice is fine.
      {"[B]. So B.", 1},
      // Nothing.
      {"I don't know.", -1},
      {"Output format: [Option]", -1},
  };
  for (const auto& c : cases) {
    CAPTURE(c.out);
    CHECK(extract_answer(c.out, L, it) == c.want);
  }
  // A single option line is an answer, not an echo.
  CHECK(extract_answer("B. London", L, it) == 1);
  // BoolQ: the passage and the question echoed, then the verdict.
  Item bq;
  bq.question = "is the sky blue";
  bq.passage = "The sky is blue on a clear day, true to its name.";
  bq.choices = {"True", "False"};
  const std::vector<std::string> TF = {"True", "False"};
  CHECK(extract_answer("Passage: The sky is blue on a clear day, true to its name.\nOptions: is the "
                       "sky blue\nOutput Format: [True/False]", TF, bq) == -1);
  CHECK(extract_answer("Passage: The sky is blue on a clear day, true to its name.\n[False]", TF, bq) == 1);
}

TEST_CASE("mc_tokens: the benchmark's k-shot prompt and the first token of each answer (SmolLM2 tokenizer)") {
  const auto tok = tok::load_tokenizer_for(
      shared_file("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf").string());
  auto t = read_mmlu(kFix / "mmlu");
  size_t skipped = 9;
  const auto mc = mc_tokens(tok, t, t.items, {Preset::LmEval, 2, false}, 1000, &skipped);
  CHECK(skipped == 0);
  REQUIRE(mc.size() == t.items.size());
  const auto p = PromptBuilder(tok, TaskKind::MMLU, {Preset::LmEval, 2, false}).build(t.items[0], t.dev, 1000, true);
  CHECK(mc[0].prompt == p.tokens);
  CHECK(mc[0].answer == t.items[0].answer);
  const char* letters[] = {" A", " B", " C", " D"};
  for (size_t q = 0; q < 4; ++q) CHECK(tok.decode({mc[0].option_tokens[q]}) == letters[q]);
  // Options that begin with the same token cannot be told apart by one readout: left out.
  auto bytes = evaltest::byte_tokenizer();  // " A" and " B" both begin with the byte ' '
  CHECK(mc_tokens(bytes, t, t.items, {Preset::LmEval, 0, false}, 1000, &skipped).empty());
  CHECK(skipped == t.items.size());
}

namespace {
// A tokenizer over fixed pieces: id i is pieces[i]; decode concatenates.
struct PieceTokenizer {
  std::vector<std::string> pieces;
  std::string decode(const std::vector<int32_t>& ids, bool) const {
    std::string s;
    for (int32_t i : ids) s += pieces[size_t(i)];
    return s;
  }
};
}  // namespace

TEST_CASE("POS tags: tokens that begin a word get its class; errors name the line and field") {
  const auto docs = parse_tagged_jsonl(
      R"({"text":"The cat sat.","words":[{"start":0,"end":3,"tag":"DT","class":"DET"},)"
      R"({"start":4,"end":7,"tag":"NN","class":"NOUN"},{"start":8,"end":11,"tag":"VBD","class":"VERB"},)"
      R"({"start":11,"end":12,"tag":".","class":"PUNCT"}]})" "\n",
      "tags.jsonl");
  REQUIRE(docs.size() == 1);
  const PieceTokenizer tok{{"", "The", " c", "at", " sat", "."}};  // id 0: BOS (decodes to nothing)
  const std::vector<int32_t> ids = {0, 1, 2, 3, 4, 5};
  CHECK(token_classes(tok, docs[0], ids) == std::vector<std::string>{"", "DET", "NOUN", "", "VERB", "PUNCT"});
  CHECK(is_function_class("DET"));
  CHECK(is_content_class("NOUN"));
  CHECK_FALSE(is_function_class("NOUN"));
  CHECK_THROWS_WITH_AS(parse_tagged_jsonl("{\"text\":\"ab\",\"words\":[{\"start\":0,\"end\":5,\"tag\":\"X\",\"class\":\"X\"}]}",
                                          "t.jsonl"),
                       doctest::Contains("t.jsonl:1"), DataError);
  CHECK_THROWS_WITH_AS(parse_tagged_jsonl("\n{\"text\":\"ab\",\"words\":[{\"start\":0,\"end\":1,\"tag\":\"X\"}]}",
                                          "t.jsonl"),
                       doctest::Contains("words[0].class"), DataError);
  CHECK_THROWS_AS(parse_tagged_jsonl("{\"text\": 3}", "t.jsonl"), DataError);
  CHECK_THROWS_AS(parse_tagged_jsonl("not json", "t.jsonl"), Error);
  CHECK_THROWS_WITH_AS(parse_tagged_jsonl("\n\n", "t.jsonl"), doctest::Contains("no tagged documents"), DataError);
}
