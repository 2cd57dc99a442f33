#include "pulse/store.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "pulse/publish_request.h"

namespace pulse {

uint32_t hash_key(std::string_view key)
{
    uint32_t h = 2166136261u;  // FNV-1a
    for (char ch : key) {
        h ^= static_cast<uint8_t>(ch);
        h *= 16777619u;
    }
    return h;
}

namespace {

uint32_t round_up_pow2(uint32_t v)
{
    uint32_t p = 1;
    while (p < v && p < (1u << 30)) {
        p <<= 1;
    }
    return p;
}

char* key_of(Channel* c)
{
    return reinterpret_cast<char*>(c + 1);
}

std::string_view key_view(const Channel* c)
{
    return std::string_view(reinterpret_cast<const char*>(c + 1), c->key_len);
}

}  // namespace

bool Store::mark_full(const Guard&)
{
    bool first = hdr_->full == 0;
    hdr_->full = 1;
    return first;
}

void Store::clear_full(const Guard&)
{
    hdr_->full = 0;
}

uint32_t Store::bucket_count() const
{
    return hdr_ == nullptr ? 0 : hdr_->nbuckets;
}

uint64_t Store::token() const
{
    return hdr_ == nullptr ? 0 : hdr_->token;
}

Status Store::open(const Guard&, uint32_t buckets_hint, uint64_t token)
{
    base_ = arena_.base();
    auto* old = static_cast<StoreHeader*>(arena_.root());
    if (old != nullptr && old->magic == kStoreMagic
        && old->layout_version == kStoreLayoutVersion)
    {
        hdr_ = old;
        return Status::ok();
    }
    auto* h =
        static_cast<StoreHeader*>(arena_.alloc_locked(sizeof(StoreHeader)));
    if (h == nullptr) {
        return Status(Code::kNoMemory, "no room for the store header");
    }
    std::memset(static_cast<void*>(h), 0, sizeof(*h));
    h->nbuckets = round_up_pow2(buckets_hint == 0 ? 1 : buckets_hint);
    size_t bytes = sizeof(uint32_t) * h->nbuckets;
    void* b = arena_.alloc_locked(bytes);
    if (b == nullptr) {
        arena_.free_locked(h);
        return Status(Code::kNoMemory, "no room for the channel table");
    }
    std::memset(b, 0, bytes);
    h->buckets = ShmRef<uint32_t>::of(base_, static_cast<uint32_t*>(b)).off;
    void* tb = arena_.alloc_locked(sizeof(uint32_t) * kTenantBuckets);
    if (tb == nullptr) {
        arena_.free_locked(b);
        arena_.free_locked(h);
        return Status(Code::kNoMemory, "no room for the tenant table");
    }
    std::memset(tb, 0, sizeof(uint32_t) * kTenantBuckets);
    h->tenant_buckets =
        ShmRef<uint32_t>::of(base_, static_cast<uint32_t*>(tb)).off;
    void* gb = arena_.alloc_locked(sizeof(uint32_t) * kGroupBuckets);
    if (gb == nullptr) {
        arena_.free_locked(tb);
        arena_.free_locked(b);
        arena_.free_locked(h);
        return Status(Code::kNoMemory, "no room for the group table");
    }
    std::memset(gb, 0, sizeof(uint32_t) * kGroupBuckets);
    h->group_buckets =
        ShmRef<uint32_t>::of(base_, static_cast<uint32_t*>(gb)).off;
    h->token = token;
    h->next_serial = 1;
    h->magic = kStoreMagic;
    h->layout_version = kStoreLayoutVersion;
    arena_.set_root(h);
    hdr_ = h;
    return Status::ok();
}

// ------------------------------------------------------------- channels

Channel* Store::find(std::string_view key, uint32_t hash)
{
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->buckets}.get(base_);
    uint32_t off = buckets[hash & (hdr_->nbuckets - 1)];
    while (off != 0) {
        auto* c = ShmRef<Channel>{off}.get(base_);
        if (c->hash == hash && key_view(c) == key) {
            return c;
        }
        off = c->next_in_bucket;
    }
    return nullptr;
}

