#pragma once

// A message as a worker holds it: copied out of shared memory once, under
// the zone lock, then shared by every local subscriber of its channel. Its
// frames are made on first use, once per Framing.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/deflate.h"
#include "pulse/encoder.h"
#include "pulse/frame.h"
#include "pulse/message_id.h"
#include "pulse/store.h"

namespace pulse {

class Msg {
public:
    explicit Msg(const MessageView& m);
    Msg(const Msg&) = delete;
    Msg& operator=(const Msg&) = delete;
    Msg(Msg&&) = delete;
    Msg& operator=(Msg&&) = delete;
    ~Msg() = default;

    /// The message framed as `f` with its own id, made once and cached.
    /// `id` is f's FramingIds id (0: none, compared whole). An empty frame
    /// means nothing to send.
    Frame* encoded(uint32_t framing_id, const Framing& f,
                   const ws::DeflateOptions& z)
    {
        // most of a worker's subscribers share the first framing made
        if (framing_id != 0 && !encodings_.empty()
            && encodings_.front().id == framing_id)
        {
            return encodings_.front().frame.get();
        }
        return encode_slow(framing_id, f, z);
    }
    Frame* encoded(const Framing& f, const ws::DeflateOptions& z)
    {
        return encoded(0, f, z);
    }

    /// The message as the encoder reads it.
    MessageData data() const
    {
        return MessageData{id, content_type, event, body, deflated};
    }
    std::string_view id_text() const { return id_text_; }

    MsgId id;
    MsgId prev_id;
    int64_t published_ns;  // CLOCK_MONOTONIC; 0: unknown
    std::string content_type;
    std::string event;
    std::string body;
    std::string deflated;  // the body compressed at publish time, or empty
    /// Pulse-Key: of the messages of a channel with the same key, a paced
    /// subscriber gets only the latest (lib/pulse/pacing.h); empty: none.
    std::string conflation_key;

private:
    Frame* encode_slow(uint32_t framing_id, const Framing& f,
                       const ws::DeflateOptions& z);

    struct Encoding {
        uint32_t id;
        Framing framing;
        FrameRef frame;
    };
    std::string id_text_;
    std::vector<Encoding> encodings_;
};

using MsgPtr = std::shared_ptr<Msg>;

}  // namespace pulse
