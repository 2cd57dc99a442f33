#pragma once

#include <string>
#include <string_view>

#include "pulse/message_id.h"

namespace pulse::sse {

/// The first bytes of every EventSource stream (nchan sends them at once so
/// that proxies and browsers see the stream open).
constexpr std::string_view kHello = ": hi\n\n";

/// Appends one message in nchan's EventSource framing:
/// `event: <e>\n` (when `event` is not empty), `id: <id>\n`, then the body
/// split on `\n` into `data: <line>\n` lines, then `\n`. A trailing newline
/// in the body gives a final empty `data: ` line, as nchan; an empty body
/// gives one `data: ` line.
void append_message(std::string& out, std::string_view id,
                    std::string_view event, std::string_view body);

/// Appends a ping: `:<comment>\n` when set, `event: <event>\n` when set,
/// `data: <data>\n` when set, then `\n`; all empty gives `:\n\n`.
void append_ping(std::string& out, std::string_view comment,
                 std::string_view event, std::string_view data);

/// Appends the termination comment `:<code>: <status line>\n\n`, e.g.
/// `:410: 410 Gone\n\n`.
void append_status(std::string& out, int code, std::string_view status_line);

}  // namespace pulse::sse
