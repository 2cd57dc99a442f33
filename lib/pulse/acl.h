#pragma once

// Channel ACL patterns, as a token's channel claim lists them
// (docs/auth.md). A pattern is dot-separated segments:
//   - `*` is one whole segment, any but empty: `metrics.*` matches
//     `metrics.cpu`, not `metrics` nor `metrics.cpu.0`;
//   - `**`, as the last segment only, is one or more segments:
//     `metrics.**` matches `metrics.cpu` and `metrics.cpu.0`; `**` alone
//     matches every channel;
//   - every other segment matches itself exactly (case-sensitive).
// Matching walks both strings once: its cost is linear in their lengths.

#include <string>
#include <string_view>
#include <vector>

namespace pulse::acl {

/// False for an empty pattern, an empty segment, or `**` not last.
bool valid_pattern(std::string_view pattern);

bool matches(std::string_view pattern, std::string_view channel);

/// True when any pattern matches.
bool allowed(const std::vector<std::string>& patterns,
             std::string_view channel);

}  // namespace pulse::acl
