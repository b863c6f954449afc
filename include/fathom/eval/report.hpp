#pragma once
// Eval reports: the paper-style comparison table (accuracy ± standard error, % of layers used
// per phase, tokens, speed), a per-subject table, and an SVG of accuracy and layer usage
// against α for the LAC variants of a comparison run (FullDepth drawn as a flat reference).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "fathom/eval/policies.hpp"
#include "fathom/eval/results.hpp"
#include "fathom/report/table.hpp"

namespace fathom::eval {

inline std::string pct(double v, int decimals = 2) { return report::fixed(100.0 * v, decimals); }

inline report::TextTable summary_table(const std::vector<PolicySummary>& s, size_t n_layers) {
  report::TextTable t({"policy", "acc %", "± se", "macro %", "PP layers %", "RG layers %", "items",
                       "no answer", "truncated", "tokens", "tok/s", "item-s"});
  for (const auto& p : s) {
    const double tps = p.seconds > 0 ? double(p.tokens()) / p.seconds : NAN;
    t.add_row({p.policy, pct(p.overall.acc()), pct(p.overall.stderr_()), pct(p.macro_acc),
               pct(p.pp_layers(n_layers), 1), pct(p.rg_layers(n_layers), 1),
               std::to_string(p.overall.n), std::to_string(p.unanswered),
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

namespace detail {
struct PlotSeries {
  std::string name;
  std::vector<double> x, y;  // y in %
};
inline std::string xml_text(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&') o += "&amp;";
    else if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}
// A small self-contained line plot: x from the data, y fixed to 0-100 %.
inline std::string alpha_svg(const std::vector<PlotSeries>& series, const std::string& title) {
  const double W = 720, H = 420, l = 60, r = 200, t = 40, b = 50;
  double x0 = INFINITY, x1 = -INFINITY;
  for (auto& s : series)
    for (double x : s.x) x0 = std::min(x0, x), x1 = std::max(x1, x);
  if (!(x1 > x0)) x0 -= 0.1, x1 += 0.1;
  auto X = [&](double x) { return l + (x - x0) / (x1 - x0) * (W - l - r); };
  auto Y = [&](double y) { return H - b - y / 100.0 * (H - t - b); };
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                                 "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
  char buf[256];
  std::string o;
  std::snprintf(buf, sizeof buf,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                W, H);
  o += buf;
  o += "<text x=\"" + std::to_string(W / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">" +
       xml_text(title) + "</text>\n";
  for (int k = 0; k <= 10; ++k) {  // y grid every 10 %
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#ddd\"/><text x=\"%g\" y=\"%g\" "
                  "text-anchor=\"end\">%d</text>\n",
                  l, Y(10.0 * k), W - r, Y(10.0 * k), l - 6, Y(10.0 * k) + 4, 10 * k);
    o += buf;
  }
  std::vector<double> xt;
  for (auto& s : series) xt.insert(xt.end(), s.x.begin(), s.x.end());
  std::sort(xt.begin(), xt.end());
  xt.erase(std::unique(xt.begin(), xt.end()), xt.end());
  for (double x : xt) {  // x ticks at the α values measured
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"#000\"/><text x=\"%g\" y=\"%g\" "
                  "text-anchor=\"middle\">%g</text>\n",
                  X(x), H - b, X(x), H - b + 5, X(x), H - b + 18, x);
    o += buf;
  }
  std::snprintf(buf, sizeof buf,
                "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#000\"/>\n"
                "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">α</text>\n"
                "<text x=\"16\" y=\"%g\" text-anchor=\"middle\" transform=\"rotate(-90 16 %g)\">%%</text>\n",
                l, t, W - l - r, H - t - b, (l + W - r) / 2, H - 12, (t + H - b) / 2, (t + H - b) / 2);
  o += buf;
  for (size_t i = 0; i < series.size(); ++i) {
    const auto& s = series[i];
    const char* c = colors[i % 10];
    std::string pts;
    for (size_t k = 0; k < s.x.size(); ++k) {
      if (!std::isfinite(s.y[k])) continue;
      std::snprintf(buf, sizeof buf, "%.2f,%.2f ", X(s.x[k]), Y(s.y[k]));
      pts += buf;
    }
    o += std::string("<polyline fill=\"none\" stroke=\"") + c + "\" stroke-width=\"2\" points=\"" + pts + "\"/>\n";
    for (size_t k = 0; k < s.x.size(); ++k) {
      if (!std::isfinite(s.y[k])) continue;
      std::snprintf(buf, sizeof buf, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"><title>%s",
                    X(s.x[k]), Y(s.y[k]), c, xml_text(s.name).c_str());
      o += buf;
      std::snprintf(buf, sizeof buf, " α=%g: %.2f%%</title></circle>\n", s.x[k], s.y[k]);
      o += buf;
    }
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" stroke-width=\"2\"/>"
                  "<text x=\"%g\" y=\"%g\">",
                  W - r + 12, t + 10 + 18.0 * double(i), W - r + 32, t + 10 + 18.0 * double(i), c,
                  W - r + 38, t + 14 + 18.0 * double(i));
    o += buf + xml_text(s.name) + "</text>\n";
  }
  return o + "</svg>\n";
}
}  // namespace detail

// Accuracy and PP/RG layer usage (%) against α, one series per LAC variant; FullDepth as flat
// lines over the α range. Returns false (writes nothing) when no policy has an α.
inline bool write_alpha_svg(const std::string& path, const std::vector<PolicySpec>& specs,
                            const std::vector<PolicySummary>& s, size_t n_layers,
                            const std::string& title) {
  std::map<std::string, detail::PlotSeries> acc, pp, rg;
  double lo = INFINITY, hi = -INFINITY;
  const PolicySummary* full = nullptr;
  for (size_t i = 0; i < specs.size() && i < s.size(); ++i) {
    if (specs[i].kind == PolicySpec::Kind::Full) { full = &s[i]; continue; }
    const std::string fam = specs[i].name.substr(0, specs[i].name.find(':'));
    const double a = specs[i].alpha;
    lo = std::min(lo, a), hi = std::max(hi, a);
    auto add = [&](std::map<std::string, detail::PlotSeries>& m, const std::string& name, double y) {
      auto& ser = m[fam];
      ser.name = name;
      ser.x.push_back(a), ser.y.push_back(100.0 * y);
    };
    add(acc, fam + " accuracy", s[i].overall.acc());
    add(pp, fam + " PP layers", s[i].pp_layers(n_layers));
    if (s[i].rg_tokens) add(rg, fam + " RG layers", s[i].rg_layers(n_layers));
  }
  if (acc.empty()) return false;
  std::vector<detail::PlotSeries> all;
  for (auto* m : {&acc, &pp, &rg})
    for (auto& [_, ser] : *m) {
      // Sort by α so the line is drawn left to right.
      std::vector<size_t> idx(ser.x.size());
      for (size_t k = 0; k < idx.size(); ++k) idx[k] = k;
      std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return ser.x[a] < ser.x[b]; });
      detail::PlotSeries o{ser.name, {}, {}};
      for (size_t k : idx) o.x.push_back(ser.x[k]), o.y.push_back(ser.y[k]);
      all.push_back(std::move(o));
    }
  if (full) {
    const double x0 = lo == hi ? lo - 0.1 : lo, x1 = lo == hi ? hi + 0.1 : hi;
    all.push_back({"full accuracy", {x0, x1}, {100.0 * full->overall.acc(), 100.0 * full->overall.acc()}});
  }
  std::ofstream f(path, std::ios::binary);
  if (!f) throw IoError(path, "", "cannot open for writing");
  f << detail::alpha_svg(all, title);
  if (!f) throw IoError(path, "", "write failed");
  return true;
}

}  // namespace fathom::eval
