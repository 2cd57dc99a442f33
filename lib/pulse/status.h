#pragma once

#include <cassert>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

namespace pulse {

/// The error vocabulary of the data path. Expected failures (bad input, a
/// full zone) are values, never exceptions (docs/conventions.md §2).
enum class Code {
    kOk = 0,
    kInvalidArgument,  // malformed input from the network or the config
    kNotFound,
    kTooLarge,
    kNoMemory,  // the shared-memory zone is full
    kAgain,
    kForbidden,
    kTooManyRequests,  // a rate limit: retry_after() says when to come back
};

class Status {
public:
    Status() = default;
    Status(Code code, std::string message)
        : code_(code), message_(std::move(message))
    {}

    static Status ok() { return Status(); }

    bool is_ok() const { return code_ == Code::kOk; }
    Code code() const { return code_; }
    const std::string& message() const { return message_; }
    /// Seconds after which a retry may succeed (HTTP's Retry-After); 0
    /// when not said.
    int64_t retry_after() const { return retry_after_; }
    Status& set_retry_after(int64_t seconds)
    {
        retry_after_ = seconds;
        return *this;
    }

private:
    Code code_ = Code::kOk;
    std::string message_;
    int64_t retry_after_ = 0;
};

/// The HTTP status that answers a Code (nchan's: 507 for a full zone).
inline int http_status(Code code)
{
    switch (code) {
        case Code::kOk:
            return 200;
        case Code::kInvalidArgument:
            return 400;
        case Code::kNotFound:
            return 404;
        case Code::kForbidden:
            return 403;
        case Code::kTooLarge:
            return 413;
        case Code::kNoMemory:
            return 507;
        case Code::kAgain:
            return 503;
        case Code::kTooManyRequests:
            return 429;
    }
    return 500;
}

/// A value or the Status that explains why there is none.
template <typename T>
class Result {
public:
    Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
    Result(Status status) : status_(std::move(status))  // NOLINT
    {
        assert(!status_.is_ok());
    }

    bool is_ok() const { return value_.has_value(); }
    const Status& status() const { return status_; }
    T& value() & { return *value_; }
    const T& value() const& { return *value_; }
    T&& value() && { return std::move(*value_); }
    T* operator->() { return &*value_; }
    const T* operator->() const { return &*value_; }

private:
    std::optional<T> value_;
    Status status_;
};

}  // namespace pulse
