#pragma once
// A minimal SVG writer for the library's own figures (heatmaps, line plots): no plotting
// dependency. Every piece of user text (token pieces, model names, series names) goes through
// xml_escape, which also turns bytes that are not valid UTF-8 and control characters into a
// visible "\xNN", so the output is always well-formed XML whatever a tokenizer returns.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "fathom/core/error.hpp"
#include "fathom/report/text.hpp"

namespace fathom::report {

// Text for XML content or a double-quoted attribute: & < > " ' escaped; invalid UTF-8 bytes and
// characters XML 1.0 forbids (C0 controls except tab/newline/CR, DEL is allowed but shown) as
// the literal text \xNN.
inline std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const int32_t cp = detail::utf8_next(s, i);
    if (cp < 0) { out += detail::hex_byte(static_cast<unsigned char>(s[start])); continue; }
    switch (cp) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7F ||
            cp == 0xFFFE || cp == 0xFFFF)
          out += detail::hex_byte(static_cast<unsigned char>(cp & 0xFF));
        else
          detail::utf8_append(out, cp);
    }
  }
  return out;
}

// A token piece made readable on one line: space → ·, newline → ↵, tab → ⇥, CR → ␍, other
// control characters and invalid bytes → \xNN; cut to max_chars display characters with a
// trailing … when longer (max_chars 0: no limit). With show_whitespace = false (labels such as
// series names) spaces stay spaces and newlines/tabs/CR become spaces. Not yet XML-escaped.
inline std::string visible_text(std::string_view s, size_t max_chars = 0,
                                bool show_whitespace = true) {
  std::vector<std::string> units;  // one entry per displayed character (or \xNN escape)
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const int32_t cp = detail::utf8_next(s, i);
    const bool ws = cp == ' ' || cp == '\n' || cp == '\t' || cp == '\r';
    if (cp < 0) units.push_back(detail::hex_byte(static_cast<unsigned char>(s[start])));
    else if (ws && !show_whitespace) units.emplace_back(" ");
    else if (cp == ' ') units.emplace_back("\u00B7");
    else if (cp == '\n') units.emplace_back("\u21B5");
    else if (cp == '\t') units.emplace_back("\u21E5");
    else if (cp == '\r') units.emplace_back("\u240D");
    else if (cp < 0x20 || cp == 0x7F)
      units.push_back(detail::hex_byte(static_cast<unsigned char>(cp)));
    else units.emplace_back(s.substr(start, i - start));
  }
  if (max_chars && units.size() > max_chars) {
    units.resize(max_chars > 1 ? max_chars - 1 : 0);
    units.emplace_back("\u2026");
  }
  std::string out;
  for (const auto& u : units) out += u;
  return out;
}

// A number for an SVG attribute: at most 2 decimals, no trailing zeros ("12", "3.5", "0.25").
inline std::string svg_num(double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  std::string hex() const {
    char buf[8];
    std::snprintf(buf, sizeof buf, "#%02x%02x%02x", r, g, b);
    return buf;
  }
};
// Linear interpolation between two colours, t in [0, 1] (clamped).
inline Rgb mix(Rgb a, Rgb b, double t) {
  t = std::clamp(t, 0.0, 1.0);
  auto c = [t](uint8_t x, uint8_t y) { return uint8_t(std::lround(x + (double(y) - x) * t)); };
  return {c(a.r, b.r), c(a.g, b.g), c(a.b, b.b)};
}

// Accumulates SVG elements. Geometry in user units (px); `cls` names a CSS class declared with
// style(); `extra` is raw attribute text written by the library itself (never user text).
class Svg {
 public:
  Svg(double width, double height) : width_(width), height_(height) {}

  double width() const { return width_; }
  double height() const { return height_; }

  void style(std::string_view css) {
    defs_ += "<style>";
    defs_ += xml_escape(css);
    defs_ += "</style>";
  }
  void defs(std::string_view raw) { defs_ += raw; }  // patterns, gradients (library markup)