Channel* Store::create(std::string_view key, uint32_t hash, int64_t now)
{
    auto* c = static_cast<Channel*>(
        arena_.alloc_locked(sizeof(Channel) + key.size()));
    if (c == nullptr) {
        return nullptr;
    }
    std::memset(static_cast<void*>(c), 0, sizeof(Channel));
    std::memcpy(key_of(c), key.data(), key.size());
    c->key_len = static_cast<uint32_t>(key.size());
    c->hash = hash;
    c->serial = hdr_->next_serial++;
    if (hdr_->next_serial == 0) {
        hdr_->next_serial = 1;
    }
    c->max_messages = 10;
    c->timeout = 3600;
    c->last_requested = -1;
    c->last_active = now;
    c->announce = 1;
    if (Group* g = group(pulse::group_of(key))) {
        g->refs++;
        g->channels++;
        c->group = ShmRef<Group>::of(base_, g).off;
    }
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->buckets}.get(base_);
    uint32_t& head = buckets[hash & (hdr_->nbuckets - 1)];
    c->next_in_bucket = head;
    head = ShmRef<Channel>::of(base_, c).off;
    hdr_->channels++;
    return c;
}

Channel* Store::channel(ChannelHandle h)
{
    auto* c = ShmRef<Channel>{h.off}.get(base_);
    return c != nullptr && c->serial == h.serial ? c : nullptr;
}

void Store::unlink(Channel* c)
{
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->buckets}.get(base_);
    uint32_t self = ShmRef<Channel>::of(base_, c).off;
    uint32_t* link = &buckets[c->hash & (hdr_->nbuckets - 1)];
    while (*link != 0) {
        if (*link == self) {
            *link = c->next_in_bucket;
            c->next_in_bucket = 0;
            return;
        }
        link = &ShmRef<Channel>{*link}.get(base_)->next_in_bucket;
    }
}

void Store::free_channel(Channel* c)
{
    drop_messages(c);
    if (!c->deleted) {
        unlink(c);
        if (Group* g = channel_group(c)) {
            g->channels--;
        }
    }
    unref_group(c);
    c->serial = 0;  // stale handles and mailbox entries stop matching
    hdr_->channels--;
    arena_.free_locked(c);
}

// A deleted channel lingers until no slot holds it; a live one is freed by
// gc() once idle.
void Store::maybe_free(Channel* c)
{
    if (c->deleted && c->subscribers == 0 && c->slot_mask == 0
        && c->notify_mask == 0)
    {
        free_channel(c);
    }
}

// ------------------------------------------------------------- messages

MessageView Store::view(Message* m)
{
    auto* bytes = reinterpret_cast<const char*>(m + 1);
    MessageView v;
    v.id = MsgId{m->time, m->tag};
    v.prev_id = MsgId{m->prev_time, m->prev_tag};
    v.published_ns = m->published_ns;
    v.content_type = std::string_view(bytes, m->ctype_len);
    v.event = std::string_view(bytes + m->ctype_len, m->event_len);
    v.body = std::string_view(bytes + m->ctype_len + m->event_len, m->body_len);
    v.deflated = std::string_view(
        bytes + m->ctype_len + m->event_len + m->body_len, m->deflated_len);
    v.conflation_key = std::string_view(
        bytes + m->ctype_len + m->event_len + m->body_len + m->deflated_len,
        m->ckey_len);
    return v;
}

Message* Store::alloc_message(const PublishParams& p)
{
    size_t size = sizeof(Message) + p.content_type.size() + p.event.size()
                  + p.body.size() + p.deflated.size() + p.conflation_key.size();
    auto* m = static_cast<Message*>(arena_.alloc_locked(size));
    if (m == nullptr) {
        return nullptr;
    }
    std::memset(static_cast<void*>(m), 0, sizeof(Message));
    m->ctype_len = static_cast<uint16_t>(p.content_type.size());
    m->event_len = static_cast<uint16_t>(p.event.size());
    m->body_len = static_cast<uint32_t>(p.body.size());
    m->deflated_len = static_cast<uint32_t>(p.deflated.size());
    m->ckey_len = static_cast<uint16_t>(p.conflation_key.size());
    char* out = reinterpret_cast<char*>(m + 1);
    for (std::string_view part :
         {p.content_type, p.event, p.body, p.deflated, p.conflation_key})
    {
        if (!part.empty()) {
            std::memcpy(out, part.data(), part.size());
            out += part.size();
        }
    }
    return m;
}

