#pragma once
// BoolQ reader: JSON Lines `{question, title, answer (bool), passage}`. Options are True and False
// (index 0 = True); the prompt preset decides how they are spelled (True/False or yes/no).
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom/core/error.hpp"
#include "fathom/eval/csv.hpp"
#include "fathom/eval/task.hpp"

namespace fathom::eval {

inline std::vector<Item> parse_boolq_jsonl(std::string_view text, const std::string& file) {
  std::vector<Item> out;
  size_t line = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view row = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    if (!row.empty() && row.back() == '\r') row.remove_suffix(1);
    if (row.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::string where = "line " + std::to_string(line);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(row);
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
      throw DataError(file, where, std::string("invalid JSON: ") + e.what());
    }
    if (!j.is_object()) throw DataError(file, where, "expected a JSON object");
    auto str = [&](const char* key) {
      if (!j.contains(key) || !j[key].is_string())
        throw DataError(file, where + ", field " + key, "missing or not a string");
      return j[key].get<std::string>();
    };
    Item it;
    it.subject = "boolq";
    it.id = "boolq/" + std::to_string(out.size());
    it.question = str("question");
    it.passage = str("passage");
    if (!j.contains("answer") || !j["answer"].is_boolean())
      throw DataError(file, where + ", field answer", "missing or not a boolean");
    it.choices = {"True", "False"};
    it.answer = j["answer"].get<bool>() ? 0 : 1;
    out.push_back(std::move(it));
  }
  return out;
}

inline Task read_boolq(const std::string& path) {
  Task t;
  t.kind = TaskKind::BoolQ;
  t.items = parse_boolq_jsonl(read_text_file(path), path);
  return t;
}

}  // namespace fathom::eval
