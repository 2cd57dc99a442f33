#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pulse {

/// Length of an IMF-fixdate for years 0000-9999.
inline constexpr size_t kHttpDateLen = 29;

/// RFC 7231 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, written to
/// `out` (years outside 0000-9999 are clamped to them; message ids end at
/// 9999-12-31).
void format_http_date(int64_t unix_seconds, char (&out)[kHttpDateLen]);
std::string format_http_date(int64_t unix_seconds);

/// Parses IMF-fixdate (the form nginx and browsers send back in
/// If-Modified-Since); nullopt when malformed.
std::optional<int64_t> parse_http_date(std::string_view s);

/// The last date formatted, kept: every long-poll answer of a channel's
/// message carries the same Last-Modified, so a worker formats each once.
/// One per worker (not thread-safe).
class HttpDateCache {
public:
    /// Valid until the next call.
    std::string_view format(int64_t unix_seconds)
    {
        if (!valid_ || unix_seconds != time_) {
            format_http_date(unix_seconds, text_);
            time_ = unix_seconds;
            valid_ = true;
        }
        return {text_, kHttpDateLen};
    }

private:
    int64_t time_ = 0;
    bool valid_ = false;
    char text_[kHttpDateLen] = {};
};

}  // namespace pulse
