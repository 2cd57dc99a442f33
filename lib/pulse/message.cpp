#include "pulse/message.h"

namespace pulse {

Msg::Msg(const MessageView& m)
    : id(m.id),
      prev_id(m.prev_id),
      published_ns(m.published_ns),
      content_type(m.content_type),
      event(m.event),
      body(m.body),
      deflated(m.deflated),
      conflation_key(m.conflation_key),
      id_text_(to_string(m.id))
{}

Frame* Msg::encode_slow(uint32_t framing_id, const Framing& f,
                        const ws::DeflateOptions& z)
{
    // the usual path: one integer compare per cached frame
    if (framing_id != 0) {
        for (Encoding& e : encodings_) {
            if (e.id == framing_id) {
                return e.frame.get();
            }
        }
    }
    // A compressed framing of a message that was not compressed at publish
    // time gives the plain bytes.
    Framing key = f;
    if (key.deflate && deflated.empty()) {
        key.deflate = false;
    }
    if (framing_id == 0) {
        for (Encoding& e : encodings_) {
            if (e.id == 0 && e.framing == key) {
                return e.frame.get();
            }
        }
    }
    std::string bytes = encode(data(), key, ShownId{id_text_, id.time}, z);
    encodings_.push_back(Encoding{framing_id, std::move(key),
                                  FrameRef(Frame::make(bytes, published_ns))});
    return encodings_.back().frame.get();
}

}  // namespace pulse
