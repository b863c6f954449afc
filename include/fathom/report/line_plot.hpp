#pragma once
// A small SVG line plot: several named series of (x, y) points, axis labels, ticks, a legend,
// optional logarithmic x axis. Used for accuracy / layer usage vs α and rank per layer plots.
//
//   report::Series acc{"MMLU", {0.2, 0.5, 0.8}, {0.61, 0.60, 0.55}};
//   report::LinePlotOptions o;
//   o.title = "Accuracy vs α";  o.x_label = "α";  o.y_label = "accuracy";
//   report::write_line_plot_svg("acc.svg", {acc}, o);
//
// Points are joined in the order given; a non-finite y (NaN) breaks the line. Axis ranges come
// from the data (widened to round tick values) unless fixed in the options.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/report/svg.hpp"

namespace fathom::report {

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length
};

struct LinePlotOptions {
  std::string title, x_label, y_label;
  bool log_x = false;          // x > 0 required
  double width = 640, height = 400;  // px, the whole figure
  double x_min = NAN, x_max = NAN;   // NaN: from the data
  double y_min = NAN, y_max = NAN;
  bool markers = true;         // a dot (with a tooltip) at every point
};

namespace detail {

// 1-2-5 tick step giving about `target` intervals over [lo, hi].
inline double nice_step(double lo, double hi, int target = 6) {
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (m * mag >= raw * 0.999) return m * mag;
  return 10 * mag;
}

inline std::string tick_label(double v, double step) {
  if (std::fabs(v) < step * 1e-9) v = 0;
  char buf[48];
  const int decimals = std::clamp(int(-std::floor(std::log10(step) + 1e-9)), 0, 10);
  if (std::fabs(v) >= 1e6 || (v != 0 && std::fabs(v) < 1e-4))
    std::snprintf(buf, sizeof buf, "%.3g", v);
  else
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<std::pair<double, std::string>> ticks;  // value, label

  double frac(double v) const {  // position of v in [0, 1] along the axis
    return log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo))
               : (v - lo) / (hi - lo);
  }
};

inline Axis linear_axis(double dmin, double dmax, double fix_lo, double fix_hi) {
  Axis a;
  double lo = std::isnan(fix_lo) ? dmin : fix_lo, hi = std::isnan(fix_hi) ? dmax : fix_hi;
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;  // no data
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) {
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    if (std::isnan(fix_lo)) lo -= pad;
    if (std::isnan(fix_hi)) hi += pad;
    if (hi == lo) hi = lo + 1;
  }
  const double step = nice_step(lo, hi);
  if (std::isnan(fix_lo)) lo = std::floor(lo / step + 1e-9) * step;
  if (std::isnan(fix_hi)) hi = std::ceil(hi / step - 1e-9) * step;
  a.lo = lo, a.hi = hi;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    a.ticks.emplace_back(v, tick_label(v, step));
  return a;
}

inline Axis log_axis(double dmin, double dmax, double fix_lo, double fix_hi) {
  Axis a;
  a.log = true;
  double lo = std::isnan(fix_lo) ? dmin : fix_lo, hi = std::isnan(fix_hi) ? dmax : fix_hi;
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 1, hi = 10;
  if (!(lo > 0) || !(hi > 0))
    throw UsageError("", "x_min/x_max", "a log axis needs positive limits");
  if (hi < lo) std::swap(lo, hi);
  if (std::isnan(fix_lo)) lo = std::pow(10.0, std::floor(std::log10(lo) + 1e-9));
  if (std::isnan(fix_hi)) hi = std::pow(10.0, std::ceil(std::log10(hi) - 1e-9));
  if (hi <= lo) hi = lo * 10;
  a.lo = lo, a.hi = hi;
  const int d0 = int(std::floor(std::log10(lo) + 1e-9)), d1 = int(std::ceil(std::log10(hi) - 1e-9));
  // Few decades: label 1, 2, 5 of each; many: only the powers of ten.
  const bool dense = d1 - d0 <= 2;
  for (int d = d0; d <= d1; ++d)
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1.0 && !dense) continue;
      const double v = m * std::pow(10.0, d);
      if (v < lo * (1 - 1e-9) || v > hi * (1 + 1e-9)) continue;
      char buf[32];
      std::snprintf(buf, sizeof buf, "%g", v);
      a.ticks.emplace_back(v, buf);
    }
  return a;
}

inline constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

}  // namespace detail

