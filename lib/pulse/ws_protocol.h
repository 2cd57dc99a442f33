#pragma once

// What travels inside WebSocket frames: nchan's plain and ws+meta.nchan
// message payloads, and the JSON control protocol pulse.v1
// (docs/websocket.md).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "pulse/message_id.h"
#include "pulse/pacing.h"
#include "pulse/status.h"

namespace pulse::ws {

constexpr std::string_view kMetaProtocol = "ws+meta.nchan";
constexpr std::string_view kPulseProtocol = "pulse.v1";

/// nchan sends a message as a binary frame when its content type is
/// exactly application/octet-stream, else as a text frame.
bool is_binary_content(std::string_view content_type);

/// ws+meta.nchan payload: `id: <id>\n[content-type: <ct>\n]\n<body>`.
void append_meta_payload(std::string& out, std::string_view id,
                         std::string_view content_type, std::string_view body);

/// pulse.v1 delivery: {"type":"message","channel":..,"id":..,"data":..}
/// with "content_type" and "event" when set; a body that is not UTF-8 is
/// sent base64-encoded with "encoding":"base64".
std::string json_message(std::string_view channel, std::string_view id,
                         std::string_view content_type, std::string_view event,
                         std::string_view body);

/// A pulse.v1 request from the client.
struct Request {
    enum class Type {
        kSubscribe,
        kUnsubscribe,
        kPing,
        kPublish,
        kCommand,
        kAuth,
        kPace,   // a subscribed channel's new pace
        kFetch,  // a paced channel's held messages, now
    };
    Type type = Type::kPing;
    /// The request's "id" as JSON text (any scalar), echoed in the reply;
    /// empty when the request had none.
    std::string id;
    std::string channel;
    std::optional<std::string> last_event_id;  // subscribe
    std::string data;                          // publish, command
    std::string content_type;                  // publish
    std::string event;                         // publish
    std::string key;                           // publish: conflation key
    std::string token;                         // auth
    /// subscribe, pace: "throttle", "interval" or "mode" (pacing::parse_ask);
    /// nullopt: none given (subscribe: the location's; pace: an error).
    std::optional<pacing::Pace> pace;
};

/// Parses a request. Errors carry a pulse.v1 error code in their message
/// prefix: see error_frame.
struct RequestError {
    std::string code;  // "bad_request", "unknown_type"
    std::string message;
    std::string id;  // the request id when it could be read
};
/// The request, or why it is not one.
std::optional<Request> parse_request(std::string_view text, RequestError* err);

/// {"type":"error","code":..,"message":..[,"id":..][,"channel":..]}
std::string error_frame(std::string_view code, std::string_view message,
                        std::string_view id, std::string_view channel = {});

/// A reply without payload: {"type":<type>[,"id":..][,"channel":..]}
/// plus `extra` JSON members (`"k":v,...`, may be empty).
std::string reply_frame(std::string_view type, std::string_view id,
                        std::string_view channel, std::string_view extra = {});

/// A JSON string literal for `s` (must be UTF-8).
std::string json_string(std::string_view s);

/// The pulse.v1 error code for a Status of the store, the fan-out or the
/// id parser.
std::string_view error_code(Code code);

// The replies, each {"type":..,["id":..,]["channel":..,]...}:
/// `pace` is said when it is not live ("pace":"throttle=250ms");
/// `channels`, for a wildcard, how many existing channels it joined.
std::string subscribed_frame(std::string_view id, std::string_view channel,
                             bool gap, const pacing::Pace& pace = {},
                             std::optional<size_t> channels = std::nullopt);
std::string published_frame(std::string_view id, std::string_view channel,
                            MsgId message_id, uint32_t subscribers);
/// A command's answer: {"type":"reply","id":..,"status":N[,"data":body]}
/// (the body only when it is UTF-8).
std::string command_reply_frame(std::string_view id, int status,
                                std::string_view body);
/// A channel of the socket was deleted: {"type":"gone",...,"status":410}.
std::string gone_frame(std::string_view channel);

}  // namespace pulse::ws