// Frees evicted messages at the old end that no slot still has to read.
void Store::release_read(Channel* c)
{
    Message* m = msg(c->first);
    while (m != nullptr && m->evicted && m->pending == 0) {
        Message* next = msg(m->next);
        c->first = m->next;
        if (next != nullptr) {
            next->prev = 0;
        } else {
            c->last = 0;
        }
        arena_.free_locked(m);
        m = next;
    }
}

// Takes the oldest buffered message out of the buffer.
void Store::evict_front(Channel* c)
{
    Message* m = msg(c->first);
    while (m != nullptr && m->evicted) {
        m = msg(m->next);
    }
    if (m == nullptr) {
        return;
    }
    m->evicted = 1;
    c->buffered--;
    hdr_->stored_messages--;
    hdr_->evicted++;
    count_message(c, m, -1);
}

void Store::expire(Channel* c, int64_t now)
{
    Message* m = msg(c->first);
    while (m != nullptr && c->buffered > 0) {
        if (!m->evicted) {
            if (m->expires == 0 || m->expires > now) {
                break;
            }
            m->evicted = 1;
            c->buffered--;
            hdr_->stored_messages--;
            count_message(c, m, -1);
            // An emptied channel's idle time starts when it became empty.
            if (m->expires > c->last_active) {
                c->last_active = m->expires;
            }
        }
        m = msg(m->next);
    }
    release_read(c);
}

void Store::drop_messages(Channel* c)
{
    Message* m = msg(c->first);
    while (m != nullptr) {
        Message* next = msg(m->next);
        if (!m->evicted) {
            count_message(c, m, -1);
        }
        arena_.free_locked(m);
        m = next;
    }
    hdr_->stored_messages -= c->buffered;
    c->first = c->last = 0;
    c->buffered = 0;
}

void Store::expire_everywhere(int64_t now)
{
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->buckets}.get(base_);
    for (uint32_t i = 0; i < hdr_->nbuckets; ++i) {
        for (uint32_t off = buckets[i]; off != 0;) {
            auto* c = ShmRef<Channel>{off}.get(base_);
            off = c->next_in_bucket;
            expire(c, now);
        }
    }
}

// Posts a notice to every slot with subscribers on the channel; returns the
// slots whose doorbell went from quiet to ringing.
uint64_t Store::notify(Channel* c)
{
    uint64_t ring = 0;
    uint32_t self = ShmRef<Channel>::of(base_, c).off;
    uint64_t targets = c->slot_mask;
    if (c->announce != 0) {
        c->announce = 0;
        for (uint32_t s = 0; s < kMaxSlots; ++s) {
            if (hdr_->slots[s].watching != 0) {
                targets |= uint64_t{1} << s;
            }
        }
    }
    for (uint32_t s = 0; s < kMaxSlots; ++s) {
        uint64_t bit = uint64_t{1} << s;
        if ((targets & bit) == 0) {
            continue;
        }
        WorkerSlot& ws = hdr_->slots[s];
        if ((c->notify_mask & bit) == 0) {
            if (ws.tail - ws.head >= kMailboxSize) {
                ws.overflow = 1;
            } else {
                ws.mailbox[ws.tail % kMailboxSize] = {self, c->serial};
                ws.tail++;
                hdr_->notices++;
                c->notify_mask |= bit;
            }
        }
        if (ws.bell_pending == 0) {
            ws.bell_pending = 1;
            ring |= bit;
        }
    }
    return ring;
}

