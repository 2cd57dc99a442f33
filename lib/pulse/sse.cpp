#include "pulse/sse.h"

#include <cstdio>
#include <random>
#include <vector>

#include <openssl/rand.h>

namespace pulse::sse {

void append_message(std::string& out, std::string_view id,
                    std::string_view event, std::string_view body)
{
    out.reserve(out.size() + body.size() + id.size() + event.size() + 32);
    if (!event.empty()) {
        out.append("event: ").append(event).append("\n");
    }
    out.append("id: ").append(id).append("\n");
    // An EventSource parser ends a line at CR, LF or CRLF: every one of
    // them in the body starts a new data line, or a CR would let the body
    // forge `id:` or `event:` lines.
    size_t start = 0;
    while (true) {
        size_t nl = body.find_first_of("\r\n", start);
        out.append("data: ");
        if (nl == std::string_view::npos) {
            out.append(body.substr(start)).append("\n");
            break;
        }
        out.append(body.substr(start, nl - start)).append("\n");
        start = nl + 1;
        if (body[nl] == '\r' && start < body.size() && body[start] == '\n') {
            ++start;
        }
    }
    out.append("\n");
}

void append_ping(std::string& out, std::string_view comment,
                 std::string_view event, std::string_view data)
{
    if (comment.empty() && event.empty() && data.empty()) {
        out.append(":\n\n");
        return;
    }
    if (!comment.empty()) {
        out.append(":").append(comment).append("\n");
    }
    if (!event.empty()) {
        out.append("event: ").append(event).append("\n");
    }
    if (!data.empty()) {
        out.append("data: ").append(data).append("\n");
    }
    out.append("\n");
}

void append_status(std::string& out, int code, std::string_view status_line)
{
    out.append(":").append(std::to_string(code)).append(": ");
    out.append(status_line).append("\n\n");
}

}  // namespace pulse::sse

namespace pulse::stream {

void wrap_chunk(std::string& frame)
{
    if (frame.empty()) {
        return;
    }
    char hex[32];
    int n = std::snprintf(hex, sizeof(hex), "%zx\r\n", frame.size());
    frame.insert(0, hex, static_cast<size_t>(n));
    frame.append("\r\n");
}

void append_multipart_part(std::string& out, std::string_view boundary,
                           std::string_view last_modified,
                           std::string_view etag, std::string_view content_type,
                           std::string_view body)
{
    if (!last_modified.empty()) {
        out.append("\r\nLast-Modified: ").append(last_modified);
    }
    out.append("\r\nEtag: ").append(etag).append("\r\n");
    if (!content_type.empty()) {
        out.append("Content-Type: ").append(content_type).append("\r\n");
    }
    out.append("\r\n").append(body);
    if (!boundary.empty()) {
        out.append("\r\n--").append(boundary);
    }
}

std::string random_boundary(size_t n)
{
    std::vector<uint32_t> r(n);
    if (RAND_bytes(reinterpret_cast<unsigned char*>(r.data()),
                   static_cast<int>(n * sizeof(uint32_t)))
        != 1)
    {
        std::random_device dev;
        for (uint32_t& v : r) {
            v = dev();
        }
    }
    return make_boundary(r.data(), n);
}

std::string make_boundary(const uint32_t* random, size_t n)
{
    static constexpr char kAlphabet[] =
        "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::string b;
    for (size_t i = 0; i < n; ++i) {
        b.push_back(kAlphabet[random[i] % (sizeof(kAlphabet) - 1)]);
    }
    return b;
}

}  // namespace pulse::stream
