#include "pulse/hooks.h"

#include <array>

#include "pulse/text.h"

namespace pulse::hooks {

AuthorizeDecision authorize_decision(const Answer& a, bool publishing)
{
    AuthorizeDecision d;
    if (a.failed || a.status <= 0) {
        d.status = 500;
        return d;
    }
    if (a.status >= 200 && a.status < 300) {
        d.allow = true;
        return d;
    }
    d.status = publishing ? 403 : a.status;
    d.forward = !publishing;
    return d;
}

UpstreamAction publisher_upstream_action(const Answer& a)
{
    if (a.failed || a.status <= 0) {
        return UpstreamAction::kFail;
    }
    switch (a.status) {
        case 200:
        case 201:
        case 202:
            return a.too_big ? UpstreamAction::kTooBig
                             : UpstreamAction::kPublishAnswer;
        case 304:
            return UpstreamAction::kPublishOriginal;
        case 204:
            return UpstreamAction::kDrop;
        default:
            return UpstreamAction::kForbid;
    }
}

bool forwards_header(std::string_view name)
{
    static constexpr std::array<std::string_view, 7> kOwn = {
        "content-type", "content-length",    "server",    "connection",
        "date",         "transfer-encoding", "keep-alive"};
    for (std::string_view own : kOwn) {
        if (text::iequals(name, own)) {
            return false;
        }
    }
    return true;
}

bool is_pulse_header(std::string_view name)
{
    return name.size() >= 8 && text::iequals(name.substr(0, 8), "x-pulse-");
}

namespace {

// A header value must not hold a line break or other control byte: the
// upstream would read the rest as headers of its own.
bool header_safe(std::string_view v)
{
    for (char ch : v) {
        auto b = static_cast<unsigned char>(ch);
        if (b < 0x20 || b == 0x7f) {
            return false;
        }
    }
    return true;
}

}  // namespace

std::vector<std::pair<std::string_view, std::string_view>> claim_headers(
    const jwt::Claims& c)
{
    std::vector<std::pair<std::string_view, std::string_view>> out;
    // a sub with control bytes is only in X-Pulse-Claims, escaped
    if (!c.sub.empty() && header_safe(c.sub)) {
        out.emplace_back("X-Pulse-Sub", c.sub);
    }
    if (!c.tenant.empty()) {
        out.emplace_back("X-Pulse-Tenant", c.tenant);
    }
    if (!c.payload.empty()) {
        out.emplace_back("X-Pulse-Claims", c.payload);
    }
    return out;
}

}  // namespace pulse::hooks
