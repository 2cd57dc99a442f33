#pragma once

// The fan-out of one worker: which local subscribers hold which channels,
// joining with a resume id, leaving, reading the worker's mailbox and
// handing each new message to every local subscriber of its channel, and
// ending them all when a channel is deleted or the worker stops.
//
// Everything here is worker-local and single-threaded. Shared memory is
// reached only through the Store; waking other workers through the host
// (the glue's doorbells). Invariants, each unit-tested:
//  - a subscriber may leave, or make others leave, while its channel is
//    being dispatched: the dispatch skips whoever left and never touches a
//    subscriber after it was removed;
//  - a channel being dispatched stays until the dispatch ends (pins are
//    RAII, so an exception cannot leave one pinned);
//  - an exception from one subscriber closes that subscriber only;
//  - a joining subscriber's catch-up and the live stream meet exactly at
//    the channel's last id: no gap, no duplicate.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pulse/acl.h"
#include "pulse/channel_log.h"
#include "pulse/deflate.h"
#include "pulse/message.h"
#include "pulse/metrics.h"
#include "pulse/status.h"
#include "pulse/store.h"

namespace pulse {

/// Why a subscription ends, as the HTTP status nchan reports.
namespace end_status {
constexpr int kGone = 410;      // the channel was deleted
constexpr int kTimeout = 408;   // pulse_subscriber_timeout
constexpr int kShutdown = 503;  // the worker stops
constexpr int kForbidden = 403;
constexpr int kUnauthorized = 401;  // the connection's token expired
}  // namespace end_status

class Fanout;
struct LocalChannel;

/// A member of one channel: a connection, or one channel of a connection
/// that holds several (multiplexing, pulse.v1).
class Subscriber {
public:
    Subscriber() = default;
    Subscriber(const Subscriber&) = delete;
    Subscriber& operator=(const Subscriber&) = delete;
    Subscriber(Subscriber&&) = delete;
    Subscriber& operator=(Subscriber&&) = delete;
    /// Leaves its channel.
    virtual ~Subscriber();

    /// New messages of its channel, oldest first; some may be older than
    /// what it already has (take() tells).
    virtual void on_messages(const std::vector<MsgPtr>& msgs) = 0;
    /// The channel ends for it (end_status); it has left already.
    virtual void on_end(int status) = 0;
    /// on_messages or on_end threw: it has left its channel and must close
    /// its connection. Must not throw.
    virtual void on_failure() noexcept = 0;

    /// Leaves its channel; idempotent.
    void detach();
    bool joined() const { return channel_ != nullptr; }
    /// True when `id` is newer than what it has had; it then counts as had.
    bool take(MsgId id)
    {
        if (id <= last_sent_) {
            return false;
        }
        last_sent_ = id;
        return true;
    }
    MsgId last_sent() const { return last_sent_; }

    /// Pacing (lib/pulse/pacing.h): a paced subscriber whose next write is
    /// not due parks: the dispatch passes it by and its channel logs what
    /// comes (lib/pulse/channel_log.h), which it reads with parked_since()
    /// when its timer fires, then unparks. Idempotent; needs a channel.
    void park();
    void unpark();
    bool parked() const { return parked_; }
    /// Calls f(msg) for what its channel published since it parked, the
    /// latest per key, in publish order; false when the log had to drop
    /// some of it (a gap).
    template <typename F>
    bool parked_since(F&& f) const;
    /// Messages its channel published since it parked (parked_since gives
    /// those no later one of their key superseded).
    uint64_t published_since_parked() const;

protected:
    /// Messages up to this id were sent (or predate the subscription).
    MsgId last_sent_;

private:
    friend class Fanout;
    Subscriber* prev_ = nullptr;
    Subscriber* next_ = nullptr;
    LocalChannel* channel_ = nullptr;
    bool parked_ = false;
    uint64_t cursor_ = 0;  // parked: the log's seq it has had
};

/// A wildcard subscription as the fan-out sees it (Fanout::watch): told of
/// each channel of its group whose id its pattern matches, so that it can
/// join it.
class ChannelWatcher {
public:
    ChannelWatcher() = default;
    ChannelWatcher(const ChannelWatcher&) = delete;
    ChannelWatcher& operator=(const ChannelWatcher&) = delete;
    ChannelWatcher(ChannelWatcher&&) = delete;
    ChannelWatcher& operator=(ChannelWatcher&&) = delete;

