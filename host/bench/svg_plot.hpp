// A small SVG chart writer for the bench report (no external code): one plot area
// with a numeric x axis and either a numeric y axis (linear or log) or named rows,
// ticks at 1-2-5 steps, a title, axis labels and a legend. Every element drawn from
// data has class="data" (a seed's thin line "data seed", with data-run="<run name>"),
// and the <svg> has id="plot-<id>", so a test can find the plotted figures in the page.
#pragma once

#include <string>
#include <vector>

#include "bench/bench_results.hpp"

namespace hpt::host {

class SvgPlot {
 public:
  // `id` must be unique in the page (it names the plot and its clip path).
  SvgPlot(std::string id, int width, int height, std::string title, std::string x_label, std::string y_label);

  void x_range(double lo, double hi);
  void y_range(double lo, double hi, bool log);
  void y_rows(std::vector<std::string> names);  // named rows instead of a numeric y axis

  // Numeric y.
  void line(const std::vector<CurvePoint>& points, const std::string& color, double width = 2.0);
  void band(const std::vector<CurvePoint>& lower, const std::vector<CurvePoint>& upper, const std::string& color);
  // One run's curve, thin and pale, to go under the band and the median; `run` shows on hover.
  void seed_line(const std::vector<CurvePoint>& points, const std::string& color, const std::string& run);
  void reference(double y, const std::string& label);  // a dashed horizontal line, labelled
  // A point at (x, y), filled or hollow, in `color`; `tip` shows on hover (a scatter plot).
  void point(double x, double y, const std::string& color, bool hollow, const std::string& tip);

  // Rows: `thickness` is the fraction of the row's height; `tip` shows on hover.
  void span(std::size_t row, double x0, double x1, const std::string& color, double thickness, const std::string& tip);
  void tick(std::size_t row, double x, const std::string& color);         // a short mark above the row's spans
  void marker(std::size_t row, double x, const std::string& color);       // a triangle below the row's spans
  void whisker(std::size_t row, double lo, double hi);                    // a min-max range with caps
  void dot(std::size_t row, double x, bool hollow, const std::string& tip);  // dark, or hollow
  void note(std::size_t row, double x, const std::string& text);          // text right of x

  enum class Swatch { Line, ThinLine, Band, Box, Tick, Marker, Dot, HollowDot };
  void legend(const std::string& label, const std::string& color, Swatch swatch);

  std::string render() const;

 private:
  double px(double x) const;
  double py(double y) const;
  double row_y(std::size_t row) const;
  double row_height() const;
  std::string path(const std::vector<CurvePoint>& points) const;

  std::string id_;
  int width_, height_;
  std::string title_, x_label_, y_label_;
  double left_ = 78, right_ = 24, top_ = 64, bottom_ = 52;
  double x_lo_ = 0, x_hi_ = 1, y_lo_ = 0, y_hi_ = 1;
  bool y_log_ = false;
  std::vector<std::string> rows_;
  std::vector<std::string> data_;  // SVG elements inside the plot area
  struct LegendEntry {
    std::string svg;
    std::size_t chars;  // of the label, for layout
  };
  std::vector<LegendEntry> legend_;
};

// Escapes text for HTML and SVG.
std::string xml_escape(const std::string& text);

// A number for people: 4 significant digits, no trailing zeros.
std::string short_number(double v);

}  // namespace hpt::host
