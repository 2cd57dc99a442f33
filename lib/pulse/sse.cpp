#include "pulse/sse.h"

namespace pulse::sse {

void append_message(std::string& out, std::string_view id,
                    std::string_view event, std::string_view body)
{
    out.reserve(out.size() + body.size() + id.size() + event.size() + 32);
    if (!event.empty()) {
        out.append("event: ").append(event).append("\n");
    }
    out.append("id: ").append(id).append("\n");
    size_t start = 0;
    while (true) {
        size_t nl = body.find('\n', start);
        out.append("data: ");
        if (nl == std::string_view::npos) {
            out.append(body.substr(start)).append("\n");
            break;
        }
        out.append(body.substr(start, nl - start)).append("\n");
        start = nl + 1;
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
