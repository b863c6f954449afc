#pragma once
// The per-phase layer-usage summary of a trace (Trace::usage) as an aligned text table and CSV:
// one row per layer with the % of tokens for which the layer was activated in PP and in RG and
// the % for which it was executed, then the mean over layers ("% of layers used") and the token
// counts. A phase with no tokens shows "-".
//
//   std::cout << report::usage_text(trace);
//   layer   PP activated %  RG activated %  PP executed %  RG executed %
//   --------------------------------------------------------------------
//   0                100.0            95.0          100.0          100.0
//   ...
//   mean              62.5            55.0          100.0          100.0
//   tokens              12              40             12             40
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/trace.hpp"
#include "fathom/report/table.hpp"

namespace fathom::report {

// Usage recomputed from per-token records (equals Trace::usage for a trace that kept them all);
// used to summarise records read back from a file or a subset of a trace.
inline Usage record_usage(std::span<const TokenRecord> records, size_t n_layers, Phase phase) {
  Usage u;
  u.activated.assign(n_layers, 0.0);
  u.executed.assign(n_layers, 0.0);
  for (const auto& r : records) {
    if (r.phase != phase) continue;
    if (r.layers.size() != n_layers)
      throw UsageError("", "records", "a record has " + std::to_string(r.layers.size()) +
                                          " layers, expected " + std::to_string(n_layers));
    ++u.tokens;
    for (size_t l = 0; l < n_layers; ++l) {
      u.activated[l] += r.layers[l].activated;
      u.executed[l] += r.layers[l].executed;
    }
  }
  if (u.tokens)
    for (size_t l = 0; l < n_layers; ++l) {
      u.activated[l] /= double(u.tokens);
      u.executed[l] /= double(u.tokens);
    }
  return u;
}

// The table with percentages to `decimals` places. pp and rg must have the same layer count.
inline TextTable usage_table(const Usage& pp, const Usage& rg, int decimals = 1) {
  if (pp.activated.size() != rg.activated.size())
    throw UsageError("", "usage", "PP and RG summaries have different layer counts");
  TextTable t({"layer", "PP activated %", "RG activated %", "PP executed %", "RG executed %"});
  auto pct = [&](const Usage& u, double f) {
    return u.tokens ? fixed(100.0 * f, decimals) : std::string("-");
  };
  for (size_t l = 0; l < pp.activated.size(); ++l)
    t.add_row({std::to_string(l), pct(pp, pp.activated[l]), pct(rg, rg.activated[l]),
               pct(pp, pp.executed[l]), pct(rg, rg.executed[l])});
  t.add_rule();
  t.add_row({"mean", pct(pp, pp.mean_activated()), pct(rg, rg.mean_activated()),
             pct(pp, pp.mean_executed()), pct(rg, rg.mean_executed())});
  const auto pn = std::to_string(pp.tokens), rn = std::to_string(rg.tokens);
  t.add_row({"tokens", pn, rn, pn, rn});
  return t;
}

inline std::string usage_text(const Trace& trace, int decimals = 1) {
  return usage_table(trace.usage(Phase::PP), trace.usage(Phase::RG), decimals).str();
}

// CSV with fractions (not percentages) at full precision, for plotting and aggregation:
//   layer,pp_activated,rg_activated,pp_executed,rg_executed
//   0,1,0.95,1,1
//   ...
//   mean,0.625,0.55,1,1
//   tokens,12,40,12,40
// A phase with no tokens has empty fields.
inline std::string usage_csv(const Usage& pp, const Usage& rg) {
  if (pp.activated.size() != rg.activated.size())
    throw UsageError("", "usage", "PP and RG summaries have different layer counts");
  auto num = [](const Usage& u, double v) {
    if (!u.tokens) return std::string();
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  std::string s = "layer,pp_activated,rg_activated,pp_executed,rg_executed\n";
  auto row = [&](const std::string& label, double pa, double ra, double pe, double re) {
    s += label + ',' + num(pp, pa) + ',' + num(rg, ra) + ',' + num(pp, pe) + ',' + num(rg, re) +
         '\n';
  };
  for (size_t l = 0; l < pp.activated.size(); ++l)
    row(std::to_string(l), pp.activated[l], rg.activated[l], pp.executed[l], rg.executed[l]);
  row("mean", pp.mean_activated(), rg.mean_activated(), pp.mean_executed(), rg.mean_executed());
  const auto pn = std::to_string(pp.tokens), rn = std::to_string(rg.tokens);
  s += "tokens," + pn + ',' + rn + ',' + pn + ',' + rn + '\n';
  return s;
}
inline std::string usage_csv(const Trace& trace) {
  return usage_csv(trace.usage(Phase::PP), trace.usage(Phase::RG));
}

}  // namespace fathom::report
