#pragma once
// The skip-vs-accuracy frontier: for each skip set (a calibrated void set or a ShortGPT set of
// the same size, per threshold c; full depth as the reference), its accuracy on the eval runs
// and its decode speed, as one CSV row and one point of an accuracy-vs-tok/s plot.
// Inputs, all written by fathom programs:
//   calibration.csv  c,method,skipped_pp,skipped_rg,policy           (voids --calibrate)
//   timing.csv       policy,tokens,seconds,tok_s                       (voids --time-policy)
//   results JSONL    eval's resumable results (any number of tasks), read as summaries
// Output CSV columns: method,c,skipped_pp,skipped_rg,policy, then per task
// <task>_acc,<task>_se,<task>_no_answer,<task>_items, then decode_tok_s. Accuracy and shares
// are fractions (0-1); a policy missing from a task's results leaves its cells empty.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fathom/core/error.hpp"
#include "fathom/depth/layer_similarity.hpp"
#include "fathom/depth/policies.hpp"
#include "fathom/depth/static_skip.hpp"
#include "fathom/eval/csv.hpp"
#include "fathom/eval/results.hpp"
#include "fathom/report/line_plot.hpp"
#include "fathom/report/table.hpp"

namespace fathom::eval {

struct FrontierRow {
  std::string method;  // "full", "calibrated", "shortgpt"
  double c = NAN;      // calibration threshold (NaN for full)
  size_t skipped_pp = 0, skipped_rg = 0;
  std::string policy;  // as eval names it ("full", "static:pp=...;rg=...")
};

namespace detail {
inline std::vector<std::map<std::string, std::string>> read_csv_table(const std::string& path,
                                                                      const std::vector<std::string>& need) {
  const auto recs = parse_csv(read_text_file(path), path);
  if (recs.empty()) throw DataError(path, "line 1", "empty file (no header)");
  const auto& head = recs[0].fields;
  for (const auto& n : need)
    if (std::find(head.begin(), head.end(), n) == head.end())
      throw DataError(path, "line 1, column " + n, "missing from the header");
  std::vector<std::map<std::string, std::string>> rows;
  for (size_t r = 1; r < recs.size(); ++r) {
    if (recs[r].fields.size() != head.size())
      throw DataError(path, "line " + std::to_string(recs[r].line),
                      "expected " + std::to_string(head.size()) + " fields as in the header, got " +
                          std::to_string(recs[r].fields.size()));
    std::map<std::string, std::string> m;
    for (size_t c = 0; c < head.size(); ++c) m[head[c]] = recs[r].fields[c];
    rows.push_back(std::move(m));
  }
  return rows;
}
inline double number(const std::string& s, const std::string& file, const std::string& field) {
  if (s.empty()) return NAN;
  size_t used = 0;
  double v = NAN;
  try {
    v = std::stod(s, &used);
  } catch (...) {
    used = 0;
  }
  if (used != s.size()) throw DataError(file, field, "'" + s + "' is not a number");
  return v;
}
}  // namespace detail

// Rows of calibration.csv (written by voids --calibrate), with full depth first.
inline std::vector<FrontierRow> read_calibration_csv(const std::string& path) {
  std::vector<FrontierRow> out = {{"full", NAN, 0, 0, "full"}};
  const auto rows = detail::read_csv_table(path, {"c", "method", "skipped_pp", "skipped_rg", "policy"});
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string where = "row " + std::to_string(i + 1);
    FrontierRow r;
    r.method = rows[i].at("method");
    r.c = detail::number(rows[i].at("c"), path, where + ", field c");
    r.skipped_pp = size_t(detail::number(rows[i].at("skipped_pp"), path, where + ", field skipped_pp"));
    r.skipped_rg = size_t(detail::number(rows[i].at("skipped_rg"), path, where + ", field skipped_rg"));
    r.policy = rows[i].at("policy");
    if (r.policy.empty()) throw DataError(path, where + ", field policy", "empty");
    out.push_back(std::move(r));
  }
  return out;
}

// The skip sets of a calibration run (a LAC trace and the layer cosines of the same tokens): per
// threshold c, the calibrated set of each phase (layers activated for fewer than c of its tokens)
// and ShortGPT's set of the same size per phase (the most input/output-similar layers); per k in
// `shortgpt_k`, ShortGPT's k layers in both phases.
inline std::vector<FrontierRow> skip_sets(const Trace& lac_trace, const LayerCosines& cosines,
                                          std::span<const double> thresholds, std::span<const size_t> shortgpt_k) {
  auto row = [](const char* method, double c, const std::set<int>& pp, const std::set<int>& rg) {
    return FrontierRow{method, c, pp.size(), rg.size(), static_policy(pp, rg).name};
  };
  auto as_set = [](const std::vector<uint8_t>& skipped) {
    std::set<int> s;
    for (size_t l = 0; l < skipped.size(); ++l)
      if (skipped[l]) s.insert(int(l));
    return s;
  };
  std::vector<FrontierRow> out;
  for (double c : thresholds) {
    const StaticSkip skip = calibrated_skip(lac_trace, c);
    const std::set<int> pp = as_set(skip.skipped(Phase::PP)), rg = as_set(skip.skipped(Phase::RG));
    out.push_back(row("calibrated", c, pp, rg));
    out.push_back(row("shortgpt", c, shortgpt_layers(cosines, pp.size()), shortgpt_layers(cosines, rg.size())));
  }
  for (size_t k : shortgpt_k) {
    const std::set<int> g = shortgpt_layers(cosines, k);
    out.push_back(row("shortgpt", NAN, g, g));
  }
  return out;
}

