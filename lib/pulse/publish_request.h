#pragma once

// What a publish carries besides its body, and the one rule every publish
// path checks it with: HTTP/1.x and HTTP/2 publisher locations, WebSocket
// publishers, pulse.v1 publish requests and the sidecar. Header-like fields
// reach other subscribers' wire formats (EventSource `event:` lines,
// long-poll and multipart headers, ws+meta.nchan header lines), so a line
// break in one would let a publisher forge lines in every subscriber's
// stream. Bodies stay binary-safe: each wire format frames them.

#include <cstddef>
#include <optional>
#include <string_view>

#include "pulse/message_id.h"
#include "pulse/status.h"

namespace pulse {

/// Longest event name (EventSource `event:`, X-EventSource-Event).
constexpr size_t kMaxEventLength = 256;
/// Longest content type of a message.
constexpr size_t kMaxContentTypeLength = 256;
/// Longest conflation key (Pulse-Key, pulse.v1 "key"; lib/pulse/pacing.h).
constexpr size_t kMaxKeyLength = 256;
/// Longest channel name a header may carry (pulse.v1 commands).
constexpr size_t kMaxHeaderChannelLength = 1024;

/// Checks one header-like value: no control character (0x00-0x1f except
/// horizontal tab, and 0x7f) and at most `max_length` bytes. `what` names
/// the field in the error ("event", "X-EventSource-Event header"); the
/// error is kInvalidArgument with a message fit for a 400 body.
Status validate_field(std::string_view what, std::string_view value,
                      size_t max_length);

/// The header-like fields of one publish, as a path received them.
struct PublishFields {
    std::string_view event;
    std::string_view content_type;
    std::string_view key;  // conflation key
    /// Names for errors: what the path calls each field.
    std::string_view event_name = "event";
    std::string_view content_type_name = "content type";
    std::string_view key_name = "key";
};

/// validate_field over every field of `f`.
Status validate(const PublishFields& f);

}  // namespace pulse
