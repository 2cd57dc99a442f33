#pragma once

// The one encoder: a message in every wire format a subscriber may need.
// A wire format is a typed Framing, not a string: adding one is an enum
// value, a case in encode() and a unit test. Frames of single-channel
// subscribers are made once per worker and shared (Msg::encoded);
// multiplexed subscribers show their own ids, so theirs are made with the
// id they show.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/deflate.h"
#include "pulse/message_id.h"

namespace pulse {

enum class Wire : uint8_t {
    kSse,        // EventSource
    kRaw,        // body + separator: http-raw-stream, and chunked streams
    kMultipart,  // a multipart/mixed part, without its closing boundary
    kWsPlain,    // a WebSocket frame of the body (nchan's plain socket)
    kWsMeta,     // a ws+meta.nchan frame
    kWsJson,     // a pulse.v1 "message" frame
};

/// How a subscriber frames messages. Equal framings give equal bytes, so a
/// Framing is the key of a message's encoding cache.
struct Framing {
    Wire wire = Wire::kSse;
    /// Wrapped as one HTTP/1.1 chunk (nginx's chunked filter is bypassed
    /// for messages, and the chunk framing is made once too).
    bool http_chunked = false;
    /// permessage-deflate was agreed: messages published compressed go out
    /// compressed (kWsPlain/kWsMeta carry the body compressed at publish
    /// time, kWsJson compresses its JSON once per worker).
    bool deflate = false;
    /// kMultipart: the whole id in Etag and no Last-Modified.
    bool compound_etag = false;
    /// kSse: the location's event name for every message (empty: the
    /// message's own).
    std::string event;
    /// kRaw: what follows each body.
    std::string separator;
    /// kWsJson: the channel as the client named it.
    std::string channel;

    friend bool operator==(const Framing& a, const Framing& b)
    {
        return a.wire == b.wire && a.http_chunked == b.http_chunked
               && a.deflate == b.deflate && a.compound_etag == b.compound_etag
               && a.event == b.event && a.separator == b.separator
               && a.channel == b.channel;
    }
};

/// The framings a worker's subscribers use, each with a small id, so that a
/// message's frame cache is searched by an integer compare per delivery.
/// The channel name (kWsJson) is not part of the id: every subscriber of
/// one message names the same channel. At most kMaxIds distinct framings
/// get an id (a location's event name from a variable could make many);
/// the others get 0 and are compared whole.
class FramingIds {
public:
    static constexpr uint32_t kMaxIds = 4096;
    /// The id of `f` (registered on first use), or 0.
    uint32_t id(const Framing& f);

private:
    std::vector<std::string> keys_;  // index + 1 is the id
};

/// What the encoder needs of a message.
struct MessageData {
    MsgId id;
    std::string_view content_type;
    std::string_view event;
    std::string_view body;
    /// The body compressed at publish time (pulse_deflate_message_for_
    /// websocket), or empty.
    std::string_view deflated;
};

/// The id a frame shows: the message's own, or a multiplexed
/// subscription's (one time and a tag per channel).
struct ShownId {
    std::string_view text;  // "time:tag" or "time:t1,[t2],-"
    int64_t time = 0;
};

/// The bytes of `m` framed as `f`, showing `id`. Empty means nothing to
/// send (an empty chunk would end an HTTP/1.1 response). `z` is used when
/// kWsJson compresses (a zlib allocation failure sends it uncompressed).
std::string encode(const MessageData& m, const Framing& f, ShownId id,
                   const ws::DeflateOptions& z);

/// True when a subscriber of `f` gets a compressed frame for `m`.
bool sends_compressed(const MessageData& m, const Framing& f);

}  // namespace pulse