ChannelInfo Store::info_of(const Channel* c, int64_t now) const
{
    ChannelInfo info;
    info.messages = c->buffered;
    info.subscribers = c->subscribers;
    info.requested = c->last_requested < 0 ? -1 : now - c->last_requested;
    info.last_id = MsgId{c->last_time, c->last_tag};
    return info;
}

Result<Store::PublishResult> Store::publish(const Guard&,
                                            const PublishParams& p)
{
    if (p.content_type.size() > UINT16_MAX || p.event.size() > UINT16_MAX
        || p.conflation_key.size() > kMaxKeyLength
        || p.body.size() > UINT32_MAX / 2 || p.deflated.size() > UINT32_MAX / 2)
    {
        return Status(Code::kTooLarge, "message too large");
    }
    if (p.id && (p.id->tag < 0 || p.id->time <= 0 || p.id->time > kMaxMsgTime))
    {
        return Status(Code::kInvalidArgument, "Message ID invalid");
    }
    uint32_t hash = hash_key(p.key);
    Channel* c = find(p.key, hash);
    if (p.group_limits) {
        if (Status s = group_admits_publish(p.key, c, p); !s.is_ok()) {
            return s;
        }
    }
    if (c == nullptr) {
        c = create(p.key, hash, p.now);
        if (c == nullptr) {
            expire_everywhere(p.now);
            c = create(p.key, hash, p.now);
        }
        if (c == nullptr) {
            return Status(Code::kNoMemory, "shared memory zone is full");
        }
    }
    PublishResult r;
    MsgId last{c->last_time, c->last_tag};
    MsgId id;
    if (p.id) {
        if (*p.id <= last) {
            r.id = *p.id;
            r.duplicate = true;
            r.info = info_of(c, p.now);
            return r;
        }
        id = *p.id;
    } else if (auto next = next_msg_id(last, p.now)) {
        // A later second, or the next tag (same second, the clock went
        // back), or the next second when the tags ran out.
        id = *next;
    } else {
        maybe_free(c);
        return Status(Code::kTooLarge, "Message ID space exhausted.");
    }
    c->max_messages = p.max_messages;
    c->timeout = p.timeout;
    if (p.channel_timeout > 0) {
        c->idle_timeout = p.channel_timeout;
    }
    c->last_active = p.now;
    expire(c, p.now);
    Message* m = alloc_message(p);
    if (m == nullptr) {
        expire_everywhere(p.now);
        m = alloc_message(p);
    }
    if (m == nullptr) {
        maybe_free(c);
        return Status(Code::kNoMemory, "shared memory zone is full");
    }
    m->time = id.time;
    m->tag = id.tag;
    m->published_ns = p.published_ns;
    m->prev_time = last.time;
    m->prev_tag = last.tag;
    int64_t ttl = p.max_messages == 0 ? kUnbufferedMessageTtl : p.timeout;
    if (p.max_messages == 0 && p.timeout > 0 && p.timeout < ttl) {
        ttl = p.timeout;
    }
    // A timeout past the end of the id space means never (and must not
    // wrap around into the past).
    m->expires = ttl <= 0 || ttl > kMaxMsgTime - p.now ? 0 : p.now + ttl;
    uint32_t self = ShmRef<Message>::of(base_, m).off;
    m->prev = c->last;
    if (Message* tail = msg(c->last)) {
        tail->next = self;
    } else {
        c->first = self;
    }
    c->last = self;
    c->last_time = id.time;
    c->last_tag = id.tag;
    hdr_->total_published++;
    if (p.max_messages == 0) {
        // Buffer length 0 (docs/protocol.md §7): never in the buffer, so
        // channel info counts no message and a new subscriber or a poll
        // gets none; kept only until the slots with subscribers now have
        // read it.
        m->evicted = 1;
    } else {
        c->buffered++;
        hdr_->stored_messages++;
        count_message(c, m, 1);
        while (c->buffered > p.max_messages) {
            evict_front(c);
        }
    }
    // Every slot with subscribers must read it before it may be freed.
    uint32_t pending = 0;
    for (uint64_t mask = c->slot_mask; mask != 0; mask &= mask - 1) {
        ++pending;
    }
    m->pending = pending;
    release_read(c);
    r.id = id;
    r.info = info_of(c, p.now);
    r.ring = notify(c);
    return r;
}

