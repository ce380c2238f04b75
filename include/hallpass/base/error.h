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

// A value or an Error. Small on purpose: C++20 has no std::expected. [[nodiscard]]: a Result
// that nobody looks at is an error nobody handles.
template <class T>
class [[nodiscard]] Result {
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

// Success or an Error, for operations that return nothing else: `return {};` or an Error.
template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}

    bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    const Error& error() const { return error_; }

  private:
    Error error_{std::string()};
    bool failed_ = false;
};

}  // namespace hallpass
