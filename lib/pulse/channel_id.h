#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/status.h"

namespace pulse {

/// nchan's limits: a channel id value is at most `max_length` bytes before
/// splitting (nchan_max_channel_id_length, default 1024), and one subscriber
/// may name at most 255 channels after splitting (NCHAN_MULTITAG_MAX).
constexpr size_t kDefaultMaxChannelIdLength = 1024;
constexpr size_t kMaxChannelsPerRequest = 255;
/// Up to 7 values of pulse_channel_id, as nchan.
constexpr size_t kMaxChannelIdValues = 7;

/// Checks a channel group: empty is fine, `/` is forbidden and `m` is
/// reserved (nchan uses it for multiplexed ids). Fails with kForbidden.
Status validate_group(std::string_view group);

/// Splits the evaluated channel id values into channel ids.
/// `values` are the evaluated `pulse_channel_id` arguments; each is checked
/// against `max_length`, then split on `delimiter` when it is not empty.
/// Empty parts are dropped. Fails with kNotFound when nothing remains
/// ("No channel id provided.") and kForbidden when a value is too long or
/// more than kMaxChannelsPerRequest channels result.
Result<std::vector<std::string_view>> split_channel_ids(
    const std::vector<std::string_view>& values, std::string_view delimiter,
    size_t max_length);

/// pulse_channel_id_charset: the bytes a channel id may hold. Plain data
/// (it lives in nginx's location configuration). Empty: any byte.
struct ChannelCharset {
    uint64_t bits[4] = {0, 0, 0, 0};
    bool set = false;

    /// `spec` is literal bytes and ranges, as a regex class without the
    /// brackets: `a-zA-Z0-9._-` (a `-` first or last is literal). Fails
    /// with kInvalidArgument for an empty spec or a reversed range.
    static Result<ChannelCharset> parse(std::string_view spec);
    bool allows(unsigned char c) const
    {
        return (bits[c >> 6] >> (c & 63) & 1) != 0;
    }
    /// kInvalidArgument ("Channel id holds a byte outside
    /// pulse_channel_id_charset.") unless every byte of `id` is allowed.
    Status check(std::string_view id) const;
};

/// The key a channel is stored under: `<group>/<id>` (nchan's internal id).
std::string channel_key(std::string_view group, std::string_view id);

}  // namespace pulse