    /// `key` matches: it existed when the watch began (`created` false) or
    /// was created since and has had its first publish (`created` true).
    /// The watcher may join the channel, or unwatch, from here.
    virtual void on_channel(std::string_view key, bool created) = 0;
    /// Ends its watch, if any; safe after the fan-out is gone.
    void unwatch();

protected:
    /// Unwatches: the fan-out never calls a watcher that is gone.
    virtual ~ChannelWatcher() { unwatch(); }

private:
    friend class Fanout;
    Fanout* fanout_ = nullptr;  // watching through it
};

/// What the fan-out needs of the process it runs in.
class FanoutHost {
public:
    /// Wake the workers of these slots (a publish or delete result); this
    /// worker's own slot among them.
    virtual void ring(uint64_t slots) = 0;
    /// Unix seconds (nginx's cached time in a worker).
    virtual int64_t now() const = 0;
    /// Unix milliseconds (a tenant's publish bucket, shared by workers).
    virtual int64_t now_ms() const { return now() * 1000; }
    /// CLOCK_MONOTONIC in nanoseconds, the same in every worker: when a
    /// publish was accepted (delivery latency); 0: not measured.
    virtual int64_t mono_ns() const { return 0; }
    /// Logs a problem of the fan-out (a full zone, once per episode, is an
    /// alert; a message stored uncompressed a warning).
    enum class Level : uint8_t { kWarn, kAlert };
    virtual void log(Level level, std::string_view message) = 0;

protected:
    ~FanoutHost() = default;
};

/// How a location stores what it publishes.
struct PublishSpec {
    uint32_t max_messages = 10;
    int64_t timeout = 3600;
    int64_t channel_timeout = 0;
    bool deflate = false;
    size_t max_size = 0;     // pulse_max_message_size; 0: no bound of its own
    TenantRate tenant_rate;  // pulse_tenant_publish_rate; 0: none
    bool group_limits = false;  // pulse_channel_group_accounting
};

/// One publish, as any path (HTTP, WebSocket, pulse.v1) received it; the
/// fields are valid (publish_request.h).
struct PublishInput {
    std::string_view body;
    std::string_view content_type;
    std::string_view event;
    std::optional<MsgId> id;  // publisher-supplied
    std::string_view tenant;  // the publisher's token's; empty: none
    /// Pulse-Key: paced subscribers get only the latest message per key.
    std::string_view conflation_key;
};

struct Published {
    ChannelInfo info;  // aggregated over the channels, as nchan
    int status = 0;    // 201: some subscriber got it, 202: only stored
};

class Fanout {
public:
    /// `slot` is this worker's slot; without one (all taken) publishing
    /// works and joining fails with kAgain.
    Fanout(Store& store, std::optional<uint32_t> slot, FanoutHost& host,
           ws::DeflateOptions deflate);
    Fanout(const Fanout&) = delete;
    Fanout& operator=(const Fanout&) = delete;
    Fanout(Fanout&&) = delete;
    Fanout& operator=(Fanout&&) = delete;
    ~Fanout();

    Store& store() { return store_; }
    const ws::DeflateOptions& deflate_options() const { return deflate_; }
    std::optional<uint32_t> slot() const { return slot_; }
    int64_t now() const { return host_.now(); }
    /// This worker's framing ids (Msg::encoded).
    FramingIds& framing_ids() { return framing_ids_; }

    struct JoinOptions {
        int64_t now = 0;
        bool existing_only = false;
        uint32_t max_subscribers = 0;  // 0: no limit
        std::optional<MsgId> after;    // the resume id
        FirstMessage first;            // with no resume id
        uint32_t limit = UINT32_MAX;   // catch-up messages at most
        bool group_limits = false;     // pulse_channel_group_accounting
    };
    struct Join {
        std::vector<MsgPtr> catch_up;
        bool gap = false;  // the resume id was older than the buffer
    };
    /// Subscribes `s` to channel `key` and returns the buffered messages
    /// it asked for; the live ones follow through on_messages. Fails with
    /// kNotFound (existing_only, no such channel), kForbidden (max
    /// subscribers, or a group limit), kNoMemory (zone full) or kAgain (no
    /// slot, stopping).
    Result<Join> join(Subscriber* s, std::string_view key,
                      const JoinOptions& o);

