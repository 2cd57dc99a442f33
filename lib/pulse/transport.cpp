#include "pulse/transport.h"

#include "pulse/http_date.h"
#include "pulse/text.h"

namespace pulse {

namespace {

using text::iequals;
using text::lower;
using text::trim;

bool contains_ci(std::string_view hay, std::string_view needle)
{
    if (needle.size() > hay.size()) {
        return false;
    }
    for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
        if (iequals(hay.substr(i, needle.size()), needle)) {
            return true;
        }
    }
    return false;
}

// A qvalue (RFC 9110 12.4.2): "0" ["." 0*3DIGIT] / "1" ["." 0*3("0")];
// true when it is above zero. Malformed: false.
bool positive_q(std::string_view q)
{
    q = trim(q);
    if (q.empty() || (q[0] != '0' && q[0] != '1')) {
        return false;
    }
    bool positive = q[0] == '1';
    if (q.size() == 1) {
        return positive;
    }
    if (q[1] != '.' || q.size() > 5) {
        return false;
    }
    for (char c : q.substr(2)) {
        if (c < '0' || c > '9' || (positive && c != '0')) {
            return false;
        }
        positive = positive || c != '0';
    }
    return positive;
}

Status invalid_id()
{
    return Status(Code::kInvalidArgument, "Message ID invalid");
}

}  // namespace

std::string_view transport_name(Transport t)
{
    switch (t) {
        case Transport::kEventSource:
            return "eventsource";
        case Transport::kChunked:
            return "http-chunked";
        case Transport::kMultipart:
            return "http-multipart";
        case Transport::kRawStream:
            return "http-raw-stream";
        case Transport::kLongPoll:
            return "longpoll";
        case Transport::kIntervalPoll:
            return "intervalpoll";
        case Transport::kNone:
            break;
    }
    return "";
}

bool is_websocket_upgrade(std::optional<std::string_view> upgrade,
                          std::optional<std::string_view> connection)
{
    return upgrade && connection && iequals(trim(*upgrade), "websocket")
           && contains_ci(*connection, "upgrade");
}

bool te_accepts_chunked(std::string_view te)
{
    size_t start = 0;
    while (start <= te.size()) {
        size_t comma = te.find(',', start);
        std::string_view element = te.substr(
            start, comma == std::string_view::npos ? comma : comma - start);
        size_t semi = element.find(';');
        if (iequals(trim(element.substr(0, semi)), "chunked")) {
            if (semi == std::string_view::npos) {
                return true;
            }
            // parameters: only q matters
            bool positive = true;
            std::string_view params = element.substr(semi + 1);
            while (!params.empty()) {
                size_t next = params.find(';');
                std::string_view p = trim(params.substr(0, next));
                if (p.size() >= 2 && lower(p[0]) == 'q' && p[1] == '=') {
                    positive = positive_q(p.substr(2));
                }
                params = next == std::string_view::npos
                             ? std::string_view()
                             : params.substr(next + 1);
            }
            return positive;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        start = comma + 1;
    }
    return false;
}

Transport detect_transport(std::string_view accept,
                           std::optional<std::string_view> te, uint32_t roles)
{
    if ((roles & role::kSubEventSource)
        && contains_ci(accept, "text/event-stream")) {
        return Transport::kEventSource;
    }
    if ((roles & role::kSubChunked) && te && te_accepts_chunked(*te)) {
        return Transport::kChunked;
    }
    if ((roles & role::kSubMultipart) && contains_ci(accept, "multipart/mixed"))
    {
        return Transport::kMultipart;
    }
    if (roles & role::kSubIntervalPoll) {
        return Transport::kIntervalPoll;
    }
    if (roles & role::kSubRawStream) {
        return Transport::kRawStream;
    }
    if (roles & role::kSubLongPoll) {
        return Transport::kLongPoll;
    }
    return Transport::kNone;
}

Result<std::optional<MultiMsgId>> resume_id(const ResumeRequest& r,
                                            size_t channels)
{
    using Found = std::optional<MultiMsgId>;
    if (r.if_modified_since && !r.compound_etag) {
        auto t = parse_http_date(*r.if_modified_since);
        if (!t || *t <= 0) {
            return Found();
        }
        if (!r.if_none_match) {
            return invalid_id();
        }
        auto m = parse_msg_tags(*t, *r.if_none_match, channels);
        if (!m.is_ok()) {
            return invalid_id();
        }
        return Found(std::move(m.value()));
    }
    if (r.if_none_match) {
        auto m = parse_msg_id(*r.if_none_match, channels);
        if (!m.is_ok()) {
            return invalid_id();
        }
        return Found(std::move(m.value()));
    }
    for (const std::string& text : r.last_id_values) {
        if (text.empty()) {
            continue;
        }
        if (text.size() > kMaxLastIdLength) {
            return invalid_id();
        }
        auto m = parse_msg_id(text, channels);
        if (!m.is_ok()) {
            return invalid_id();
        }
        return Found(std::move(m.value()));
    }
    return Found();
}

}  // namespace pulse
