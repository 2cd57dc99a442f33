#include "pulse/encoder.h"

#include "pulse/http_date.h"
#include "pulse/sse.h"
#include "pulse/websocket.h"
#include "pulse/ws_protocol.h"

namespace pulse {

uint32_t FramingIds::id(const Framing& f)
{
    std::string key;
    key.reserve(8 + f.event.size() + f.separator.size());
    key.push_back(static_cast<char>(f.wire));
    key.push_back(static_cast<char>((f.http_chunked ? 1 : 0)
                                    | (f.deflate ? 2 : 0)
                                    | (f.compound_etag ? 4 : 0)));
    key.append(std::to_string(f.event.size())).push_back(':');
    key.append(f.event).append(f.separator);
    for (size_t i = 0; i < keys_.size(); ++i) {
        if (keys_[i] == key) {
            return static_cast<uint32_t>(i + 1);
        }
    }
    if (keys_.size() >= kMaxIds) {
        return 0;
    }
    keys_.push_back(std::move(key));
    return static_cast<uint32_t>(keys_.size());
}

bool sends_compressed(const MessageData& m, const Framing& f)
{
    // Only messages published with pulse_deflate_message_for_websocket go
    // out compressed, as nchan: plain and meta frames carry the stored
    // compressed body, pulse.v1 compresses its JSON once per worker.
    return f.deflate && !m.deflated.empty()
           && (f.wire == Wire::kWsPlain || f.wire == Wire::kWsMeta
               || f.wire == Wire::kWsJson);
}

std::string encode(const MessageData& m, const Framing& f, ShownId id,
                   const ws::DeflateOptions& z)
{
    std::string frame;
    switch (f.wire) {
        case Wire::kSse:
            sse::append_message(
                frame, id.text,
                f.event.empty() ? m.event : std::string_view(f.event), m.body);
            break;
        case Wire::kRaw:
            frame.append(m.body).append(f.separator);
            break;
        case Wire::kMultipart: {
            // Etag: the tag(s), with the time in Last-Modified; or the whole
            // id in compound mode
            std::string_view etag = id.text;
            std::string date;
            if (!f.compound_etag) {
                etag = id.text.substr(id.text.find(':') + 1);
                date = format_http_date(id.time);
            }
            stream::append_multipart_part(frame, "", date, etag, m.content_type,
                                          m.body);
            break;
        }
        case Wire::kWsPlain:
        case Wire::kWsMeta:
        case Wire::kWsJson: {
            bool compressed = sends_compressed(m, f);
            ws::Opcode op = ws::is_binary_content(m.content_type)
                                ? ws::Opcode::kBinary
                                : ws::Opcode::kText;
            std::string payload;
            if (f.wire == Wire::kWsMeta) {
                ws::append_meta_payload(
                    payload, id.text, m.content_type,
                    compressed ? std::string_view() : m.body);
                if (compressed) {
                    // nchan's bytes: the header in stored blocks, then the
                    // body as compressed at publish time
                    payload = ws::deflate_stored(payload).append(m.deflated);
                }
            } else if (f.wire == Wire::kWsJson) {
                // the body is escaped into the JSON: compressed here, once
                // per worker and channel
                op = ws::Opcode::kText;
                payload = ws::json_message(f.channel, id.text, m.content_type,
                                           m.event, m.body);
                if (compressed) {
                    auto r = ws::deflate_message(payload, z);
                    if (r.is_ok()) {
                        payload = std::move(r.value());
                    } else {
                        compressed = false;  // RFC 7692 allows plain frames
                    }
                }
            } else {
                payload = std::string(compressed ? m.deflated : m.body);
            }
            ws::append_frame(frame, op, payload, compressed);
            break;
        }
    }
    if (f.http_chunked) {
        stream::wrap_chunk(frame);
    }
    return frame;
}

}  // namespace pulse
