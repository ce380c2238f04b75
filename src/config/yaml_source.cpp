// YAML documents with positions: parsing, unknown-key checks with did-you-mean, typed getters.
// yaml-cpp reports positions 0-based; messages use 1-based line:col like compilers do.
#include "hallpass/config/yaml_source.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

namespace hallpass {
namespace {

size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + cost});
            diag = up;
        }
    }
    return row[b.size()];
}

const char* type_name(const YAML::Node& node) {
    switch (node.Type()) {
        case YAML::NodeType::Map:
            return "a map";
        case YAML::NodeType::Sequence:
            return "a list";
        case YAML::NodeType::Scalar:
            return "a scalar";
        case YAML::NodeType::Null:
            return "empty";
        default:
            return "undefined";
    }
}

// yaml-cpp keeps both pairs of a repeated key but lookups see only the first, so a key a parent
// added later would silently do nothing. Any map, at any depth, with a repeated scalar key is an
// error naming both positions. `depth` bounds the walk on hostile nesting.
std::optional<Error> find_duplicate_key(const YAML::Node& node, const std::string& name,
                                        int depth) {
    if (depth > 256) return Error{"yaml nesting is too deep", name};
    if (node.IsSequence()) {
        for (const YAML::Node& item : node) {
            if (auto e = find_duplicate_key(item, name, depth + 1)) return e;
        }
    } else if (node.IsMap()) {
        std::unordered_map<std::string, YAML::Mark> seen;
        for (auto it = node.begin(); it != node.end(); ++it) {
            if (it->first.IsScalar()) {
                auto [at, fresh] = seen.emplace(it->first.Scalar(), it->first.Mark());
                if (!fresh) {
                    YAML::Mark here = it->first.Mark();
                    return Error{"duplicate key \"" + it->first.Scalar() + "\" (first at " +
                                     std::to_string(at->second.line + 1) + ":" +
                                     std::to_string(at->second.column + 1) + ")",
                                 name, here.line + 1, here.column + 1};
                }
            }
            if (auto e = find_duplicate_key(it->second, name, depth + 1)) return e;
        }
    }
    return std::nullopt;
}

}  // namespace

Result<YamlSource> YamlSource::load_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        // errno from the failed open: "No such file or directory", "Permission denied" (a
        // reload runs as server.user).
        int err = errno;
        return Error{std::string("cannot read config file: ") +
                         (err ? std::strerror(err) : "cannot open it"),
                     path};
    }
    std::ostringstream text;
    text << in.rdbuf();
    return parse(text.str(), path);
}

Result<YamlSource> YamlSource::parse(const std::string& text, const std::string& name) {
    try {
        YAML::Node root = YAML::Load(text);
        if (root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
        if (!root.IsMap()) {
            return Error{"the top level must be a map (key: value)", name, root.Mark().line + 1,
                         root.Mark().column + 1};
        }
        if (auto duplicate = find_duplicate_key(root, name, 0)) return *duplicate;
        return YamlSource(root, name);
    } catch (const YAML::ParserException& e) {
        return Error{"yaml syntax error: " + e.msg, name, e.mark.line + 1, e.mark.column + 1};
    } catch (const YAML::Exception& e) {
        return Error{std::string("yaml error: ") + e.what(), name};
    }
}

Error YamlSource::error_at(const YAML::Node& node, std::string message) const {
    YAML::Mark mark = node.Mark();
    if (mark.is_null()) return Error{std::move(message), name_};
    return Error{std::move(message), name_, mark.line + 1, mark.column + 1};
}

std::optional<Error> YamlSource::check_keys(const YAML::Node& node,
                                            std::span<const std::string_view> allowed,
                                            std::string_view where) const {
    if (!node.IsMap()) return error_at(node, std::string(where) + " must be a map");
    for (auto it = node.begin(); it != node.end(); ++it) {
        if (!it->first.IsScalar()) return error_at(it->first, "keys must be plain names");
        const std::string key = it->first.Scalar();
        if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
        std::string message = "unknown key \"" + key + "\" in " + std::string(where);
        std::string guess = did_you_mean(key, allowed);
        if (!guess.empty()) message += " (did you mean \"" + guess + "\"?)";
        return error_at(it->first, message);
    }
    return std::nullopt;
}

Result<int64_t> YamlSource::get_int(const YAML::Node& node, std::string_view key, int64_t min,
                                    int64_t max) const {
    if (!node.IsScalar()) {
        return error_at(node,
                        "\"" + std::string(key) + "\" must be a number, not " + type_name(node));
    }
    const std::string& text = node.Scalar();
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) {
        return error_at(
            node, "\"" + std::string(key) + "\" must be a whole number, got \"" + text + "\"");
    }
    if (value < min || value > max) {
        return error_at(node, "\"" + std::string(key) + "\" must be between " +
                                  std::to_string(min) + " and " + std::to_string(max) + ", got " +
                                  text);
    }
    return value;
}

Result<std::string> YamlSource::get_string(const YAML::Node& node, std::string_view key) const {
    if (!node.IsScalar()) {
        return error_at(node,
                        "\"" + std::string(key) + "\" must be a string, not " + type_name(node));
    }
    return node.Scalar();
}

Result<std::vector<std::string>> YamlSource::get_string_list(const YAML::Node& node,
                                                             std::string_view key) const {
    std::vector<std::string> out;
    if (node.IsScalar()) {
        out.push_back(node.Scalar());
        return out;
    }
    if (node.IsNull()) return out;
    if (!node.IsSequence()) {
        return error_at(node,
                        "\"" + std::string(key) + "\" must be a list, not " + type_name(node));
    }
    for (const YAML::Node& item : node) {
        if (!item.IsScalar()) {
            return error_at(item, "entries of \"" + std::string(key) + "\" must be scalars, not " +
                                      type_name(item));
        }
        out.push_back(item.Scalar());
    }
    return out;
}

std::string did_you_mean(std::string_view word, std::span<const std::string_view> candidates) {
    std::string_view best;
    size_t best_distance = SIZE_MAX;
    for (std::string_view candidate : candidates) {
        size_t d = edit_distance(word, candidate);
        if (d < best_distance) {
            best_distance = d;
            best = candidate;
        }
    }
    size_t limit = std::max<size_t>(2, word.size() / 3);
    if (best.empty() || best_distance > limit) return "";
    return std::string(best);
}

}  // namespace hallpass
