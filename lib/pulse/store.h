#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "pulse/arena.h"
#include "pulse/message_id.h"
#include "pulse/metrics.h"
#include "pulse/status.h"

namespace pulse {

/// Worker slots: every nginx worker (of every generation alive at once,
/// during a reload) claims one. 64 covers worker_processes up to 32 across a
/// reload.
constexpr uint32_t kMaxSlots = 64;
/// Channel notices a slot's mailbox holds before it overflows (then the
/// worker rescans all its channels, so an overflow loses nothing).
constexpr uint32_t kMailboxSize = 512;
/// A message published with buffer length 0 is never buffered; it lives
/// until the workers with subscribers have read it, and at most this long
/// (nchan's NCHAN_NOBUFFER_MSG_EXPIRE_SEC).
constexpr int64_t kUnbufferedMessageTtl = 10;
constexpr uint32_t kStoreMagic = 0x50554c53;  // "PULS"
constexpr uint32_t kStoreLayoutVersion = 7;
/// nchan's channel events (pulse_channel_events_channel_id) go to channel
/// `meta/<id>`, which keeps this many of them, this long, and is freed
/// after this long idle (nchan_defs.h's NCHAN_META_CHANNEL_*).
constexpr std::string_view kEventsGroup = "meta";
constexpr uint32_t kEventsMaxMessages = 100;
constexpr int64_t kEventsMessageTtl = 10;
constexpr int64_t kEventsChannelTimeout = 30;
/// Hash buckets of the tenant table (per-tenant limits).
constexpr uint32_t kTenantBuckets = 256;
/// Hash buckets of the channel group table (group accounting).
constexpr uint32_t kGroupBuckets = 1024;

/// A channel as a subscriber's worker holds it: offset plus the serial
/// number the channel got when it was created, so a reused offset is never
/// mistaken for the old channel.
struct ChannelHandle {
    uint32_t off = 0;
    uint32_t serial = 0;
    explicit operator bool() const { return off != 0; }
    friend bool operator==(ChannelHandle a, ChannelHandle b)
    {
        return a.off == b.off && a.serial == b.serial;
    }
};

/// What nchan's channel info reports.
struct ChannelInfo {
    uint32_t messages = 0;
    int64_t requested = -1;  // seconds since a subscriber asked, -1 never
    uint32_t subscribers = 0;
    MsgId last_id;
};

/// One message as read from the store; valid while the Guard is held.
struct MessageView {
    MsgId id;
    MsgId prev_id;
    int64_t published_ns = 0;  // when accepted (CLOCK_MONOTONIC); 0: unknown
    std::string_view body;
    std::string_view content_type;
    std::string_view event;
    /// Published with pulse_deflate_message_for_websocket on: the body as a
    /// permessage-deflate payload, compressed once at publish time; empty
    /// otherwise.
    std::string_view deflated;
    std::string_view conflation_key;  // Pulse-Key; empty: none
};

/// Where a subscriber with no message id starts
/// (pulse_subscriber_first_message): `oldest` = 0, `newest` = kNewest, n>0 =
/// the n-th message from the oldest, -n = the n-th from the newest.
struct FirstMessage {
    static constexpr int kOldest = 0;
    static constexpr int kNewest = INT32_MIN;
    int value = kOldest;
};

struct StoreStats {
    uint64_t total_published = 0;
    uint64_t stored_messages = 0;
    uint64_t channels = 0;
    uint64_t subscribers = 0;
    uint64_t notices = 0;         // channel notices posted to mailboxes
    uint64_t notices_queued = 0;  // notices not yet read
    size_t shm_used = 0;
    size_t shm_capacity = 0;
};

/// FNV-1a of a key: the store's hash tables.
uint32_t hash_key(std::string_view key);

/// A channel group's limits (pulse_group_max_*); 0: none.
struct GroupLimits {
    uint64_t channels = 0;
    uint64_t subscribers = 0;
    uint64_t messages = 0;
    uint64_t messages_memory = 0;  // bytes
};
/// What a request sets of them: each one absent stays as it is.
struct GroupLimitsUpdate {
    std::optional<uint64_t> channels;
    std::optional<uint64_t> subscribers;
    std::optional<uint64_t> messages;
    std::optional<uint64_t> messages_memory;
    bool any() const
    {
        return channels || subscribers || messages || messages_memory;
    }
};
/// What nchan's group location reports: the group's channels, their
/// subscribers, their buffered messages and the bytes those take.
struct GroupInfo {
    uint64_t channels = 0;
    uint64_t subscribers = 0;
    uint64_t messages = 0;
    uint64_t messages_memory = 0;
    GroupLimits limits;
};
/// A channel key's group: what comes before its first '/'.
std::string_view group_of(std::string_view key);

/// A tenant's publish rate (pulse_tenant_publish_rate): a token bucket of
/// `burst` publishes, refilled at `per_second_milli` / 1000 per second.
struct TenantRate {
    uint64_t per_second_milli = 0;  // 0: no limit
    uint32_t burst = 1;
};

struct StoreHeader;
struct Tenant;
struct Channel;
struct Message;
struct SlotSub;
struct HeldEvent;
struct Group;

/// The channel/message store over an Arena. Every operation takes a Guard:
/// proof that the caller holds the arena lock, so that several operations
/// can be composed atomically (catch up a new subscriber and flush the live
/// ones under one lock, for instance).
class Store {
public:
    class Guard {
    public:
        explicit Guard(Store& s) : arena_(s.arena_) { arena_.lock(); }
        ~Guard() { arena_.unlock(); }
        Guard(const Guard&) = delete;
        Guard& operator=(const Guard&) = delete;
        Guard(Guard&&) = delete;
        Guard& operator=(Guard&&) = delete;

