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

}  // namespace pulse::acl
