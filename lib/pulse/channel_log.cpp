#include "pulse/channel_log.h"

#include <algorithm>

namespace pulse {

void ChannelLog::append(const MsgPtr& m)
{
    uint64_t seq = ++seq_;
    if (!m->conflation_key.empty()) {
        auto [it, fresh] =
            by_key_.try_emplace(m->conflation_key, entries_.size());
        if (!fresh) {
            // the old entry keeps its message: the map's key views it
            Entry& old = entries_[it->second];
            old.live = false;
            live_--;
            live_bytes_ -= old.msg->body.size();
            it->second = entries_.size();
        }
    }
    entries_.push_back(Entry{m, seq, true});
    live_++;
    live_bytes_ += m->body.size();
    if (entries_.size() > 1024 && live_ * 2 < entries_.size()) {
        compact(0);
    }
    if (live_ > kMaxEntries || live_bytes_ > kMaxBytes) {
        drop_to_bounds();
    }
}

// Drops the oldest live entries until a quarter under both bounds.
void ChannelLog::drop_to_bounds()
{
    size_t live = live_;
    size_t bytes = live_bytes_;
    uint64_t below = 0;
    for (const Entry& e : entries_) {
        if (live <= kMaxEntries / 4 * 3 && bytes <= kMaxBytes / 4 * 3) {
            break;
        }
        if (e.live) {
            live--;
            bytes -= e.msg->body.size();
        }
        below = e.seq;
    }
    compact(below);
}

size_t ChannelLog::first_after(uint64_t cursor) const
{
    auto it =
        std::upper_bound(entries_.begin(), entries_.end(), cursor,
                         [](uint64_t c, const Entry& e) { return c < e.seq; });
    return static_cast<size_t>(it - entries_.begin());
}

void ChannelLog::trim(uint64_t min_cursor)
{
    compact(min_cursor);
}

// Keeps the live entries after `below`; those at or before it that were
// still live are dropped (no reader needs them, or the log is full).
void ChannelLog::compact(uint64_t below)
{
    std::vector<Entry> kept;
    kept.reserve(live_);
    for (Entry& e : entries_) {
        if (e.live && e.seq > below) {
            kept.push_back(std::move(e));
        }
    }
    by_key_.clear();  // before the messages its keys view
    entries_ = std::move(kept);
    live_ = entries_.size();
    live_bytes_ = 0;
    for (const Entry& e : entries_) {
        live_bytes_ += e.msg->body.size();
    }
    dropped_below_ = std::max(dropped_below_, below + 1);
    for (size_t i = 0; i < entries_.size(); ++i) {
        const Msg& m = *entries_[i].msg;
        if (!m.conflation_key.empty()) {
            by_key_[m.conflation_key] = i;
        }
    }
}

void ChannelLog::clear()
{
    by_key_.clear();
    entries_.clear();
    live_ = 0;
    live_bytes_ = 0;
    dropped_below_ = seq_ + 1;
}

}  // namespace pulse
