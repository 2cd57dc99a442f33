#include "pulse/acl.h"

namespace pulse::acl {

namespace {

// The segment of `s` at `pos` (up to the next dot or the end), and moves
// `pos` past its dot; npos once past the end.
std::string_view next_segment(std::string_view s, size_t* pos)
{
    size_t dot = s.find('.', *pos);
    std::string_view seg =
        s.substr(*pos, dot == std::string_view::npos ? std::string_view::npos
                                                     : dot - *pos);
    *pos = dot == std::string_view::npos ? std::string_view::npos : dot + 1;
    return seg;
}

}  // namespace

bool valid_pattern(std::string_view pattern)
{
    if (pattern.empty()) {
        return false;
    }
    size_t pos = 0;
    while (pos != std::string_view::npos) {
        std::string_view seg = next_segment(pattern, &pos);
        if (seg.empty() || (seg == "**" && pos != std::string_view::npos)) {
            return false;
        }
    }
    return true;
}

bool matches(std::string_view pattern, std::string_view channel)
{
    if (!valid_pattern(pattern) || channel.empty()) {
        return false;
    }
    size_t p = 0;
    size_t c = 0;
    while (p != std::string_view::npos) {
        std::string_view ps = next_segment(pattern, &p);
        if (c == std::string_view::npos) {
            return false;  // the channel has fewer segments
        }
        if (ps == "**") {
            // last by validity: one or more segments remain, not empty
            return c < channel.size();
        }
        std::string_view cs = next_segment(channel, &c);
        if (ps == "*" ? cs.empty() : ps != cs) {
            return false;
        }
    }
    return c == std::string_view::npos;
}

bool allowed(const std::vector<std::string>& patterns, std::string_view channel)
{
    for (const auto& p : patterns) {
        if (matches(p, channel)) {
            return true;
        }
    }
    return false;
}

bool is_wildcard(std::string_view pattern)
{
    size_t pos = 0;
    while (pos != std::string_view::npos) {
        std::string_view seg = next_segment(pattern, &pos);
        if (seg == "*" || seg == "**") {
            return true;
        }
    }
    return false;
}

bool covers(std::string_view outer, std::string_view inner)
{
    if (!valid_pattern(outer) || !valid_pattern(inner)) {
        return false;
    }
    size_t o = 0;
    size_t i = 0;
    while (o != std::string_view::npos) {
        std::string_view os = next_segment(outer, &o);
        if (i == std::string_view::npos) {
            return false;  // the inner pattern has fewer segments
        }
        if (os == "**") {
            return true;  // one or more remain, whatever they match
        }
        std::string_view is = next_segment(inner, &i);
        if (is == "**" || (os != "*" && os != is)) {
            return false;
        }
    }
    return i == std::string_view::npos;
}

bool Grant::may_watch(std::string_view pattern) const
{
    if (!valid_pattern(pattern)) {
        return false;
    }
    if (!claims || !claims->has_acl) {
        return true;
    }
    for (const auto& p : claims->subscribe) {
        if (covers(p, pattern)) {
            return true;
        }
    }
    return false;
}

bool Grant::may(Direction d, std::string_view channel) const
{
    if (!claims || !claims->has_acl) {
        return true;
    }
    return allowed(
        d == Direction::kSubscribe ? claims->subscribe : claims->publish,
        channel);
}

std::string Grant::group(std::string_view configured) const
{
    if (!claims || claims->tenant.empty()) {
        return std::string(configured);
    }
    if (configured.empty()) {
        return claims->tenant;
    }
    return std::string(configured) + ":" + claims->tenant;
}

namespace {

void quoted(std::string* out, std::string_view key, std::string_view v)
{
    static constexpr char kHex[] = "0123456789abcdef";
    *out += ' ';
    *out += key;
    *out += "=\"";
    size_t n = 0;
    for (char ch : v) {
        if (n++ == 256) {
            *out += "...";
            break;
        }
        auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            *out += '\\';
            *out += ch;
        } else if (c < 0x20 || c == 0x7f) {
            *out += "\\x";
            *out += kHex[c >> 4];
            *out += kHex[c & 15];
        } else {
            *out += ch;
        }
    }
    *out += '"';
}

}  // namespace

std::string audit_line(std::string_view decision, int status,
                       const jwt::Claims* claims, std::string_view channel,
                       std::string_view client, std::string_view reason)
{
    std::string out = "pulse audit: decision=";
    out += decision;
    out += " status=" + std::to_string(status);
    quoted(&out, "tenant", claims ? claims->tenant : "");
    quoted(&out, "sub", claims ? claims->sub : "");
    quoted(&out, "kid", claims ? claims->kid : "");
    quoted(&out, "channel", channel);
    quoted(&out, "client", client);
    quoted(&out, "reason", reason);
    return out;
}

}  // namespace pulse::acl