    /// Reads this worker's mailbox and delivers what it announces.
    void process_mailbox(int64_t now);

    /// Watches the channels of `group` whose ids match `pattern` (an ACL
    /// pattern, lib/pulse/acl.h): calls w->on_channel for each that exists
    /// now, before returning, and for each created later at its first
    /// publish. A pass over the zone's channels; kAgain without a slot.
    Status watch(ChannelWatcher* w, std::string_view group,
                 std::string_view pattern);
    /// Stops the watch; idempotent.
    void unwatch(ChannelWatcher* w);
    size_t watchers() const { return watchers_.size(); }

    /// Publishes to every channel in `keys` and wakes their subscribers'
    /// workers. kNoMemory when the zone is full (logged once per episode
    /// by all workers together); a compression failure stores the message
    /// uncompressed (logged).
    Result<Published> publish(const std::vector<std::string>& keys,
                              const PublishSpec& spec, const PublishInput& in,
                              int64_t now);

    /// Deletes channels (their subscribers end with 410, here and in the
    /// other workers) or reads their info; kNotFound when none exists.
    Result<ChannelInfo> remove(const std::vector<std::string>& keys,
                               int64_t now);
    Result<ChannelInfo> info(const std::vector<std::string>& keys, int64_t now);

    /// A subscriber (a connection, whatever its channels) counted for its
    /// tenant zone-wide while the seat lives (pulse_max_tenant_subscribers).
    class TenantSeat {
    public:
        TenantSeat(const TenantSeat&) = delete;
        TenantSeat& operator=(const TenantSeat&) = delete;
        TenantSeat(TenantSeat&&) = delete;
        TenantSeat& operator=(TenantSeat&&) = delete;
        ~TenantSeat();

    private:
        friend class Fanout;
        TenantSeat(Fanout& f, std::string tenant, uint32_t slot)
            : fanout_(f), tenant_(std::move(tenant)), slot_(slot)
        {}
        Fanout& fanout_;
        std::string tenant_;
        uint32_t slot_;
    };
    /// A seat for one more subscriber of `tenant`, unless it has `max`
    /// (0: no limit, only counted) already: kForbidden; kAgain without a
    /// worker slot.
    Result<std::unique_ptr<TenantSeat>> seat(std::string_view tenant,
                                             uint32_t max);

    /// nchan's channel events (pulse_channel_events_channel_id): publishes
    /// `body` to channel `meta/<id>` and wakes its subscribers' workers.
    /// A full zone loses the event (logged).
    void channel_event(std::string_view id, std::string_view body, int64_t now,
                       std::string_view content_type = {});

    /// A subscriber's subscriber_dequeue event, published when this goes.
    /// It is held in the zone meanwhile, so that a worker killed holding
    /// subscribers has their events sent by whichever worker reaps its
    /// slot, and one that exits with them sends them as it goes: the
    /// enqueue and dequeue events of a channel always pair up.
    class EventHold {
    public:
        EventHold(const EventHold&) = delete;
        EventHold& operator=(const EventHold&) = delete;
        EventHold(EventHold&&) = delete;
        EventHold& operator=(EventHold&&) = delete;
        ~EventHold();

    private:
        friend class Fanout;
        explicit EventHold(Fanout& f) : fanout_(f) {}
        Fanout& fanout_;
        uint32_t held_ = 0;  // the zone's record; 0: kept here instead
        std::string id_;     // with no record (no slot, zone full)
        std::string body_;
    };
    /// Holds `body` for channel `meta/<id>`. Without a slot or room in the
    /// zone the event is kept in this worker and sent all the same when
    /// the hold goes (a killed worker loses it then). Throws bad_alloc.
    std::unique_ptr<EventHold> hold_event(std::string_view id,
                                          std::string_view body);

