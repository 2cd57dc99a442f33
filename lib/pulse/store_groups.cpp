// The store's channel group table (store.h, "groups"): nchan's group
// accounting (pulse_channel_group_accounting) and limits
// (pulse_group_max_*), zone-wide, so that every worker counts and refuses
// the same; and nchan's subscriber info requests (pulse_subscriber_info),
// carried to the subscribers' workers by their channel's notices.

#include <cstring>
#include <string>
#include <vector>

#include "pulse/store.h"

namespace pulse {

namespace {

std::string_view name_of(const Group* g)
{
    return std::string_view(reinterpret_cast<const char*>(g + 1), g->key_len);
}

uint64_t message_bytes(const Message* m)
{
    return sizeof(Message) + m->ctype_len + m->event_len + m->body_len
           + m->deflated_len + m->ckey_len;
}

bool has_limits(const Group* g)
{
    const GroupLimits& l = g->limits;
    return l.channels != 0 || l.subscribers != 0 || l.messages != 0
           || l.messages_memory != 0;
}

Status refuse(const char* why)
{
    return Status(Code::kForbidden, why);
}

}  // namespace

std::string_view group_of(std::string_view key)
{
    size_t slash = key.find('/');
    return slash == std::string_view::npos ? std::string_view()
                                           : key.substr(0, slash);
}

Group* Store::find_group(std::string_view name, uint32_t hash)
{
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->group_buckets}.get(base_);
    for (uint32_t off = buckets[hash % kGroupBuckets]; off != 0;) {
        auto* g = ShmRef<Group>{off}.get(base_);
        if (g->hash == hash && name_of(g) == name) {
            return g;
        }
        off = g->next_in_bucket;
    }
    return nullptr;
}

Group* Store::group(std::string_view name)
{
    uint32_t hash = hash_key(name);
    if (Group* g = find_group(name, hash)) {
        return g;
    }
    auto* g =
        static_cast<Group*>(arena_.alloc_locked(sizeof(Group) + name.size()));
    if (g == nullptr) {
        return nullptr;
    }
    std::memset(static_cast<void*>(g), 0, sizeof(Group));
    if (!name.empty()) {
        std::memcpy(reinterpret_cast<char*>(g + 1), name.data(), name.size());
    }
    g->key_len = static_cast<uint32_t>(name.size());
    g->hash = hash;
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->group_buckets}.get(base_);
    uint32_t& head = buckets[hash % kGroupBuckets];
    g->next_in_bucket = head;
    head = ShmRef<Group>::of(base_, g).off;
    hdr_->groups++;
    return g;
}

Group* Store::channel_group(const Channel* c)
{
    return ShmRef<Group>{c->group}.get(base_);
}

// A channel record goes: its group goes too once no channel points to it
// and it has no limits to keep.
void Store::unref_group(Channel* c)
{
    Group* g = channel_group(c);
    c->group = 0;
    if (g != nullptr && --g->refs == 0 && !has_limits(g)) {
        drop_group(g);
    }
}

void Store::drop_group(Group* g)
{
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->group_buckets}.get(base_);
    uint32_t self = ShmRef<Group>::of(base_, g).off;
    for (uint32_t* link = &buckets[g->hash % kGroupBuckets]; *link != 0;
         link = &ShmRef<Group>{*link}.get(base_)->next_in_bucket)
    {
        if (*link == self) {
            *link = g->next_in_bucket;
            break;
        }
    }
    hdr_->groups--;
    arena_.free_locked(g);
}

void Store::count_message(const Channel* c, const Message* m, int sign)
{
    Group* g = channel_group(c);
    if (g == nullptr) {
        return;
    }
    uint64_t bytes = message_bytes(m);
    if (sign > 0) {
        g->messages++;
        g->messages_memory += bytes;
    } else {
        g->messages -= g->messages > 0 ? 1 : 0;
        g->messages_memory -=
            bytes < g->messages_memory ? bytes : g->messages_memory;
    }
}

