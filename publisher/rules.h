#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pulse::publisher {

/// Redis glob match (`*` and `?`, as PSUBSCRIBE) that returns what each `*`
/// matched, in order; nullopt when `text` does not match `pattern`.
std::optional<std::vector<std::string>> glob_captures(std::string_view pattern,
                                                      std::string_view text);

/// Expands a target or event template: `{channel}` is the Redis channel,
/// `{1}`..`{9}` the pattern's captures. A `{n}` with no such capture makes
/// the whole expansion fail (nullopt): the event cannot be routed.
std::optional<std::string> expand(std::string_view tmpl,
                                  std::string_view channel,
                                  const std::vector<std::string>& captures);

/// Percent-encodes a channel id for the publish URL path.
std::string url_path_escape(std::string_view s);

}  // namespace pulse::publisher
