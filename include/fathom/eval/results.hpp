#pragma once
// Results that survive interruption: a JSON Lines file whose first line holds the run's
// settings and every further line one (item, policy) result, appended and flushed as it
// completes. Reopening the file resumes: the settings must match (else a UsageError names the
// differing field), a half-written last line (a crash mid-write) is cut off, and the items
// already there are skipped. Summaries are always recomputed from the file, so an interrupted
// and resumed run reports exactly what an uninterrupted one does.
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom/core/error.hpp"
#include "fathom/eval/csv.hpp"

namespace fathom::eval {

struct ItemRecord {
  std::string policy, id, subject;
  int answer = -1, pred = -1;
  bool correct = false;
  std::vector<double> logprobs;  // loglik scoring
  std::string output;            // generation scoring
  size_t prompt_tokens = 0;
  int shots = 0;
  bool truncated = false;
  uint64_t pp_tokens = 0, pp_active = 0, rg_tokens = 0, rg_active = 0;
  double seconds = 0;
};

inline nlohmann::json to_json(const ItemRecord& r) {
  nlohmann::json j = {{"policy", r.policy},       {"id", r.id},
                      {"subject", r.subject},     {"answer", r.answer},
                      {"pred", r.pred},           {"correct", r.correct},
                      {"prompt_tokens", r.prompt_tokens}, {"shots", r.shots},
                      {"truncated", r.truncated}, {"pp_tokens", r.pp_tokens},
                      {"pp_active", r.pp_active}, {"rg_tokens", r.rg_tokens},
                      {"rg_active", r.rg_active}, {"seconds", r.seconds}};
  if (!r.logprobs.empty()) j["logprobs"] = r.logprobs;
  if (!r.output.empty()) j["output"] = r.output;
  return j;
}

namespace detail {
// Typed reads of one record field. nlohmann's get<int>() of a float value is a plain C++ cast, so
// a hostile "answer": 1e300 would be undefined behaviour (issue 15 review): numbers are checked
// for kind and range here and a bad one is a json type_error/out_of_range that the reader turns
// into a DataError naming the line.
inline const nlohmann::json& record_field(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) throw nlohmann::json::type_error::create(302, "a record must be a JSON object", &j);
  return j.at(key);
}
inline int64_t record_int(const nlohmann::json& j, const char* key, int64_t lo, int64_t hi) {
  const auto& v = record_field(j, key);
  if (!v.is_number_integer())
    throw nlohmann::json::type_error::create(302, std::string(key) + " must be an integer", &v);
  const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX);
  const int64_t x = too_big ? INT64_MAX : v.get<int64_t>();
  if (too_big || x < lo || x > hi)
    throw nlohmann::json::out_of_range::create(406, std::string(key) + " out of range: " + v.dump(), &v);
  return x;
}
inline uint64_t record_uint(const nlohmann::json& j, const char* key) {
  const auto& v = record_field(j, key);
  if (!v.is_number_unsigned())
    throw nlohmann::json::type_error::create(302, std::string(key) + " must be an integer >= 0", &v);
  return v.get<uint64_t>();
}
inline double record_number(const nlohmann::json& v, const std::string& what) {
  if (!v.is_number()) throw nlohmann::json::type_error::create(302, what + " must be a number", &v);
  return v.get<double>();
}
}  // namespace detail

