#pragma once

#include "ngx.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ngx_http_pulse_ipc.h"
#include "ngx_http_pulse_shm.h"
#include "pulse/deflate.h"
#include "pulse/store.h"

namespace pulse::ngx {

/// Encoded bytes shared by every subscriber that sends them: one SSE frame
/// is built once per worker and written to all its subscribers.
class Blob {
public:
    static Blob* make(std::string_view bytes);
    void ref() { ++refs_; }
    void unref();
    const u_char* data() const { return data_; }
    size_t size() const { return size_; }

private:
    uint32_t refs_ = 1;
    size_t size_ = 0;
    u_char* data_ = nullptr;
};

/// The wire variants of a message a subscriber may need: EventSource (raw
/// or with its HTTP/1.1 chunk framing), and WebSocket frames in nchan's
/// plain and ws+meta.nchan forms and pulse.v1 JSON, each also
/// permessage-deflated.
enum class Wire : uint8_t {
    kSse,
    kSseChunked,
    kWsPlain,
    kWsPlainDeflate,
    kWsMeta,
    kWsMetaDeflate,
    kWsJson,
    kWsJsonDeflate,
    kRaw,  // body + separator: http-raw-stream, and chunked on HTTP/2
    kRawChunked,
    kMultipart,
    kMultipartChunked,
};

/// One message copied out of shared memory once per worker; its encodings
/// are made on first use and shared.
class LocalMsg {
public:
    LocalMsg(const MessageView& m);
    LocalMsg(const LocalMsg&) = delete;
    LocalMsg& operator=(const LocalMsg&) = delete;
    LocalMsg(LocalMsg&&) = delete;
    LocalMsg& operator=(LocalMsg&&) = delete;
    ~LocalMsg();

    /// The message framed for `wire`. `variant` is the location's event
    /// override for EventSource (empty: the message's own event), the
    /// channel id for pulse.v1, the separator for kRaw, and for kMultipart
    /// 'c' (compound etag) or 'p' (the part without its closing boundary,
    /// which each stream adds: its boundary is its own). An empty blob
    /// means nothing to send (an empty chunk would end the response).
    Blob* encoded(Wire wire, std::string_view variant);

    MsgId id;
    MsgId prev_id;
    std::string content_type;
    std::string event;
    std::string body;
    std::string deflated;  // the body compressed at publish time, or empty

private:
    struct Enc {
        Wire wire;
        std::string variant;
        Blob* blob;
    };
    std::vector<Enc> encodings_;
};
using MsgPtr = std::shared_ptr<LocalMsg>;

/// Writes queued Blobs to a streaming response: for HTTP/1.x straight to
/// the socket with one send_chain (writev) per flush, for HTTP/2 through
/// the output filters. Holds at most `limit` unsent bytes. Once the stream
/// is detached from its request, only the connection is used.
class StreamWriter {
public:
    StreamWriter(ngx_http_request_t* r, size_t limit)
        : r_(r), c_(r->connection), limit_(limit)
    {}
    /// From now on the stream has only its connection.
    void detach() { r_ = nullptr; }
    StreamWriter(const StreamWriter&) = delete;
    StreamWriter& operator=(const StreamWriter&) = delete;
    StreamWriter(StreamWriter&&) = delete;
    StreamWriter& operator=(StreamWriter&&) = delete;
    ~StreamWriter() { clear(); }

    /// Queues a blob; false when that would pass the limit (slow client).
    bool push(Blob* b);
    /// NGX_OK: all sent; NGX_AGAIN: waiting for the socket; NGX_ERROR.
    ngx_int_t flush();
    bool empty() const { return head_ == nullptr; }
    void clear();

    /// Queue entries: a buffer over a Blob and its chain link. They come
    /// from a per-process free list, so delivering allocates nothing once
    /// warm, an idle stream holds none, and their addresses stay put while
    /// nginx's output filters hold them (HTTP/2).
    struct Item {
        Blob* blob;
        ngx_buf_t buf;
        ngx_chain_t link;
        Item* next;
        bool passed;  // handed to the output filters (HTTP/2)
    };

private:
    static Item* alloc_item();
    static void free_item(Item* it);
    void reap();

    ngx_http_request_t* r_;  // nullptr once detached
    ngx_connection_t* c_;
    size_t limit_;
    size_t queued_ = 0;
    Item* head_ = nullptr;
    Item* tail_ = nullptr;
};

class LocalChannel;

/// A subscriber connection held by this worker (SSE, long-poll, ...).
/// Lives in its request's pool; joins one LocalChannel.
class Subscriber {
public:
    explicit Subscriber(ngx_http_request_t* r) : r_(r)
    {
        ngx_queue_init(&link_.q);
        link_.owner = this;
    }
    Subscriber(const Subscriber&) = delete;
    Subscriber& operator=(const Subscriber&) = delete;
    Subscriber(Subscriber&&) = delete;
    Subscriber& operator=(Subscriber&&) = delete;
    virtual ~Subscriber();