// calibration.csv (read back by read_calibration_csv; a "full" row is not written, it is implied).
inline std::string calibration_csv(std::span<const FrontierRow> rows) {
  std::string out = "c,method,skipped_pp,skipped_rg,policy\n";
  for (const auto& r : rows) {
    if (r.method == "full") continue;
    char c[32] = "";
    if (std::isfinite(r.c)) std::snprintf(c, sizeof c, "%g", r.c);
    out += std::string(c) + "," + report::csv_field(r.method) + "," + std::to_string(r.skipped_pp) + "," +
           std::to_string(r.skipped_rg) + "," + report::csv_field(r.policy) + "\n";
  }
  return out;
}

// policy -> decode tokens/s, from timing.csv (written by voids --time-policy).
inline std::map<std::string, double> read_timing_csv(const std::string& path) {
  std::map<std::string, double> out;
  const auto rows = detail::read_csv_table(path, {"policy", "tok_s"});
  for (size_t i = 0; i < rows.size(); ++i)
    out[rows[i].at("policy")] =
        detail::number(rows[i].at("tok_s"), path, "row " + std::to_string(i + 1) + ", field tok_s");
  return out;
}

// Every record of an eval results JSONL (the run header is checked, not matched).
inline std::vector<ItemRecord> read_results_records(const std::string& path) {
  const std::string text = read_text_file(path);
  std::vector<ItemRecord> out;
  size_t pos = 0, line = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) break;  // a half-written last line: not a record yet
    const std::string row = text.substr(pos, end - pos);
    pos = end + 1;
    ++line;
    if (row.empty()) continue;
    try {
      const auto j = nlohmann::json::parse(row);
      if (line == 1) {
        if (!j.is_object() || j.value("type", "") != "run")
          throw DataError(path, "line 1", "not a fathom eval results file (no run header)");
        continue;
      }
      out.push_back(record_from_json(j));
    } catch (const nlohmann::json::exception& e) {
      throw DataError(path, "line " + std::to_string(line), std::string("bad record: ") + e.what());
    }
  }
  return out;
}

struct FrontierTask {
  std::string name;                  // "mmlu", "boolq": the column prefix
  std::vector<ItemRecord> records;   // from read_results_records
};

inline std::string frontier_csv(const std::vector<FrontierRow>& rows, const std::vector<FrontierTask>& tasks,
                                const std::map<std::string, double>& tok_s) {
  std::vector<std::string> head = {"method", "c", "skipped_pp", "skipped_rg", "policy"};
  for (auto& t : tasks)
    for (const char* f : {"_acc", "_se", "_no_answer", "_items"}) head.push_back(t.name + f);
  head.push_back("decode_tok_s");
  report::TextTable tab(head);
  auto num = [](double v, int d) { return std::isfinite(v) ? report::fixed(v, d) : std::string(); };
  for (const auto& r : rows) {
    std::vector<std::string> cells = {r.method, num(r.c, 3), std::to_string(r.skipped_pp),
                                      std::to_string(r.skipped_rg), r.policy};
    for (const auto& t : tasks) {
      const auto s = summarize(t.records, {r.policy})[0];
      const bool any = s.overall.n > 0;
      cells.push_back(any ? num(s.overall.acc(), 4) : "");
      cells.push_back(any ? num(s.overall.stderr_(), 4) : "");
      cells.push_back(any ? num(s.unanswered_share(), 4) : "");
      cells.push_back(std::to_string(s.overall.n));
    }
    const auto it = tok_s.find(r.policy);
    cells.push_back(it == tok_s.end() ? "" : num(it->second, 1));
    tab.add_row(cells);
  }
  return tab.csv();
}

// Accuracy (%) against decode tok/s: one series per (task, method), points in c order; full
// depth as its own point per task.
inline std::vector<report::Series> frontier_series(const std::vector<FrontierRow>& rows,
                                                   const std::vector<FrontierTask>& tasks,
                                                   const std::map<std::string, double>& tok_s) {
  std::vector<report::Series> out;
  for (const auto& t : tasks) {
    std::map<std::string, report::Series> by;
    std::vector<std::string> order;
    for (const auto& r : rows) {
      const auto it = tok_s.find(r.policy);
      const auto s = summarize(t.records, {r.policy})[0];
      if (it == tok_s.end() || s.overall.n == 0) continue;
      if (!by.count(r.method)) order.push_back(r.method), by[r.method].name = t.name + " " + r.method;
      by[r.method].x.push_back(it->second);
      by[r.method].y.push_back(100.0 * s.overall.acc());
    }
    for (auto& m : order) out.push_back(std::move(by[m]));
  }
  return out;
}

inline void write_frontier_svg(const std::filesystem::path& path, const std::vector<report::Series>& series,
                               const std::string& title) {
  if (series.empty()) throw UsageError(path.string(), "frontier", "no policy has both accuracy and timing");
  report::LinePlotOptions o;
  o.title = title, o.x_label = "decode tokens/s", o.y_label = "accuracy %";
  o.width = 720, o.height = 440;
  report::write_line_plot_svg(path, series, o);
}

}  // namespace fathom::eval
