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

/// A stream entry's fields, in order.
using Fields = std::vector<std::pair<std::string, std::string>>;

/// Expands a target or event template: `{channel}` is the Redis channel (or
/// stream key), `{1}`..`{9}` the pattern's captures, `{name}` the value of
/// the stream entry's field `name`. A placeholder with no value makes the
/// whole expansion fail (nullopt): the event cannot be routed.
std::optional<std::string> expand(std::string_view tmpl,
                                  std::string_view channel,
                                  const std::vector<std::string>& captures,
                                  const Fields& fields = {});

/// The field's value, or nullptr.
const std::string* field(const Fields& fields, std::string_view name);

/// The nchan-style message id (`time:tag`) for a stream entry id
/// `<ms>-<seq>`: time = ms / 1000 (seconds, so long-poll's Last-Modified
/// stays right), tag = (ms % 1000) * 1000000 + seq. Order-preserving for
/// seq < 1000000 (nullopt beyond, or for a malformed id). Every node maps
/// an entry to the same id.
std::optional<std::string> stream_id_to_msg_id(std::string_view entry_id);

/// Percent-encodes a channel id for the publish URL path.
std::string url_path_escape(std::string_view s);

}  // namespace pulse::publisher
