// A parsed YAML document with its file name, so every check can point at file:line:col. Unknown
// keys are reported with a did-you-mean; typed getters check type and bounds. Used by the config
// and rules loaders; yaml-cpp exceptions never leave this module's callers.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hallpass/base/error.h"

namespace hallpass {

class YamlSource {
  public:
    // Reads and parses `path`; a missing/unreadable file or a YAML syntax error is an Error.
    static Result<YamlSource> load_file(const std::string& path);
    // Parses `text`; `name` stands for the file in messages. A key repeated in any map is an
    // Error at the second one naming the first: `duplicate key "domains" (first at 10:5)`.
    static Result<YamlSource> parse(const std::string& text, const std::string& name);

    const YAML::Node& root() const { return root_; }
    const std::string& name() const { return name_; }

    // An Error at `node`'s position (1-based line and column).
    Error error_at(const YAML::Node& node, std::string message) const;

    // Every key of the map `node` must be one of `allowed`; otherwise an error at that key:
    // `unknown key "domians" in rule "x" (did you mean "domains"?)`. `where` names the map.
    std::optional<Error> check_keys(const YAML::Node& node,
                                    std::span<const std::string_view> allowed,
                                    std::string_view where) const;

    // Typed getters: a wrong type or a value out of [min, max] is an error at the node.
    Result<int64_t> get_int(const YAML::Node& node, std::string_view key, int64_t min,
                            int64_t max) const;
    Result<std::string> get_string(const YAML::Node& node, std::string_view key) const;
    // A sequence of scalars (a single scalar is taken as a one-element list).
    Result<std::vector<std::string>> get_string_list(const YAML::Node& node,
                                                     std::string_view key) const;

  private:
    YamlSource(YAML::Node root, std::string name)
        : root_(std::move(root)), name_(std::move(name)) {}
    YAML::Node root_;
    std::string name_;
};

// The closest of `candidates` to `word` (edit distance <= 2, or a third of its length), or "".
std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates);

}  // namespace hallpass
