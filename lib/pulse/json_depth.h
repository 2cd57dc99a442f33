#pragma once

// A bound on JSON nesting, checked before a parser sees the text. nlohmann's
// parser is iterative, but serialising (dump) and other walks of a parsed
// value recurse once per level: a value nested 100,000 deep, well under a
// frame's size, overflows a worker's stack. Every JSON document from a
// client or a publisher is checked with this first.

#include <cstddef>
#include <string_view>

#include "pulse/status.h"

namespace pulse {

/// The deepest nesting Pulse accepts: objects and arrays inside each other,
/// the outermost counting as 1.
constexpr size_t kMaxJsonDepth = 128;

/// kInvalidArgument ("JSON nested deeper than N levels.") when `text` opens
/// more than `max_depth` arrays or objects inside each other; brackets in
/// strings do not count. One pass, no recursion; says nothing else about
/// the text's validity.
Status check_json_depth(std::string_view text,
                        size_t max_depth = kMaxJsonDepth);

}  // namespace pulse
