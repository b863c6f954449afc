#pragma once
// A benchmark item in one shape for every task: a question, its options and the index of the
// correct one. Multiple-choice tasks (MMLU, GPQA) label options A, B, C, D; BoolQ has two options
// whose labels are set by the prompt preset (True/False or yes/no).
#include <cstdint>
#include <string>
#include <vector>

namespace fathom::eval {

enum class TaskKind : uint8_t { MMLU, BoolQ, GPQA };

constexpr const char* task_name(TaskKind t) {
  return t == TaskKind::MMLU ? "mmlu" : t == TaskKind::BoolQ ? "boolq" : "gpqa";
}

struct Item {
  std::string id;        // stable across runs: "<subject>/<row>" (resume matches on it)
  std::string subject;   // MMLU subject, GPQA high-level domain, "boolq"
  std::string question;
  std::string passage;   // BoolQ only
  std::vector<std::string> choices;
  int answer = -1;       // index into choices
};

// A few-shot example pool: dev items per subject.
struct Task {
  TaskKind kind = TaskKind::MMLU;
  std::vector<Item> items;
  std::vector<Item> dev;  // k-shot examples (MMLU dev set); empty when the task has none
};

}  // namespace fathom::eval