Result<ChannelInfo> Store::info(const Guard&, std::string_view key, int64_t now)
{
    Channel* c = find(key, hash_key(key));
    if (c == nullptr) {
        return Status(Code::kNotFound, "channel not found");
    }
    expire(c, now);
    return info_of(c, now);
}

std::optional<ChannelInfo> Store::info(const Guard&, ChannelHandle h,
                                       int64_t now)
{
    Channel* c = channel(h);
    if (c == nullptr) {
        return std::nullopt;
    }
    expire(c, now);
    return info_of(c, now);
}

Result<Store::DeleteResult> Store::remove(const Guard&, std::string_view key,
                                          int64_t now)
{
    Channel* c = find(key, hash_key(key));
    if (c == nullptr) {
        return Status(Code::kNotFound, "channel not found");
    }
    expire(c, now);
    DeleteResult r;
    r.info = info_of(c, now);
    unlink(c);
    c->deleted = 1;
    if (Group* g = channel_group(c)) {
        g->channels--;
    }
    drop_messages(c);
    r.ring = notify(c);
    maybe_free(c);
    return r;
}

bool Store::is_deleted(const Guard&, ChannelHandle h)
{
    Channel* c = channel(h);
    return c == nullptr || c->deleted != 0;
}

MsgId Store::last_id(const Guard&, ChannelHandle h)
{
    Channel* c = channel(h);
    return c == nullptr ? MsgId{} : MsgId{c->last_time, c->last_tag};
}

// ---------------------------------------------------------- subscribers

Result<Store::Subscription> Store::subscribe(const Guard&, std::string_view key,
                                             uint32_t slot, int64_t now,
                                             bool existing_only)
{
    if (slot >= kMaxSlots) {
        return Status(Code::kInvalidArgument, "bad slot");
    }
    uint32_t hash = hash_key(key);
    Channel* c = find(key, hash);
    if (c == nullptr) {
        if (existing_only) {
            return Status(Code::kNotFound, "channel not found");
        }
        c = create(key, hash, now);
        if (c == nullptr) {
            expire_everywhere(now);
            c = create(key, hash, now);
        }
        if (c == nullptr) {
            return Status(Code::kNoMemory, "shared memory zone is full");
        }
    }
    uint32_t coff = ShmRef<Channel>::of(base_, c).off;
    WorkerSlot& ws = hdr_->slots[slot];
    // One record per (slot, channel): find it on the slot's list.
    SlotSub* ss = nullptr;
    for (uint32_t off = ws.subs; off != 0; off = slot_sub(off)->next) {
        SlotSub* s = slot_sub(off);
        if (s->channel == coff && s->serial == c->serial) {
            ss = s;
            break;
        }
    }
    if (ss == nullptr) {
        ss = static_cast<SlotSub*>(arena_.alloc_locked(sizeof(SlotSub)));
        if (ss == nullptr) {
            maybe_free(c);
            return Status(Code::kNoMemory, "shared memory zone is full");
        }
        std::memset(static_cast<void*>(ss), 0, sizeof(*ss));
        ss->channel = coff;
        ss->serial = c->serial;
        ss->cursor_time = c->last_time;
        ss->cursor_tag = c->last_tag;
        uint32_t self = ShmRef<SlotSub>::of(base_, ss).off;
        ss->next = ws.subs;
        if (SlotSub* head = slot_sub(ws.subs)) {
            head->prev = self;
        }
        ws.subs = self;
        c->slot_mask |= uint64_t{1} << slot;
    }
    c->last_requested = now;
    c->last_active = now;
    return Subscription{ChannelHandle{coff, c->serial},
                        ShmRef<SlotSub>::of(base_, ss).off, slot};
}

