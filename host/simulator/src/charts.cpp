#include "syncpod/simulator/charts.hpp"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <ostream>
#include <vector>

namespace syncpod::simulator {
namespace {

using std::chrono::hours;
using std::chrono::minutes;

// The canvas, in SVG user units.
constexpr double kWidth = 960;
constexpr double kHeight = 566;
constexpr double kLeft = 56;
constexpr double kRight = 940;
constexpr double kPodsTop = 84;
constexpr double kPodsBottom = 324;
constexpr double kJobsTop = 370;
constexpr double kJobsBottom = 526;

// Colours that stay apart for colour-blind readers (Tableau 10).
constexpr const char* kActive = "#4e79a7";
constexpr const char* kRetired = "#f28e2b";
constexpr const char* kTerminating = "#bab0ac";
constexpr const char* kStarting = "#a0cbe8";
constexpr const char* kTarget = "#222222";
constexpr const char* kQueued = "#e15759";
constexpr const char* kRunning = "#59a14f";

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value);
  std::string result = text;
  if (result.size() > 2 && result.compare(result.size() - 2, 2, ".0") == 0)
    result.resize(result.size() - 2);
  return result;
}

std::string escape(const std::string& text) {
  std::string out;
  for (const char c : text) {
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

/// The smallest of 1, 2, 5 × 10^n at or above `value / ticks`, so the axis has about `ticks`
/// steps.
int niceStep(int value, int ticks) {
  const int wanted = std::max(1, (value + ticks - 1) / ticks);
  for (int scale = 1;; scale *= 10) {
    for (const int base : {1, 2, 5}) {
      if (base * scale >= wanted) return base * scale;
    }
  }
}

/// A value that holds from `time` until the next point's time.
struct Point {
  SimTime time;
  double value;
};

/// Maps simulated time and values to the canvas.
struct Frame {
  SimTime from;
  SimTime to;
  double top;
  double bottom;
  double max_value;

  double x(SimTime time) const {
    const auto span = static_cast<double>((to - from).count());
    return kLeft + (kRight - kLeft) * static_cast<double>((time - from).count()) / span;
  }
  double y(double value) const { return bottom - (bottom - top) * value / max_value; }
};

/// The corners of a step line through `points`, up to `frame.to`.
std::vector<std::pair<double, double>> stepCorners(const std::vector<Point>& points,
                                                   const Frame& frame) {
  std::vector<std::pair<double, double>> corners;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const double y = frame.y(points[i].value);
    const double x = frame.x(points[i].time);
    if (!corners.empty()) corners.emplace_back(x, corners.back().second);
    corners.emplace_back(x, y);
  }
  if (!corners.empty()) corners.emplace_back(frame.x(frame.to), corners.back().second);
  return corners;
}

std::string pathOf(const std::vector<std::pair<double, double>>& corners) {
  std::string path;
  for (const auto& [x, y] : corners) {
    path += (path.empty() ? "M" : " L") + number(x) + "," + number(y);
  }
  return path;
}

/// The samples of the window as change points of `value`; the first point is at `from`.
std::vector<Point> series(const std::vector<Sample>& samples, const Frame& frame,
                          const std::function<double(const Sample&)>& value) {
  std::vector<Point> points;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto& sample = samples[i];
    if (sample.time > frame.to) break;
    const bool last_before = i + 1 < samples.size() && samples[i + 1].time <= frame.from;
    if (last_before) continue;
    const double v = value(sample);
    if (!points.empty() && points.back().value == v) continue;
    points.push_back({std::max(sample.time, frame.from), v});
  }
  return points;
}

class Svg {
 public:
  explicit Svg(std::ostream& out) : out_(out) {}

  void text(double x, double y, const std::string& content, const std::string& attributes = "") {
    out_ << "<text x=\"" << number(x) << "\" y=\"" << number(y) << "\""
         << (attributes.empty() ? "" : " ") << attributes << ">" << escape(content) << "</text>\n";
  }
  void line(double x1, double y1, double x2, double y2, const std::string& attributes) {
    out_ << "<line x1=\"" << number(x1) << "\" y1=\"" << number(y1) << "\" x2=\"" << number(x2)
         << "\" y2=\"" << number(y2) << "\" " << attributes << "/>\n";
  }
  void path(const std::string& d, const std::string& attributes) {
    if (!d.empty()) out_ << "<path d=\"" << d << "\" " << attributes << "/>\n";
  }
  void rect(double x, double y, double width, double height, const std::string& attributes) {
    out_ << "<rect x=\"" << number(x) << "\" y=\"" << number(y) << "\" width=\"" << number(width)
         << "\" height=\"" << number(height) << "\" " << attributes << "/>\n";
  }
  std::ostream& raw() { return out_; }

 private:
  std::ostream& out_;
};