inline ItemRecord record_from_json(const nlohmann::json& j) {
  ItemRecord r;
  r.policy = detail::record_field(j, "policy").get<std::string>();
  r.id = j.at("id").get<std::string>();
  r.subject = j.at("subject").get<std::string>();
  r.answer = int(detail::record_int(j, "answer", INT32_MIN, INT32_MAX));
  r.pred = int(detail::record_int(j, "pred", INT32_MIN, INT32_MAX));
  r.correct = j.at("correct").get<bool>();
  r.prompt_tokens = size_t(detail::record_uint(j, "prompt_tokens"));
  r.shots = int(detail::record_int(j, "shots", 0, INT32_MAX));
  r.truncated = j.at("truncated").get<bool>();
  r.pp_tokens = detail::record_uint(j, "pp_tokens");
  r.pp_active = detail::record_uint(j, "pp_active");
  r.rg_tokens = detail::record_uint(j, "rg_tokens");
  r.rg_active = detail::record_uint(j, "rg_active");
  r.seconds = detail::record_number(j.at("seconds"), "seconds");
  if (j.contains("logprobs")) {
    const auto& a = j["logprobs"];
    if (!a.is_array()) throw nlohmann::json::type_error::create(302, "logprobs must be an array", &a);
    for (const auto& v : a) r.logprobs.push_back(v.is_null() ? NAN : detail::record_number(v, "logprobs[]"));
  }
  if (j.contains("output")) r.output = j["output"].get<std::string>();
  return r;
}

namespace detail {
// Every setting of this run must equal the file's (a setting the file lacks is "(absent)").
inline void check_results_settings(const std::string& path, const nlohmann::json& file,
                                   const nlohmann::json& now) {
  if (!file.is_object()) throw DataError(path, "line 1, settings", "must be a JSON object");
  for (auto it = now.begin(); it != now.end(); ++it) {
    const auto f = file.find(it.key());
    const std::string was = f == file.end() ? "(absent)" : f->dump();
    if (was != it.value().dump())
      throw UsageError(path, "settings." + it.key(),
                       "this file was written by a run with " + was + ", this run has " +
                           it.value().dump() + " (use another --out, or the same settings to resume)");
  }
}
}  // namespace detail

// What a results file holds: whether it has its run header, and the first record of each
// (policy, item). `path` names the file in errors; `settings` (when not null) must match the
// header's. The text must end at a line boundary (ResultsFile cuts a half-written last line off
// before reading).
struct ResultsText {
  bool had_header = false;
  std::vector<ItemRecord> records;
};

inline ResultsText parse_results_jsonl(std::string_view text, const std::string& path,
                                       const nlohmann::json& settings = nullptr) {
  ResultsText out;
  std::set<std::string> seen;
  size_t pos = 0, line = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view row = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    if (row.empty()) continue;
    const std::string where = "line " + std::to_string(line);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(row);
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
      throw DataError(path, where, std::string("invalid JSON: ") + e.what());
    }
    if (line == 1) {
      if (!j.is_object() || !j.contains("type") || j["type"] != "run" || !j.contains("settings"))
        throw DataError(path, "line 1", "not a fathom eval results file (no run header)");
      if (!settings.is_null()) detail::check_results_settings(path, j["settings"], settings);
      out.had_header = true;
      continue;
    }
    ItemRecord r;
    try {
      r = record_from_json(j);
    } catch (const nlohmann::json::exception& e) {
      throw DataError(path, where, std::string("bad record: ") + e.what());
    }
    if (seen.insert(r.policy + "\x1f" + r.id).second) out.records.push_back(std::move(r));
  }
  return out;
}

class ResultsFile {
 public:
  // Opens (or creates) `path` for a run with `settings`. Existing records are loaded.
  ResultsFile(const std::string& path, const nlohmann::json& settings) : path_(path) {
    if (std::filesystem::exists(path)) load(settings);
    out_.open(path, std::ios::app | std::ios::binary);
    if (!out_) throw IoError(path, "", "cannot open for appending");
    if (!had_header_) {
      nlohmann::json h = {{"type", "run"}, {"settings", settings}};
      out_ << h.dump() << '\n';
      out_.flush();
      if (!out_) throw IoError(path, "", "write failed (disk full?)");
    }
  }

  const std::string& path() const { return path_; }
  const std::vector<ItemRecord>& records() const { return records_; }
  bool done(const std::string& policy, const std::string& id) const {
    std::lock_guard<std::mutex> lock(mu_);
    return done_.count(policy + "\x1f" + id) > 0;
  }
  size_t resumed() const { return resumed_; }