    private:
        Arena& arena_;
    };

    explicit Store(Arena& arena) : arena_(arena) {}

    /// Adopts the store already in the arena (after nginx -s reload) when
    /// its magic and layout version match; otherwise builds a fresh one with
    /// about `buckets_hint` hash buckets. `token` names this store's
    /// doorbells and is kept when the store is adopted.
    /// Fails with kNoMemory when the arena cannot hold the tables.
    Status open(const Guard&, uint32_t buckets_hint, uint64_t token);
    bool is_open() const { return hdr_ != nullptr; }
    /// The arena's memory moved (a new nginx cycle maps the zone anew):
    /// re-read its base. open() does it too.
    void rebase() { base_ = arena_.base(); }
    uint64_t token() const;

    // ------------------------------------------------------------ publish
    struct PublishParams {
        std::string_view key;
        std::string_view body;
        std::string_view content_type;
        std::string_view event;
        uint32_t max_messages = 10;
        int64_t timeout = 3600;       // seconds; 0 = never expires
        int64_t channel_timeout = 0;  // idle lifetime; 0 = gc()'s default
        int64_t now = 0;
        int64_t published_ns = 0;  // CLOCK_MONOTONIC, for latency metrics
        /// Publisher-supplied id (pulse_publisher_message_id); the store
        /// assigns one when absent.
        std::optional<MsgId> id;
        /// The body compressed for permessage-deflate subscribers
        /// (ws::deflate_message), stored beside it; empty: not offered.
        std::string_view deflated;
        /// Pulse-Key (lib/pulse/pacing.h), at most kMaxKeyLength bytes
        /// (lib/pulse/publish_request.h).
        std::string_view conflation_key;
        /// pulse_channel_group_accounting: the key's group limits apply.
        bool group_limits = false;
    };
    struct PublishResult {
        MsgId id;
        ChannelInfo info;
        bool duplicate = false;  // a supplied id not newer than the last
        uint64_t ring = 0;       // slots whose doorbell must be rung
    };
    /// Stores a message; on a full arena expires old messages everywhere and
    /// retries once, then fails with kNoMemory (the caller answers 507).
    /// With group_limits, kForbidden (with nchan's reason) when the message
    /// or a new channel would pass a limit of the key's group.
    Result<PublishResult> publish(const Guard&, const PublishParams& p);

    /// Channel info, kNotFound when the channel does not exist.
    Result<ChannelInfo> info(const Guard&, std::string_view key, int64_t now);

    /// Deletes a channel: messages go at once, subscribers are told through
    /// their workers' mailboxes (`ring`), and it stops being findable.
    struct DeleteResult {
        ChannelInfo info;
        uint64_t ring = 0;
    };
    Result<DeleteResult> remove(const Guard&, std::string_view key,
                                int64_t now);

