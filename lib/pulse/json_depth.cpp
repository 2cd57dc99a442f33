#include "pulse/json_depth.h"

#include <string>

namespace pulse {

Status check_json_depth(std::string_view text, size_t max_depth)
{
    size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        switch (c) {
            case '"':
                in_string = true;
                break;
            case '[':
            case '{':
                if (++depth > max_depth) {
                    return Status(Code::kInvalidArgument,
                                  "JSON nested deeper than "
                                      + std::to_string(max_depth) + " levels.");
                }
                break;
            case ']':
            case '}':
                if (depth > 0) {
                    --depth;
                }
                break;
            default:
                break;
        }
    }
    return Status::ok();
}

}  // namespace pulse
