// libFuzzer target: text through the pulse.v1 request parser, and every
// request it accepts through the frames the server builds from one
// (replies, errors, a message carrying its data). The seed corpus holds
// deeply nested documents (t/fuzz/corpus/v1_request/deep-*), so that a
// parser or a serialiser that recurses per level crashes the first run.
// Run with -max_len of at least 262144 (make fuzz does).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "pulse/json_depth.h"
#include "pulse/ws_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    std::string_view text(reinterpret_cast<const char*>(data), size);
    pulse::ws::RequestError err;
    auto req = pulse::ws::parse_request(text, &err);
    if (!req) {
        if (err.code.empty() || err.message.empty()) {
            __builtin_trap();  // every refusal names its code and reason
        }
        (void) pulse::ws::error_frame(err.code, err.message, err.id);
        return 0;
    }
    // an accepted request is never deeper than the bound
    if (!pulse::check_json_depth(text).is_ok()) {
        __builtin_trap();
    }
    std::string out = pulse::ws::json_message(
        req->channel, "1:0", req->content_type, req->event, req->data);
    auto back = nlohmann::json::parse(out, nullptr, false);
    if (back.is_discarded() || back["channel"] != req->channel) {
        __builtin_trap();  // our own frames are valid JSON
    }
    (void) pulse::ws::reply_frame("published", req->id, req->channel);
    return 0;
}
