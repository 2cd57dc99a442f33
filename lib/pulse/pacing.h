#pragma once

// Per-subscriber pacing (docs/pacing.md): how often a subscriber is
// written to, which of the messages published meanwhile it still gets,
// and how many it may hold. One Pacer per subscriber (all its channels):
// the owner (a stream, a WebSocket connection) offers it each new message
// and asks it, when its timer fires or its socket drains, for the batch to
// write. The pacer owns no timer and no clock; the owner passes the time
// (milliseconds, any monotonic origin) and arms what due() says.
//
//  - live: every message is written at once, as without a pacer;
//  - throttle: at most one write per interval; a message after a quiet
//    interval goes at once, the rest wait for the interval's end;
//  - interval: a write every interval from the subscription, none between;
//  - manual: nothing until the owner calls fetch().
//
// While messages wait, keyed ones conflate: of the messages with the same
// (channel, key) only the latest is kept, in its own publish position, so
// the kept messages keep their publish order and their ids increase.
// Keyless messages are all kept. The queue is bounded (messages, bytes);
// past a bound the overflow policy drops the oldest (the next batch starts
// with a gap), or asks the owner to close.
//
// In the paced modes the owner parks its subscriber once the pacer holds
// something (Subscriber::park, lib/pulse/fanout.h): what its channel
// publishes meanwhile waits in the channel's shared log, and the owner
// add()s it when the batch is due. So the pacer's own queue holds only
// what came before the park, plus the log's part at the write.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pulse/message.h"
#include "pulse/metrics.h"
#include "pulse/status.h"

namespace pulse::pacing {

enum class Mode : uint8_t { kLive, kThrottle, kInterval, kManual };

/// "live", "throttle", "interval", "manual".
std::string_view mode_name(Mode m);

struct Pace {
    Mode mode = Mode::kLive;
    uint64_t every_ms = 0;  // throttle, interval
    bool operator==(const Pace& o) const
    {
        return mode == o.mode && every_ms == o.every_ms;
    }
    bool operator!=(const Pace& o) const { return !(*this == o); }
};

/// "live", "manual", "throttle=250ms", "interval=30s".
std::string to_string(const Pace& p);

/// What a subscriber may ask, as a location bounds it
/// (pulse_subscriber_throttle and friends).
struct Limits {
    Pace fallback;        // what a subscriber that asks nothing gets
    uint64_t min_ms = 0;  // shortest interval; > 0 makes live throttled
    uint64_t max_ms = 0;  // longest interval; 0: no bound
};

/// The pace a subscriber gets: what it asked (nullopt: the location's),
/// with its interval brought within the limits; live becomes throttle at
/// the minimum when there is one.
Pace bounded(const Limits& l, std::optional<Pace> asked);

/// A duration as nginx writes them, without spaces: "250ms", "1s", "2m",
/// "1h", or plain seconds ("30"). kInvalidArgument otherwise, or for 0 or
/// more than a day.
Result<uint64_t> parse_duration_ms(std::string_view text);

/// What a subscriber asks, from `throttle=`, `interval=` and `mode=`
/// (query arguments, pulse.v1 fields): nullopt when none is given. At most
/// one may be given; `mode` is live or manual.
Result<std::optional<Pace>> parse_ask(std::optional<std::string_view> throttle,
                                      std::optional<std::string_view> interval,
                                      std::optional<std::string_view> mode);

enum class Overflow : uint8_t { kClose, kDropOldest, kConflate };

/// "close", "drop-oldest", "conflate".
std::string_view overflow_name(Overflow o);

/// pulse_subscriber_queue: what one subscriber may hold unsent.
struct Bounds {
    size_t messages = 0;  // 0: no bound of its own
    size_t bytes = 0;     // message bodies; 0: no bound of its own
    Overflow overflow = Overflow::kClose;
};

/// A held message and which of the subscriber's channels it came from.
struct Item {
    MsgPtr msg;
    size_t index = 0;
};

/// What conflates: a key in one of the subscriber's channels, viewing the
/// key of a message its holder keeps alive.
struct KeyRef {
    size_t index;
    std::string_view key;
    bool operator==(const KeyRef& o) const
    {
        return index == o.index && key == o.key;
    }
};
struct KeyHash {
    size_t operator()(const KeyRef& k) const
    {
        return std::hash<std::string_view>()(k.key) ^ (k.index * 0x9e37U);
    }
};

/// Of `items` (in publish order), those no later item of the same channel
/// and key supersedes: the latest per key, every keyless one, in publish
/// order. What a paced poll answers from (lib/pulse/poll.h).
std::vector<Item> conflate(const std::vector<Item>& items);

class Pacer {
public:
    /// `counters`: where conflations and drops are also counted (the
    /// worker's pulse_metrics block), or nullptr.
    Pacer(Pace p, Bounds b, uint64_t now_ms,
          metrics::Counters* counters = nullptr);

