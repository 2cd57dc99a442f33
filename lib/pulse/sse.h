#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "pulse/message_id.h"

namespace pulse::sse {

/// The first bytes of every EventSource stream (nchan sends them at once so
/// that proxies and browsers see the stream open).
constexpr std::string_view kHello = ": hi\n\n";

/// Appends one message in nchan's EventSource framing:
/// `event: <e>\n` (when `event` is not empty), `id: <id>\n`, then the body
/// split into `data: <line>\n` lines, then `\n`. A trailing newline in the
/// body gives a final empty `data: ` line, as nchan; an empty body gives
/// one `data: ` line. Lines end at LF, CR or CRLF, as the EventSource
/// parser reads them (nchan splits on LF only, so a CR in a body can forge
/// fields). `event` must be a valid field (publish_request.h).
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

namespace pulse::stream {

/// Wraps `frame` in HTTP/1.1 chunk framing (`<hex>\r\n<frame>\r\n`); an
/// empty frame stays empty (a zero-size chunk would end the response).
void wrap_chunk(std::string& frame);

/// One part of nchan's multipart/mixed stream (docs/protocol.md §7): the part
/// headers, the body and the boundary that ends the part:
/// `\r\nLast-Modified: <date>\r\nEtag: <etag>\r\n[Content-Type: <ct>\r\n]
/// \r\n<body>\r\n--<boundary>`. An empty `last_modified` leaves its line out;
/// an empty `boundary` leaves out the closing `\r\n--<boundary>`, which a
/// stream then sends itself: each stream has a boundary of its own, so
/// that a body cannot forge parts of other subscribers' streams.
void append_multipart_part(std::string& out, std::string_view boundary,
                           std::string_view last_modified,
                           std::string_view etag, std::string_view content_type,
                           std::string_view body);

/// A boundary of `n` characters from nchan's alphabet `./0-9A-Za-z`, from
/// `random` (any values).
std::string make_boundary(const uint32_t* random, size_t n);

/// A boundary of `n` characters from OpenSSL's random generator: no other
/// client can predict it.
std::string random_boundary(size_t n);

}  // namespace pulse::stream