    /// nchan's subscriber info (pulse_subscriber_info). A subscriber's
    /// answer, for the channels it subscribes to, while this lives: each
    /// info request made of one of them is answered by publishing `info`
    /// to the request's channel, meta/sr<id>.
    class InfoListener {
    public:
        InfoListener(const InfoListener&) = delete;
        InfoListener& operator=(const InfoListener&) = delete;
        InfoListener(InfoListener&&) = delete;
        InfoListener& operator=(InfoListener&&) = delete;
        ~InfoListener();

    private:
        friend class Fanout;
        InfoListener(Fanout& f, std::vector<std::string> keys, std::string info)
            : fanout_(f), keys_(std::move(keys)), info_(std::move(info))
        {}
        Fanout& fanout_;
        std::vector<std::string> keys_;
        std::string info_;
    };
    /// Throws std::bad_alloc.
    std::unique_ptr<InfoListener> listen_info(std::vector<std::string> keys,
                                              std::string info);
    /// A new request's id: its answers go to channel meta/sr<id>.
    uint32_t new_info_request();
    /// Asks every subscriber of channel `key`, in every worker, for its
    /// info.
    void request_info(std::string_view key, uint32_t id);

    /// Ends every subscriber with end_status::kShutdown; joins fail after.
    void shutdown();
    bool stopping() const { return stopping_; }

    /// Local channels held (for tests and status).
    size_t channels() const { return channels_.size(); }

    /// This worker's metrics (lib/pulse/metrics.h): the fan-out counts
    /// resumes and gaps, the glue the rest.
    metrics::Block& metrics() { return metrics_; }
    /// Count publishes per tenant in the zone (pulse_metrics is on).
    void count_tenants(bool on) { count_tenants_ = on; }

private:
    friend class Subscriber;
    class Pin;
    void leave(Subscriber* s);
    void unlink(Subscriber* s);
    void link(Subscriber* s);
    void dispatch(LocalChannel* lc, const std::vector<MsgPtr>& msgs);
    void end_all(LocalChannel* lc, int status);
    void release_if_empty(LocalChannel* lc);
    LocalChannel* local(ChannelHandle h);
    bool watched(std::string_view key) const;
    void announce(const std::vector<std::string>& keys);
    void answer_info(const std::vector<std::pair<std::string, uint32_t>>& asked,
                     int64_t now);

    Store& store_;
    std::optional<uint32_t> slot_;
    FanoutHost& host_;
    ws::DeflateOptions deflate_;
    bool stopping_ = false;
    bool count_tenants_ = false;
    metrics::Block metrics_;
    FramingIds framing_ids_;
    std::unordered_map<uint64_t, std::unique_ptr<LocalChannel>> channels_;
    struct Watch {
        std::string group;
        std::string pattern;
    };
    std::unordered_map<ChannelWatcher*, Watch> watchers_;
    std::unordered_multimap<std::string, const InfoListener*> listeners_;
};

/// This worker's view of one channel with local subscribers.
struct LocalChannel {
    /// An iteration over the subscribers in progress: removing the
    /// subscriber it visits next moves it on (several may nest).
    struct Cursor {
        Subscriber* next = nullptr;
        Cursor* outer = nullptr;
    };

    Fanout* fanout = nullptr;
    Store::Subscription sub;
    uint32_t count = 0;  // active and parked
    uint32_t pins = 0;
    Subscriber* head = nullptr;  // active: the dispatch calls them
    Subscriber* tail = nullptr;
    Cursor* cursors = nullptr;
    Subscriber* parked = nullptr;  // parked, a list of their own
    uint32_t parked_count = 0;
    ChannelLog log;  // while some are parked
    size_t trim_at = 1024;
    uint32_t info_seen = 0;  // the channel's info requests answered here
};

template <typename F>
bool Subscriber::parked_since(F&& f) const
{
    return channel_ == nullptr || !parked_
           || channel_->log.since(cursor_, std::forward<F>(f));
}

inline uint64_t Subscriber::published_since_parked() const
{
    return channel_ == nullptr || !parked_ ? 0
                                           : channel_->log.last_seq() - cursor_;
}

/// nchan's multi-channel aggregate: messages = max, subscribers = sum,
/// requested = max, last id = zero.
void aggregate(ChannelInfo* total, const ChannelInfo& one, size_t n);

}  // namespace pulse
