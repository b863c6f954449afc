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

inline ItemRecord record_from_json(const nlohmann::json& j) {
  ItemRecord r;
  r.policy = j.at("policy").get<std::string>();
  r.id = j.at("id").get<std::string>();
  r.subject = j.at("subject").get<std::string>();
  r.answer = j.at("answer").get<int>();
  r.pred = j.at("pred").get<int>();
  r.correct = j.at("correct").get<bool>();
  r.prompt_tokens = j.at("prompt_tokens").get<size_t>();
  r.shots = j.at("shots").get<int>();
  r.truncated = j.at("truncated").get<bool>();
  r.pp_tokens = j.at("pp_tokens").get<uint64_t>();
  r.pp_active = j.at("pp_active").get<uint64_t>();
  r.rg_tokens = j.at("rg_tokens").get<uint64_t>();
  r.rg_active = j.at("rg_active").get<uint64_t>();
  r.seconds = j.at("seconds").get<double>();
  if (j.contains("logprobs")) r.logprobs = j["logprobs"].get<std::vector<double>>();
  if (j.contains("output")) r.output = j["output"].get<std::string>();
  return r;
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
    if (!out_) throw IoError(path_, "", "write failed");
    if (done_.insert(r.policy + "\x1f" + r.id).second) records_.push_back(r);
  }

 private:
  void load(const nlohmann::json& settings) {
    std::string text = read_text_file(path_);
    // A crash can leave a half-written last line: cut the file back to its last newline.
    const size_t last_nl = text.rfind('\n');
    const size_t keep = last_nl == std::string::npos ? 0 : last_nl + 1;
    if (keep < text.size()) {
      std::filesystem::resize_file(path_, keep);
      text.resize(keep);
    }
    size_t pos = 0, line = 0;
    while (pos < text.size()) {
      const size_t end = text.find('\n', pos);
      const std::string row = text.substr(pos, end - pos);
      pos = end + 1;
      ++line;
      if (row.empty()) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(row);
      } catch (const nlohmann::json::parse_error& e) {
        throw DataError(path_, "line " + std::to_string(line), std::string("invalid JSON: ") + e.what());
      }
      if (line == 1) {
        if (!j.is_object() || j.value("type", "") != "run" || !j.contains("settings"))
          throw DataError(path_, "line 1", "not a fathom eval results file (no run header)");
        check_settings(j["settings"], settings);
        had_header_ = true;
        continue;
      }
      ItemRecord r;
      try {
        r = record_from_json(j);
      } catch (const nlohmann::json::exception& e) {
        throw DataError(path_, "line " + std::to_string(line), std::string("bad record: ") + e.what());
      }
      if (done_.insert(r.policy + "\x1f" + r.id).second) {
        records_.push_back(std::move(r));
        ++resumed_;
      }
    }
  }
  void check_settings(const nlohmann::json& file, const nlohmann::json& now) const {
    for (auto it = now.begin(); it != now.end(); ++it) {
      const auto f = file.find(it.key());
      const std::string was = f == file.end() ? "(absent)" : f->dump();
      if (was != it.value().dump())
        throw UsageError(path_, "settings." + it.key(),
                         "this file was written by a run with " + was + ", this run has " +
                             it.value().dump() + " (use another --out, or the same settings to resume)");
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