    // ------------------------------------------------------- worker slots
    /// Claims a free slot for `pid`. kNoMemory when all kMaxSlots are taken
    /// (reap the dead processes' slots first).
    Result<uint32_t> claim_slot(const Guard&, int32_t pid);
    /// Releases a slot and everything it held: its subscriptions, and the
    /// channel events it held (hold_event), which it publishes now. Returns
    /// the slots to ring for those.
    uint64_t release_slot(const Guard&, uint32_t slot, int64_t now);
    /// The pid holding each slot, 0 for a free one: which processes to
    /// check, outside the lock.
    std::array<int32_t, kMaxSlots> slot_pids(const Guard&);
    /// Releases `slot` when `pid` still holds it (a process found dead):
    /// the slots to ring (release_slot), nothing when it did not.
    std::optional<uint64_t> reap_slot(const Guard&, uint32_t slot, int32_t pid,
                                      int64_t now);

    // ------------------------------------------------------ channel events
    /// Publishes a channel event (nchan's `meta` group): `body` to channel
    /// `key`, kept as kEventsMaxMessages / kEventsMessageTtl say.
    Result<PublishResult> publish_event(const Guard&, std::string_view key,
                                        std::string_view body, int64_t now,
                                        std::string_view content_type = {});
    /// Holds an event for `slot` to publish later (a subscriber's
    /// subscriber_dequeue, sent when it goes): fire_event() publishes it,
    /// and so does release_slot() if the worker never did, whether it
    /// exited or was killed. Returns the record; kNoMemory when the zone is
    /// full.
    Result<uint32_t> hold_event(const Guard&, uint32_t slot,
                                std::string_view key, std::string_view body);
    /// Publishes a held event and frees it: the slots to ring.
    uint64_t fire_event(const Guard&, uint32_t slot, uint32_t held,
                        int64_t now);
    /// Events held by `slot` (for tests and status).
    uint32_t held_events(const Guard&, uint32_t slot);

    /// The slot's worker holds wildcard subscriptions: a new channel's
    /// first notice (its first publish, or its deletion) goes to its
    /// mailbox too, whether or not it subscribes to it.
    void set_watching(const Guard&, uint32_t slot, bool on);
    /// The channel's key; empty when it is gone.
    std::string_view key(const Guard&, ChannelHandle h);
    /// Calls fn(handle, key) for every channel not deleted in up to
    /// `max_buckets` hash buckets from bucket `from`; returns the bucket
    /// to go on from, 0 once past the last. A pass over the table in
    /// slices, each under a lock of its own (a wildcard subscription's
    /// start), so that no slice holds the zone for long.
    template <typename Fn>
    uint32_t for_each_channel(const Guard&, uint32_t from, uint32_t max_buckets,
                              Fn&& fn);

    /// Empties a slot's mailbox, calling fn(handle) for each channel with
    /// news; returns true when the mailbox had overflowed (the worker must
    /// then look at every channel it holds).
    template <typename Fn>
    bool drain_mailbox(const Guard& g, uint32_t slot, Fn&& fn);

    // -------------------------------------------------------- subscribers
    struct Subscription {
        ChannelHandle channel;
        uint32_t slot_sub = 0;  // this slot's record for the channel
        uint32_t slot = 0;
    };
    /// Adds `count` subscribers of `slot` to a channel, creating it unless
    /// `existing_only` (then kNotFound). Returns the slot's record.
    Result<Subscription> subscribe(const Guard&, std::string_view key,
                                   uint32_t slot, int64_t now,
                                   bool existing_only);
    /// Counts one more (or fewer) local subscriber on an existing record.
    void add_subscribers(const Guard&, const Subscription& s, int32_t delta,
                         int64_t now);
    /// The slot leaves the channel: its count goes, and messages it had not
    /// read yet stop waiting for it.
    void unsubscribe(const Guard&, const Subscription& s);
    bool is_deleted(const Guard&, ChannelHandle h);
    /// The channel's last id (zero when it never had a message).
    MsgId last_id(const Guard&, ChannelHandle h);
    std::optional<ChannelInfo> info(const Guard&, ChannelHandle h, int64_t now);