  // Thread-safe: one line per record, flushed so a crash loses at most the line being written.
  void append(const ItemRecord& r) {
    std::lock_guard<std::mutex> lock(mu_);
    out_ << to_json(r).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    out_.flush();
    if (!out_) throw IoError(path_, "", "write failed (disk full?)");
    if (done_.insert(r.policy + "\x1f" + r.id).second) records_.push_back(r);
  }

 private:
  void load(const nlohmann::json& settings) {
    std::string text = read_text_file(path_);
    // A crash can leave a half-written last line: cut the file back to its last newline.
    const size_t last_nl = text.rfind('\n');
    const size_t keep = last_nl == std::string::npos ? 0 : last_nl + 1;
    if (keep < text.size()) {
      std::error_code ec;
      std::filesystem::resize_file(path_, keep, ec);
      if (ec)
        throw IoError(path_, "", "cannot cut off the half-written last line: " + ec.message());
      text.resize(keep);
    }
    ResultsText parsed = parse_results_jsonl(text, path_, settings);
    had_header_ = parsed.had_header;
    for (auto& r : parsed.records) {
      done_.insert(r.policy + "\x1f" + r.id);
      records_.push_back(std::move(r));
      ++resumed_;
    }
  }

  std::string path_;
  std::ofstream out_;
  mutable std::mutex mu_;
  bool had_header_ = false;
  size_t resumed_ = 0;
  std::vector<ItemRecord> records_;
  std::set<std::string> done_;
};

// ---- summaries ------------------------------------------------------------------------------

struct Accuracy {
  size_t n = 0, correct = 0;
  double acc() const { return n ? double(correct) / double(n) : NAN; }
  // Standard error of the mean of 0/1 outcomes with the sample variance (lm-eval's convention):
  // sqrt(p (1 - p) / (n - 1)).
  double stderr_() const {
    if (n < 2) return NAN;
    const double p = acc();
    return std::sqrt(p * (1 - p) / double(n - 1));
  }
};

struct PolicySummary {
  std::string policy;
  Accuracy overall;
  std::map<std::string, Accuracy> by_subject;
  double macro_acc = NAN;  // mean of the per-subject accuracies
  uint64_t pp_tokens = 0, pp_active = 0, rg_tokens = 0, rg_active = 0;
  size_t truncated = 0, unanswered = 0;
  double seconds = 0;  // Σ per-item time (all runs that wrote the file)
  double pp_layers(size_t L) const { return pp_tokens ? double(pp_active) / double(L * pp_tokens) : NAN; }
  double rg_layers(size_t L) const { return rg_tokens ? double(rg_active) / double(L * rg_tokens) : NAN; }
  uint64_t tokens() const { return pp_tokens + rg_tokens; }
  // Share of items whose reply had no extractable answer.
  double unanswered_share() const { return overall.n ? double(unanswered) / double(overall.n) : NAN; }
};

// Summaries of `policies` over the records whose id is in `ids` (empty: all records).
inline std::vector<PolicySummary> summarize(const std::vector<ItemRecord>& recs,
                                            const std::vector<std::string>& policies,
                                            const std::set<std::string>& ids = {}) {
  std::vector<PolicySummary> out;
  for (const auto& p : policies) {
    PolicySummary s;
    s.policy = p;
    for (const auto& r : recs) {
      if (r.policy != p || (!ids.empty() && !ids.count(r.id))) continue;
      ++s.overall.n, s.overall.correct += r.correct;
      auto& a = s.by_subject[r.subject];
      ++a.n, a.correct += r.correct;
      s.pp_tokens += r.pp_tokens, s.pp_active += r.pp_active;
      s.rg_tokens += r.rg_tokens, s.rg_active += r.rg_active;
      s.truncated += r.truncated;
      s.unanswered += r.pred < 0;
      s.seconds += r.seconds;
    }
    if (!s.by_subject.empty()) {
      double m = 0;
      for (auto& [_, a] : s.by_subject) m += a.acc();
      s.macro_acc = m / double(s.by_subject.size());
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace fathom::eval