void Store::add_subscribers(const Guard&, const Subscription& s, int32_t delta,
                            int64_t now)
{
    Channel* c = channel(s.channel);
    SlotSub* ss = slot_sub(s.slot_sub);
    if (c == nullptr || ss == nullptr) {
        return;
    }
    if (delta < 0 && static_cast<uint32_t>(-delta) > ss->count) {
        delta = -static_cast<int32_t>(ss->count);
    }
    ss->count = static_cast<uint32_t>(static_cast<int64_t>(ss->count) + delta);
    c->subscribers =
        static_cast<uint32_t>(static_cast<int64_t>(c->subscribers) + delta);
    hdr_->subscribers =
        static_cast<uint64_t>(static_cast<int64_t>(hdr_->subscribers) + delta);
    if (Group* g = channel_group(c)) {
        g->subscribers =
            static_cast<uint64_t>(static_cast<int64_t>(g->subscribers) + delta);
    }
    if (delta > 0) {
        c->last_requested = now;
    }
    c->last_active = now;
}

// The slot stops reading the channel: messages it had not read stop waiting
// for it, its count goes, and the record is freed.
void Store::leave(uint32_t slot, SlotSub* ss)
{
    WorkerSlot& ws = hdr_->slots[slot];
    auto* c = ShmRef<Channel>{ss->channel}.get(base_);
    if (c != nullptr && c->serial == ss->serial) {
        MsgId cursor{ss->cursor_time, ss->cursor_tag};
        for (Message* m = msg(c->last);
             m != nullptr && MsgId{m->time, m->tag} > cursor; m = msg(m->prev))
        {
            if (m->pending > 0) {
                m->pending--;
            }
        }
        uint64_t bit = uint64_t{1} << slot;
        c->slot_mask &= ~bit;
        c->notify_mask &= ~bit;
        c->subscribers -=
            ss->count < c->subscribers ? ss->count : c->subscribers;
        hdr_->subscribers -=
            ss->count < hdr_->subscribers ? ss->count : hdr_->subscribers;
        if (Group* g = channel_group(c)) {
            g->subscribers -=
                ss->count < g->subscribers ? ss->count : g->subscribers;
        }
        release_read(c);
    }
    if (SlotSub* p = slot_sub(ss->prev)) {
        p->next = ss->next;
    } else {
        ws.subs = ss->next;
    }
    if (SlotSub* n = slot_sub(ss->next)) {
        n->prev = ss->prev;
    }
    arena_.free_locked(ss);
    if (c != nullptr && c->serial != 0) {
        maybe_free(c);
    }
}

void Store::unsubscribe(const Guard&, const Subscription& s)
{
    SlotSub* ss = slot_sub(s.slot_sub);
    if (ss != nullptr && s.slot < kMaxSlots) {
        leave(s.slot, ss);
    }
}

// ----------------------------------------------------------------- slots

std::array<int32_t, kMaxSlots> Store::slot_pids(const Guard&)
{
    std::array<int32_t, kMaxSlots> pids{};
    for (uint32_t s = 0; s < kMaxSlots; ++s) {
        pids[s] = hdr_->slots[s].pid;
    }
    return pids;
}

std::optional<uint64_t> Store::reap_slot(const Guard& g, uint32_t slot,
                                         int32_t pid, int64_t now)
{
    if (slot >= kMaxSlots || pid == 0 || hdr_->slots[slot].pid != pid) {
        return std::nullopt;
    }
    return release_slot(g, slot, now);
}

Result<uint32_t> Store::claim_slot(const Guard&, int32_t pid)
{
    for (uint32_t s = 0; s < kMaxSlots; ++s) {
        if (hdr_->slots[s].pid == 0) {
            hdr_->slots[s].pid = pid;
            return s;
        }
    }
    return Status(Code::kNoMemory, "all worker slots are taken");
}

void Store::set_watching(const Guard&, uint32_t slot, bool on)
{
    if (slot < kMaxSlots) {
        hdr_->slots[slot].watching = on ? 1 : 0;
    }
}