    /// Messages the slot has not read yet (including ones already evicted
    /// from the buffer but kept because this slot still had to read them),
    /// oldest first; fn(const MessageView&). Advances the slot's cursor.
    template <typename Fn>
    void read_for_slot(const Guard&, const Subscription& s, int64_t now,
                       Fn&& fn);

    /// Buffered messages for a new subscriber: those after `after` (or, with
    /// no id, per `first`), oldest first, stopping after `limit` messages.
    /// Returns true when `after` is older than the oldest buffered message
    /// (some messages it asked for are gone: the gap signal).
    template <typename Fn>
    bool read_buffered(const Guard&, ChannelHandle h,
                       std::optional<MsgId> after, FirstMessage first,
                       int64_t now, uint32_t limit, Fn&& fn);

    // ------------------------------------------------------------- groups
    // Every channel is counted in its group (the key's part before '/');
    // the limits apply where the caller asks (group_limits).

    /// The group's counts and limits; zeros for a group never seen.
    GroupInfo group_info(const Guard&, std::string_view group);
    /// Sets the limits the update has; kNoMemory when the zone cannot hold
    /// the group's record.
    Status set_group_limits(const Guard&, std::string_view group,
                            const GroupLimitsUpdate& u);
    /// Whether one more subscriber of channel `key` is within its group's
    /// limits (subscribers, and channels if the channel is new):
    /// kForbidden when not.
    Status group_admits_subscriber(const Guard&, std::string_view key);
    /// Deletes every channel of the group (as remove() each); returns the
    /// group's info before and the slots to ring.
    GroupInfo remove_group(const Guard&, std::string_view group, int64_t now,
                           uint64_t* ring);

    // ---------------------------------------------------- subscriber info
    /// A new subscriber info request id (nchan's meta/sr<id>), zone-wide.
    uint32_t new_info_id(const Guard&);
    /// Asks the subscribers of channel `key` for their info: their workers
    /// find the request at their next notice (info_requests). Returns the
    /// slots to ring; 0 when the channel has no subscriber anywhere.
    uint64_t request_info(const Guard&, std::string_view key, uint32_t id);
    /// The requests made of the channel since `*seen` (a zone-wide
    /// sequence, info_seq()) into `ids`; `*seen` moves past every request
    /// made since.
    void info_requests(const Guard&, ChannelHandle h, uint32_t* seen,
                       std::vector<uint32_t>* ids);
    /// The sequence now: a worker that starts reading a channel has seen
    /// every request so far.
    uint32_t info_seq(const Guard&) const;

    // ------------------------------------------------------------ tenants
    // Per-tenant limits, zone-wide: subscribers counted per worker slot (a
    // dead worker's go with its slot) and a publish token bucket.

    /// One more subscriber of `tenant` in `slot`, unless the tenant has
    /// `max` (0: no limit) in all slots together already: kForbidden.
    /// kNoMemory when the zone cannot hold the tenant's record.
    Status tenant_subscribe(const Guard&, std::string_view tenant,
                            uint32_t slot, uint32_t max);
    /// One fewer (never below zero).
    void tenant_unsubscribe(const Guard&, std::string_view tenant,
                            uint32_t slot);
    uint32_t tenant_subscribers(const Guard&, std::string_view tenant);
    /// Takes one publish from the tenant's bucket at `now_ms` (Unix
    /// milliseconds): 0 when taken, else the whole seconds (at least 1)
    /// until one is there. A rate of 0 always takes. kNoMemory as above.
    Result<int64_t> tenant_take_publish(const Guard&, std::string_view tenant,
                                        const TenantRate& rate, int64_t now_ms);
    uint32_t tenant_count(const Guard&) const;

    // ---------------------------------------------------------------- gc
    /// Expires messages and frees idle channels (no messages, no
    /// subscribers, untouched for their publisher's channel timeout, else
    /// `channel_timeout` s) in up to
    /// `max_buckets` buckets, resuming where the last call stopped.
    void gc(const Guard&, int64_t now, int64_t channel_timeout,
            uint32_t max_buckets);

    StoreStats stats(const Guard&);
    uint32_t bucket_count() const;

