#pragma once
// Layer usage over many prompts, by where in the sequence a token is: the mean activation of
// each layer (rows, layer 0 at the bottom) per position bucket (columns), one panel per phase.
//   PP  relative position in the prompt: bucket b holds the prompt tokens with
//       (position − first) · B / length in [b, b + 1), so every prompt, long or short, spreads
//       over all B buckets (a prompt shorter than B leaves some of its buckets empty).
//   RG  generated step (0 = the first token fed back) in buckets of ceil(max steps / B) steps,
//       so late buckets hold only the longer replies (their token counts are in the tooltips).
// A cell's value is (activated tokens) / (tokens) of that layer and bucket; empty cells are
// hatched grey. Records come from a Trace that keeps them (or a trace JSONL read back); each
// sequence is the caller's set_sequence id, so several prompts' records may be mixed.
//
//   auto b = report::bucket_usage(trace.records(), trace.n_layers(), 10);
//   report::write_usage_buckets_svg("usage-buckets.svg", b, {"SmolLM2", "lac:0.8, 200 MMLU"});
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/trace.hpp"
#include "fathom/report/svg.hpp"
#include "fathom/report/table.hpp"

namespace fathom::report {

struct PhaseBuckets {
  size_t n_layers = 0, n_buckets = 0;
  std::vector<uint64_t> active;  // [layers, buckets] activated tokens
  std::vector<uint64_t> tokens;  // [buckets] tokens in the bucket
  size_t step_width = 0;         // RG: generated steps per bucket (0 for PP)
  size_t sequences = 0;          // sequences with tokens in this phase
  double mean(size_t l, size_t b) const {
    return tokens[b] ? double(active[l * n_buckets + b]) / double(tokens[b]) : NAN;
  }
};

struct BucketUsage {
  PhaseBuckets pp, rg;
};

inline BucketUsage bucket_usage(std::span<const TokenRecord> records, size_t n_layers, size_t n_buckets) {
  if (n_buckets == 0) throw UsageError("", "buckets", "at least one bucket");
  // Per (sequence, phase): the first position and the token count.
  struct Span {
    int64_t first = INT64_MAX, last = INT64_MIN;
  };
  std::map<std::pair<int64_t, int>, Span> spans;
  for (const auto& r : records) {
    if (r.layers.size() != n_layers)
      throw UsageError("", "layers", "a record has " + std::to_string(r.layers.size()) + " layers, expected " +
                                         std::to_string(n_layers));
    auto& s = spans[{r.sequence, int(r.phase)}];
    s.first = std::min(s.first, r.position), s.last = std::max(s.last, r.position);
  }
  BucketUsage u;
  int64_t max_steps = 0;
  for (auto& [key, s] : spans) {
    if (key.second == int(Phase::RG)) max_steps = std::max(max_steps, s.last - s.first + 1);
    ++(key.second == int(Phase::PP) ? u.pp : u.rg).sequences;
  }
  for (PhaseBuckets* p : {&u.pp, &u.rg}) {
    p->n_layers = n_layers, p->n_buckets = n_buckets;
    p->active.assign(n_layers * n_buckets, 0);
    p->tokens.assign(n_buckets, 0);
  }
  u.rg.step_width = size_t(std::max<int64_t>(1, (max_steps + int64_t(n_buckets) - 1) / int64_t(n_buckets)));
  for (const auto& r : records) {
    const Span& s = spans[{r.sequence, int(r.phase)}];
    const int64_t off = r.position - s.first;
    size_t b;
    PhaseBuckets& p = r.phase == Phase::PP ? u.pp : u.rg;
    if (r.phase == Phase::PP) b = size_t(off * int64_t(n_buckets) / (s.last - s.first + 1));
    else b = std::min(n_buckets - 1, size_t(off) / p.step_width);
    ++p.tokens[b];
    for (size_t l = 0; l < n_layers; ++l) p.active[l * n_buckets + b] += r.layers[l].activated;
  }
  return u;
}

struct BucketPlotOptions {
  std::string model;  // title
  std::string note;   // subtitle (policy, prompts)
  double cell_width = 28, cell_height = 12;  // px
};

inline std::string usage_buckets_svg(const BucketUsage& u, const BucketPlotOptions& o = {}) {
  const size_t L = u.pp.n_layers, B = u.pp.n_buckets;
  const double cw = o.cell_width, ch = o.cell_height, left = 48, top = 64, gap = 56;
  const double panel_w = double(B) * cw, panel_h = double(L) * ch;
  const double legend_w = 140;
  Svg svg(left + 2 * panel_w + gap + 24 + legend_w, top + panel_h + 64);
  svg.style("text{font-family:sans-serif;font-size:11px;fill:#222}.t{font-size:14px;font-weight:bold}"
            ".e{fill:url(#hatch)}.ax{font-size:10px}");
  svg.defs("<pattern id=\"hatch\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\">"
           "<rect width=\"4\" height=\"4\" fill=\"#eeeeee\"/><path d=\"M0 4L4 0\" stroke=\"#bbbbbb\"/>"
           "</pattern>");
  svg.text(left, 20, "Layer usage by position" + (o.model.empty() ? std::string() : " \u2014 " + o.model), "t");
  if (!o.note.empty()) svg.text(left, 38, o.note);
  const Rgb lo{255, 255, 255}, hi{27, 79, 156};
  auto panel = [&](const PhaseBuckets& p, double x0, const std::string& title, bool rg) {
    uint64_t n = 0;
    for (auto t : p.tokens) n += t;
    svg.text(x0, top - 8, title + " (" + std::to_string(p.sequences) + " sequences, " + std::to_string(n) +
                              " tokens)");
    for (size_t l = 0; l < L; ++l)
      for (size_t b = 0; b < B; ++b) {
        const double v = p.mean(l, b);
        const double x = x0 + double(b) * cw, y = top + double(L - 1 - l) * ch;
        std::string tip = "layer " + std::to_string(l) + " \u00B7 bucket " + std::to_string(b) + " \u00B7 ";
        tip += std::isnan(v) ? "no tokens" : fixed(100 * v, 1) + "% activated of " + std::to_string(p.tokens[b]) + " tokens";
        if (std::isnan(v)) svg.rect(x, y, cw, ch, "e", {}, tip);
        else svg.rect(x, y, cw, ch, {}, "fill=\"" + mix(lo, hi, v).hex() + "\"", tip);
      }
    for (size_t b = 0; b < B; ++b) {
      const std::string lab = rg ? std::to_string(b * p.step_width) : fixed(100.0 * double(b) / double(B), 0);
      svg.text(x0 + double(b) * cw + 2, top + panel_h + 14, lab, "ax");
    }
    svg.text(x0, top + panel_h + 30,
             rg ? "generated step (bucket start; " + std::to_string(p.step_width) + " steps per bucket)"
                : "relative position in the prompt (% of its length)", "ax");
  };
  for (size_t l = 0; l < L; l += (L > 16 ? 2 : 1))
    svg.text(8, top + double(L - 1 - l) * ch + ch - 2, "L" + std::to_string(l), "ax");
  panel(u.pp, left, "PP", false);
  panel(u.rg, left + panel_w + gap, "RG", true);
  // Legend: 0 % .. 100 % activated.
  const double lx = left + 2 * panel_w + gap + 24;
  for (int k = 0; k <= 10; ++k)
    svg.rect(lx, top + double(10 - k) * 12, 16, 12, {}, "fill=\"" + mix(lo, hi, k / 10.0).hex() + "\"");
  svg.text(lx + 20, top + 10, "100% activated");
  svg.text(lx + 20, top + 130, "0%");
  svg.rect(lx, top + 140, 16, 12, "e");
  svg.text(lx + 20, top + 150, "no tokens");
  return svg.str();
}

inline void write_usage_buckets_svg(const std::filesystem::path& path, const BucketUsage& u,
                                    const BucketPlotOptions& o = {}) {
  write_text_file(path, usage_buckets_svg(u, o));
}

}  // namespace fathom::report
