#pragma once
// The tokens × layers heatmap of a trace, as SVG drawn by the library itself.
//
// Two panels side by side, prompt processing (PP) on the left and response generation (RG) on
// the right; tokens run left to right in trace order, layers bottom (layer 0) to top. One cell
// per (token, layer):
//   discrete mode    dark = activated, light = void (Δ_l < τ_l), hatched grey = not executed;
//   continuous mode  colour by Δ_l/τ_l on a diverging scale: orange (≤ 0) → white (1, the
//                    threshold) → blue (≥ 2); τ_l = 0 counts as +∞ for Δ_l ≥ 0 and −∞ below;
//                    cells without a τ fall back to the discrete colours.
// A small circle marks the read-out layer when it is not the last (final-state substitution,
// early exit); a red line separates sequences. The token text runs along the bottom axis
// (whitespace shown as · ↵ ⇥, cut to max_label_chars), layer numbers along the left. The title
// gives the model, α and the usage figures ("% of layers used" per phase, from all records);
// only the first max_tokens tokens of each phase are drawn, and the figure says so when cut.
// Every cell carries a tooltip (<title>) with position, text, n_l, Δ_l and τ_l.
//
//   report::HeatmapOptions o;  o.model = "stories260K";  o.alpha = 0.8;
//   report::write_heatmap_svg("voids.svg", trace, o, [&](int32_t id) { return tok.decode({id}); });
#include <cmath>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/model/trace.hpp"
#include "fathom/report/svg.hpp"
#include "fathom/report/table.hpp"
#include "fathom/report/text.hpp"
#include "fathom/report/usage_table.hpp"