    // ------------------------------------------------------------ metrics
    /// The worker of `slot` reports its metrics (lib/pulse/metrics.h).
    void put_metrics(const Guard&, uint32_t slot, const metrics::Block& b);
    /// One more publish of `tenant` (its record made if need be; none when
    /// the zone has no room for it).
    void tenant_count_publish(const Guard&, std::string_view tenant);
    /// Every worker's metrics summed, the zone's own counts and every
    /// tenant's row (unbounded: metrics::bound_tenants).
    metrics::Snapshot metrics(const Guard&);

    /// Zone-wide "the zone is full" episode, so that all workers together
    /// log it once: mark_full() is true for the first failure of an
    /// episode, clear_full() ends it (a publish succeeded).
    bool mark_full(const Guard&);
    void clear_full(const Guard&);

private:
    Channel* find(std::string_view key, uint32_t hash);
    Channel* create(std::string_view key, uint32_t hash, int64_t now);
    Channel* channel(ChannelHandle h);
    void unlink(Channel* c);
    void maybe_free(Channel* c);
    void free_channel(Channel* c);
    void expire(Channel* c, int64_t now);
    void evict_front(Channel* c);
    void release_read(Channel* c);
    void drop_messages(Channel* c);
    uint64_t notify(Channel* c);
    void expire_everywhere(int64_t now);
    Group* find_group(std::string_view name, uint32_t hash);
    Group* group(std::string_view name);  // found or made; null: no room
    Group* channel_group(const Channel* c);
    void unref_group(Channel* c);
    void drop_group(Group* g);
    void count_message(const Channel* c, const Message* m, int sign);
    Status group_admits_publish(std::string_view key, const Channel* c,
                                const PublishParams& p);
    Tenant* find_tenant(std::string_view name, uint32_t hash);
    Tenant* tenant(std::string_view name);  // found or made; null: no room
    void gc_tenants(int64_t now, uint32_t max_buckets);
    void release_tenant_slot(uint32_t slot);
    void tenant_rows(std::vector<metrics::TenantRow>* rows);
    ChannelInfo info_of(const Channel* c, int64_t now) const;
    Message* alloc_message(const PublishParams& p);
    void leave(uint32_t slot, SlotSub* ss);
    uint64_t unhold(const Guard& g, uint32_t slot, HeldEvent* e, int64_t now);
    MessageView view(Message* m);
    Message* msg(uint32_t off);
    SlotSub* slot_sub(uint32_t off);

