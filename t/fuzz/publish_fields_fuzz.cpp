// libFuzzer target: publisher-supplied fields (event name, content type)
// and a body through the publish-time rule (publish_request.h), then every
// accepted message through every encoder that carries them. No output may
// hold a line the publisher forged:
//  - EventSource: read back with the EventSource line rules (CR, LF, CRLF),
//    exactly one id line, at most one event line (the event), data lines
//    that rejoin to the body;
//  - multipart/mixed parts: exactly the part headers Pulse writes;
//  - ws+meta.nchan: exactly the id and content-type header lines;
//  - pulse.v1: a JSON object whose members are the message's.
// A refused field must really hold a control character or be too long.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "pulse/publish_request.h"
#include "pulse/sse.h"
#include "pulse/ws_protocol.h"

namespace {

[[noreturn]] void fail()
{
    __builtin_trap();
}

bool has_control(std::string_view s)
{
    for (char ch : s) {
        auto c = static_cast<unsigned char>(ch);
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return true;
        }
    }
    return false;
}

// Lines as an EventSource parser splits them.
std::vector<std::string_view> es_lines(std::string_view s)
{
    std::vector<std::string_view> out;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\r' || s[i] == '\n') {
            out.push_back(s.substr(start, i - start));
            if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') {
                ++i;
            }
            start = i + 1;
        }
    }
    if (start < s.size()) {
        out.push_back(s.substr(start));
    }
    return out;
}

std::string normalised(std::string_view body)
{
    std::string out;
    for (size_t i = 0; i < body.size(); ++i) {
        if (body[i] == '\r') {
            out += '\n';
            if (i + 1 < body.size() && body[i + 1] == '\n') {
                ++i;
            }
        } else {
            out += body[i];
        }
    }
    return out;
}

void check_sse(std::string_view event, std::string_view body)
{
    std::string frame;
    pulse::sse::append_message(frame, "1:0", event, body);
    auto lines = es_lines(frame);
    // the frame ends with one blank line, and has no other
    if (lines.size() < 3 || !lines.back().empty()) {
        fail();
    }
    size_t at = 0;
    if (!event.empty()) {
        if (lines[at++] != "event: " + std::string(event)) {
            fail();
        }
    }
    if (lines[at++] != "id: 1:0") {
        fail();
    }
    std::string data;
    size_t first = at;
    for (; at + 1 < lines.size(); ++at) {
        std::string_view l = lines[at];
        if (l.substr(0, 6) != "data: ") {
            fail();  // a forged field or a blank line inside the message
        }
        if (at > first) {
            data += '\n';
        }
        data.append(l.substr(6));
    }
    if (data != normalised(body)) {
        fail();
    }
}

void check_multipart(std::string_view ctype, std::string_view body)
{
    std::string part;
    pulse::stream::append_multipart_part(
        part, "", "Sun, 06 Nov 1994 08:49:37 GMT", "1:0", ctype, body);
    size_t end = part.find("\r\n\r\n", 2);
    if (part.substr(0, 2) != "\r\n" || end == std::string::npos) {
        fail();
    }
    std::string head = part.substr(2, end - 2);
    std::string want =
        "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        "Etag: 1:0";
    if (!ctype.empty()) {
        want += "\r\nContent-Type: " + std::string(ctype);
    }
    if (head != want || part.substr(end + 4) != body) {
        fail();
    }
}

void check_meta(std::string_view ctype, std::string_view body)
{
    std::string p;
    pulse::ws::append_meta_payload(p, "1:0", ctype, body);
    std::string want = "id: 1:0\n";
    if (!ctype.empty()) {
        want += "content-type: " + std::string(ctype) + "\n";
    }
    want += "\n";
    if (p.compare(0, want.size(), want) != 0 || p.substr(want.size()) != body) {
        fail();
    }
}

void check_json(std::string_view event, std::string_view ctype,
                std::string_view body)
{
    auto j = nlohmann::json::parse(
        pulse::ws::json_message("chan", "1:0", ctype, event, body), nullptr,
        false);
    if (!j.is_object() || j["type"] != "message" || j["id"] != "1:0") {
        fail();
    }
    for (auto& [k, v] : j.items()) {
        if (k != "type" && k != "channel" && k != "id" && k != "data"
            && k != "encoding" && k != "event" && k != "content_type")
        {
            fail();
        }
        (void) v;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    // two length bytes, then the event, the content type and the body
    size_t elen = data[0];
    size_t clen = data[1];
    std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
    elen = std::min(elen + (elen >= 200 ? 100 : 0), rest.size());
    std::string_view event = rest.substr(0, elen);
    rest.remove_prefix(elen);
    clen = std::min(clen + (clen >= 200 ? 100 : 0), rest.size());
    std::string_view ctype = rest.substr(0, clen);
    std::string_view body = rest.substr(clen);

    pulse::Status s = pulse::validate(pulse::PublishFields{event, ctype});
    bool bad = has_control(event) || has_control(ctype)
               || event.size() > pulse::kMaxEventLength
               || ctype.size() > pulse::kMaxContentTypeLength;
    if (s.is_ok() == bad) {
        fail();  // the rule must refuse exactly these
    }
    if (!s.is_ok()) {
        return 0;
    }
    check_sse(event, body);
    check_multipart(ctype, body);
    check_meta(ctype, body);
    check_json(event, ctype, body);
    return 0;
}
