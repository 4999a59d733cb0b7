#pragma once

#include <string>
#include <utility>
#include <variant>

namespace syncpod::core {

/// Why an expected runtime operation (claim, complete, a plugin call…) did not happen.
struct Error {
  enum class Code {
    Invalid = 1,      ///< the request itself is wrong (unknown id, bad argument, bad config)
    Unavailable,      ///< the database or a foreign system could not be reached; retry later
    Conflict,         ///< a concurrent writer won; the caller's view is stale
    Internal,         ///< anything else the database (or a plugin) reported
    Unauthorized,     ///< a foreign system refused the credentials
    Cancelled,        ///< the operation stopped because it was asked to
    Fenced,           ///< a leader's write refused: its lease term is no longer current
  };
  Code code = Code::Internal;
  std::string message;
};

/// A value or an Error. Hot paths return this instead of throwing.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(Error error) : state_(std::move(error)) {}      // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const { return std::get<Error>(state_); }

 private:
  std::variant<T, Error> state_;
};

/// Result of an operation that yields nothing but success.
struct Done {};

}  // namespace syncpod::core