/// A legend entry: a filled swatch, or a line when `dashed`/`line_only`.
double legendItem(Svg& svg, double x, double y, const std::string& label, const char* colour,
                  bool line_only, bool dashed = false) {
  if (line_only) {
    svg.line(x, y - 4, x + 16, y - 4,
             std::string("stroke=\"") + colour + "\" stroke-width=\"2\"" +
                 (dashed ? " stroke-dasharray=\"5,3\"" : ""));
  } else {
    svg.rect(x, y - 9, 12, 10, std::string("fill=\"") + colour + "\"");
  }
  svg.text(x + 20, y, label, "class=\"legend\"");
  // Helvetica at 12 px is about 6.2 units a character.
  return x + 20 + 6.2 * static_cast<double>(label.size()) + 18;
}

void valueAxis(Svg& svg, const Frame& frame, int step, const std::string& label) {
  for (int value = 0; value <= static_cast<int>(frame.max_value); value += step) {
    const double y = frame.y(value);
    svg.line(kLeft, y, kRight, y, value == 0 ? "stroke=\"#888\"" : "stroke=\"#e6e6e6\"");
    svg.text(kLeft - 6, y + 4, std::to_string(value), "class=\"tick\" text-anchor=\"end\"");
  }
  svg.text(kLeft, frame.top - 10, label, "class=\"panel\"");
}

std::string clockLabel(SimTime time) {
  const auto text = formatTimeOfDay(time);
  return text.substr(0, text.size() - 3);  // without the seconds
}

void timeAxis(Svg& svg, const Frame& pods, const Frame& jobs) {
  const auto span = pods.to - pods.from;
  SimTime step = hours(24);
  for (const SimTime candidate : {minutes(5), minutes(10), minutes(15), minutes(30), minutes(60),
                                  minutes(120), minutes(180), minutes(360), minutes(720)}) {
    if (span / candidate <= 12) {
      step = candidate;
      break;
    }
  }
  for (SimTime tick = (pods.from + step - SimTime(1)) / step * step; tick <= pods.to;
       tick += step) {
    const double x = pods.x(tick);
    svg.line(x, pods.top, x, pods.bottom, "stroke=\"#f0f0f0\"");
    svg.line(x, jobs.top, x, jobs.bottom, "stroke=\"#f0f0f0\"");
    svg.line(x, jobs.bottom, x, jobs.bottom + 4, "stroke=\"#888\"");
    // A label at the right edge stays inside the canvas.
    const char* anchor = x > kRight - 30 ? "end" : "middle";
    svg.text(x, jobs.bottom + 18, clockLabel(tick),
             std::string("class=\"tick\" text-anchor=\"") + anchor + "\"");
  }
}

}  // namespace

void writeTimeSeriesCsv(std::ostream& out, const SimulationResult& result) {
  out << "t_s,time,desired_pod_count,keda_max_scale,pods,starting,active,retired,terminating,"
         "queued_jobs,runnable_jobs,running_jobs\n";
  for (const auto& s : result.samples) {
    const auto ms = s.time.count();
    out << ms / 1000;
    if (ms % 1000 != 0) out << '.' << std::to_string(1000 + ms % 1000).substr(1);
    out << ',' << formatTimeOfDay(s.time) << ',' << s.desired_pod_count << ',' << s.keda_max_scale
        << ',' << s.pods << ',' << s.starting << ',' << s.active << ',' << s.retired << ','
        << s.terminating << ',' << s.queued_jobs << ',' << s.runnable_jobs << ',' << s.running_jobs
        << '\n';
  }
}

