#pragma once
// Eval reports: the paper-style comparison table (accuracy ± standard error, % of layers used
// per phase, tokens, speed), a per-subject table, and an SVG of accuracy and layer usage
// against α for the LAC variants of a comparison run (FullDepth drawn as a flat reference).
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "fathom/eval/policies.hpp"
#include "fathom/eval/results.hpp"
#include "fathom/report/line_plot.hpp"
#include "fathom/report/table.hpp"

namespace fathom::eval {

inline std::string pct(double v, int decimals = 2) { return report::fixed(100.0 * v, decimals); }

inline report::TextTable summary_table(const std::vector<PolicySummary>& s, size_t n_layers) {
  // "no answer %": the share of replies with no extractable answer (always 0 under log-likelihood
  // scoring), so an accuracy is never read without it.
  report::TextTable t({"policy", "acc %", "± se", "macro %", "PP layers %", "RG layers %", "items",
                       "no answer %", "truncated", "tokens", "tok/s", "item-s"});
  for (const auto& p : s) {
    const double tps = p.seconds > 0 ? double(p.tokens()) / p.seconds : NAN;
    t.add_row({p.policy, pct(p.overall.acc()), pct(p.overall.stderr_()), pct(p.macro_acc),
               pct(p.pp_layers(n_layers), 1), pct(p.rg_layers(n_layers), 1),
               std::to_string(p.overall.n), pct(p.unanswered_share(), 1),
               std::to_string(p.truncated), std::to_string(p.tokens()), report::fixed(tps, 0),
               report::fixed(p.seconds, 1)});
  }
  return t;
}

// Rows: subjects; columns: accuracy % per policy, and the item count.
inline report::TextTable subject_table(const std::vector<PolicySummary>& s) {
  std::vector<std::string> head = {"subject", "items"};
  for (auto& p : s) head.push_back(p.policy + " %");
  report::TextTable t(head);
  if (s.empty()) return t;
  for (const auto& [subject, a] : s[0].by_subject) {
    std::vector<std::string> row = {subject, std::to_string(a.n)};
    for (auto& p : s) {
      auto it = p.by_subject.find(subject);
      row.push_back(it == p.by_subject.end() ? "-" : pct(it->second.acc(), 1));
    }
    t.add_row(row);
  }
  return t;
}

// Accuracy and PP/RG layer usage (%) against α, one series per LAC variant; FullDepth as flat
// lines over the α range. Returns false (writes nothing) when no policy has an α.
inline bool write_alpha_svg(const std::string& path, const std::vector<PolicySpec>& specs,
                            const std::vector<PolicySummary>& s, size_t n_layers,
                            const std::string& title) {
  std::map<std::string, report::Series> acc, pp, rg;
  double lo = INFINITY, hi = -INFINITY;
  const PolicySummary* full = nullptr;
  for (size_t i = 0; i < specs.size() && i < s.size(); ++i) {
    if (specs[i].kind == PolicySpec::Kind::Full) { full = &s[i]; continue; }
    using K = PolicySpec::Kind;
    const K k = specs[i].kind;
    if (k != K::Lac && k != K::LacInStream && k != K::LacTrace && k != K::LacExit) continue;  // no α
    const std::string fam = specs[i].name.substr(0, specs[i].name.find(':'));
    const double a = specs[i].alpha;
    lo = std::min(lo, a), hi = std::max(hi, a);
    auto add = [&](std::map<std::string, report::Series>& m, const std::string& name, double y) {
      auto& ser = m[fam];
      ser.name = name;
      ser.x.push_back(a), ser.y.push_back(100.0 * y);
    };
    add(acc, fam + " accuracy", s[i].overall.acc());
    add(pp, fam + " PP layers", s[i].pp_layers(n_layers));
    if (s[i].rg_tokens) add(rg, fam + " RG layers", s[i].rg_layers(n_layers));
  }
  if (acc.empty()) return false;
  std::vector<report::Series> all;
  for (auto* m : {&acc, &pp, &rg})
    for (auto& [_, ser] : *m) {
      // Sort by α so the line is drawn left to right.
      std::vector<size_t> idx(ser.x.size());
      for (size_t k = 0; k < idx.size(); ++k) idx[k] = k;
      std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return ser.x[a] < ser.x[b]; });
      report::Series o{ser.name, {}, {}};
      for (size_t k : idx) o.x.push_back(ser.x[k]), o.y.push_back(ser.y[k]);
      all.push_back(std::move(o));
    }
  if (full) {
    const double x0 = lo == hi ? lo - 0.1 : lo, x1 = lo == hi ? hi + 0.1 : hi;
    all.push_back({"full accuracy", {x0, x1}, {100.0 * full->overall.acc(), 100.0 * full->overall.acc()}});
  }
  // One % axis for all series (accuracy and layer usage share the 0-100 range).
  report::LinePlotOptions o;
  o.title = title, o.x_label = "α", o.y_label = "%";
  o.width = 720, o.height = 420, o.y_min = 0, o.y_max = 100;
  report::write_line_plot_svg(path, all, o);
  return true;
}

}  // namespace fathom::eval
