// libFuzzer target: client bytes through the WebSocket frame parser (in
// random chunk sizes), compressed messages through the inflater, and text
// through the pulse.v1 request parser. Every input must end in events or a
// clean protocol error; ASan and UBSan watch the rest.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/deflate.h"
#include "pulse/websocket.h"
#include "pulse/ws_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    // first byte: chunking and options; the rest: the wire bytes
    uint8_t ctl = data[0];
    std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
    pulse::ws::Parser::Options o;
    o.max_message = 1 << 16;
    o.deflate = (ctl & 0x80) != 0;
    pulse::ws::Parser parser(o);
    pulse::ws::Inflater inflater;
    size_t step = (ctl & 0x3F) + 1;
    std::vector<pulse::ws::Event> events;
    for (size_t at = 0; at < bytes.size(); at += step) {
        events.clear();
        auto st = parser.feed(bytes.substr(at, step), events);
        for (const auto& e : events) {
            if (e.kind != pulse::ws::Event::Kind::kMessage) {
                continue;
            }
            std::string text = e.payload;
            if (e.compressed) {
                auto out = inflater.inflate(e.payload, 1 << 16, ctl & 0x40);
                if (!out.is_ok()) {
                    continue;
                }
                text = out.value();
            }
            if (!e.binary && pulse::ws::valid_utf8(text)) {
                pulse::ws::RequestError err;
                (void) pulse::ws::parse_request(text, &err);
            }
        }
        if (!st.is_ok()) {
            if (parser.close_code() == 0) {
                __builtin_trap();  // an error must name its close code
            }
            break;
        }
    }
    // the raw bytes as one deflated message, and as a deflate offer
    pulse::ws::Inflater raw;
    (void) raw.inflate(bytes, 1 << 16, false);
    (void) pulse::ws::negotiate_deflate(bytes, 10);
    // the ws+meta.nchan layout: the bytes as a stored-block prefix, then
    // compressed; both must come back, in order
    if (size <= 4096) {
        auto z = pulse::ws::deflate_message(bytes, pulse::ws::DeflateOptions{});
        pulse::ws::Inflater both;
        auto back = both.inflate(pulse::ws::deflate_stored(bytes) + z.value(),
                                 2 * size + 1, false);
        if (!back.is_ok()
            || back.value() != std::string(bytes) + std::string(bytes)) {
            __builtin_trap();
        }
    }
    return 0;
}
