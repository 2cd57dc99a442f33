#include "pulse/publish_request.h"

#include <cstdio>
#include <string>

namespace pulse {

namespace {

bool is_control(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

}  // namespace

Status validate_field(std::string_view what, std::string_view value,
                      size_t max_length)
{
    for (char ch : value) {
        auto c = static_cast<unsigned char>(ch);
        if (is_control(c)) {
            char hex[8];
            std::snprintf(hex, sizeof(hex), "0x%02x", c);
            return Status(Code::kInvalidArgument,
                          "Invalid " + std::string(what)
                              + ": it contains a control character (" + hex
                              + ").");
        }
    }
    if (value.size() > max_length) {
        return Status(Code::kInvalidArgument,
                      "Invalid " + std::string(what) + ": longer than "
                          + std::to_string(max_length) + " bytes.");
    }
    return Status::ok();
}

Status validate(const PublishFields& f)
{
    if (Status s = validate_field(f.event_name, f.event, kMaxEventLength);
        !s.is_ok())
    {
        return s;
    }
    if (Status s = validate_field(f.key_name, f.key, kMaxKeyLength); !s.is_ok())
    {
        return s;
    }
    return validate_field(f.content_type_name, f.content_type,
                          kMaxContentTypeLength);
}

}  // namespace pulse
