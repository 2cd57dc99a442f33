#include "pulse/message.h"

namespace pulse {

Msg::Msg(const MessageView& m)
    : id(m.id),
      prev_id(m.prev_id),
      content_type(m.content_type),
      event(m.event),
      body(m.body),
      deflated(m.deflated),
      id_text_(to_string(m.id))
{}

Frame* Msg::encoded(const Framing& f, const ws::DeflateOptions& z)
{
    // A compressed framing of a message that was not compressed at publish
    // time gives the plain bytes: one cache entry for both.
    const Framing* key = &f;
    Framing plain;
    if (f.deflate && deflated.empty()) {
        plain = f;
        plain.deflate = false;
        key = &plain;
    }
    for (Encoding& e : encodings_) {
        if (e.framing == *key) {
            return e.frame.get();
        }
    }
    std::string bytes = encode(data(), *key, ShownId{id_text_, id.time}, z);
    encodings_.push_back(Encoding{*key, FrameRef(Frame::make(bytes))});
    return encodings_.back().frame.get();
}

}  // namespace pulse