  void rect(double x, double y, double w, double h, std::string_view cls = {},
            std::string_view extra = {}, std::string_view tooltip = {}) {
    body_ += "<rect";
    if (!cls.empty()) attr("class", cls);
    body_ += " x=\"" + svg_num(x) + "\" y=\"" + svg_num(y) + "\" width=\"" + svg_num(w) +
             "\" height=\"" + svg_num(h) + '"';
    close("rect", extra, tooltip);
  }
  void line(double x1, double y1, double x2, double y2, std::string_view cls = {},
            std::string_view extra = {}) {
    body_ += "<line";
    if (!cls.empty()) attr("class", cls);
    body_ += " x1=\"" + svg_num(x1) + "\" y1=\"" + svg_num(y1) + "\" x2=\"" + svg_num(x2) +
             "\" y2=\"" + svg_num(y2) + '"';
    close("line", extra, {});
  }
  void circle(double cx, double cy, double r, std::string_view cls = {},
              std::string_view extra = {}, std::string_view tooltip = {}) {
    body_ += "<circle";
    if (!cls.empty()) attr("class", cls);
    body_ += " cx=\"" + svg_num(cx) + "\" cy=\"" + svg_num(cy) + "\" r=\"" + svg_num(r) + '"';
    close("circle", extra, tooltip);
  }
  // Points as x,y pairs.
  void polyline(const std::vector<std::pair<double, double>>& pts, std::string_view cls = {},
                std::string_view extra = {}) {
    body_ += "<polyline";
    if (!cls.empty()) attr("class", cls);
    body_ += " points=\"";
    for (size_t i = 0; i < pts.size(); ++i) {
      if (i) body_ += ' ';
      body_ += svg_num(pts[i].first) + ',' + svg_num(pts[i].second);
    }
    body_ += '"';
    close("polyline", extra, {});
  }
  // `content` is user text: escaped here. rotate: degrees about (x, y).
  void text(double x, double y, std::string_view content, std::string_view cls = {},
            std::string_view extra = {}, double rotate = 0) {
    body_ += "<text";
    if (!cls.empty()) attr("class", cls);
    body_ += " x=\"" + svg_num(x) + "\" y=\"" + svg_num(y) + '"';
    if (rotate != 0)
      body_ += " transform=\"rotate(" + svg_num(rotate) + ' ' + svg_num(x) + ' ' + svg_num(y) +
               ")\"";
    if (!extra.empty()) body_ += ' ', body_ += extra;
    body_ += '>';
    body_ += xml_escape(content);
    body_ += "</text>\n";
  }

  std::string str() const {
    std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + svg_num(width_) +
                    "\" height=\"" + svg_num(height_) + "\" viewBox=\"0 0 " + svg_num(width_) +
                    ' ' + svg_num(height_) + "\">\n";
    if (!defs_.empty()) s += "<defs>" + defs_ + "</defs>\n";
    s += "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
    return s + body_ + "</svg>\n";
  }

 private:
  void attr(std::string_view name, std::string_view value) {
    body_ += ' ';
    body_ += name;
    body_ += "=\"";
    body_ += xml_escape(value);
    body_ += '"';
  }
  // Ends the element `name` opened above; a tooltip becomes a <title> child.
  void close(std::string_view name, std::string_view extra, std::string_view tooltip) {
    if (!extra.empty()) body_ += ' ', body_ += extra;
    if (tooltip.empty()) {
      body_ += "/>\n";
      return;
    }
    body_ += "><title>" + xml_escape(tooltip) + "</title></";
    body_ += name;
    body_ += ">\n";
  }

  double width_, height_;
  std::string defs_, body_;
};

inline void write_text_file(const std::filesystem::path& path, std::string_view content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw IoError(path.string(), "", "cannot open for writing");
  f.write(content.data(), std::streamsize(content.size()));
  f.flush();
  if (!f) throw IoError(path.string(), "", "write failed (disk full?)");
}

}  // namespace fathom::report
