#include "pulse/fanout.h"

#include <algorithm>
#include <climits>
#include <functional>
#include <iterator>
#include <queue>
#include <unordered_set>

namespace pulse {

namespace {

uint64_t handle_key(ChannelHandle h)
{
    return (uint64_t{h.off} << 32) | h.serial;
}

}  // namespace

/// Keeps a local channel while it is being worked on; releases it (if
/// empty) when the scope ends, however it ends.
class Fanout::Pin {
public:
    Pin(Fanout* f, LocalChannel* lc) : f_(f), lc_(lc) { ++lc_->pins; }
    Pin(Pin&& o) noexcept : f_(o.f_), lc_(o.lc_) { o.lc_ = nullptr; }
    Pin(const Pin&) = delete;
    Pin& operator=(const Pin&) = delete;
    Pin& operator=(Pin&&) = delete;
    ~Pin()
    {
        if (lc_ != nullptr) {
            --lc_->pins;
            f_->release_if_empty(lc_);
        }
    }
    LocalChannel* get() const { return lc_; }

private:
    Fanout* f_;
    LocalChannel* lc_;
};

// ------------------------------------------------------------ Subscriber

Subscriber::~Subscriber()
{
    detach();
}

void Subscriber::detach()
{
    if (channel_ != nullptr) {
        channel_->fanout->leave(this);
    }
}

void Subscriber::park()
{
    if (channel_ == nullptr || parked_) {
        return;
    }
    LocalChannel* lc = channel_;
    lc->fanout->unlink(this);
    cursor_ = lc->log.last_seq();
    parked_ = true;
    next_ = lc->parked;
    prev_ = nullptr;
    if (lc->parked != nullptr) {
        lc->parked->prev_ = this;
    }
    lc->parked = this;
    lc->parked_count++;
}

void Subscriber::unpark()
{
    if (channel_ == nullptr || !parked_) {
        return;
    }
    LocalChannel* lc = channel_;
    lc->fanout->unlink(this);
    lc->fanout->link(this);
}

// ---------------------------------------------------------------- Fanout

Fanout::Fanout(Store& store, std::optional<uint32_t> slot, FanoutHost& host,
               ws::DeflateOptions deflate)
    : store_(store), slot_(slot), host_(host), deflate_(deflate)
{}

Fanout::~Fanout()
{
    for (auto& [w, watch] : watchers_) {
        (void) watch;
        w->fanout_ = nullptr;
    }
    // Subscribers outliving the fan-out must not reach it.
    for (auto& [key, lc] : channels_) {
        (void) key;
        for (Subscriber* list : {lc->head, lc->parked}) {
            for (Subscriber* s = list; s != nullptr; s = s->next_) {
                s->channel_ = nullptr;
            }
        }
    }
}

LocalChannel* Fanout::local(ChannelHandle h)
{
    auto it = channels_.find(handle_key(h));
    return it == channels_.end() ? nullptr : it->second.get();
}

// Takes `s` out of its channel's list, active or parked.
void Fanout::unlink(Subscriber* s)
{
    LocalChannel* lc = s->channel_;
    if (s->parked_) {
        (s->prev_ != nullptr ? s->prev_->next_ : lc->parked) = s->next_;
        if (s->next_ != nullptr) {
            s->next_->prev_ = s->prev_;
        }
        s->parked_ = false;
        if (--lc->parked_count == 0) {
            lc->log.clear();  // nobody reads it
            lc->trim_at = 1024;
        }
    } else {
        for (LocalChannel::Cursor* c = lc->cursors; c != nullptr; c = c->outer)
        {
            if (c->next == s) {
                c->next = s->next_;
            }
        }
        (s->prev_ != nullptr ? s->prev_->next_ : lc->head) = s->next_;
        (s->next_ != nullptr ? s->next_->prev_ : lc->tail) = s->prev_;
    }
    s->prev_ = s->next_ = nullptr;
}

// Appends `s` to its channel's active list.
void Fanout::link(Subscriber* s)
{
    LocalChannel* lc = s->channel_;
    s->prev_ = lc->tail;
    s->next_ = nullptr;
    (lc->tail != nullptr ? lc->tail->next_ : lc->head) = s;
    lc->tail = s;
}

void Fanout::leave(Subscriber* s)
{
    LocalChannel* lc = s->channel_;
    unlink(s);
    s->channel_ = nullptr;
    lc->count--;
    {
        Store::Guard g(store_);
        store_.add_subscribers(g, lc->sub, -1, host_.now());
    }
    release_if_empty(lc);
}

void Fanout::release_if_empty(LocalChannel* lc)
{
    if (lc->count != 0 || lc->pins != 0) {
        return;
    }
    {
        Store::Guard g(store_);
        store_.unsubscribe(g, lc->sub);
    }
    channels_.erase(handle_key(lc->sub.channel));
}

void Fanout::dispatch(LocalChannel* lc, const std::vector<MsgPtr>& msgs)
{
    Pin pin(this, lc);
    if (lc->parked_count > 0) {
        for (const MsgPtr& m : msgs) {
            lc->log.append(m);
        }
        if (lc->log.entries() > lc->trim_at) {
            // what every parked subscriber has had can go
            uint64_t min = lc->log.last_seq();
            for (Subscriber* s = lc->parked; s != nullptr; s = s->next_) {
                min = std::min(min, s->cursor_);
            }
            lc->log.trim(min);
            lc->trim_at = std::max<size_t>(1024, 2 * lc->log.entries());
        }
    }
    LocalChannel::Cursor cursor;
    cursor.next = lc->head;
    cursor.outer = lc->cursors;
    lc->cursors = &cursor;
    while (cursor.next != nullptr) {
        Subscriber* s = cursor.next;
        cursor.next = s->next_;
        try {
            s->on_messages(msgs);
        } catch (...) {
            s->detach();
            s->on_failure();
        }
    }
    lc->cursors = cursor.outer;
}

void Fanout::end_all(LocalChannel* lc, int status)
{
    Pin pin(this, lc);
    while (lc->parked != nullptr) {
        lc->parked->unpark();
    }
    while (lc->head != nullptr) {
        Subscriber* s = lc->head;
        s->detach();
        try {
            s->on_end(status);
        } catch (...) {
            s->on_failure();
        }
    }
}

Result<Fanout::Join> Fanout::join(Subscriber* s, std::string_view key,
                                  const JoinOptions& o)
{
    if (!slot_ || stopping_) {
        return Status(Code::kAgain, "This worker cannot hold subscribers.");
    }
    Join j;
    std::vector<MsgPtr> live;
    LocalChannel* lc = nullptr;
    {
        Store::Guard g(store_);
        if (o.group_limits) {
            if (Status st = store_.group_admits_subscriber(g, key); !st.is_ok())
            {
                return st;
            }
        }
        auto sub = store_.subscribe(g, key, *slot_, o.now, o.existing_only);
        if (!sub.is_ok()) {
            return sub.status();
        }
        auto& entry = channels_[handle_key(sub->channel)];
        bool fresh = entry == nullptr;
        if (fresh) {
            entry = std::make_unique<LocalChannel>();
            entry->fanout = this;
            entry->sub = sub.value();
            entry->info_seen = store_.info_seq(g);
        }
        lc = entry.get();
        auto info = store_.info(g, lc->sub.channel, o.now);
        if (o.max_subscribers > 0 && info
            && info->subscribers >= o.max_subscribers) {
            if (fresh) {
                store_.unsubscribe(g, lc->sub);
                channels_.erase(handle_key(lc->sub.channel));
            }
            return Status(Code::kForbidden,
                          "Maximum channel subscribers reached.");
        }
        if (!fresh) {
            // Bring this worker's live subscribers up to the slot cursor so
            // that the newcomer's catch-up and their stream meet exactly.
            store_.read_for_slot(g, lc->sub, o.now, [&](const MessageView& m) {
                live.push_back(std::make_shared<Msg>(m));
            });
        }
        j.gap = store_.read_buffered(
            g, lc->sub.channel, o.after, o.first, o.now, o.limit,
            [&](const MessageView& m) {
                j.catch_up.push_back(std::make_shared<Msg>(m));
            });
        if (o.after) {
            metrics_.counters.resumes++;
            metrics_.counters.gaps += j.gap ? 1 : 0;
        }
        MsgId last = store_.last_id(g, lc->sub.channel);
        s->last_sent_ = o.after && *o.after > last ? *o.after : last;
        store_.add_subscribers(g, lc->sub, 1, o.now);
    }
    s->channel_ = lc;
    link(s);
    lc->count++;
    if (!live.empty()) {
        dispatch(lc, live);  // the newcomer skips these: all <= last_sent_
    }
    return j;
}

void Fanout::process_mailbox(int64_t now)
{
    if (!slot_) {
        return;
    }
    struct Batch {
        Pin pin;
        std::vector<MsgPtr> msgs;
    };
    std::vector<Batch> batch;
    std::vector<Pin> ended;
    std::vector<std::string> created;
    std::vector<std::pair<std::string, uint32_t>> asked;  // info requests
    {
        Store::Guard g(store_);
        auto visit = [&](ChannelHandle h) {
            LocalChannel* lc = local(h);
            if (lc == nullptr) {
                // a new channel, announced to watching slots
                if (!watchers_.empty() && !store_.is_deleted(g, h)) {
                    std::string_view key = store_.key(g, h);
                    if (watched(key)) {
                        created.emplace_back(key);
                    }
                }
                return;
            }
            if (store_.is_deleted(g, h)) {
                ended.emplace_back(this, lc);
                return;
            }
            std::vector<uint32_t> ids;
            store_.info_requests(g, h, &lc->info_seen, &ids);
            for (uint32_t id : ids) {
                asked.emplace_back(store_.key(g, h), id);
            }
            std::vector<MsgPtr> msgs;
            store_.read_for_slot(g, lc->sub, now, [&](const MessageView& m) {
                msgs.push_back(std::make_shared<Msg>(m));
            });
            if (!msgs.empty()) {
                batch.push_back(Batch{Pin(this, lc), std::move(msgs)});
            }
        };
        if (store_.drain_mailbox(g, *slot_, visit)) {
            // The mailbox overflowed: look at every channel held here.
            std::vector<ChannelHandle> all;
            all.reserve(channels_.size());
            for (auto& entry : channels_) {
                all.push_back(entry.second->sub.channel);
            }
            for (ChannelHandle h : all) {
                visit(h);
            }
            if (!watchers_.empty()) {
                // and every channel the lost notices may have announced
                std::unordered_set<std::string_view> told(created.begin(),
                                                          created.end());
                std::vector<std::string> more;
                store_.for_each_channel(
                    g, 0, UINT32_MAX,
                    [&](ChannelHandle h, std::string_view key) {
                        if (local(h) == nullptr && told.count(key) == 0
                            && watched(key)) {
                            more.emplace_back(key);
                        }
                    });
                created.insert(created.end(),
                               std::make_move_iterator(more.begin()),
                               std::make_move_iterator(more.end()));
            }
        }
    }
    announce(created);
    answer_info(asked, now);
    // The pins release each channel when `batch` and `ended` go, even if a
    // dispatch throws.
    if (batch.size() == 1) {
        dispatch(batch[0].pin.get(), batch[0].msgs);
    } else if (batch.size() > 1) {
        // Several channels had news: hand their messages on in the order
        // they were published, a run of one channel at a time, so that a
        // subscriber of several (multiplexed) sees them as nchan shows
        // them. Each channel's own order is kept as it is (its ids).
        using Head = std::pair<int64_t, size_t>;  // next one's time, batch
        std::priority_queue<Head, std::vector<Head>, std::greater<>> heads;
        std::vector<size_t> next(batch.size(), 0);
        for (size_t b = 0; b < batch.size(); ++b) {
            heads.emplace(batch[b].msgs.front()->published_ns, b);
        }
        std::vector<MsgPtr> run;
        while (!heads.empty()) {
            size_t b = heads.top().second;
            heads.pop();
            std::vector<MsgPtr>& msgs = batch[b].msgs;
            int64_t until = heads.empty() ? INT64_MAX : heads.top().first;
            size_t from = next[b];
            size_t to = from + 1;
            while (to < msgs.size() && msgs[to]->published_ns <= until) {
                ++to;
            }
            next[b] = to;
            if (to < msgs.size()) {
                heads.emplace(msgs[to]->published_ns, b);
            }
            if (from == 0 && to == msgs.size()) {
                dispatch(batch[b].pin.get(), msgs);  // the whole batch
                continue;
            }
            run.assign(msgs.begin() + static_cast<std::ptrdiff_t>(from),
                       msgs.begin() + static_cast<std::ptrdiff_t>(to));
            dispatch(batch[b].pin.get(), run);
        }
    }
    for (Pin& p : ended) {
        end_all(p.get(), end_status::kGone);
    }
}

// ------------------------------------------------------------ wildcards

namespace {

// The group and the id of a channel key (`group/id`: a group holds no
// `/`).
std::pair<std::string_view, std::string_view> split_key(std::string_view key)
{
    size_t slash = key.find('/');
    if (slash == std::string_view::npos) {
        return {std::string_view(), key};
    }
    return {key.substr(0, slash), key.substr(slash + 1)};
}

}  // namespace

// Hash buckets a wildcard's start reads per hold of the zone lock (about
// as many channels; some 0.2 ms).
constexpr uint32_t kWatchSlice = 1024;

bool Fanout::watched(std::string_view key) const
{
    auto [group, id] = split_key(key);
    for (const auto& [w, watch] : watchers_) {
        (void) w;
        if (watch.group == group && acl::matches(watch.pattern, id)) {
            return true;
        }
    }
    return false;
}

// Tells each watcher of its new channels; a watcher may unwatch (or make
// others unwatch) from its call, so each is looked up again before it is
// called.
void Fanout::announce(const std::vector<std::string>& keys)
{
    for (const std::string& key : keys) {
        auto [group, id] = split_key(key);
        std::vector<ChannelWatcher*> to_tell;
        for (const auto& [w, watch] : watchers_) {
            if (watch.group == group && acl::matches(watch.pattern, id)) {
                to_tell.push_back(w);
            }
        }
        for (ChannelWatcher* w : to_tell) {
            if (watchers_.count(w) != 0 && !stopping_) {
                w->on_channel(key, true);
            }
        }
    }
}

Status Fanout::watch(ChannelWatcher* w, std::string_view group,
                     std::string_view pattern)
{
    if (!slot_ || stopping_) {
        return Status(Code::kAgain, "This worker cannot hold subscribers.");
    }
    if (w->fanout_ != nullptr && w->fanout_ != this) {
        w->unwatch();
    }
    watchers_[w] = Watch{std::string(group), std::string(pattern)};
    w->fanout_ = this;
    {
        Store::Guard g(store_);
        store_.set_watching(g, *slot_, true);
    }
    // From here a new channel is announced at its first publish, so a
    // slice may let others in: a channel created meanwhile is found
    // twice at most (the watcher joins once).
    std::vector<std::string> existing;
    uint32_t from = 0;
    do {
        Store::Guard g(store_);
        from = store_.for_each_channel(
            g, from, kWatchSlice, [&](ChannelHandle, std::string_view key) {
                auto [kg, id] = split_key(key);
                if (kg == group && acl::matches(pattern, id)) {
                    existing.emplace_back(key);
                }
            });
    } while (from != 0);
    for (const std::string& key : existing) {
        if (watchers_.count(w) == 0) {
            break;
        }
        w->on_channel(key, false);
    }
    return Status::ok();
}

void ChannelWatcher::unwatch()
{
    if (fanout_ != nullptr) {
        fanout_->unwatch(this);
    }
}

void Fanout::unwatch(ChannelWatcher* w)
{
    w->fanout_ = nullptr;
    if (watchers_.erase(w) == 0 || !watchers_.empty() || !slot_) {
        return;
    }
    Store::Guard g(store_);
    store_.set_watching(g, *slot_, false);
}

void Fanout::shutdown()
{
    if (stopping_) {
        return;
    }
    stopping_ = true;
    std::vector<Pin> all;
    all.reserve(channels_.size());
    for (auto& entry : channels_) {
        all.emplace_back(this, entry.second.get());
    }
    for (Pin& p : all) {
        end_all(p.get(), end_status::kShutdown);
    }
}

// -------------------------------------------------------------- publish

void aggregate(ChannelInfo* total, const ChannelInfo& one, size_t n)
{
    if (n == 0) {
        *total = one;
        return;
    }
    total->messages = std::max(total->messages, one.messages);
    total->subscribers += one.subscribers;
    total->requested = std::max(total->requested, one.requested);
    total->last_id = MsgId{};
}

Result<Published> Fanout::publish(const std::vector<std::string>& keys,
                                  const PublishSpec& spec,
                                  const PublishInput& in, int64_t now)
{
    if (spec.max_size != 0 && in.body.size() > spec.max_size) {
        return Status(Code::kTooLarge,
                      "Message too large: " + std::to_string(in.body.size())
                          + " bytes, at most " + std::to_string(spec.max_size)
                          + " (pulse_max_message_size).");
    }
    if (!in.tenant.empty() && spec.tenant_rate.per_second_milli != 0) {
        Result<int64_t> wait = Status(Code::kAgain, "");
        {
            Store::Guard g(store_);
            wait = store_.tenant_take_publish(g, in.tenant, spec.tenant_rate,
                                              host_.now_ms());
        }
        if (!wait.is_ok()) {
            return wait.status();
        }
        if (wait.value() > 0) {
            metrics_.counters
                .denials[static_cast<size_t>(metrics::Denial::kTenantLimit)]++;
            Status st(Code::kTooManyRequests,
                      "Too many publishes for this tenant; retry in "
                          + std::to_string(wait.value())
                          + " s (pulse_tenant_publish_rate).");
            st.set_retry_after(wait.value());
            return st;
        }
    }
    Store::PublishParams p;
    p.body = in.body;
    p.content_type = in.content_type;
    p.event = in.event;
    p.conflation_key = in.conflation_key;
    p.max_messages = spec.max_messages;
    p.timeout = spec.timeout;
    p.channel_timeout = spec.channel_timeout;
    p.group_limits = spec.group_limits;
    // Compressed once here, outside the zone lock, and stored beside the
    // body: every worker serves permessage-deflate subscribers from it.
    std::string deflated;
    if (spec.deflate) {
        auto z = ws::deflate_message(in.body, deflate_);
        if (z.is_ok()) {
            deflated = std::move(z.value());
        } else {
            // Frames go out uncompressed instead (RFC 7692 allows it).
            host_.log(FanoutHost::Level::kWarn,
                      z.status().message() + ": message stored uncompressed");
        }
    }
    p.deflated = deflated;
    p.now = now;
    p.published_ns = host_.mono_ns();
    p.id = in.id;
    Published out;
    uint64_t ring = 0;
    bool stored = false;
    for (size_t i = 0; i < keys.size(); ++i) {
        p.key = keys[i];
        Result<Store::PublishResult> res = Status(Code::kAgain, "");
        bool first_full = false;
        {
            Store::Guard g(store_);
            res = store_.publish(g, p);
            if (res.is_ok()) {
                store_.clear_full(g);
                if (i == 0 && count_tenants_ && !in.tenant.empty()) {
                    store_.tenant_count_publish(g, in.tenant);
                }
            } else if (res.status().code() == Code::kNoMemory) {
                // one log line per episode for all workers together
                first_full = store_.mark_full(g);
            }
        }
        if (!res.is_ok()) {
            host_.ring(ring);
            if (first_full) {
                host_.log(FanoutHost::Level::kAlert,
                          "shared memory zone \"pulse\" is full: publishes "
                          "fail with 507 until messages expire (raise "
                          "pulse_shared_memory_size)");
            }
            return res.status();
        }
        stored = stored || !res->duplicate;
        ring |= res->ring;
        aggregate(&out.info, res->info, i);
    }
    host_.ring(ring);
    out.status = stored && out.info.subscribers > 0 ? 201 : 202;
    return out;
}

Result<std::unique_ptr<Fanout::TenantSeat>> Fanout::seat(
    std::string_view tenant, uint32_t max)
{
    if (!slot_) {
        return Status(Code::kAgain, "no worker slot");
    }
    {
        Store::Guard g(store_);
        if (Status s = store_.tenant_subscribe(g, tenant, *slot_, max);
            !s.is_ok()) {
            return s;
        }
    }
    return std::unique_ptr<TenantSeat>(
        new TenantSeat(*this, std::string(tenant), *slot_));
}

Fanout::TenantSeat::~TenantSeat()
{
    Store::Guard g(fanout_.store_);
    fanout_.store_.tenant_unsubscribe(g, tenant_, slot_);
}

std::unique_ptr<Fanout::InfoListener> Fanout::listen_info(
    std::vector<std::string> keys, std::string info)
{
    std::unique_ptr<InfoListener> l(
        new InfoListener(*this, std::move(keys), std::move(info)));
    for (const std::string& key : l->keys_) {
        listeners_.emplace(key, l.get());
    }
    return l;
}

Fanout::InfoListener::~InfoListener()
{
    for (const std::string& key : keys_) {
        auto [from, to] = fanout_.listeners_.equal_range(key);
        for (auto it = from; it != to; ++it) {
            if (it->second == this) {
                fanout_.listeners_.erase(it);
                break;
            }
        }
    }
}

uint32_t Fanout::new_info_request()
{
    Store::Guard g(store_);
    return store_.new_info_id(g);
}

void Fanout::request_info(std::string_view key, uint32_t id)
{
    uint64_t ring = 0;
    {
        Store::Guard g(store_);
        ring = store_.request_info(g, key, id);
    }
    host_.ring(ring);
}

// Each listener of an asked channel publishes its info to the request's
// channel (nchan: text/plain, one message per subscriber).
void Fanout::answer_info(
    const std::vector<std::pair<std::string, uint32_t>>& asked, int64_t now)
{
    for (const auto& [key, id] : asked) {
        std::string to = "sr" + std::to_string(id);
        auto [from, end] = listeners_.equal_range(key);
        std::vector<std::string> infos;
        for (auto it = from; it != end; ++it) {
            infos.push_back(it->second->info_);
        }
        for (const std::string& info : infos) {
            channel_event(to, info, now, "text/plain");
        }
    }
}

namespace {

std::string events_key(std::string_view id)
{
    std::string key(kEventsGroup);
    key += '/';
    key += id;
    return key;
}

}  // namespace

void Fanout::channel_event(std::string_view id, std::string_view body,
                           int64_t now, std::string_view content_type)
{
    Result<Store::PublishResult> r = Status(Code::kAgain, "");
    {
        Store::Guard g(store_);
        r = store_.publish_event(g, events_key(id), body, now, content_type);
    }
    if (!r.is_ok()) {
        host_.log(FanoutHost::Level::kWarn,
                  "channel event for \"" + std::string(id)
                      + "\" lost: " + r.status().message());
        return;
    }
    host_.ring(r->ring);
}

std::unique_ptr<Fanout::EventHold> Fanout::hold_event(std::string_view id,
                                                      std::string_view body)
{
    std::unique_ptr<EventHold> h(new EventHold(*this));
    if (slot_) {
        Store::Guard g(store_);
        auto held = store_.hold_event(g, *slot_, events_key(id), body);
        if (held.is_ok()) {
            h->held_ = held.value();
            return h;
        }
    }
    h->id_ = id;
    h->body_ = body;
    return h;
}

Fanout::EventHold::~EventHold()
try {
    int64_t now = fanout_.host_.now();
    if (held_ == 0) {
        fanout_.channel_event(id_, body_, now);
        return;
    }
    uint64_t ring = 0;
    {
        Store::Guard g(fanout_.store_);
        ring = fanout_.store_.fire_event(g, *fanout_.slot_, held_, now);
    }
    fanout_.host_.ring(ring);
} catch (const std::exception&) {
    // bad_alloc copying the event: it is lost, nothing else is
}

Result<ChannelInfo> Fanout::remove(const std::vector<std::string>& keys,
                                   int64_t now)
{
    ChannelInfo total;
    size_t found = 0;
    uint64_t ring = 0;
    {
        Store::Guard g(store_);
        for (const std::string& key : keys) {
            auto d = store_.remove(g, key, now);
            if (d.is_ok()) {
                ring |= d->ring;
                aggregate(&total, d->info, found++);
            }
        }
    }
    host_.ring(ring);
    if (found == 0) {
        return Status(Code::kNotFound, "");
    }
    return total;
}

Result<ChannelInfo> Fanout::info(const std::vector<std::string>& keys,
                                 int64_t now)
{
    ChannelInfo total;
    size_t found = 0;
    Store::Guard g(store_);
    for (const std::string& key : keys) {
        if (auto one = store_.info(g, key, now); one.is_ok()) {
            aggregate(&total, one.value(), found++);
        }
    }
    if (found == 0) {
        return Status(Code::kNotFound, "");
    }
    return total;
}

}  // namespace pulse