// nchan's order and reasons (memstore.c): messages, their memory, then a
// new channel. Unlike nchan, a group at its channel limit still takes
// publishes to the channels it has.
Status Store::group_admits_publish(std::string_view key, const Channel* c,
                                   const PublishParams& p)
{
    const Group* g = c != nullptr ? channel_group(c)
                                  : find_group(pulse::group_of(key),
                                               hash_key(pulse::group_of(key)));
    if (g == nullptr) {
        return Status::ok();
    }
    const GroupLimits& l = g->limits;
    if (l.messages != 0 && g->messages >= l.messages) {
        return refuse("Group limit reached for number of messages.");
    }
    uint64_t bytes = sizeof(Message) + p.content_type.size() + p.event.size()
                     + p.body.size() + p.deflated.size()
                     + p.conflation_key.size();
    if (l.messages_memory != 0
        && g->messages_memory + bytes > l.messages_memory) {
        return refuse("Group limit reached for memory used by messages.");
    }
    if (c == nullptr && l.channels != 0 && g->channels >= l.channels) {
        return refuse("Group limit reached for number of channels.");
    }
    return Status::ok();
}

Status Store::group_admits_subscriber(const Guard&, std::string_view key)
{
    std::string_view name = pulse::group_of(key);
    const Group* g = find_group(name, hash_key(name));
    if (g == nullptr) {
        return Status::ok();
    }
    const GroupLimits& l = g->limits;
    if (l.subscribers != 0 && g->subscribers >= l.subscribers) {
        return refuse("");
    }
    if (l.channels != 0 && g->channels >= l.channels
        && find(key, hash_key(key)) == nullptr)
    {
        return refuse("");
    }
    return Status::ok();
}

GroupInfo Store::group_info(const Guard&, std::string_view name)
{
    GroupInfo info;
    if (const Group* g = find_group(name, hash_key(name))) {
        info.channels = g->channels;
        info.subscribers = g->subscribers;
        info.messages = g->messages;
        info.messages_memory = g->messages_memory;
        info.limits = g->limits;
    }
    return info;
}

Status Store::set_group_limits(const Guard&, std::string_view name,
                               const GroupLimitsUpdate& u)
{
    if (!u.any()) {
        return Status::ok();
    }
    Group* g = group(name);
    if (g == nullptr) {
        return Status(Code::kNoMemory, "shared memory zone is full");
    }
    GroupLimits& l = g->limits;
    l.channels = u.channels.value_or(l.channels);
    l.subscribers = u.subscribers.value_or(l.subscribers);
    l.messages = u.messages.value_or(l.messages);
    l.messages_memory = u.messages_memory.value_or(l.messages_memory);
    if (g->refs == 0 && !has_limits(g)) {
        drop_group(g);  // all limits lifted from a group with no channel
    }
    return Status::ok();
}

GroupInfo Store::remove_group(const Guard& guard, std::string_view name,
                              int64_t now, uint64_t* ring)
{
    GroupInfo before = group_info(guard, name);
    std::vector<std::string> keys;
    uint32_t* buckets = ShmRef<uint32_t>{hdr_->buckets}.get(base_);
    for (uint32_t b = 0; b < hdr_->nbuckets; ++b) {
        for (uint32_t off = buckets[b]; off != 0;) {
            const auto* c = ShmRef<Channel>{off}.get(base_);
            off = c->next_in_bucket;
            std::string_view key(reinterpret_cast<const char*>(c + 1),
                                 c->key_len);
            if (c->deleted == 0 && pulse::group_of(key) == name) {
                keys.emplace_back(key);
            }
        }
    }
    for (const std::string& key : keys) {
        if (auto d = remove(guard, key, now); d.is_ok()) {
            *ring |= d->ring;
        }
    }
    return before;
}

// ------------------------------------------------------ subscriber info

uint32_t Store::new_info_id(const Guard&)
{
    return ++hdr_->next_info_id;
}

uint64_t Store::request_info(const Guard&, std::string_view key, uint32_t id)
{
    Channel* c = find(key, hash_key(key));
    if (c == nullptr || c->slot_mask == 0) {
        return 0;
    }
    hdr_->info[hdr_->info_seq % kInfoRequests] = {
        ShmRef<Channel>::of(base_, c).off, c->serial, id, 0};
    hdr_->info_seq++;
    return notify(c);
}

void Store::info_requests(const Guard&, ChannelHandle h, uint32_t* seen,
                          std::vector<uint32_t>* ids)
{
    uint32_t from = *seen;
    if (hdr_->info_seq - from > kInfoRequests) {
        from = hdr_->info_seq - kInfoRequests;  // older ones overwritten
    }
    for (uint32_t i = from; i != hdr_->info_seq; ++i) {
        const InfoRequest& r = hdr_->info[i % kInfoRequests];
        if (r.off == h.off && r.serial == h.serial) {
            ids->push_back(r.id);
        }
    }
    *seen = hdr_->info_seq;
}

uint32_t Store::info_seq(const Guard&) const
{
    return hdr_->info_seq;
}

}  // namespace pulse
