#include "bench/svg_plot.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

namespace hpt::host {

namespace {

constexpr double kCharWidth = 7.0;  // of 12px sans-serif, roughly, for layout

std::string fmt(double v) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << v;
  return os.str();
}

// Ticks at 1-2-5 steps covering [lo, hi], about `target` of them.
std::vector<double> linear_ticks(double lo, double hi, int target) {
  double span = hi - lo;
  if (!(span > 0)) return {lo};
  double raw = span / target;
  double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

// Powers of ten in [lo, hi], with 2x and 5x between them when the range is short.
std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> ticks;
  int first = static_cast<int>(std::floor(std::log10(lo))), last = static_cast<int>(std::ceil(std::log10(hi)));
  std::vector<double> steps = last - first <= 2 ? std::vector<double>{1, 2, 5} : std::vector<double>{1};
  for (int e = first; e <= last; ++e)
    for (double m : steps) {
      double t = m * std::pow(10.0, e);
      if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) ticks.push_back(t);
    }
  return ticks;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string short_number(double v) {
  std::ostringstream os;
  // Four significant digits, but whole numbers of 10,000 and more (steps, backward
  // passes) as they are: 11600, not 1.16e+04.
  if (std::abs(v) >= 1e4 && std::abs(v) < 1e15) os << std::llround(v);
  else os << std::setprecision(4) << v;
  return os.str();
}

SvgPlot::SvgPlot(std::string id, int width, int height, std::string title, std::string x_label, std::string y_label)
    : id_(std::move(id)),
      width_(width),
      height_(height),
      title_(std::move(title)),
      x_label_(std::move(x_label)),
      y_label_(std::move(y_label)) {}

void SvgPlot::x_range(double lo, double hi) {
  x_lo_ = lo;
  x_hi_ = hi > lo ? hi : lo + 1;
}

void SvgPlot::y_range(double lo, double hi, bool log) {
  y_log_ = log && lo > 0;
  y_lo_ = lo;
  y_hi_ = hi > lo ? hi : lo + (y_log_ ? lo : 1);
}

void SvgPlot::y_rows(std::vector<std::string> names) {
  std::size_t longest = 0;
  for (const auto& n : names) longest = std::max(longest, n.size());
  left_ = std::max(left_, 16 + kCharWidth * static_cast<double>(longest));
  rows_ = std::move(names);
}

double SvgPlot::px(double x) const {
  double w = width_ - left_ - right_;
  return left_ + (x - x_lo_) / (x_hi_ - x_lo_) * w;
}

double SvgPlot::py(double y) const {
  double h = height_ - top_ - bottom_;
  double f = y_log_ ? (std::log10(std::max(y, y_lo_ * 1e-3)) - std::log10(y_lo_)) / (std::log10(y_hi_) - std::log10(y_lo_))
                    : (y - y_lo_) / (y_hi_ - y_lo_);
  return top_ + h - f * h;
}

double SvgPlot::row_height() const {
  return (height_ - top_ - bottom_) / static_cast<double>(std::max<std::size_t>(1, rows_.size()));
}

double SvgPlot::row_y(std::size_t row) const { return top_ + (static_cast<double>(row) + 0.5) * row_height(); }

std::string SvgPlot::path(const std::vector<CurvePoint>& points) const {
  std::string d;
  for (const auto& p : points) d += (d.empty() ? "M" : " L") + fmt(px(p.x)) + " " + fmt(py(p.y));
  return d;
}

void SvgPlot::line(const std::vector<CurvePoint>& points, const std::string& color, double width) {
  if (points.empty()) return;
  data_.push_back("<path class=\"data\" d=\"" + path(points) + "\" fill=\"none\" stroke=\"" + color +
                  "\" stroke-width=\"" + fmt(width) + "\" stroke-linejoin=\"round\"/>");
}

void SvgPlot::seed_line(const std::vector<CurvePoint>& points, const std::string& color, const std::string& run) {
  if (points.empty()) return;
  data_.push_back("<path class=\"data seed\" data-run=\"" + xml_escape(run) + "\" d=\"" + path(points) +
                  "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"0.9\" stroke-opacity=\"0.45\" " +
                  "stroke-linejoin=\"round\"><title>" + xml_escape(run) + "</title></path>");
}

void SvgPlot::band(const std::vector<CurvePoint>& lower, const std::vector<CurvePoint>& upper, const std::string& color) {
  if (lower.empty() || upper.empty()) return;
  std::vector<CurvePoint> outline = upper;
  outline.insert(outline.end(), lower.rbegin(), lower.rend());
  data_.push_back("<path class=\"data band\" d=\"" + path(outline) + " Z\" fill=\"" + color +
                  "\" fill-opacity=\"0.18\" stroke=\"none\"/>");
}

void SvgPlot::reference(double y, const std::string& label) {
  double yy = py(y);
  data_.push_back("<line x1=\"" + fmt(left_) + "\" x2=\"" + fmt(width_ - right_) + "\" y1=\"" + fmt(yy) + "\" y2=\"" +
                  fmt(yy) + "\" stroke=\"#444\" stroke-dasharray=\"6 4\"/>");
  data_.push_back("<text x=\"" + fmt(width_ - right_ - 4) + "\" y=\"" + fmt(yy - 5) +
                  "\" text-anchor=\"end\" fill=\"#444\">" + xml_escape(label) + "</text>");
}

void SvgPlot::span(std::size_t row, double x0, double x1, const std::string& color, double thickness,
                   const std::string& tip) {
  double h = row_height() * thickness;
  double a = px(x0), b = std::max(px(x1), a + 0.6);  // a short stretch stays visible
  data_.push_back("<rect class=\"data\" x=\"" + fmt(a) + "\" y=\"" + fmt(row_y(row) - h / 2) + "\" width=\"" +
                  fmt(b - a) + "\" height=\"" + fmt(h) + "\" fill=\"" + color + "\">" +
                  (tip.empty() ? "" : "<title>" + xml_escape(tip) + "</title>") + "</rect>");
}

void SvgPlot::tick(std::size_t row, double x, const std::string& color) {
  double y = row_y(row) - row_height() * 0.25;
  data_.push_back("<line class=\"data\" x1=\"" + fmt(px(x)) + "\" x2=\"" + fmt(px(x)) + "\" y1=\"" + fmt(y - 7) +
                  "\" y2=\"" + fmt(y - 1) + "\" stroke=\"" + color + "\" stroke-width=\"1\"/>");
}

void SvgPlot::marker(std::size_t row, double x, const std::string& color) {
  double y = row_y(row) + row_height() * 0.25 + 2, xx = px(x);
  data_.push_back("<path class=\"data\" d=\"M" + fmt(xx) + " " + fmt(y) + " L" + fmt(xx - 5) + " " + fmt(y + 9) +
                  " L" + fmt(xx + 5) + " " + fmt(y + 9) + " Z\" fill=\"" + color + "\"/>");
}

void SvgPlot::whisker(std::size_t row, double lo, double hi) {
  double y = row_y(row), cap = row_height() * 0.18;
  std::string a = fmt(px(lo)), b = fmt(px(hi));
  data_.push_back("<path class=\"data\" d=\"M" + a + " " + fmt(y) + " L" + b + " " + fmt(y) + " M" + a + " " +
                  fmt(y - cap) + " L" + a + " " + fmt(y + cap) + " M" + b + " " + fmt(y - cap) + " L" + b + " " +
                  fmt(y + cap) + "\" stroke=\"#222\" stroke-width=\"1.5\" fill=\"none\"/>");
}

void SvgPlot::dot(std::size_t row, double x, bool hollow, const std::string& tip) {
  data_.push_back("<circle class=\"data\" cx=\"" + fmt(px(x)) + "\" cy=\"" + fmt(row_y(row)) + "\" r=\"4\" fill=\"" +
                  (hollow ? "white" : "#222") + "\" stroke=\"#222\" stroke-width=\"1.2\">" +
                  (tip.empty() ? "" : "<title>" + xml_escape(tip) + "</title>") + "</circle>");
}

void SvgPlot::point(double x, double y, const std::string& color, bool hollow, const std::string& tip) {
  data_.push_back("<circle class=\"data point\" cx=\"" + fmt(px(x)) + "\" cy=\"" + fmt(py(y)) + "\" r=\"4\" fill=\"" +
                  (hollow ? "white" : color) + "\" stroke=\"" + color + "\" stroke-width=\"1.5\">" +
                  (tip.empty() ? "" : "<title>" + xml_escape(tip) + "</title>") + "</circle>");
}

void SvgPlot::note(std::size_t row, double x, const std::string& text) {
  data_.push_back("<text x=\"" + fmt(px(x) + 8) + "\" y=\"" + fmt(row_y(row) - row_height() * 0.22) +
                  "\" fill=\"#222\">" + xml_escape(text) + "</text>");
}

void SvgPlot::legend(const std::string& label, const std::string& color, Swatch swatch) {
  std::string s;
  switch (swatch) {
    case Swatch::Line: s = "<line x1=\"0\" x2=\"22\" y1=\"0\" y2=\"0\" stroke=\"" + color + "\" stroke-width=\"2.5\"/>"; break;
    case Swatch::ThinLine: s = "<line x1=\"0\" x2=\"22\" y1=\"0\" y2=\"0\" stroke=\"" + color + "\" stroke-width=\"0.9\" stroke-opacity=\"0.6\"/>"; break;
    case Swatch::Band: s = "<rect x=\"0\" y=\"-6\" width=\"22\" height=\"12\" fill=\"" + color + "\" fill-opacity=\"0.25\"/>"; break;
    case Swatch::Box: s = "<rect x=\"4\" y=\"-6\" width=\"14\" height=\"12\" fill=\"" + color + "\"/>"; break;
    case Swatch::Tick: s = "<line x1=\"11\" x2=\"11\" y1=\"-7\" y2=\"7\" stroke=\"" + color + "\" stroke-width=\"1.5\"/>"; break;
    case Swatch::Marker: s = "<path d=\"M11 -6 L6 5 L16 5 Z\" fill=\"" + color + "\"/>"; break;
    case Swatch::Dot: s = "<circle cx=\"11\" cy=\"0\" r=\"4\" fill=\"" + color + "\"/>"; break;
    case Swatch::HollowDot: s = "<circle cx=\"11\" cy=\"0\" r=\"4\" fill=\"white\" stroke=\"#222\" stroke-width=\"1.2\"/>"; break;
  }
  legend_.push_back({s + "<text x=\"28\" y=\"4\">" + xml_escape(label) + "</text>", label.size()});
}

std::string SvgPlot::render() const {
  // Legend: entries left to right under the title, wrapping; extra rows push the plot down.
  std::string legend;
  double lx = left_, ly = 0;
  for (const auto& entry : legend_) {
    double w = 40 + kCharWidth * static_cast<double>(entry.chars);
    if (lx + w > width_ - right_ && lx > left_) {
      lx = left_;
      ly += 20;
    }
    legend += "<g transform=\"translate(" + fmt(lx) + "," + fmt(42 + ly) + ")\">" + entry.svg + "</g>";
    lx += w;
  }
  double shift = ly;
  double plot_bottom = height_ - bottom_;
  std::ostringstream os;
  os << "<svg id=\"plot-" << id_ << "\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width_ << "\" height=\"" << fmt(height_ + shift)
     << "\" viewBox=\"0 0 " << width_ << " " << fmt(height_ + shift) << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  os << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  os << "<text x=\"" << width_ / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">"
     << xml_escape(title_) << "</text>\n";
  os << legend << "\n";
  os << "<g transform=\"translate(0," << fmt(shift) << ")\">\n";
  os << "<clipPath id=\"" << id_ << "-clip\"><rect x=\"" << fmt(left_) << "\" y=\"" << fmt(top_ - 12) << "\" width=\""
     << fmt(width_ - left_ - right_) << "\" height=\"" << fmt(plot_bottom - top_ + 24) << "\"/></clipPath>\n";

  // Grid and ticks.
  for (double t : linear_ticks(x_lo_, x_hi_, 8)) {
    double x = px(t);
    os << "<line x1=\"" << fmt(x) << "\" x2=\"" << fmt(x) << "\" y1=\"" << fmt(top_) << "\" y2=\"" << fmt(plot_bottom)
       << "\" stroke=\"#e4e4e4\"/><text x=\"" << fmt(x) << "\" y=\"" << fmt(plot_bottom + 16)
       << "\" text-anchor=\"middle\" fill=\"#333\">" << short_number(t) << "</text>\n";
  }
  if (rows_.empty()) {
    for (double t : y_log_ ? log_ticks(y_lo_, y_hi_) : linear_ticks(y_lo_, y_hi_, 6)) {
      double y = py(t);
      os << "<line x1=\"" << fmt(left_) << "\" x2=\"" << fmt(width_ - right_) << "\" y1=\"" << fmt(y) << "\" y2=\""
         << fmt(y) << "\" stroke=\"#e4e4e4\"/><text x=\"" << fmt(left_ - 6) << "\" y=\"" << fmt(y + 4)
         << "\" text-anchor=\"end\" fill=\"#333\">" << short_number(t) << "</text>\n";
    }
  } else {
    for (std::size_t r = 0; r < rows_.size(); ++r)
      os << "<text x=\"" << fmt(left_ - 8) << "\" y=\"" << fmt(row_y(r) + 4) << "\" text-anchor=\"end\" fill=\"#222\">"
         << xml_escape(rows_[r]) << "</text>\n";
  }
  os << "<rect x=\"" << fmt(left_) << "\" y=\"" << fmt(top_) << "\" width=\"" << fmt(width_ - left_ - right_)
     << "\" height=\"" << fmt(plot_bottom - top_) << "\" fill=\"none\" stroke=\"#999\"/>\n";
  os << "<g clip-path=\"url(#" << id_ << "-clip)\">\n";
  for (const auto& d : data_) os << d << "\n";
  os << "</g>\n";
  // Axis labels.
  os << "<text x=\"" << fmt((left_ + width_ - right_) / 2) << "\" y=\"" << fmt(plot_bottom + 38)
     << "\" text-anchor=\"middle\" font-size=\"13\">" << xml_escape(x_label_) << "</text>\n";
  if (!y_label_.empty())
    os << "<text transform=\"translate(16," << fmt((top_ + plot_bottom) / 2) << ") rotate(-90)\" text-anchor=\"middle\""
       << " font-size=\"13\">" << xml_escape(y_label_) << "</text>\n";
  os << "</g>\n</svg>\n";
  return os.str();
}

}  // namespace hpt::host
