#pragma once
// MMLU readers. Two layouts of `<subject>_<split>.csv`:
//   * with header `question,choice0,choice1,choice2,choice3,answer`, answer 0-3 (../shared);
//   * the original hendrycks/test layout: no header, six columns, answer a letter A-D.
// The layout is detected per file from its first record. A dataset folder holds `test/` and
// `dev/` (the 5 k-shot examples per subject); subjects are read in alphabetical order.
#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/eval/csv.hpp"
#include "fathom/eval/task.hpp"

namespace fathom::eval {

namespace detail {
inline std::string subject_from_file(const std::filesystem::path& p) {
  std::string s = p.stem().string();
  for (const char* suf : {"_test", "_dev", "_val"})
    if (s.size() > std::char_traits<char>::length(suf) &&
        s.ends_with(suf))
      return s.substr(0, s.size() - std::char_traits<char>::length(suf));
  return s;
}
}  // namespace detail

// Items of one MMLU CSV text. `file` names the source in errors and gives the subject.
inline std::vector<Item> parse_mmlu_csv(std::string_view text, const std::string& file,
                                        const std::string& subject) {
  auto recs = parse_csv(text, file);
  std::vector<Item> out;
  if (recs.empty()) return out;
  const bool header = recs[0].fields.size() == 6 && recs[0].fields[0] == "question" &&
                      recs[0].fields[5] == "answer";
  for (size_t r = header ? 1 : 0; r < recs.size(); ++r) {
    const auto& rec = recs[r];
    const std::string where = "line " + std::to_string(rec.line);
    if (rec.fields.size() != 6)
      throw DataError(file, where, "expected 6 fields (question, 4 choices, answer), got " +
                                       std::to_string(rec.fields.size()));
    Item it;
    it.subject = subject;
    it.id = subject + "/" + std::to_string(out.size());
    it.question = rec.fields[0];
    if (it.question.empty()) throw DataError(file, where + ", field question", "empty");
    it.choices.assign(rec.fields.begin() + 1, rec.fields.begin() + 5);
    const std::string& a = rec.fields[5];
    if (header) {
      if (a.size() == 1 && a[0] >= '0' && a[0] <= '3') it.answer = a[0] - '0';
    } else {
      if (a.size() == 1 && a[0] >= 'A' && a[0] <= 'D') it.answer = a[0] - 'A';
    }
    if (it.answer < 0)
      throw DataError(file, where + ", field answer",
                      "'" + a + "' is not " + (header ? "0-3" : "a letter A-D"));
    out.push_back(std::move(it));
  }
  return out;
}

inline std::vector<Item> read_mmlu_csv(const std::filesystem::path& file) {
  return parse_mmlu_csv(read_text_file(file.string()), file.string(),
                        detail::subject_from_file(file));
}

// Subjects present in `<root>/<split>/` (sorted).
inline std::vector<std::string> mmlu_subjects(const std::filesystem::path& root,
                                              const std::string& split = "test") {
  const auto dir = root / split;
  if (!std::filesystem::is_directory(dir))
    throw IoError(dir.string(), "", "MMLU split folder not found (expected <data>/" + split + "/)");
  std::vector<std::string> s;
  for (auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".csv") s.push_back(detail::subject_from_file(e.path()));
  std::sort(s.begin(), s.end());
  return s;
}

// The whole benchmark (or the listed subjects): items of `split`, dev examples for k-shot.
// An unknown subject is a UsageError listing where it was looked for.
inline Task read_mmlu(const std::filesystem::path& root, const std::vector<std::string>& subjects = {},
                      const std::string& split = "test") {
  Task t;
  t.kind = TaskKind::MMLU;
  auto all = mmlu_subjects(root, split);
  std::vector<std::string> chosen = subjects.empty() ? all : subjects;
  const std::set<std::string> known(all.begin(), all.end());
  for (auto& s : chosen) {
    if (!known.count(s))
      throw UsageError((root / split).string(), "subjects", "unknown subject '" + s + "'");
    auto items = read_mmlu_csv(root / split / (s + "_" + split + ".csv"));
    t.items.insert(t.items.end(), items.begin(), items.end());
    const auto dev = root / "dev" / (s + "_dev.csv");
    if (split != "dev" && std::filesystem::exists(dev)) {
      auto d = read_mmlu_csv(dev);
      t.dev.insert(t.dev.end(), d.begin(), d.end());
    }
  }
  return t;
}

}  // namespace fathom::eval
