// libFuzzer target: arbitrary bytes as an eval results file being resumed (eval/results.hpp).
// The first byte chooses whether the run's settings are compared with the file's header. The
// reader may only throw fathom::Error; accepted records are unique per (policy, item) and the
// summaries over them are computed without crashing.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "fathom/eval/results.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const nlohmann::json settings = data[0] & 1 ? nlohmann::json{{"task", "mmlu"}, {"shots", 0}} : nlohmann::json();
  try {
    const auto r = fathom::eval::parse_results_jsonl(text, "fuzz/results.jsonl", settings);
    std::set<std::string> keys, policies;
    for (const auto& rec : r.records) {
      if (!keys.insert(rec.policy + "\x1f" + rec.id).second) __builtin_trap();
      policies.insert(rec.policy);
    }
    const auto sums = fathom::eval::summarize(r.records, {policies.begin(), policies.end()});
    if (sums.size() != policies.size()) __builtin_trap();
  } catch (const fathom::Error&) {
  }
  return 0;
}