std::string_view Store::key(const Guard&, ChannelHandle h)
{
    Channel* c = channel(h);
    return c == nullptr ? std::string_view() : key_view(c);
}

uint64_t Store::release_slot(const Guard& g, uint32_t slot, int64_t now)
{
    if (slot >= kMaxSlots) {
        return 0;
    }
    WorkerSlot& ws = hdr_->slots[slot];
    while (ws.subs != 0) {
        leave(slot, slot_sub(ws.subs));
    }
    // The events of subscribers the worker still had (it was killed, or
    // exited with them): sent now, so that the counts they keep hold.
    uint64_t ring = 0;
    while (ws.events != 0) {
        ring |= unhold(g, slot, ShmRef<HeldEvent>{ws.events}.get(base_), now);
    }
    // Notices it never read of channels it held no record of (new ones a
    // wildcard watched for): their bit would keep the channel from being
    // freed and the next worker in this slot from being told.
    uint64_t bit = uint64_t{1} << slot;
    for (; ws.head != ws.tail; ws.head++) {
        MailboxEntry e = ws.mailbox[ws.head % kMailboxSize];
        auto* c = ShmRef<Channel>{e.off}.get(base_);
        if (c != nullptr && c->serial == e.serial) {
            c->notify_mask &= ~bit;
            maybe_free(c);
        }
    }
    ws.watching = 0;
    ws.head = ws.tail = 0;
    ws.overflow = 0;
    ws.bell_pending = 0;
    ws.pid = 0;
    // its counters stay counted; its gauges go with it
    if (ws.reported != 0) {
        hdr_->retired.add(ws.metrics.counters);
    }
    ws.metrics = metrics::Block{};
    ws.reported = 0;
    release_tenant_slot(slot);
    return ring & ~(uint64_t{1} << slot);
}

// -------------------------------------------------------- channel events

Result<Store::PublishResult> Store::publish_event(const Guard& g,
                                                  std::string_view key,
                                                  std::string_view body,
                                                  int64_t now,
                                                  std::string_view content_type)
{
    PublishParams p;
    p.key = key;
    p.body = body;
    p.content_type = content_type;
    p.max_messages = kEventsMaxMessages;
    p.timeout = kEventsMessageTtl;
    p.channel_timeout = kEventsChannelTimeout;
    p.now = now;
    return publish(g, p);
}

Result<uint32_t> Store::hold_event(const Guard&, uint32_t slot,
                                   std::string_view key, std::string_view body)
{
    if (slot >= kMaxSlots || key.size() > UINT32_MAX / 4
        || body.size() > UINT32_MAX / 4)
    {
        return Status(Code::kInvalidArgument, "bad held event");
    }
    void* mem =
        arena_.alloc_locked(sizeof(HeldEvent) + key.size() + body.size());
    if (mem == nullptr) {
        return Status(Code::kNoMemory, "shared memory zone is full");
    }
    auto* e = static_cast<HeldEvent*>(mem);
    WorkerSlot& ws = hdr_->slots[slot];
    e->prev = 0;
    e->next = ws.events;
    e->key_len = static_cast<uint32_t>(key.size());
    e->body_len = static_cast<uint32_t>(body.size());
    auto* bytes = reinterpret_cast<char*>(e + 1);
    std::copy(key.begin(), key.end(), bytes);
    std::copy(body.begin(), body.end(), bytes + key.size());
    uint32_t self = ShmRef<HeldEvent>::of(base_, e).off;
    if (ws.events != 0) {
        ShmRef<HeldEvent>{ws.events}.get(base_)->prev = self;
    }
    ws.events = self;
    return self;
}

uint64_t Store::fire_event(const Guard& g, uint32_t slot, uint32_t held,
                           int64_t now)
{
    HeldEvent* e = ShmRef<HeldEvent>{held}.get(base_);
    if (slot >= kMaxSlots || e == nullptr) {
        return 0;
    }
    return unhold(g, slot, e, now);
}

