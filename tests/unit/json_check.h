// A strict JSON syntax checker (RFC 8259) for tests: true when `text` is exactly one JSON value.
// Header only: used by tests/unit/stats_test.cpp and tests/e2e/admin_test.cpp.
#pragma once

#include <cstddef>
#include <string_view>

namespace json_check {

class Parser {
  public:
    explicit Parser(std::string_view text) : s_(text) {}
    bool valid() {
        ws();
        if (!value(0)) return false;
        ws();
        return i_ == s_.size();
    }

  private:
    void ws() {
        while (i_ < s_.size() &&
               (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t'))
            ++i_;
    }
    bool lit(std::string_view word) {
        if (s_.substr(i_, word.size()) != word) return false;
        i_ += word.size();
        return true;
    }
    bool value(int depth) {
        if (depth > 64 || i_ >= s_.size()) return false;
        switch (s_[i_]) {
            case '{':
                return object(depth);
            case '[':
                return array(depth);
            case '"':
                return string();
            case 't':
                return lit("true");
            case 'f':
                return lit("false");
            case 'n':
                return lit("null");
            default:
                return number();
        }
    }
    bool object(int depth) {
        ++i_;
        ws();
        if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
        for (;;) {
            ws();
            if (i_ >= s_.size() || s_[i_] != '"' || !string()) return false;
            ws();
            if (i_ >= s_.size() || s_[i_++] != ':') return false;
            ws();
            if (!value(depth + 1)) return false;
            ws();
            if (i_ >= s_.size()) return false;
            char c = s_[i_++];
            if (c == '}') return true;
            if (c != ',') return false;
        }
    }
    bool array(int depth) {
        ++i_;
        ws();
        if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
        for (;;) {
            ws();
            if (!value(depth + 1)) return false;
            ws();
            if (i_ >= s_.size()) return false;
            char c = s_[i_++];
            if (c == ']') return true;
            if (c != ',') return false;
        }
    }
    bool string() {
        ++i_;
        while (i_ < s_.size()) {
            unsigned char c = static_cast<unsigned char>(s_[i_++]);
            if (c == '"') return true;
            if (c < 0x20) return false;
            if (c == '\\') {
                if (i_ >= s_.size()) return false;
                char e = s_[i_++];
                if (e == 'u') {
                    for (int k = 0; k < 4; ++k) {
                        if (i_ >= s_.size()) return false;
                        char h = s_[i_++];
                        bool hex = (h >= '0' && h <= '9') || (h >= 'a' && h <= 'f') ||
                                   (h >= 'A' && h <= 'F');
                        if (!hex) return false;
                    }
                } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
                    return false;
                }
            }
        }
        return false;
    }
    bool digits() {
        size_t start = i_;
        while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
        return i_ > start;
    }
    bool number() {
        if (i_ < s_.size() && s_[i_] == '-') ++i_;
        if (i_ < s_.size() && s_[i_] == '0') {
            ++i_;
        } else if (!digits()) {
            return false;
        }
        if (i_ < s_.size() && s_[i_] == '.') {
            ++i_;
            if (!digits()) return false;
        }
        if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
            ++i_;
            if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
            if (!digits()) return false;
        }
        return true;
    }

    std::string_view s_;
    size_t i_ = 0;
};

inline bool valid(std::string_view text) { return Parser(text).valid(); }

}  // namespace json_check