inline std::string line_plot_svg(std::span<const Series> series, const LinePlotOptions& o = {}) {
  if (!(o.width > 100) || !(o.height > 80))
    throw UsageError("", "width/height", "the figure must be at least 100 x 80 px");
  double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
  for (const auto& s : series) {
    if (s.x.size() != s.y.size())
      throw UsageError("", "series '" + s.name + "'",
                       "has " + std::to_string(s.x.size()) + " x values and " +
                           std::to_string(s.y.size()) + " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || (o.log_x && !(s.x[i] > 0)))
        throw UsageError("", "series '" + s.name + "' x[" + std::to_string(i) + "]",
                         o.log_x ? "must be a finite positive number on a log axis"
                                 : "must be finite");
      if (!std::isfinite(s.y[i])) continue;  // a gap
      xmin = std::min(xmin, s.x[i]), xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, s.y[i]), ymax = std::max(ymax, s.y[i]);
    }
  }
  const auto ax = o.log_x ? detail::log_axis(xmin, xmax, o.x_min, o.x_max)
                          : detail::linear_axis(xmin, xmax, o.x_min, o.x_max);
  const auto ay = detail::linear_axis(ymin, ymax, o.y_min, o.y_max);

  size_t longest = 0;
  for (const auto& s : series)
    longest = std::max(longest, visible_text(s.name, 40, false).size());
  const double legend_w = series.empty() ? 16 : 40 + double(std::min<size_t>(longest, 40)) * 6.2;
  const double left = 64, top = o.title.empty() ? 16 : 40, bottom = 52;
  const double pw = o.width - left - legend_w - 8, ph = o.height - top - bottom;
  if (pw < 40 || ph < 40) throw UsageError("", "width/height", "too small for the axes and legend");
  auto px = [&](double x) { return left + ax.frac(x) * pw; };
  auto py = [&](double y) { return top + (1 - ay.frac(y)) * ph; };

  Svg svg(o.width, o.height);
  svg.style(
      "text{font-family:sans-serif;fill:#222}.t{font-size:14px;font-weight:bold}"
      ".l{font-size:11px}.k{font-size:10px;fill:#444}.g{stroke:#e5e5e5;stroke-width:1}"
      ".area{fill:none;stroke:#444444;stroke-width:1}.s{fill:none;stroke-width:1.8}");
  if (!o.title.empty()) svg.text(left, 24, o.title, "t");

  for (const auto& [v, label] : ax.ticks) {
    const double x = px(v);
    svg.line(x, top, x, top + ph, "g");
    svg.line(x, top + ph, x, top + ph + 4, {}, "stroke=\"#444444\"");
    svg.text(x, top + ph + 16, label, "k", "text-anchor=\"middle\"");
  }
  for (const auto& [v, label] : ay.ticks) {
    const double y = py(v);
    svg.line(left, y, left + pw, y, "g");
    svg.line(left - 4, y, left, y, {}, "stroke=\"#444444\"");
    svg.text(left - 7, y + 3.5, label, "k", "text-anchor=\"end\"");
  }
  svg.rect(left, top, pw, ph, "area");
  if (!o.x_label.empty())
    svg.text(left + pw / 2, o.height - 12, o.x_label, "l", "text-anchor=\"middle\"");
  if (!o.y_label.empty())
    svg.text(16, top + ph / 2, o.y_label, "l", "text-anchor=\"middle\"", -90);

  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const std::string colour = detail::kPalette[k % std::size(detail::kPalette)];
    const std::string stroke = "stroke=\"" + colour + '"';
    std::vector<std::pair<double, double>> run;
    auto flush = [&] {
      if (run.size() > 1) svg.polyline(run, "s", stroke);
      run.clear();
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i])) { flush(); continue; }
      run.emplace_back(px(s.x[i]), py(s.y[i]));
    }
    flush();
    if (o.markers)
      for (size_t i = 0; i < s.x.size(); ++i) {
        if (!std::isfinite(s.y[i])) continue;
        char tip[96];
        std::snprintf(tip, sizeof tip, ": (%g, %g)", s.x[i], s.y[i]);
        svg.circle(px(s.x[i]), py(s.y[i]), 2.6, {}, "fill=\"" + colour + '"',
                   visible_text(s.name, 40, false) + tip);
      }
    // legend entry
    const double ly = top + 8 + double(k) * 16;
    const double lx = left + pw + 12;
    svg.line(lx, ly, lx + 18, ly, {}, stroke + " stroke-width=\"2\"");
    svg.text(lx + 24, ly + 4, visible_text(s.name, 40, false), "l");
  }
  return svg.str();
}

inline void write_line_plot_svg(const std::filesystem::path& path, std::span<const Series> series,
                                const LinePlotOptions& o = {}) {
  write_text_file(path, line_plot_svg(series, o));
}
inline void write_line_plot_svg(const std::filesystem::path& path,
                                std::initializer_list<Series> series,
                                const LinePlotOptions& o = {}) {
  write_line_plot_svg(path, std::span<const Series>(series.begin(), series.size()), o);
}

}  // namespace fathom::report