    const Pace& pace() const { return pace_; }
    const Bounds& bounds() const { return bounds_; }
    /// A new pace mid-stream: what is held stays held and goes out at the
    /// new pace (live and a shorter interval may make it due at once).
    void set_pace(Pace p, uint64_t now_ms);

    /// Whether the owner writes every message at once with no pacer work:
    /// live, nothing held, and no policy that holds for a slow socket.
    bool passthrough() const
    {
        return pace_.mode == Mode::kLive && held_ == 0
               && bounds_.overflow == Overflow::kClose;
    }

    enum class Offer : uint8_t {
        kSend,      // write it now; nothing was held
        kHeld,      // held (conflated, or the oldest dropped to fit)
        kOverflow,  // past a bound with the close policy: close
    };
    /// A new message of channel `index`. `writable`: the socket has nothing
    /// unsent (a live subscriber with a slow socket holds, unless its
    /// policy is close: then its socket's own limit applies).
    Offer offer(size_t index, const MsgPtr& m, uint64_t now_ms, bool writable);
    /// Holds `m` as the next of what waits (what a parked subscriber read
    /// from its channel's log), within the bounds: kHeld or kOverflow.
    Offer add(size_t index, const MsgPtr& m);
    /// What waits misses messages (a channel log dropped some): the next
    /// batch follows a gap.
    void note_gap() { gap_ = true; }

    /// A batch to write, in publish order. `gap`: messages were dropped
    /// before it (drop-oldest), so the client learns it missed some.
    struct Batch {
        std::vector<Item> items;
        bool gap = false;
    };

    /// When take() has a batch: milliseconds from now (0: now); nullopt
    /// when nothing is held, or held until fetch() or the socket drains.
    std::optional<uint64_t> due(uint64_t now_ms, bool writable) const;
    /// The batch due now, in publish order (empty when none is).
    Batch take(uint64_t now_ms, bool writable);
    /// Everything held, now (manual's fetch, and any mode's); counts as a
    /// write for throttle.
    Batch fetch(uint64_t now_ms);
    /// The part of the batch just taken that the socket had no room for
    /// (pulse_subscriber_max_buffered): held again, first, to go when the
    /// socket drains.
    void give_back(std::vector<Item>::const_iterator from,
                   std::vector<Item>::const_iterator to);

    size_t held() const { return held_; }
    /// Slots in use, held or not yet reclaimed (for tests: memory).
    size_t slots() const { return queue_.size(); }
    size_t held_bytes() const { return held_bytes_; }
    /// Totals, for pulse_metrics: messages superseded by a newer one of
    /// their key, and dropped by the drop-oldest policy.
    uint64_t conflated() const { return conflated_; }
    uint64_t dropped() const { return dropped_; }

private:
    bool conflating() const
    {
        return pace_.mode != Mode::kLive
               || bounds_.overflow == Overflow::kConflate;
    }
    bool over() const;
    void drop_oldest();
    void compact();
    Batch drain(uint64_t now_ms);
    void hold(size_t index, const MsgPtr& m);

    struct Slot {
        Item item;
        bool live = true;
    };
    Pace pace_;
    Bounds bounds_;
    metrics::Counters* counters_;
    uint64_t origin_ms_;          // interval: the cadence's origin
    uint64_t last_write_ms_;      // throttle: the last batch's time
    uint64_t held_since_ms_ = 0;  // when the oldest held message came
    bool wrote_ = false;          // throttle: some batch was written
    std::vector<Slot> queue_;
    size_t head_ = 0;  // slots before it are gone
    /// -> its slot; the key views a message the queue holds (superseded
    /// slots keep theirs until compact() or drain())
    std::unordered_map<KeyRef, size_t, KeyHash> by_key_;  // -> its slot
    size_t held_ = 0;
    size_t held_bytes_ = 0;
    bool gap_ = false;
    uint64_t conflated_ = 0;
    uint64_t dropped_ = 0;
};

}  // namespace pulse::pacing
