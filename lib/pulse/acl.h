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

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/jwt.h"

namespace pulse::acl {

/// False for an empty pattern, an empty segment, or `**` not last.
bool valid_pattern(std::string_view pattern);

bool matches(std::string_view pattern, std::string_view channel);

/// True when any pattern matches.
bool allowed(const std::vector<std::string>& patterns,
             std::string_view channel);

/// A pattern with a `*` or `**` segment: what a pulse.v1 wildcard
/// subscription names (docs/auth.md); every other id is one channel.
bool is_wildcard(std::string_view pattern);

/// True when every channel `inner` matches, `outer` matches too: the
/// wildcard subscription `inner` stays within the ACL pattern `outer`.
/// `*` covers one segment, `*` or literal; `**` covers one or more of
/// any kind; a literal covers only itself. Linear in the lengths.
bool covers(std::string_view outer, std::string_view inner);

enum class Direction { kSubscribe, kPublish };

/// What one request or connection may do, from its token's claims. Without
/// claims (the location has no auth) everything is allowed and the group is
/// the configured one.
struct Grant {
    std::shared_ptr<const jwt::Claims> claims;

    bool authenticated() const { return claims != nullptr; }
    bool may(Direction d, std::string_view channel) const;
    /// A wildcard subscription to `pattern` is allowed: one subscribe
    /// pattern of the ACL covers it (no ACL: every pattern).
    bool may_watch(std::string_view pattern) const;
    /// The channel group: the tenant, after pulse_channel_group's value
    /// when there is one (`<group>:<tenant>`; a tenant holds no `:`, so
    /// the last one splits them). A group never holds `/`, which ends it
    /// in a channel key, so no id can reach another tenant's channels.
    std::string group(std::string_view configured) const;
};

/// One audit line (docs/auth.md), stable for log parsers:
/// `pulse audit: decision=deny status=403 tenant="t" sub="s" kid="k"
/// channel="c" client="1.2.3.4" reason="..."`. Values are quoted, with
/// `"`, `\` and control characters escaped and at most 256 bytes each;
/// nothing of a token but its kid and sub.
std::string audit_line(std::string_view decision, int status,
                       const jwt::Claims* claims, std::string_view channel,
                       std::string_view client, std::string_view reason);

}  // namespace pulse::acl
