#include "pulse/channel_id.h"

namespace pulse {

Result<ChannelCharset> ChannelCharset::parse(std::string_view spec)
{
    if (spec.empty()) {
        return Status(Code::kInvalidArgument, "an empty charset");
    }
    ChannelCharset cs;
    cs.set = true;
    auto add = [&cs](unsigned char c) {
        cs.bits[c >> 6] |= uint64_t{1} << (c & 63);
    };
    for (size_t i = 0; i < spec.size(); ++i) {
        auto lo = static_cast<unsigned char>(spec[i]);
        if (i + 2 < spec.size() && spec[i + 1] == '-') {
            auto hi = static_cast<unsigned char>(spec[i + 2]);
            if (hi < lo) {
                return Status(Code::kInvalidArgument,
                              std::string("a reversed range ") + spec[i] + "-"
                                  + spec[i + 2]);
            }
            for (unsigned c = lo; c <= hi; ++c) {
                add(static_cast<unsigned char>(c));
            }
            i += 2;
        } else {
            add(lo);
        }
    }
    return cs;
}

Status ChannelCharset::check(std::string_view id) const
{
    if (!set) {
        return Status::ok();
    }
    for (char c : id) {
        if (!allows(static_cast<unsigned char>(c))) {
            return Status(Code::kInvalidArgument,
                          "Channel id holds a byte outside "
                          "pulse_channel_id_charset.");
        }
    }
    return Status::ok();
}

Status validate_group(std::string_view group)
{
    if (group.find('/') != std::string_view::npos) {
        return Status(Code::kForbidden, "Channel group may not contain '/'.");
    }
    if (group == "m") {
        return Status(Code::kForbidden, "Channel group 'm' is reserved.");
    }
    return Status::ok();
}

Result<std::vector<std::string_view>> split_channel_ids(
    const std::vector<std::string_view>& values, std::string_view delimiter,
    size_t max_length)
{
    std::vector<std::string_view> ids;
    for (std::string_view value : values) {
        if (value.size() > max_length) {
            return Status(Code::kForbidden, "Channel id too long.");
        }
        if (delimiter.empty()) {
            if (!value.empty()) {
                ids.push_back(value);
            }
        } else {
            size_t start = 0;
            while (start <= value.size()) {
                size_t end = value.find(delimiter, start);
                if (end == std::string_view::npos) {
                    end = value.size();
                }
                if (end > start) {
                    ids.push_back(value.substr(start, end - start));
                }
                start = end + delimiter.size();
            }
        }
        if (ids.size() > kMaxChannelsPerRequest) {
            return Status(Code::kForbidden, "Too many channels.");
        }
    }
    if (ids.empty()) {
        return Status(Code::kNotFound, "No channel id provided.");
    }
    return ids;
}

std::string channel_key(std::string_view group, std::string_view id)
{
    std::string key;
    key.reserve(group.size() + 1 + id.size());
    key.append(group);
    key += '/';
    key.append(id);
    return key;
}

}  // namespace pulse