uint64_t Store::unhold(const Guard& g, uint32_t slot, HeldEvent* e, int64_t now)
{
    WorkerSlot& ws = hdr_->slots[slot];
    if (e->prev != 0) {
        ShmRef<HeldEvent>{e->prev}.get(base_)->next = e->next;
    } else {
        ws.events = e->next;
    }
    if (e->next != 0) {
        ShmRef<HeldEvent>{e->next}.get(base_)->prev = e->prev;
    }
    const auto* bytes = reinterpret_cast<const char*>(e + 1);
    // Copied out first: the publish may reuse the record's memory.
    std::string key(bytes, e->key_len);
    std::string body(bytes + e->key_len, e->body_len);
    arena_.free_locked(e);
    auto r = publish_event(g, key, body, now);
    return r.is_ok() ? r->ring : 0;
}

uint32_t Store::held_events(const Guard&, uint32_t slot)
{
    uint32_t n = 0;
    if (slot < kMaxSlots) {
        for (uint32_t off = hdr_->slots[slot].events; off != 0;
             off = ShmRef<HeldEvent>{off}.get(base_)->next)
        {
            ++n;
        }
    }
    return n;
}

// ------------------------------------------------------------------- gc

void Store::gc(const Guard&, int64_t now, int64_t channel_timeout,
               uint32_t max_buckets)
{
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->buckets}.get(base_);
    uint32_t n = max_buckets < hdr_->nbuckets ? max_buckets : hdr_->nbuckets;
    for (uint32_t i = 0; i < n; ++i) {
        uint32_t b = hdr_->gc_cursor++ & (hdr_->nbuckets - 1);
        for (uint32_t off = buckets[b]; off != 0;) {
            auto* c = ShmRef<Channel>{off}.get(base_);
            off = c->next_in_bucket;
            expire(c, now);
            if (c->buffered == 0 && c->first == 0 && c->subscribers == 0
                && c->slot_mask == 0 && c->notify_mask == 0
                && now - c->last_active >= (c->idle_timeout > 0
                                                ? c->idle_timeout
                                                : channel_timeout))
            {
                free_channel(c);
            }
        }
    }
    gc_tenants(now, max_buckets);
}

StoreStats Store::stats(const Guard&)
{
    StoreStats s;
    s.total_published = hdr_->total_published;
    s.stored_messages = hdr_->stored_messages;
    s.channels = hdr_->channels;
    s.subscribers = hdr_->subscribers;
    s.notices = hdr_->notices;
    for (const WorkerSlot& ws : hdr_->slots) {
        s.notices_queued += ws.tail - ws.head;
    }
    s.shm_used = arena_.used_bytes();
    s.shm_capacity = arena_.capacity_bytes();
    return s;
}

// ------------------------------------------------------------- metrics

void Store::put_metrics(const Guard&, uint32_t slot, const metrics::Block& b)
{
    if (slot >= kMaxSlots || hdr_->slots[slot].pid == 0) {
        return;
    }
    hdr_->slots[slot].metrics = b;
    hdr_->slots[slot].reported = 1;
}

metrics::Snapshot Store::metrics(const Guard& g)
{
    metrics::Snapshot m;
    m.sum.counters = hdr_->retired;
    for (const WorkerSlot& ws : hdr_->slots) {
        if (ws.pid == 0 || ws.reported == 0) {
            continue;
        }
        ++m.workers;
        m.sum.counters.add(ws.metrics.counters);
        const metrics::Gauges& gg = ws.metrics.gauges;
        for (size_t i = 0; i < metrics::kTransports; ++i) {
            m.sum.gauges.connections[i] += gg.connections[i];
        }
        m.sum.gauges.queue.add(gg.queue);
    }
    StoreStats st = stats(g);
    m.published = st.total_published;
    m.channels = st.channels;
    m.subscribers = st.subscribers;
    m.stored_messages = st.stored_messages;
    m.evicted = hdr_->evicted;
    m.shm_used = st.shm_used;
    m.shm_capacity = st.shm_capacity;
    tenant_rows(&m.tenants);
    return m;
}

}  // namespace pulse
