// A checker for the Prometheus text exposition format 0.0.4, strict enough to catch what would
// make a scrape fail or mislead: every sample line is `name{labels} value`, names and label names
// are valid, label values use only the allowed escapes, each family has HELP and TYPE before its
// samples and its samples together, counters end in _total, histograms have increasing `le`
// buckets ending at +Inf with non-decreasing counts, then _sum and a _count equal to +Inf. Header
// only: used by tests/unit/stats_test.cpp and tests/e2e/admin_test.cpp.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace exposition {

struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;  // unescaped values
    double value = 0;
};

inline bool is_name(std::string_view s, bool colon_ok) {
    if (s.empty()) return false;
    for (size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (colon_ok && c == ':') || (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

inline bool parse_value(const std::string& text, double* out) {
    if (text == "+Inf" || text == "Inf") {
        *out = INFINITY;
        return true;
    }
    if (text == "-Inf") {
        *out = -INFINITY;
        return true;
    }
    if (text == "NaN") {
        *out = NAN;
        return true;
    }
    if (text.empty()) return false;
    char* end = nullptr;
    *out = std::strtod(text.c_str(), &end);
    return end == text.c_str() + text.size();
}

// Parses one sample line; "" on success, else what is wrong.
inline std::string parse_sample(std::string_view line, Sample* out) {
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    out->name = std::string(line.substr(0, i));
    if (!is_name(out->name, true)) return "bad metric name \"" + out->name + "\"";
    if (i < line.size() && line[i] == '{') {
        ++i;
        for (;;) {
            if (i < line.size() && line[i] == '}') {
                ++i;
                break;
            }
            size_t eq = line.find('=', i);
            if (eq == std::string_view::npos) return "label without '='";
            std::string lname(line.substr(i, eq - i));
            if (!is_name(lname, false)) return "bad label name \"" + lname + "\"";
            if (out->labels.count(lname)) return "label \"" + lname + "\" repeated";
            i = eq + 1;
            if (i >= line.size() || line[i] != '"') return "label value not quoted";
            ++i;
            std::string value;
            bool closed = false;
            while (i < line.size()) {
                char c = line[i++];
                if (c == '"') {
                    closed = true;
                    break;
                }
                if (c == '\n') return "raw newline in label value";
                if (c == '\\') {
                    if (i >= line.size()) return "dangling backslash in label value";
                    char e = line[i++];
                    if (e == 'n') {
                        value += '\n';
                    } else if (e == '\\' || e == '"') {
                        value += e;
                    } else {
                        return std::string("bad escape \\") + e + " in label value";
                    }
                } else {
                    value += c;
                }
            }
            if (!closed) return "unterminated label value";
            out->labels[lname] = value;
            if (i < line.size() && line[i] == ',') {
                ++i;
            } else if (i < line.size() && line[i] == '}') {
                ++i;
                break;
            } else {
                return "expected ',' or '}' after a label";
            }
        }
    }
    if (i >= line.size() || line[i] != ' ') return "expected one space before the value";
    ++i;
    std::string rest(line.substr(i));
    std::string value_text = rest.substr(0, rest.find(' '));
    if (!parse_value(value_text, &out->value)) return "bad value \"" + value_text + "\"";
    if (rest.find(' ') != std::string::npos) {
        std::string ts = rest.substr(rest.find(' ') + 1);
        if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string::npos)
            return "bad timestamp \"" + ts + "\"";
    }
    return "";
}

// Every problem found, one line each, empty when `text` is valid.
inline std::vector<std::string> check(const std::string& text,
                                      std::vector<Sample>* samples_out = nullptr) {
    std::vector<std::string> problems;
    std::map<std::string, std::string> types;  // family -> type
    std::set<std::string> helps;
    std::set<std::string> finished;  // families whose samples ended
    std::set<std::string> seen_series;
    std::string current;  // family of the previous sample
    std::vector<Sample> samples;
    if (!text.empty() && text.back() != '\n') problems.push_back("text does not end in a newline");
    std::istringstream in(text);
    int n = 0;
    auto problem = [&](const std::string& what) {
        problems.push_back("line " + std::to_string(n) + ": " + what);
    };
    for (std::string line; std::getline(in, line);) {
        ++n;
        if (line.empty()) continue;
        if (line[0] == '#') {
            std::istringstream words(line);
            std::string hash, kw, name, rest;
            words >> hash >> kw >> name;
            if (hash != "#" || (kw != "HELP" && kw != "TYPE")) continue;  // a comment
            if (!is_name(name, true)) problem("bad name in " + kw);
            if (kw == "HELP") {
                if (helps.count(name)) problem("second HELP for " + name);
                helps.insert(name);
            } else {
                words >> rest;
                static const std::set<std::string> kTypes = {"counter", "gauge", "histogram",
                                                             "summary", "untyped"};
                if (!kTypes.count(rest)) problem("unknown type \"" + rest + "\"");
                if (types.count(name)) problem("second TYPE for " + name);
                if (finished.count(name) || current == name)
                    problem("TYPE for " + name + " after its samples");
                types[name] = rest;
                if (rest == "counter" &&
                    (name.size() < 6 || name.substr(name.size() - 6) != "_total"))
                    problem("counter " + name + " does not end in _total");
            }
            continue;
        }
        Sample s;
        if (std::string err = parse_sample(line, &s); !err.empty()) {
            problem(err + ": " + line);
            continue;
        }
        std::string family = s.name;
        if (!types.count(family)) {
            for (const char* suffix : {"_bucket", "_sum", "_count"}) {
                std::string_view sv(s.name);
                std::string_view suf(suffix);
                if (sv.size() > suf.size() && sv.substr(sv.size() - suf.size()) == suf) {
                    std::string base(sv.substr(0, sv.size() - suf.size()));
                    if (types.count(base) && (types[base] == "histogram" ||
                                              (types[base] == "summary" && suf != "_bucket")))
                        family = base;
                }
            }
        }
        if (!types.count(family)) problem("sample " + s.name + " without a TYPE line before it");
        if (!helps.count(family)) problem("sample " + s.name + " without a HELP line before it");
        if (family != current) {
            if (finished.count(family)) problem("samples of " + family + " are not together");
            if (!current.empty()) finished.insert(current);
            current = family;
        }
        std::string series = s.name + "{";
        for (const auto& [k, v] : s.labels) series += k + "=" + v + ",";
        if (!seen_series.insert(series).second) problem("duplicate series " + series + "}");
        if (types[family] == "counter" && (s.value < 0 || std::isnan(s.value)))
            problem("negative counter " + s.name);
        samples.push_back(s);
    }

    // Histograms: per label set (without le), buckets in order, ending +Inf, then sum and count.
    for (const auto& [family, type] : types) {
        if (type != "histogram") continue;
        std::map<std::string, std::vector<std::pair<double, double>>> buckets;  // key -> (le, v)
        std::map<std::string, double> counts;
        std::set<std::string> sums;
        for (const Sample& s : samples) {
            std::string key;
            for (const auto& [k, v] : s.labels)
                if (k != "le") key += k + "=" + v + ",";
            if (s.name == family + "_bucket") {
                auto le = s.labels.find("le");
                double bound = 0;
                if (le == s.labels.end() || !parse_value(le->second, &bound)) {
                    problems.push_back(family + ": bucket without a valid le");
                    continue;
                }
                buckets[key].push_back({bound, s.value});
            } else if (s.name == family + "_count") {
                counts[key] = s.value;
            } else if (s.name == family + "_sum") {
                sums.insert(key);
            } else if (s.name == family) {
                problems.push_back(family + ": bare sample in a histogram");
            }
        }
        if (buckets.empty()) problems.push_back(family + ": histogram without buckets");
        for (const auto& [key, list] : buckets) {
            for (size_t i = 1; i < list.size(); ++i) {
                if (!(list[i].first > list[i - 1].first))
                    problems.push_back(family + ": le not increasing");
                if (list[i].second < list[i - 1].second)
                    problems.push_back(family + ": bucket counts not cumulative");
            }
            if (list.back().first != INFINITY)
                problems.push_back(family + ": last bucket is not le=\"+Inf\"");
            if (!sums.count(key)) problems.push_back(family + ": no _sum");
            if (!counts.count(key)) {
                problems.push_back(family + ": no _count");
            } else if (counts[key] != list.back().second) {
                problems.push_back(family + ": _count differs from the +Inf bucket");
            }
        }
    }
    if (samples_out) *samples_out = std::move(samples);
    return problems;
}

// The value of the sample `name` with exactly `labels` ("" when none), or NAN when absent.
inline double value_of(const std::vector<Sample>& samples, const std::string& name,
                       const std::map<std::string, std::string>& labels = {}) {
    for (const Sample& s : samples)
        if (s.name == name && s.labels == labels) return s.value;
    return NAN;
}

}  // namespace exposition
