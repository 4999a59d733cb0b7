#pragma once
// Test support: reads a Prometheus text exposition (format 0.0.4) strictly and lists what is
// wrong with it, so that tests check /metrics the way a scraper would read it.

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace syncpod::service::testing {

struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;  ///< unescaped values
  double value = 0;
};

struct PromDocument {
  std::map<std::string, std::string> types;  ///< family → counter, gauge, histogram, …
  std::map<std::string, std::string> helps;
  std::vector<PromSample> samples;
  std::vector<std::string> problems;  ///< empty for a valid document

  /// The value of the sample with exactly these labels; nullopt when there is none.
  std::optional<double> value(const std::string& name,
                              const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& sample : samples) {
      if (sample.name == name && sample.labels == labels) return sample.value;
    }
    return std::nullopt;
  }
};

namespace detail {

inline std::optional<double> parseValue(const std::string& text) {
  if (text == "+Inf") return std::numeric_limits<double>::infinity();
  if (text == "-Inf") return -std::numeric_limits<double>::infinity();
  if (text == "NaN") return std::numeric_limits<double>::quiet_NaN();
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) return std::nullopt;
  return value;
}

/// The family a sample belongs to: histograms' _bucket, _sum and _count series belong to the
/// name without the suffix when that name is TYPE histogram.
inline std::string familyOf(const std::string& name,
                            const std::map<std::string, std::string>& types) {
  for (const std::string suffix : {"_bucket", "_sum", "_count"}) {
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const auto base = name.substr(0, name.size() - suffix.size());
      const auto type = types.find(base);
      if (type != types.end() && type->second == "histogram") return base;
    }
  }
  return name;
}

/// Labels of `{a="x",b="y\"z"}` starting at text[at] == '{'; sets `at` past the '}'.
inline std::optional<std::map<std::string, std::string>> parseLabels(const std::string& text,
                                                                     std::size_t& at) {
  static const std::regex name_pattern("[a-zA-Z_][a-zA-Z0-9_]*");
  std::map<std::string, std::string> labels;
  ++at;
  while (at < text.size() && text[at] != '}') {
    const auto equals = text.find('=', at);
    if (equals == std::string::npos || equals + 1 >= text.size() || text[equals + 1] != '"')
      return std::nullopt;
    const auto name = text.substr(at, equals - at);
    if (!std::regex_match(name, name_pattern) || labels.count(name) != 0) return std::nullopt;
    std::string value;
    std::size_t i = equals + 2;
    for (; i < text.size() && text[i] != '"'; ++i) {
      if (text[i] != '\\') {
        value += text[i];
        continue;
      }
      if (++i >= text.size()) return std::nullopt;
      if (text[i] == 'n') {
        value += '\n';
      } else if (text[i] == '\\' || text[i] == '"') {
        value += text[i];
      } else {
        return std::nullopt;
      }
    }
    if (i >= text.size()) return std::nullopt;
    labels[name] = value;
    at = i + 1;
    if (at < text.size() && text[at] == ',') ++at;
  }
  if (at >= text.size()) return std::nullopt;
  ++at;
  return labels;
}

}  // namespace detail