void writeSvgChart(std::ostream& out, const SimulationResult& result, const ChartOptions& options) {
  SimTime from = std::clamp(options.from.value_or(SimTime(0)), SimTime(0), result.end);
  SimTime to = std::clamp(options.to.value_or(result.end), SimTime(0), result.end);
  if (to <= from) {
    from = SimTime(0);
    to = std::max(result.end, SimTime(1));
  }
  const auto target = [](const Sample& s) { return static_cast<double>(s.keda_max_scale); };

  int pods_max = 1;
  int jobs_max = 1;
  for (const auto& s : result.samples) {
    if (s.time < from - result.sample_interval || s.time > to) continue;
    pods_max = std::max({pods_max, s.pods, static_cast<int>(target(s))});
    jobs_max = std::max({jobs_max, s.queued_jobs, s.running_jobs});
  }
  const int pods_step = niceStep(pods_max, 5);
  const int jobs_step = niceStep(jobs_max, 4);
  const Frame pods{from, to, kPodsTop, kPodsBottom,
                   static_cast<double>((pods_max + pods_step - 1) / pods_step * pods_step)};
  const Frame jobs{from, to, kJobsTop, kJobsBottom,
                   static_cast<double>((jobs_max + jobs_step - 1) / jobs_step * jobs_step)};

  // Each subtitle line beyond the first moves the panels down.
  std::vector<std::string> subtitle;
  for (std::size_t start = 0; start <= options.subtitle.size();) {
    const auto newline = std::min(options.subtitle.find('\n', start), options.subtitle.size());
    subtitle.push_back(options.subtitle.substr(start, newline - start));
    start = newline + 1;
  }
  const double shift = 16 * static_cast<double>(subtitle.size() - 1);
  const double height = kHeight + shift;

  Svg svg(out);
  out << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << number(kWidth) << "\" height=\""
      << number(height) << "\" viewBox=\"0 0 " << number(kWidth) << " " << number(height)
      << "\" font-family=\"Helvetica, Arial, sans-serif\">\n"
      << "<style>text{fill:#333;font-size:12px}.title{font-size:16px;font-weight:bold}"
         ".subtitle{fill:#666}.panel{font-weight:bold}.tick{fill:#666;font-size:11px}</style>\n";
  svg.rect(0, 0, kWidth, height, "fill=\"white\"");
  svg.text(kLeft, 26, options.title, "class=\"title\"");
  for (std::size_t i = 0; i < subtitle.size(); ++i) {
    svg.text(kLeft, 46 + 16 * static_cast<double>(i), subtitle[i], "class=\"subtitle\"");
  }
  out << "<g transform=\"translate(0," << number(shift) << ")\">\n";

  valueAxis(svg, pods, pods_step, "worker pods");
  valueAxis(svg, jobs, jobs_step, "jobs");
  timeAxis(svg, pods, jobs);

  // Pods stacked by state, bottom up: each layer between the running sums below and through it.
  using Value = std::function<double(const Sample&)>;
  const std::vector<std::pair<Value, const char*>> layers = {
      {[](const Sample& s) { return static_cast<double>(s.active); }, kActive},
      {[](const Sample& s) { return static_cast<double>(s.retired); }, kRetired},
      {[](const Sample& s) { return static_cast<double>(s.terminating); }, kTerminating},
      {[](const Sample& s) { return static_cast<double>(s.starting); }, kStarting},
  };
  for (std::size_t layer = 0; layer < layers.size(); ++layer) {
    const auto sum = [&layers](std::size_t through) {
      return [&layers, through](const Sample& s) {
        double total = 0;
        for (std::size_t i = 0; i < through; ++i) total += layers[i].first(s);
        return total;
      };
    };
    auto upper = stepCorners(series(result.samples, pods, sum(layer + 1)), pods);
    auto lower = stepCorners(series(result.samples, pods, sum(layer)), pods);
    std::reverse(lower.begin(), lower.end());
    upper.insert(upper.end(), lower.begin(), lower.end());
    svg.path(pathOf(upper) + (upper.empty() ? "" : " Z"),
             std::string("fill=\"") + layers[layer].second + "\"");
  }
  svg.path(pathOf(stepCorners(series(result.samples, pods, target), pods)),
           std::string("fill=\"none\" stroke=\"") + kTarget +
               "\" stroke-width=\"1.5\" stroke-dasharray=\"5,3\"");

  // The queue as an area, the running jobs as a line over it.
  auto queued =
      stepCorners(series(result.samples, jobs,
                         [](const Sample& s) { return static_cast<double>(s.queued_jobs); }),
                  jobs);
  if (!queued.empty()) {
    auto area = queued;
    area.emplace_back(queued.back().first, jobs.y(0));
    area.emplace_back(queued.front().first, jobs.y(0));
    svg.path(pathOf(area) + " Z", std::string("fill=\"") + kQueued + "\" fill-opacity=\"0.3\"");
    svg.path(pathOf(queued),
             std::string("fill=\"none\" stroke=\"") + kQueued + "\" stroke-width=\"1.5\"");
  }
  svg.path(pathOf(stepCorners(
               series(result.samples, jobs,
                      [](const Sample& s) { return static_cast<double>(s.running_jobs); }),
               jobs)),
           std::string("fill=\"none\" stroke=\"") + kRunning + "\" stroke-width=\"1.5\"");

  // Legends beside the panel titles.
  double x = kLeft + 100;
  x = legendItem(svg, x, kPodsTop - 10, "active", kActive, false);
  x = legendItem(svg, x, kPodsTop - 10, "retired", kRetired, false);
  x = legendItem(svg, x, kPodsTop - 10, "terminating", kTerminating, false);
  x = legendItem(svg, x, kPodsTop - 10, "starting", kStarting, false);
  legendItem(svg, x, kPodsTop - 10, "KEDA's target: maxScale at its last poll", kTarget, true,
             true);
  x = kLeft + 100;
  x = legendItem(svg, x, kJobsTop - 10, "queued", kQueued, false);
  legendItem(svg, x, kJobsTop - 10, "running", kRunning, true);
  out << "</g>\n</svg>\n";
}

}  // namespace syncpod::simulator
