#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/status.h"

namespace pulse {

/// nchan's message id for one channel: `<time>:<tag>`. `time` is unix seconds
/// when the message was stored, `tag` counts messages within that second.
/// nchan keeps tags in int16; Pulse uses int32 so a burst of more than 32767
/// messages in one second keeps strictly increasing ids.
struct MsgId {
    int64_t time = 0;
    int32_t tag = 0;

    bool is_zero() const { return time == 0 && tag == 0; }
    friend bool operator==(MsgId a, MsgId b)
    {
        return a.time == b.time && a.tag == b.tag;
    }
    friend bool operator!=(MsgId a, MsgId b) { return !(a == b); }
    friend bool operator<(MsgId a, MsgId b)
    {
        return a.time < b.time || (a.time == b.time && a.tag < b.tag);
    }
    friend bool operator>(MsgId a, MsgId b) { return b < a; }
    friend bool operator<=(MsgId a, MsgId b) { return !(b < a); }
};

/// Longest text form of a single-channel id: 20 digits, ':', 11 digits.
constexpr size_t kMsgIdMaxText = 40;

/// The last second an id may name: 9999-12-31T23:59:59Z. Ids past it are
/// refused on input, so that id arithmetic, HTTP dates and the text form
/// stay in range.
constexpr int64_t kMaxMsgTime = 253402300799;
/// The largest tag; the next id after it moves to the next second.
constexpr int32_t kMaxMsgTag = INT32_MAX;

/// The id the store gives a message published at `now` after `last`:
/// `now:0` when `now` is a later second, else the next tag of the last
/// second, else (the tag at kMaxMsgTag) the next second's first id. Ids so
/// stay strictly increasing when the clock goes back or a second holds
/// more than kMaxMsgTag messages. nullopt when `last` is at the very end
/// of the id space.
std::optional<MsgId> next_msg_id(MsgId last, int64_t now);

/// A publisher-supplied id (`Pulse-Message-Id`, pulse_publisher_message_id
/// on; the sidecar's ids): exactly `time:tag` with 0 < time <= kMaxMsgTime
/// and 0 <= tag <= kMaxMsgTag. The module and the sidecar both check with
/// it, so that the sidecar never sends an id nginx would refuse.
Result<MsgId> parse_publish_id(std::string_view text);

/// Writes `time:tag` into `out` (at least kMsgIdMaxText bytes); returns the
/// length. The zero id prints as `0:0` (nchan's memstore prints `0`, a quirk
/// of its formatter; its Redis store prints `0:0`).
size_t format_msg_id(MsgId id, char* out);
std::string to_string(MsgId id);

/// A possibly multiplexed id: one time and one tag per channel. A tag of -1
/// (`-` in text) means "no message from this channel in that second";
/// `active` is the index of the bracketed tag (the channel that produced the
/// message), or -1 when there is none.
struct MultiMsgId {
    int64_t time = 0;
    std::vector<int32_t> tags;
    int active = -1;
};

/// Parses `time:tag` or `time:t1,[t2],-`. Accepts a bare `0` as the zero id.
/// The time is at most kMaxMsgTime, a tag at most kMaxMsgTag (or -1).
/// `channels` is the number of channels of the subscription: a shorter tag
/// list is padded with -1, a longer one is invalid, and a list of more than
/// one tag must bracket exactly one of them (nchan_parse_msg_tag).
/// Fails with kInvalidArgument, and a message fit for a 400 body.
Result<MultiMsgId> parse_msg_id(std::string_view text, size_t channels = 1);

/// Parses only a tag list (`If-None-Match` when `If-Modified-Since` carries
/// the time).
Result<MultiMsgId> parse_msg_tags(int64_t time, std::string_view tags,
                                  size_t channels = 1);

/// The id a multiplexed subscriber shows for a message of channel `index`
/// with id `m`, given the one it showed before: the message's time, its tag
/// at `index` (bracketed), and for the other channels their tag in that
/// same second or -1 (nchan's rule).
MultiMsgId advance_multi_id(const MultiMsgId& prev, size_t index, MsgId m);

/// Text form of a multiplexed id; `active` is bracketed.
std::string to_string(const MultiMsgId& id);

}  // namespace pulse
