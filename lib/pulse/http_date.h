#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pulse {

/// RFC 7231 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
std::string format_http_date(int64_t unix_seconds);

/// Parses IMF-fixdate (the form nginx and browsers send back in
/// If-Modified-Since); nullopt when malformed.
std::optional<int64_t> parse_http_date(std::string_view s);

}  // namespace pulse