    /// New messages of its channel, oldest first (some may be older than
    /// what it already has: skip those).
    virtual void on_messages(const std::vector<MsgPtr>& msgs) = 0;
    /// The channel ends: 410 when deleted, 503 on worker shutdown.
    virtual void on_end(ngx_uint_t status) = 0;

    /// Leaves its channel (idempotent).
    void detach();
    /// True when `id` is newer than what it has sent; it then counts as
    /// sent.
    bool take(MsgId id)
    {
        if (id <= last_sent_) {
            return false;
        }
        last_sent_ = id;
        return true;
    }
    ngx_http_request_t* request() { return r_; }

    /// The queue link in its LocalChannel (standard layout: q first).
    struct Link {
        ngx_queue_t q;
        Subscriber* owner;
    };

protected:
    ngx_http_request_t* r_;
    /// Messages up to this id were sent (or predate the subscription).
    MsgId last_sent_;

private:
    friend class Worker;
    Link link_;
    LocalChannel* channel_ = nullptr;
};

/// One channel of a subscription to several (nchan's multiplexing): it
/// joins its channel and forwards to its owner with its position.
class Member final : public Subscriber {
public:
    class Owner {
    public:
        virtual void member_messages(size_t index,
                                     const std::vector<MsgPtr>& msgs) = 0;
        virtual void member_end(size_t index, ngx_uint_t status) = 0;

    protected:
        ~Owner() = default;
    };
    Member(Owner* owner, size_t index)
        : Subscriber(nullptr), owner_(owner), index_(index)
    {}
    Member(const Member&) = delete;
    Member& operator=(const Member&) = delete;
    Member(Member&&) = delete;
    Member& operator=(Member&&) = delete;
    ~Member() override = default;

    void on_messages(const std::vector<MsgPtr>& msgs) override
    {
        owner_->member_messages(index_, msgs);
    }
    void on_end(ngx_uint_t status) override
    {
        owner_->member_end(index_, status);
    }

private:
    Owner* owner_;
    size_t index_;
};

/// This worker's view of one channel with local subscribers.
class LocalChannel {
public:
    LocalChannel() { ngx_queue_init(&subscribers_); }
    Store::Subscription sub;
    uint32_t count = 0;
    uint32_t busy = 0;

private:
    friend class Worker;
    friend class Subscriber;
    ngx_queue_t subscribers_;
};

/// The per-process runtime: worker slot, doorbell, local channels.
class Worker {
public:
    /// nullptr in the master, or when no location uses pulse.
    static Worker* get() { return instance_; }
    static ngx_int_t start(ngx_cycle_t* cycle, Zone* zone);
    static void stop(ngx_cycle_t* cycle);

    Store& store() { return zone_->store; }
    /// permessage-deflate settings for published messages (http level).
    const ws::DeflateOptions& deflate_options() const { return deflate_; }
    uint32_t slot() const { return slot_; }

    struct Join {
        std::vector<MsgPtr> catch_up;
        bool gap = false;
        bool existed = true;
    };
    /// Subscribes `s` to channel `key` and returns the buffered messages it
    /// asked for. Fails with kNotFound (existing_only and no channel),
    /// kForbidden (max subscribers reached) or kNoMemory.
    Result<Join> join(Subscriber* s, std::string_view key, int64_t now,
                      bool existing_only, ngx_int_t max_subscribers,
                      std::optional<MsgId> after, FirstMessage first,
                      uint32_t limit);
    void leave(Subscriber* s);

    /// Wakes the workers of `ring` (a publish or delete result).
    void ring(uint64_t ring);
    /// Drops a local channel once it has no subscribers left.
    void release_if_empty(LocalChannel* lc);

private:
    Worker(ngx_cycle_t* cycle, Zone* zone) : cycle_(cycle), zone_(zone) {}
    static void on_bell(ngx_event_t* ev) noexcept;
    static void on_tick(ngx_event_t* ev) noexcept;
    void process_mailbox();
    void tick();
    void shutdown_subscribers();
    void dispatch(LocalChannel* lc, const std::vector<MsgPtr>& msgs);
    void end_all(LocalChannel* lc, ngx_uint_t status);
    static Subscriber* owner(ngx_queue_t* q)
    {
        return reinterpret_cast<Subscriber::Link*>(q)->owner;
    }

    static uint64_t handle_key(ChannelHandle h)
    {
        return (uint64_t{h.off} << 32) | h.serial;
    }

    static Worker* instance_;
    ngx_cycle_t* cycle_;
    Zone* zone_;
    uint32_t slot_ = 0;
    bool has_slot_ = false;
    bool shutting_down_ = false;
    Doorbell bell_;
    ngx_event_t local_bell_{};
    ngx_event_t tick_{};
    ngx_msec_t ticks_ = 0;
    ws::DeflateOptions deflate_;
    std::unordered_map<uint64_t, std::unique_ptr<LocalChannel>> channels_;
};

}  // namespace pulse::ngx
