#include "pulse/message_id.h"

#include <charconv>
#include <limits>

namespace pulse {

namespace {

Status invalid(std::string_view why)
{
    return Status(Code::kInvalidArgument,
                  "Message ID invalid: " + std::string(why));
}

bool parse_int64(std::string_view s, int64_t* out)
{
    if (s.empty() || s.size() > 19) {
        return false;
    }
    for (char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
    return ec == std::errc() && p == s.data() + s.size();
}

bool parse_tag(std::string_view s, int32_t* out)
{
    if (s == "-") {
        *out = -1;
        return true;
    }
    bool negative = !s.empty() && s[0] == '-';
    std::string_view digits = negative ? s.substr(1) : s;
    int64_t v = 0;
    if (!parse_int64(digits, &v)) {
        return false;
    }
    v = negative ? -v : v;
    if (v < -1 || v > std::numeric_limits<int32_t>::max()) {
        return false;
    }
    *out = static_cast<int32_t>(v);
    return true;
}

}  // namespace

size_t format_msg_id(MsgId id, char* out)
{
    char* p = out;
    p = std::to_chars(p, out + kMsgIdMaxText, id.time).ptr;
    *p++ = ':';
    p = std::to_chars(p, out + kMsgIdMaxText, id.tag).ptr;
    return static_cast<size_t>(p - out);
}

std::string to_string(MsgId id)
{
    char buf[kMsgIdMaxText];
    return std::string(buf, format_msg_id(id, buf));
}

Result<MultiMsgId> parse_msg_tags(int64_t time, std::string_view tags,
                                  size_t channels)
{
    if (channels == 0) {
        return invalid("no channels");
    }
    MultiMsgId id;
    id.time = time;
    size_t start = 0;
    while (true) {
        size_t comma = tags.find(',', start);
        std::string_view part = tags.substr(
            start, comma == std::string_view::npos ? comma : comma - start);
        bool bracketed =
            part.size() >= 2 && part.front() == '[' && part.back() == ']';
        if (bracketed) {
            if (id.active >= 0) {
                return invalid("more than one active tag");
            }
            id.active = static_cast<int>(id.tags.size());
            part = part.substr(1, part.size() - 2);
        }
        int32_t tag = 0;
        if (!parse_tag(part, &tag)) {
            return invalid("bad tag");
        }
        id.tags.push_back(tag);
        if (id.tags.size() > channels) {
            return invalid("more tags than channels");
        }
        if (comma == std::string_view::npos) {
            break;
        }
        start = comma + 1;
    }
    if (id.tags.size() > 1 && id.active < 0) {
        return invalid("multiple tags and none active");
    }
    if (id.tags.size() == 1 && channels == 1) {
        id.active = 0;
    }
    id.tags.resize(channels, -1);
    return id;
}

Result<MultiMsgId> parse_msg_id(std::string_view text, size_t channels)
{
    if (text == "0") {
        MultiMsgId id;
        id.tags.assign(channels == 0 ? 1 : channels, 0);
        id.active = 0;
        return id;
    }
    size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
        return invalid("no ':'");
    }
    int64_t time = 0;
    if (!parse_int64(text.substr(0, colon), &time)) {
        return invalid("bad time");
    }
    if (time > kMaxMsgTime) {
        return invalid("time after the year 9999");
    }
    return parse_msg_tags(time, text.substr(colon + 1), channels);
}

std::optional<MsgId> next_msg_id(MsgId last, int64_t now)
{
    if (now > last.time && now <= kMaxMsgTime) {
        return MsgId{now, 0};
    }
    if (last.tag < kMaxMsgTag) {
        return MsgId{last.time, last.tag + 1};
    }
    if (last.time < kMaxMsgTime) {
        return MsgId{last.time + 1, 0};
    }
    return std::nullopt;
}

Result<MsgId> parse_publish_id(std::string_view text)
{
    size_t colon = text.find(':');
    if (colon == std::string_view::npos) {
        return invalid("no ':'");
    }
    int64_t time = 0;
    int64_t tag = 0;
    if (!parse_int64(text.substr(0, colon), &time)
        || !parse_int64(text.substr(colon + 1), &tag))
    {
        return invalid("a supplied id is <time>:<tag>, both numbers");
    }
    if (time == 0 || time > kMaxMsgTime) {
        return invalid("time out of range");
    }
    if (tag > kMaxMsgTag) {
        return invalid("tag out of range");
    }
    return MsgId{time, static_cast<int32_t>(tag)};
}

MultiMsgId advance_multi_id(const MultiMsgId& prev, size_t index, MsgId m)
{
    MultiMsgId next;
    next.time = m.time;
    if (prev.time == m.time) {
        next.tags = prev.tags;
    } else {
        next.tags.assign(prev.tags.size(), -1);
    }
    if (next.tags.size() <= index) {
        next.tags.resize(index + 1, -1);
    }
    next.tags[index] = m.tag;
    next.active = static_cast<int>(index);
    return next;
}

std::string to_string(const MultiMsgId& id)
{
    std::string s = std::to_string(id.time);
    s += ':';
    for (size_t i = 0; i < id.tags.size(); ++i) {
        if (i > 0) {
            s += ',';
        }
        bool active = static_cast<int>(i) == id.active && id.tags.size() > 1;
        if (active) {
            s += '[';
        }
        s += id.tags[i] == -1 ? std::string("-") : std::to_string(id.tags[i]);
        if (active) {
            s += ']';
        }
    }
    return s;
}

}  // namespace pulse