    Arena& arena_;
    std::byte* base_ = nullptr;  // arena_.base(), read once in open()
    StoreHeader* hdr_ = nullptr;
};

// ----------------------------------------------------------- shm layouts
// Plain data only (kShmSafe), linked by offsets.

struct Message {
    uint32_t prev;
    uint32_t next;
    int64_t time;
    int32_t tag;
    uint32_t pending;      // slots that still have to read it
    int64_t expires;       // 0 = never
    int64_t published_ns;  // when accepted (CLOCK_MONOTONIC); 0 = unknown
    int64_t prev_time;
    int32_t prev_tag;
    uint32_t body_len;
    uint16_t ctype_len;
    uint16_t event_len;
    uint8_t evicted;  // out of the buffer, kept only for pending readers
    uint8_t flags;    // none yet, 0
    uint16_t ckey_len;
    uint32_t deflated_len;
    // followed by content type, event, body, deflated body, key bytes
};

struct Channel {
    uint32_t next_in_bucket;
    uint32_t hash;
    uint32_t serial;
    uint32_t deleted;
    uint64_t slot_mask;    // slots with local subscribers
    uint64_t notify_mask;  // slots with a notice in their mailbox
    uint32_t subscribers;
    uint32_t buffered;  // messages in the buffer (not evicted)
    uint32_t first;     // oldest message kept (may be evicted)
    uint32_t last;      // newest message
    uint32_t max_messages;
    uint32_t key_len;
    int64_t timeout;
    int64_t last_time;
    int32_t last_tag;
    /// Created and not yet announced: its first notice also goes to the
    /// slots watching for new channels (wildcard subscriptions).
    uint32_t announce;
    int64_t last_requested;  // -1 never
    int64_t last_active;
    int64_t idle_timeout;  // 0 = gc()'s default
    uint32_t group;        // its Group record; 0: none (no room)
    uint32_t pad;
    // followed by key bytes
};

struct SlotSub {
    uint32_t prev;
    uint32_t next;
    uint32_t channel;
    uint32_t serial;
    uint32_t count;
    int32_t cursor_tag;
    int64_t cursor_time;
};

struct HeldEvent {
    uint32_t prev;
    uint32_t next;
    uint32_t key_len;
    uint32_t body_len;
    // followed by the key's bytes, then the body's
};

struct Group {
    uint32_t next_in_bucket;
    uint32_t hash;
    uint32_t key_len;
    uint32_t refs;  // Channel records pointing here, deleted ones too
    uint64_t channels;
    uint64_t subscribers;
    uint64_t messages;
    uint64_t messages_memory;
    GroupLimits limits;
    // followed by the name's bytes
};

struct Tenant {
    uint32_t next_in_bucket;
    uint32_t hash;
    uint32_t key_len;
    uint32_t pad;
    int64_t tokens;            // publish bucket, in 1/1000 of a publish
    int64_t refilled_ms;       // when `tokens` was brought up to date
    int64_t full_at_ms;        // when the bucket is full again (gc: idle)
    uint64_t published;        // publishes counted (pulse_metrics)
    uint32_t subs[kMaxSlots];  // subscribers per worker slot
    // followed by the name's bytes
};

struct MailboxEntry {
    uint32_t off;
    uint32_t serial;
};

/// A subscriber info request (Store::request_info): the channel asked
/// and the request's id.
struct InfoRequest {
    uint32_t off;
    uint32_t serial;
    uint32_t id;
    uint32_t pad;
};
/// Requests the zone remembers (a worker that reads its notices later than
/// this many requests misses the oldest).
constexpr uint32_t kInfoRequests = 32;

struct WorkerSlot {
    int32_t pid;  // 0 = free
    uint32_t bell_pending;
    uint32_t overflow;
    uint32_t head;      // next to read
    uint32_t tail;      // next to write
    uint32_t subs;      // SlotSub list
    uint32_t reported;  // metrics holds a report of this slot's worker
    uint32_t watching;  // its worker wants notices of new channels
    uint32_t events;    // HeldEvent list
    uint32_t pad;
    metrics::Block metrics;
    MailboxEntry mailbox[kMailboxSize];
};

struct StoreHeader {
    uint32_t magic;
    uint32_t layout_version;
    uint64_t token;
    uint32_t nbuckets;
    uint32_t buckets;  // offset of uint32_t[nbuckets]
    uint32_t next_serial;
    uint32_t gc_cursor;
    uint64_t total_published;
    uint64_t stored_messages;
    uint64_t channels;
    uint64_t subscribers;
    uint64_t notices;
    uint32_t full;  // in a "zone full" episode
    uint32_t pad;
    uint32_t tenant_buckets;  // offset of uint32_t[kTenantBuckets]
    uint32_t tenants;
    uint32_t tenant_gc_cursor;
    uint32_t group_buckets;  // offset of uint32_t[kGroupBuckets]
    uint32_t groups;
    uint32_t next_info_id;  // subscriber info request ids given
    uint32_t info_seq;      // requests made, the last at info_seq - 1
    uint32_t pad3;
    InfoRequest info[kInfoRequests];  // at seq % kInfoRequests
    uint64_t evicted;                 // messages pushed out of a full buffer
    metrics::Counters retired;  // of the workers whose slots were released
    WorkerSlot slots[kMaxSlots];
};

static_assert(kShmSafe<Message>);
static_assert(kShmSafe<Channel>);
static_assert(kShmSafe<SlotSub>);
static_assert(kShmSafe<Tenant>);
static_assert(kShmSafe<HeldEvent>);
static_assert(kShmSafe<Group>);
static_assert(kShmSafe<InfoRequest>);
static_assert(kShmSafe<GroupLimits>);
static_assert(kShmSafe<WorkerSlot>);
static_assert(kShmSafe<StoreHeader>);

// -------------------------------------------------- template definitions

inline Message* Store::msg(uint32_t off)
{
    return ShmRef<Message>{off}.get(base_);
}

inline SlotSub* Store::slot_sub(uint32_t off)
{
    return ShmRef<SlotSub>{off}.get(base_);
}

template <typename Fn>
bool Store::drain_mailbox(const Guard&, uint32_t slot, Fn&& fn)
{
    WorkerSlot& ws = hdr_->slots[slot];
    ws.bell_pending = 0;
    bool overflow = ws.overflow != 0;
    ws.overflow = 0;
    uint64_t bit = uint64_t{1} << slot;
    while (ws.head != ws.tail) {
        MailboxEntry e = ws.mailbox[ws.head % kMailboxSize];
        ws.head++;
        auto* c = ShmRef<Channel>{e.off}.get(base_);
        if (c->serial != e.serial || (c->notify_mask & bit) == 0) {
            continue;
        }
        c->notify_mask &= ~bit;
        // fn may end the slot's subscription, which frees a deleted channel:
        // c must not be touched after this call.
        fn(ChannelHandle{e.off, e.serial});
    }
    return overflow;
}

template <typename Fn>
uint32_t Store::for_each_channel(const Guard&, uint32_t from,
                                 uint32_t max_buckets, Fn&& fn)
{
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->buckets}.get(base_);
    uint32_t end = from + max_buckets;
    if (end > hdr_->nbuckets || end < from) {
        end = hdr_->nbuckets;
    }
    for (uint32_t b = from; b < end; ++b) {
        for (uint32_t off = buckets[b]; off != 0;) {
            auto* c = ShmRef<Channel>{off}.get(base_);
            off = c->next_in_bucket;
            if (c->deleted == 0) {
                fn(ChannelHandle{ShmRef<Channel>::of(base_, c).off, c->serial},
                   std::string_view(reinterpret_cast<const char*>(c + 1),
                                    c->key_len));
            }
        }
    }
    return end == hdr_->nbuckets ? 0 : end;
}

