#pragma once

// What a worker's channel published while some of its paced subscribers
// were parked (lib/pulse/fanout.h): the latest message per conflation key
// and every keyless one, in publish order, each with a sequence number. A
// parked subscriber reads what came after its cursor when its timer fires,
// so a message costs one append per channel instead of one offer per
// subscriber, and a write reads only what changed.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pulse/message.h"

namespace pulse {

class ChannelLog {
public:
    /// Most messages and body bytes kept (past either, the oldest are
    /// dropped; a reader whose cursor they passed learns it from since()).
    static constexpr size_t kMaxEntries = 65536;
    static constexpr size_t kMaxBytes = size_t{16} << 20;

    /// The last sequence number given (0: none yet).
    uint64_t last_seq() const { return seq_; }
    /// Appends `m`, superseding the entry of its key.
    void append(const MsgPtr& m);
    /// Calls f(msg) for the kept messages after `cursor`, in publish order;
    /// false when some after it were dropped (a gap).
    template <typename F>
    bool since(uint64_t cursor, F&& f) const
    {
        for (size_t i = first_after(cursor); i < entries_.size(); ++i) {
            if (entries_[i].live) {
                f(entries_[i].msg);
            }
        }
        return cursor + 1 >= dropped_below_;
    }
    /// Forgets what every reader is past (`min_cursor`: the oldest parked
    /// cursor), and superseded entries. O(entries): the fan-out calls it
    /// when the log has doubled.
    void trim(uint64_t min_cursor);
    /// No reader is left.
    void clear();
    size_t live() const { return live_; }
    size_t live_bytes() const { return live_bytes_; }
    size_t entries() const { return entries_.size(); }

private:
    size_t first_after(uint64_t cursor) const;
    void compact(uint64_t min_cursor);
    void drop_to_bounds();

    struct Entry {
        MsgPtr msg;
        uint64_t seq;
        bool live;
    };
    struct KeyHash {
        size_t operator()(std::string_view k) const
        {
            return std::hash<std::string_view>()(k);
        }
    };
    std::vector<Entry> entries_;  // by seq
    // key -> its live entry; views the key of a message entries_ holds
    std::unordered_map<std::string_view, size_t, KeyHash> by_key_;
    uint64_t seq_ = 0;
    uint64_t dropped_below_ = 0;  // entries before this seq were dropped
    size_t live_ = 0;
    size_t live_bytes_ = 0;
};

}  // namespace pulse