namespace fathom::report {

struct HeatmapOptions {
  std::string model;            // shown in the title
  double alpha = NAN;           // shown in the subtitle when set
  std::string note;             // appended to the subtitle (e.g. "LAC in-stream, KV propagate")
  bool continuous = false;      // colour by Δ_l/τ_l instead of activated / void
  size_t max_tokens = 200;      // per phase; later tokens are not drawn (the figure says so)
  size_t max_label_chars = 12;  // token text longer than this is cut with …
  double cell_width = 12;       // px
  double cell_height = 12;      // px
  bool tooltips = true;         // a <title> per cell (larger file, hover details in browsers)
};

// The diverging colour of continuous mode for one cell (see the header comment).
inline Rgb ratio_colour(double delta, double tau) {
  const Rgb low{217, 95, 2}, mid{255, 255, 255}, high{27, 79, 156};
  double r;
  if (tau > 0) r = delta / tau;
  else r = delta >= 0 ? INFINITY : -INFINITY;
  const double t = std::clamp(r, 0.0, 2.0);
  return t < 1 ? mix(low, mid, t) : mix(mid, high, t - 1);
}

namespace detail {

inline std::string pct_text(const Usage& u) {
  return u.tokens ? fixed(100.0 * u.mean_activated(), 1) + "%" : std::string("-");
}

inline std::string cell_tooltip(const TokenRecord& r, size_t l, const std::string& label) {
  const auto& x = r.layers[l];
  auto f = [](float v) { return std::isnan(v) ? std::string("-") : fixed(v, 4); };
  std::string s = "seq " + std::to_string(r.sequence) + " pos " + std::to_string(r.position) +
                  " " + label + " \u00B7 layer " + std::to_string(l) + " \u00B7 ";
  s += !x.executed ? "not executed" : x.activated ? "activated" : "void";
  if (x.executed) s += " \u00B7 n=" + f(x.norm) + " \u0394=" + f(x.delta) + " \u03C4=" + f(x.tau);
  return s;
}

}  // namespace detail

// The SVG document for `records` (every record must have n_layers layers).
inline std::string heatmap_svg(std::span<const TokenRecord> records, size_t n_layers,
                               const HeatmapOptions& o = {}, const TokenText& text = {}) {
  if (n_layers == 0) throw UsageError("", "n_layers", "a heatmap needs at least one layer");
  if (o.max_tokens == 0) throw UsageError("", "max_tokens", "must be positive");
  if (!(o.cell_width > 0) || !(o.cell_height > 0))
    throw UsageError("", "cell_width/cell_height", "must be positive");

  const Usage use[2] = {record_usage(records, n_layers, Phase::PP),
                        record_usage(records, n_layers, Phase::RG)};
  std::vector<const TokenRecord*> panel[2];  // [phase] the records drawn
  for (const auto& r : records) {
    auto& p = panel[size_t(r.phase)];
    if (p.size() < o.max_tokens) p.push_back(&r);
  }
  // Labels first: their longest length sets the height of the axis.
  auto label_of = [&](const TokenRecord& r) {
    std::string t = text ? text(r.token) : std::string();
    return t.empty() ? "#" + std::to_string(r.token) : visible_text(t, o.max_label_chars);
  };
  std::vector<std::string> labels[2];
  size_t longest = 1;
  for (int p = 0; p < 2; ++p)
    for (const auto* r : panel[p]) {
      labels[p].push_back(label_of(*r));
      size_t n = 0;
      for (unsigned char c : labels[p].back()) n += (c & 0xC0) != 0x80;
      longest = std::max(longest, n);
    }

  // ---- geometry ----
  const double cw = o.cell_width, ch = o.cell_height;
  const double tok_font = std::clamp(cw - 2, 6.0, 11.0);
  const double left = 48, gap = 28, top_grid = 118;
  const double grid_h = double(n_layers) * ch;
  double slot[2], x0[2];
  for (int p = 0; p < 2; ++p) slot[p] = std::max(double(panel[p].size()) * cw, 190.0);
  x0[0] = left;
  x0[1] = left + slot[0] + gap;
  const double label_h = double(longest) * tok_font * 0.62 + 8;
  const bool cut = use[0].tokens > panel[0].size() || use[1].tokens > panel[1].size();
  const double foot_y = top_grid + grid_h + label_h + 16;

  std::string title = "Layer activation";
  if (!o.model.empty()) title += " \u2014 " + o.model;
  std::string sub;
  if (!std::isnan(o.alpha)) sub += "\u03B1 = " + fixed(o.alpha, 2) + " \u00B7 ";
  sub += "PP: " + detail::pct_text(use[0]) + " of layers used (" + std::to_string(use[0].tokens) +
         " tokens) \u00B7 RG: " + detail::pct_text(use[1]) + " of layers used (" +
         std::to_string(use[1].tokens) + " tokens)";
  if (!o.note.empty()) sub += " \u00B7 " + o.note;
  const double width = std::max({x0[1] + slot[1] + 16, 8.0 + double(title.size()) * 8.5,
                                 8.0 + double(sub.size()) * 5.8, 560.0});
  const double height = foot_y + (cut ? 18 : 4);

  Svg svg(width, height);
  svg.defs(
      "<pattern id=\"hatch\" width=\"4\" height=\"4\" patternUnits=\"userSpaceOnUse\" "
      "patternTransform=\"rotate(45)\"><rect width=\"4\" height=\"4\" fill=\"#f0f0f0\"/>"
      "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"4\" stroke=\"#9a9a9a\" stroke-width=\"1.5\"/>"
      "</pattern>"
      "<linearGradient id=\"ratio\"><stop offset=\"0\" stop-color=\"" + ratio_colour(0, 1).hex() +
      "\"/><stop offset=\"0.5\" stop-color=\"#ffffff\"/><stop offset=\"1\" stop-color=\"" +
      ratio_colour(2, 1).hex() + "\"/></linearGradient>");
  svg.style(
      "text{font-family:sans-serif;fill:#222}"
      ".t{font-size:15px;font-weight:bold}.s{font-size:11px}.p{font-size:12px;font-weight:bold}"
      ".q{font-size:11px;fill:#444}.l{font-size:10px}.f{font-size:10px;font-style:italic}"
      ".tok{font-family:monospace;font-size:" + svg_num(tok_font) + "px}"
      ".a{fill:#1f4e79}.v{fill:#dce6f2}.x{fill:url(#hatch)}"
      ".a,.v,.x,.k{stroke:#ffffff;stroke-width:0.5}"
      ".sep{stroke:#d62728;stroke-width:1.5}.ro{fill:#ffffff;stroke:#000000;stroke-width:0.6}"
      ".box{fill:none;stroke:#888888;stroke-width:0.8}");

  svg.text(8, 22, title, "t");
  svg.text(8, 40, sub, "s");

  // ---- legend ----
  double lx = 8;
  const double ly = 52;
  auto swatch = [&](std::string_view fill, const std::string& label) {
    svg.rect(lx, ly, 12, 12, {},
             "fill=\"" + std::string(fill) + "\" stroke=\"#888888\" stroke-width=\"0.5\"");
    svg.text(lx + 16, ly + 10, label, "l");
    lx += 16 + double(label.size()) * 5.6 + 14;
  };
  if (o.continuous) {
    svg.text(lx, ly + 10, "\u0394/\u03C4:", "l");
    lx += 30;
    svg.rect(lx, ly, 120, 12, {}, "fill=\"url(#ratio)\" stroke=\"#888888\" stroke-width=\"0.5\"");
    svg.text(lx, ly + 24, "\u2264 0", "l", "text-anchor=\"start\"");
    svg.text(lx + 60, ly + 24, "1 (threshold)", "l", "text-anchor=\"middle\"");
    svg.text(lx + 120, ly + 24, "\u2265 2", "l", "text-anchor=\"end\"");
    lx += 134;
  } else {
    swatch("#1f4e79", "activated");
    swatch("#dce6f2", "void (\u0394 < \u03C4)");
  }
  swatch("url(#hatch)", "not executed");
  svg.circle(lx + 6, ly + 6, 3, "ro");
  svg.text(lx + 16, ly + 10, "read-out layer (when not the last)", "l");

  // ---- layer axis ----
  const size_t step = size_t(std::ceil(10.0 / ch));
  for (size_t l = 0; l < n_layers; ++l) {
    if (l % step != 0 && l + 1 != n_layers) continue;
    const double y = top_grid + double(n_layers - 1 - l) * ch + ch / 2 + 3.5;
    svg.text(left - 5, y, std::to_string(l), "l", "text-anchor=\"end\"");
  }
  svg.text(14, top_grid + grid_h / 2, "layer", "l", "text-anchor=\"middle\"", -90);

  // ---- panels ----
  static constexpr const char* names[2] = {"PP \u2014 prompt processing",
                                           "RG \u2014 response generation"};
  for (int p = 0; p < 2; ++p) {
    const auto& recs = panel[p];
    svg.text(x0[p], top_grid - 22, names[p], "p");
    std::string info = recs.size() < use[p].tokens
                           ? "first " + std::to_string(recs.size()) + " of " +
                                 std::to_string(use[p].tokens) + " tokens"
                           : std::to_string(use[p].tokens) + " tokens";
    info += " \u00B7 " + detail::pct_text(use[p]) + " of layers used";
    svg.text(x0[p], top_grid - 8, info, "q");
    if (recs.empty()) {
      svg.rect(x0[p], top_grid, slot[p], grid_h, "box");
      svg.text(x0[p] + slot[p] / 2, top_grid + grid_h / 2, "no tokens", "l",
               "text-anchor=\"middle\"");
      continue;
    }
    for (size_t i = 0; i < recs.size(); ++i) {
      const auto& r = *recs[i];
      const double x = x0[p] + double(i) * cw;
      for (size_t l = 0; l < n_layers; ++l) {
        const auto& c = r.layers[l];
        const double y = top_grid + double(n_layers - 1 - l) * ch;
        const std::string tip = o.tooltips ? detail::cell_tooltip(r, l, labels[p][i]) : "";
        if (!c.executed) {
          svg.rect(x, y, cw, ch, "x", {}, tip);
        } else if (o.continuous && !std::isnan(c.tau) && !std::isnan(c.delta)) {
          svg.rect(x, y, cw, ch, "k", "fill=\"" + ratio_colour(c.delta, c.tau).hex() + '"', tip);
        } else {
          svg.rect(x, y, cw, ch, c.activated ? "a" : "v", {}, tip);
        }
      }
      if (r.readout_layer >= 0 && size_t(r.readout_layer) + 1 < n_layers)
        svg.circle(x + cw / 2,
                   top_grid + double(n_layers - 1 - size_t(r.readout_layer)) * ch + ch / 2,
                   std::min(cw, ch) / 4, "ro");
      if (i > 0 && r.sequence != recs[i - 1]->sequence)
        svg.line(x, top_grid - 2, x, top_grid + grid_h + 2, "sep");
      svg.text(x + cw / 2 + tok_font * 0.35, top_grid + grid_h + 4, labels[p][i], "tok",
               "text-anchor=\"end\"", -90);
    }
    svg.rect(x0[p], top_grid, double(recs.size()) * cw, grid_h, "box");
  }
  svg.text(left, foot_y, "tokens in order (text along the axis; \u00B7 space, \u21B5 newline)",
           "f");
  if (cut)
    svg.text(left, foot_y + 14,
             "Only the first " + std::to_string(o.max_tokens) +
                 " tokens of each phase are drawn; the usage figures count all tokens.",
             "f");
  return svg.str();
}

inline std::string heatmap_svg(const Trace& trace, const HeatmapOptions& o = {},
                               const TokenText& text = {}) {
  if (!trace.keeps_records())
    throw UsageError("", "trace", "keeps no per-token records; construct Trace(n_layers, true)");
  return heatmap_svg(trace.records(), trace.n_layers(), o, text);
}

inline void write_heatmap_svg(const std::filesystem::path& path, const Trace& trace,
                              const HeatmapOptions& o = {}, const TokenText& text = {}) {
  write_text_file(path, heatmap_svg(trace, o, text));
}
inline void write_heatmap_svg(const std::filesystem::path& path,
                              std::span<const TokenRecord> records, size_t n_layers,
                              const HeatmapOptions& o = {}, const TokenText& text = {}) {
  write_text_file(path, heatmap_svg(records, n_layers, o, text));
}

}  // namespace fathom::report
