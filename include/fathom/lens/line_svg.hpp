#pragma once
// A minimal SVG line plot for the depth-metric figures of examples/depth (readout index or k on
// x, a metric on y): named series, axes with min/max ticks, optional log10 x, a legend. NaN y
// values break a line. Self-contained so the lens area has no dependency on report/.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "fathom/core/error.hpp"

namespace fathom::lens {

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;  // same length
};

struct PlotOptions {
  std::string title, x_label, y_label;
  bool log_x = false;       // x must be > 0
  double y_min = NAN, y_max = NAN;  // NaN: from the data
};

namespace detail {
inline std::string xml_escape(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else if (c < 0x20) o += ' ';
    else o += char(c);
  }
  return o;
}
inline std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}
}  // namespace detail

inline std::string line_plot_svg(const std::vector<PlotSeries>& series, const PlotOptions& o) {
  const double W = 640, H = 400, l = 70, r = 180, t = 40, b = 50;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  auto fx = [&](double x) { return o.log_x ? std::log10(x) : x; };
  for (auto& s : series) {
    if (s.x.size() != s.y.size())
      throw UsageError("", "series " + s.name, "x and y differ in length");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (o.log_x && !(s.x[i] > 0)) throw UsageError("", "series " + s.name, "x <= 0 on a log axis");
      x0 = std::min(x0, fx(s.x[i])), x1 = std::max(x1, fx(s.x[i]));
      if (std::isfinite(s.y[i])) y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  }
  if (!std::isnan(o.y_min)) y0 = o.y_min;
  if (!std::isnan(o.y_max)) y1 = o.y_max;
  if (!std::isfinite(x0)) x0 = 0, x1 = 1;
  if (!std::isfinite(y0)) y0 = 0, y1 = 1;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  auto px = [&](double x) { return l + (fx(x) - x0) / (x1 - x0) * (W - l - r); };
  auto py = [&](double y) { return H - b - (y - y0) / (y1 - y0) * (H - t - b); };
  static const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};
  using detail::num;
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(W) + "\" height=\"" +
                    num(H) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<text x=\"" + num(W / 2) + "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">" +
         detail::xml_escape(o.title) + "</text>\n";
  svg += "<path d=\"M" + num(l) + " " + num(t) + " V" + num(H - b) + " H" + num(W - r) +
         "\" stroke=\"black\" fill=\"none\"/>\n";
  for (int k = 0; k <= 4; ++k) {  // 5 ticks per axis
    const double xv = x0 + (x1 - x0) * k / 4, yv = y0 + (y1 - y0) * k / 4;
    const double X = l + (W - l - r) * k / 4, Y = H - b - (H - t - b) * k / 4;
    svg += "<text x=\"" + num(X) + "\" y=\"" + num(H - b + 16) + "\" text-anchor=\"middle\">" +
           num(o.log_x ? std::pow(10.0, xv) : xv) + "</text>\n";
    svg += "<text x=\"" + num(l - 6) + "\" y=\"" + num(Y + 4) + "\" text-anchor=\"end\">" + num(yv) +
           "</text>\n";
    svg += "<path d=\"M" + num(l) + " " + num(Y) + " H" + num(W - r) +
           "\" stroke=\"#ddd\" fill=\"none\"/>\n";
  }
  svg += "<text x=\"" + num(l + (W - l - r) / 2) + "\" y=\"" + num(H - 12) +
         "\" text-anchor=\"middle\">" + detail::xml_escape(o.x_label) + "</text>\n";
  svg += "<text transform=\"translate(16," + num(t + (H - t - b) / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + detail::xml_escape(o.y_label) + "</text>\n";
  for (size_t s = 0; s < series.size(); ++s) {
    const std::string c = colors[s % 6];
    std::string d;
    bool pen = false;
    for (size_t i = 0; i < series[s].x.size(); ++i) {
      const double y = series[s].y[i];
      if (!std::isfinite(y)) {
        pen = false;
        continue;
      }
      d += (pen ? " L" : " M") + num(px(series[s].x[i])) + " " + num(py(y));
      pen = true;
    }
    svg += "<path d=\"" + d + "\" stroke=\"" + c + "\" stroke-width=\"2\" fill=\"none\"/>\n";
    const double ly = t + 16 * double(s);
    svg += "<path d=\"M" + num(W - r + 10) + " " + num(ly) + " h18\" stroke=\"" + c +
           "\" stroke-width=\"2\"/>\n";
    svg += "<text x=\"" + num(W - r + 32) + "\" y=\"" + num(ly + 4) + "\">" +
           detail::xml_escape(series[s].name) + "</text>\n";
  }
  return svg + "</svg>\n";
}

inline void write_line_plot(const std::filesystem::path& path, const std::vector<PlotSeries>& series,
                            const PlotOptions& o) {
  std::ofstream out(path);
  if (!out) throw IoError(path.string(), "", "cannot open for writing");
  out << line_plot_svg(series, o);
  if (!out) throw IoError(path.string(), "", "write failed");
}

}  // namespace fathom::lens