template <typename Fn>
void Store::read_for_slot(const Guard&, const Subscription& s, int64_t now,
                          Fn&& fn)
{
    Channel* c = channel(s.channel);
    SlotSub* ss = slot_sub(s.slot_sub);
    if (c == nullptr || ss == nullptr) {
        return;
    }
    expire(c, now);
    MsgId cursor{ss->cursor_time, ss->cursor_tag};
    // Walk back from the newest to the first message after the cursor.
    Message* m = msg(c->last);
    Message* start = nullptr;
    while (m != nullptr && MsgId{m->time, m->tag} > cursor) {
        start = m;
        m = msg(m->prev);
    }
    for (m = start; m != nullptr; m = msg(m->next)) {
        fn(view(m));
        ss->cursor_time = m->time;
        ss->cursor_tag = m->tag;
        if (m->pending > 0) {
            m->pending--;
        }
    }
    release_read(c);
}

template <typename Fn>
bool Store::read_buffered(const Guard&, ChannelHandle h,
                          std::optional<MsgId> after, FirstMessage first,
                          int64_t now, uint32_t limit, Fn&& fn)
{
    Channel* c = channel(h);
    if (c == nullptr) {
        return false;
    }
    expire(c, now);
    // The buffered messages are the last `buffered` of the list.
    Message* oldest = msg(c->last);
    for (uint32_t i = 1; i < c->buffered && oldest != nullptr; ++i) {
        oldest = msg(oldest->prev);
    }
    if (c->buffered == 0) {
        oldest = nullptr;
    }
    Message* start = oldest;
    bool gap = false;
    if (after) {
        if (oldest != nullptr
            && MsgId{oldest->prev_time, oldest->prev_tag} > *after) {
            gap = !after->is_zero();
        }
        while (start != nullptr && MsgId{start->time, start->tag} <= *after) {
            start = msg(start->next);
        }
    } else if (first.value == FirstMessage::kNewest) {
        start = nullptr;
    } else if (first.value > 0) {
        for (int i = 1; i < first.value && start != nullptr; ++i) {
            start = msg(start->next);
        }
    } else if (first.value < 0) {
        int64_t skip = static_cast<int64_t>(c->buffered) + first.value;
        for (int64_t i = 0; i < skip && start != nullptr; ++i) {
            start = msg(start->next);
        }
    }
    uint32_t n = 0;
    for (Message* m = start; m != nullptr && n < limit; m = msg(m->next)) {
        fn(view(m));
        ++n;
    }
    return gap;
}

}  // namespace pulse
