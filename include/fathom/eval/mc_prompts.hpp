#pragma once
// Multiple-choice prompts for per-layer option ranks (examples/depth --mc, depth::option_ranks):
// JSON Lines, one item a line,
//   {"prompt": "... Answer:", "options": [" A", " B", " C", " D"], "answer": 2}
// "answer", the index of the correct option, may be left out. Unlike the benchmark readers (MMLU,
// BoolQ, GPQA) the prompt is used as written, so any task can be probed. The whole file is checked
// before a model runs: a bad line 900 fails at once, not after 899 items.
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/core/text_file.hpp"
#include "fathom/io/json.hpp"

namespace fathom::eval {

struct McPrompt {
  std::string prompt;
  std::vector<std::string> options;  // non-empty
  int answer = -1;                   // index into options; -1: not given
  std::string where;                 // "<file>:<line>", for errors about this item
};

// Blank lines are skipped. Errors name "<file>:<line>" and the field: FormatError for a line
// that is not JSON, DataError for a missing or mistyped field and for a file without items.
inline std::vector<McPrompt> parse_mc_jsonl(std::string_view text, const std::string& file) {
  std::vector<McPrompt> out;
  io::for_each_json_line(text, file, [&](const io::Json& j, const std::string& where) {
    McPrompt m;
    m.where = where;
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string())
      throw DataError(m.where, "prompt", "expected an object with a string \"prompt\"");
    m.prompt = j["prompt"].get<std::string>();
    if (!j.contains("options") || !j["options"].is_array() || j["options"].empty())
      throw DataError(m.where, "options", "expected a non-empty array of strings");
    for (auto& v : j["options"]) {
      if (!v.is_string()) throw DataError(m.where, "options", "expected strings");
      m.options.push_back(v.get<std::string>());
    }
    if (j.contains("answer")) {
      const auto& a = j["answer"];
      if (!a.is_number_integer() || a.get<int64_t>() < 0 || a.get<uint64_t>() >= m.options.size())
        throw DataError(m.where, "answer", "expected an index into options");
      m.answer = a.get<int>();
    }
    out.push_back(std::move(m));
  });
  if (out.empty()) throw DataError(file, "", "no multiple-choice items");
  return out;
}

inline std::vector<McPrompt> read_mc_jsonl(const std::filesystem::path& path) {
  return parse_mc_jsonl(read_text_file(path), path.string());
}

}  // namespace fathom::eval
