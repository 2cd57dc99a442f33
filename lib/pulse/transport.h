#pragma once

// What a subscriber request asks for, decided from its headers without
// nginx: the roles a location has, the transport (docs/protocol.md §3), and
// where the subscriber resumes (docs/protocol.md §2). The glue reads the
// headers and evaluates the location's variables; these functions decide.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/message_id.h"
#include "pulse/status.h"

namespace pulse {

/// What a location does (pulse_publisher / pulse_subscriber / pulse_pubsub).
namespace role {
constexpr uint32_t kPubHttp = 0x0001;
constexpr uint32_t kPubWebSocket = 0x0002;
constexpr uint32_t kSubWebSocket = 0x0010;
constexpr uint32_t kSubEventSource = 0x0020;
constexpr uint32_t kSubLongPoll = 0x0040;
constexpr uint32_t kSubIntervalPoll = 0x0080;
constexpr uint32_t kSubChunked = 0x0100;
constexpr uint32_t kSubMultipart = 0x0200;
constexpr uint32_t kSubRawStream = 0x0400;
constexpr uint32_t kPubAny = 0x000f;
constexpr uint32_t kSubAny = 0x0ff0;
}  // namespace role

enum class Transport : uint8_t {
    kNone,
    kEventSource,
    kChunked,
    kMultipart,
    kRawStream,
    kLongPoll,
    kIntervalPoll,
};

/// nchan's names ($pulse_subscriber_type).
std::string_view transport_name(Transport t);

/// `Upgrade: websocket` with `Connection` naming `upgrade` (both
/// case-insensitive).
bool is_websocket_upgrade(std::optional<std::string_view> upgrade,
                          std::optional<std::string_view> connection);

/// True when a TE header accepts the chunked transfer coding: a `chunked`
/// element whose q is absent or above zero (RFC 9110 10.1.4). A malformed
/// q counts as zero.
bool te_accepts_chunked(std::string_view te);

/// The transport of a GET that is not a WebSocket upgrade, in nchan's
/// order: Accept names text/event-stream, TE accepts chunked, Accept names
/// multipart/mixed, then the first of intervalpoll, http-raw-stream and
/// longpoll the location has. kNone when the location serves none of them.
Transport detect_transport(std::string_view accept,
                           std::optional<std::string_view> te, uint32_t roles);

/// Where a subscriber resumes, as the request says it.
struct ResumeRequest {
    std::optional<std::string_view> if_modified_since;
    std::optional<std::string_view> if_none_match;
    /// pulse_subscriber_compound_etag_message_id: If-Modified-Since is not
    /// part of the id.
    bool compound_etag = false;
    /// pulse_subscriber_last_message_id's values (default Last-Event-ID,
    /// then ?last_event_id=), evaluated and URL-decoded, in order.
    std::vector<std::string> last_id_values;
};

/// Longest Last-Event-ID (and friends) nchan accepts.
constexpr size_t kMaxLastIdLength = 128;

/// The resume id (docs/protocol.md §2): If-Modified-Since with If-None-Match
/// tags (a date <= 0 means none), If-None-Match alone as a whole id, else
/// the first non-empty last-id value; nullopt when none says one (then
/// pulse_subscriber_first_message decides). kInvalidArgument ("Message ID
/// invalid") for a malformed or over-long id, or If-Modified-Since without
/// If-None-Match.
Result<std::optional<MultiMsgId>> resume_id(const ResumeRequest& r,
                                            size_t channels);

}  // namespace pulse
