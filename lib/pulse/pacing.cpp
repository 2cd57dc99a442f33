#include "pulse/pacing.h"

#include <algorithm>
#include <charconv>

namespace pulse::pacing {

namespace {

constexpr uint64_t kMaxDurationMs = 24ULL * 3600 * 1000;

std::string duration_text(uint64_t ms)
{
    if (ms % 1000 == 0) {
        return std::to_string(ms / 1000) + "s";
    }
    return std::to_string(ms) + "ms";
}

}  // namespace

std::string_view mode_name(Mode m)
{
    switch (m) {
        case Mode::kThrottle:
            return "throttle";
        case Mode::kInterval:
            return "interval";
        case Mode::kManual:
            return "manual";
        default:
            return "live";
    }
}

std::string to_string(const Pace& p)
{
    std::string out(mode_name(p.mode));
    if (p.mode == Mode::kThrottle || p.mode == Mode::kInterval) {
        out += '=';
        out += duration_text(p.every_ms);
    }
    return out;
}

std::string_view overflow_name(Overflow o)
{
    switch (o) {
        case Overflow::kDropOldest:
            return "drop-oldest";
        case Overflow::kConflate:
            return "conflate";
        default:
            return "close";
    }
}

Pace bounded(const Limits& l, std::optional<Pace> asked)
{
    Pace p = asked ? *asked : l.fallback;
    if (p.mode == Mode::kLive && l.min_ms > 0) {
        return Pace{Mode::kThrottle, l.min_ms};
    }
    if (p.mode == Mode::kThrottle || p.mode == Mode::kInterval) {
        p.every_ms = std::max(p.every_ms, l.min_ms);
        if (l.max_ms > 0) {
            p.every_ms = std::min(p.every_ms, l.max_ms);
        }
    }
    return p;
}

Result<uint64_t> parse_duration_ms(std::string_view text)
{
    uint64_t n = 0;
    const char* end = text.data() + text.size();
    auto [rest, ec] = std::from_chars(text.data(), end, n);
    std::string_view unit(rest, static_cast<size_t>(end - rest));
    uint64_t scale = 0;
    if (unit.empty() || unit == "s") {
        scale = 1000;
    } else if (unit == "ms") {
        scale = 1;
    } else if (unit == "m") {
        scale = 60000;
    } else if (unit == "h") {
        scale = 3600000;
    }
    if (ec != std::errc() || rest == text.data() || scale == 0 || n == 0
        || n > kMaxDurationMs / scale)
    {
        return Status(
            Code::kInvalidArgument,
            "Invalid duration \"" + std::string(text)
                + "\": a number with ms, s, m or h, from 1ms to 24h.");
    }
    return n * scale;
}

Result<std::optional<Pace>> parse_ask(std::optional<std::string_view> throttle,
                                      std::optional<std::string_view> interval,
                                      std::optional<std::string_view> mode)
{
    int given = (throttle ? 1 : 0) + (interval ? 1 : 0) + (mode ? 1 : 0);
    if (given > 1) {
        return Status(Code::kInvalidArgument,
                      "Give one of throttle, interval and mode, not several.");
    }
    if (mode) {
        if (*mode == "live") {
            return std::optional<Pace>(Pace{Mode::kLive, 0});
        }
        if (*mode == "manual") {
            return std::optional<Pace>(Pace{Mode::kManual, 0});
        }
        return Status(Code::kInvalidArgument,
                      "Invalid mode \"" + std::string(*mode)
                          + "\": live or manual (throttle and interval take "
                            "a duration of their own).");
    }
    if (throttle || interval) {
        auto ms = parse_duration_ms(throttle ? *throttle : *interval);
        if (!ms.is_ok()) {
            return ms.status();
        }
        return std::optional<Pace>(
            Pace{throttle ? Mode::kThrottle : Mode::kInterval, ms.value()});
    }
    return std::optional<Pace>();
}

std::vector<Item> conflate(const std::vector<Item>& items)
{
    std::unordered_map<KeyRef, size_t, KeyHash> last;
    for (size_t i = 0; i < items.size(); ++i) {
        const Item& it = items[i];
        if (!it.msg->conflation_key.empty()) {
            last[KeyRef{it.index, it.msg->conflation_key}] = i;
        }
    }
    std::vector<Item> kept;
    for (size_t i = 0; i < items.size(); ++i) {
        const Item& it = items[i];
        if (it.msg->conflation_key.empty()
            || last[KeyRef{it.index, it.msg->conflation_key}] == i)
        {
            kept.push_back(it);
        }
    }
    return kept;
}

// ----------------------------------------------------------------- Pacer

Pacer::Pacer(Pace p, Bounds b, uint64_t now_ms, metrics::Counters* counters)
    : pace_(p),
      bounds_(b),
      counters_(counters),
      origin_ms_(now_ms),
      last_write_ms_(now_ms)
{}

void Pacer::set_pace(Pace p, uint64_t now_ms)
{
    if (p.mode == Mode::kInterval && p != pace_) {
        origin_ms_ = now_ms;
        held_since_ms_ = now_ms;
    }
    pace_ = p;
}

bool Pacer::over() const
{
    return (bounds_.messages != 0 && held_ > bounds_.messages)
           || (bounds_.bytes != 0 && held_bytes_ > bounds_.bytes);
}

Pacer::Offer Pacer::offer(size_t index, const MsgPtr& m, uint64_t now_ms,
                          bool writable)
{
    if (pace_.mode == Mode::kLive && held_ == 0
        && (writable || bounds_.overflow == Overflow::kClose))
    {
        return Offer::kSend;  // a slow socket: its own limit closes it
    }
    if (held_ == 0 && writable) {
        switch (pace_.mode) {
            case Mode::kThrottle:
                if (!wrote_ || now_ms >= last_write_ms_ + pace_.every_ms) {
                    wrote_ = true;
                    last_write_ms_ = now_ms;
                    return Offer::kSend;
                }
                break;
            default:
                break;
        }
    }
    if (held_ == 0) {
        held_since_ms_ = now_ms;
    }
    return add(index, m);
}

Pacer::Offer Pacer::add(size_t index, const MsgPtr& m)
{
    hold(index, m);
    if (!over()) {
        return Offer::kHeld;
    }
    if (bounds_.overflow == Overflow::kClose) {
        if (counters_ != nullptr) {
            counters_->overflow_closes++;
        }
        return Offer::kOverflow;
    }
    while (over() && held_ > 0) {
        drop_oldest();
    }
    return Offer::kHeld;
}

void Pacer::hold(size_t index, const MsgPtr& m)
{
    if (conflating() && !m->conflation_key.empty()) {
        auto [it, fresh] = by_key_.try_emplace(KeyRef{index, m->conflation_key},
                                               queue_.size());
        if (!fresh) {
            // its message stays in the slot: the map's key views it
            Slot& old = queue_[it->second];
            old.live = false;
            held_--;
            held_bytes_ -= old.item.msg->body.size();
            conflated_++;
            if (counters_ != nullptr) {
                counters_->conflated++;
            }
            it->second = queue_.size();
        }
    }
    queue_.push_back(Slot{Item{m, index}, true});
    held_++;
    held_bytes_ += m->body.size();
    // superseded and dropped slots stay until the queue drains; keep them
    // the minority, so that a stalled socket's queue stays within its bound
    if (queue_.size() > 64 && held_ * 2 < queue_.size()) {
        compact();
    }
}

void Pacer::drop_oldest()
{
    while (head_ < queue_.size() && !queue_[head_].live) {
        head_++;
    }
    if (head_ == queue_.size()) {
        return;
    }
    Slot& s = queue_[head_++];
    const Msg& m = *s.item.msg;
    if (!m.conflation_key.empty()) {
        auto it = by_key_.find(KeyRef{s.item.index, m.conflation_key});
        if (it != by_key_.end() && it->second == head_ - 1) {
            by_key_.erase(it);
        }
    }
    held_--;
    held_bytes_ -= m.body.size();
    s.live = false;  // its message stays until compact() or drain()
    dropped_++;
    if (counters_ != nullptr) {
        counters_->dropped++;
    }
    gap_ = true;
}

void Pacer::compact()
{
    std::vector<Slot> kept;
    kept.reserve(held_);
    for (size_t i = head_; i < queue_.size(); ++i) {
        if (queue_[i].live) {
            kept.push_back(std::move(queue_[i]));
        }
    }
    queue_ = std::move(kept);
    head_ = 0;
    by_key_.clear();
    if (!conflating()) {
        return;
    }
    for (size_t i = 0; i < queue_.size(); ++i) {
        const Msg& m = *queue_[i].item.msg;
        if (!m.conflation_key.empty()) {
            by_key_[KeyRef{queue_[i].item.index, m.conflation_key}] = i;
        }
    }
}

std::optional<uint64_t> Pacer::due(uint64_t now_ms, bool writable) const
{
    if (held_ == 0 || !writable) {
        return std::nullopt;
    }
    uint64_t at = now_ms;
    switch (pace_.mode) {
        case Mode::kManual:
            return std::nullopt;
        case Mode::kThrottle:
            at = wrote_ ? last_write_ms_ + pace_.every_ms : now_ms;
            break;
        case Mode::kInterval: {
            // the first tick of the cadence after the oldest held message
            uint64_t since = std::max(held_since_ms_, origin_ms_);
            at = origin_ms_
                 + ((since - origin_ms_) / pace_.every_ms + 1) * pace_.every_ms;
            break;
        }
        default:
            break;
    }
    return at > now_ms ? at - now_ms : 0;
}

Pacer::Batch Pacer::take(uint64_t now_ms, bool writable)
{
    auto when = due(now_ms, writable);
    if (!when || *when != 0) {
        return Batch{};
    }
    return drain(now_ms);
}

Pacer::Batch Pacer::fetch(uint64_t now_ms)
{
    return drain(now_ms);
}

void Pacer::give_back(std::vector<Item>::const_iterator from,
                      std::vector<Item>::const_iterator to)
{
    std::vector<Slot> rest;
    rest.reserve(held_ + static_cast<size_t>(to - from));
    for (auto it = from; it != to; ++it) {
        rest.push_back(Slot{*it, true});
        held_++;
        held_bytes_ += it->msg->body.size();
    }
    for (size_t i = head_; i < queue_.size(); ++i) {
        if (queue_[i].live) {
            rest.push_back(std::move(queue_[i]));
        }
    }
    by_key_.clear();  // before the messages its keys view
    queue_ = std::move(rest);
    head_ = 0;
    compact();  // the key map, for what arrives next
}

Pacer::Batch Pacer::drain(uint64_t now_ms)
{
    Batch b;
    b.gap = gap_;
    b.items.reserve(held_);
    for (size_t i = head_; i < queue_.size(); ++i) {
        if (queue_[i].live) {
            b.items.push_back(std::move(queue_[i].item));
        }
    }
    by_key_.clear();  // before the messages its keys view
    queue_.clear();
    head_ = 0;
    held_ = 0;
    held_bytes_ = 0;
    gap_ = false;
    if (pace_.mode == Mode::kThrottle && !b.items.empty()) {
        wrote_ = true;
        last_write_ms_ = now_ms;
    }
    return b;
}

}  // namespace pulse::pacing
