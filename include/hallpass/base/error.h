// The Error value type and Result<T>: how loaders and parsers report failure across module
// boundaries. Config errors carry file:line:col (1-based); network-input errors carry only a
// message.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace hallpass {

struct Error {
    Error(std::string message_, std::string file_ = {}, int line_ = 0, int col_ = 0)
        : message(std::move(message_)), file(std::move(file_)), line(line_), col(col_) {}

    std::string message;
    std::string file;  // empty when the error is not about a file
    int line = 0;      // 1-based; 0 = unknown
    int col = 0;       // 1-based; 0 = unknown

    // "file:line:col: message", or the parts that are known.
    std::string to_string() const;
};

// A value or an Error. Small on purpose: C++20 has no std::expected.
template <class T>
class Result {
  public:
    Result(T value) : v_(std::move(value)) {}
    Result(Error error) : v_(std::move(error)) {}

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }
    T& value() { return std::get<0>(v_); }
    const T& value() const { return std::get<0>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    const Error& error() const { return std::get<1>(v_); }

  private:
    std::variant<T, Error> v_;
};

}  // namespace hallpass