/// Parses `text` and checks: every line is "# HELP name text", "# TYPE name type" or a sample
/// `name{label="value",…} value` (no timestamps); each family has one HELP and one TYPE, before
/// its samples, which are contiguous; no sample repeats its name and labels; counters end in
/// _total; each histogram series has ascending `le` buckets with non-decreasing counts, ending
/// at +Inf with the value of its _count, and a _sum.
inline PromDocument parsePrometheusText(const std::string& text) {
  static const std::regex metric_name("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                               "untyped"};
  PromDocument document;
  auto problem = [&](const std::string& line, const std::string& what) {
    document.problems.push_back(what + ": " + line);
  };
  if (!text.empty() && text.back() != '\n')
    document.problems.push_back("the document does not end with a newline");
  std::set<std::string> finished_families;
  std::string current_family;
  std::set<std::string> seen;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const bool help = line[2] == 'H';
      const auto rest = line.substr(7);
      const auto space = rest.find(' ');
      const auto name = rest.substr(0, space);
      const auto body = space == std::string::npos ? std::string() : rest.substr(space + 1);
      if (!std::regex_match(name, metric_name)) problem(line, "bad metric name");
      auto& map = help ? document.helps : document.types;
      if (map.count(name) != 0) problem(line, "repeated HELP or TYPE");
      if (!help && kTypes.count(body) == 0) problem(line, "unknown type");
      if (body.empty()) problem(line, "HELP or TYPE without text");
      if (finished_families.count(name) != 0 || seen.count(name) != 0)
        problem(line, "HELP or TYPE after samples");
      map[name] = body;
      continue;
    }
    if (line.empty() || line[0] == '#') {
      problem(line, "empty line or comment");
      continue;
    }
    PromSample sample;
    std::size_t at = 0;
    while (at < line.size() && line[at] != '{' && line[at] != ' ') ++at;
    sample.name = line.substr(0, at);
    if (!std::regex_match(sample.name, metric_name)) {
      problem(line, "bad metric name");
      continue;
    }
    if (at < line.size() && line[at] == '{') {
      auto labels = detail::parseLabels(line, at);
      if (!labels) {
        problem(line, "bad labels");
        continue;
      }
      sample.labels = std::move(*labels);
    }
    if (at >= line.size() || line[at] != ' ') {
      problem(line, "no value");
      continue;
    }
    const auto value = detail::parseValue(line.substr(at + 1));
    if (!value) {
      problem(line, "the value is not a number (or has a timestamp)");
      continue;
    }
    sample.value = *value;
    const auto family = detail::familyOf(sample.name, document.types);
    if (document.types.count(family) == 0) problem(line, "no TYPE before the sample");
    if (document.helps.count(family) == 0) problem(line, "no HELP before the sample");
    const auto type = document.types.find(family);
    if (type != document.types.end() && type->second == "counter" &&
        !sample.name.ends_with("_total")) {
      problem(line, "a counter not named *_total");
    }
    if (family != current_family) {
      if (finished_families.count(family) != 0)
        problem(line, "the samples of a family are not together");
      if (!current_family.empty()) finished_families.insert(current_family);
      current_family = family;
    }
    std::string key = sample.name;
    for (const auto& [name, label] : sample.labels) key += "|" + name + "=" + label;
    if (!seen.insert(key).second) problem(line, "repeated sample");
    seen.insert(sample.name);
    document.samples.push_back(std::move(sample));
  }

  for (const auto& [family, type] : document.types) {
    if (type != "histogram") continue;
    // Buckets per series (the labels without le), in document order.
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    for (const auto& sample : document.samples) {
      if (sample.name != family + "_bucket") continue;
      auto labels = sample.labels;
      const auto le = labels.find("le");
      if (le == labels.end()) {
        document.problems.push_back(family + ": a bucket without le");
        continue;
      }
      const auto le_text = le->second;
      labels.erase(le);
      const auto bound = detail::parseValue(le_text);
      if (!bound) {
        document.problems.push_back(family + ": le is not a number: " + le_text);
        continue;
      }
      buckets[labels].emplace_back(*bound, sample.value);
    }
    if (buckets.empty()) document.problems.push_back(family + ": a histogram without buckets");
    for (const auto& [labels, series] : buckets) {
      for (std::size_t i = 1; i < series.size(); ++i) {
        if (!(series[i].first > series[i - 1].first))
          document.problems.push_back(family + ": le not ascending");
        if (series[i].second < series[i - 1].second)
          document.problems.push_back(family + ": buckets not cumulative");
      }
      if (series.back().first != std::numeric_limits<double>::infinity()) {
        document.problems.push_back(family + ": the last bucket is not +Inf");
      }
      const auto count = document.value(family + "_count", labels);
      if (!count || *count != series.back().second)
        document.problems.push_back(family + ": +Inf bucket differs from _count");
      if (!document.value(family + "_sum", labels))
        document.problems.push_back(family + ": no _sum");
    }
  }
  return document;
}

}  // namespace syncpod::service::testing
