#include "ngx_http_pulse_worker.h"

#include <signal.h>

#include <cerrno>
#include <new>

#include "ngx_http_pulse_conf.h"
#include "ngx_http_pulse_guard.h"
#include "pulse/http_date.h"
#include "pulse/sse.h"
#include "pulse/websocket.h"
#include "pulse/ws_protocol.h"

namespace pulse::ngx {

Worker* Worker::instance_ = nullptr;

namespace {

// Housekeeping period: message expiry, idle channels, dead slots.
constexpr ngx_msec_t kTickMs = 1000;
// Every bucket is swept within about 5 ticks, whatever the zone size.
constexpr uint32_t kGcTicksPerSweep = 5;
constexpr int64_t kDefaultChannelTimeout = 5;

bool process_alive(int32_t pid)
{
    return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace

// ------------------------------------------------------------------ Blob

Blob* Blob::make(std::string_view bytes)
{
    void* mem = ngx_alloc(sizeof(Blob) + bytes.size(), ngx_cycle->log);
    if (mem == nullptr) {
        throw std::bad_alloc();
    }
    auto* b = new (mem) Blob();
    b->size_ = bytes.size();
    b->data_ = reinterpret_cast<u_char*>(b + 1);
    ngx_memcpy(b->data_, bytes.data(), bytes.size());
    return b;
}

void Blob::unref()
{
    if (--refs_ == 0) {
        static_assert(std::is_trivially_destructible_v<Blob>);
        ngx_free(this);
    }
}

// -------------------------------------------------------------- LocalMsg

LocalMsg::LocalMsg(const MessageView& m)
    : id(m.id),
      prev_id(m.prev_id),
      content_type(m.content_type),
      event(m.event),
      body(m.body),
      deflated(m.deflated)
{}

LocalMsg::~LocalMsg()
{
    for (Enc& e : encodings_) {
        e.blob->unref();
    }
}

Blob* LocalMsg::encoded(Wire wire, std::string_view variant)
{
    for (Enc& e : encodings_) {
        if (e.wire == wire && e.variant == variant) {
            return e.blob;
        }
    }
    char idbuf[kMsgIdMaxText];
    std::string_view idtext(idbuf, format_msg_id(id, idbuf));
    std::string frame;
    switch (wire) {
        case Wire::kSse:
        case Wire::kSseChunked:
            sse::append_message(
                frame, idtext,
                variant.empty() ? std::string_view(event) : variant, body);
            if (wire == Wire::kSseChunked) {
                // nginx's chunked filter is bypassed for messages: frame
                // the chunk here, once for every subscriber.
                stream::wrap_chunk(frame);
            }
            break;
        case Wire::kRaw:
        case Wire::kRawChunked:
            frame.append(body).append(variant);
            if (wire == Wire::kRawChunked) {
                stream::wrap_chunk(frame);
            }
            break;
        case Wire::kMultipart:
        case Wire::kMultipartChunked: {
            bool compound = !variant.empty() && variant[0] == 'c';
            std::string_view boundary = variant.substr(variant.empty() ? 0 : 1);
            std::string date =
                compound ? std::string() : format_http_date(id.time);
            std::string etag =
                compound ? std::string(idtext) : std::to_string(id.tag);
            stream::append_multipart_part(frame, boundary, date, etag,
                                          content_type, body);
            if (wire == Wire::kMultipartChunked) {
                stream::wrap_chunk(frame);
            }
            break;
        }
        default: {
            bool z = wire == Wire::kWsPlainDeflate
                     || wire == Wire::kWsMetaDeflate
                     || wire == Wire::kWsJsonDeflate;
            ws::Opcode op = ws::is_binary_content(content_type)
                                ? ws::Opcode::kBinary
                                : ws::Opcode::kText;
            std::string payload;
            if (wire == Wire::kWsMeta || wire == Wire::kWsMetaDeflate) {
                ws::append_meta_payload(payload, idtext, content_type,
                                        z ? std::string_view() : body);
                if (z) {
                    // nchan's bytes: the header in stored blocks, then the
                    // body as compressed at publish time
                    payload = ws::deflate_stored(payload).append(deflated);
                }
            } else if (wire == Wire::kWsJson || wire == Wire::kWsJsonDeflate) {
                // the body is escaped into the JSON: compressed here, once
                // per worker and channel
                op = ws::Opcode::kText;
                payload = ws::json_message(variant, idtext, content_type, event,
                                           body);
                if (z) {
                    auto r = ws::deflate_message(
                        payload, Worker::get()->deflate_options());
                    if (!r.is_ok()) {
                        throw std::bad_alloc();
                    }
                    payload = std::move(r.value());
                }
            } else {
                payload = z ? deflated : body;
            }
            ws::append_frame(frame, op, payload, z);
            break;
        }
    }
    encodings_.push_back(Enc{wire, std::string(variant), Blob::make(frame)});
    return encodings_.back().blob;
}

// ---------------------------------------------------------- StreamWriter

namespace {
// Spare queue entries of this process (one thread per worker).
StreamWriter::Item* g_free_items = nullptr;
}  // namespace

StreamWriter::Item* StreamWriter::alloc_item()
{
    Item* it = g_free_items;
    if (it != nullptr) {
        g_free_items = it->next;
        return it;
    }
    void* mem = ngx_alloc(sizeof(Item), ngx_cycle->log);
    if (mem == nullptr) {
        throw std::bad_alloc();
    }
    return static_cast<Item*>(mem);
}

void StreamWriter::free_item(Item* it)
{
    static_assert(std::is_trivially_destructible_v<Item>);
    it->next = g_free_items;
    g_free_items = it;
}

bool StreamWriter::push(Blob* b)
{
    if (queued_ + b->size() > limit_) {
        return false;
    }
    Item* it = alloc_item();
    b->ref();
    it->blob = b;
    ngx_memzero(&it->buf, sizeof(it->buf));
    it->buf.memory = 1;
    // TLS: without it ngx_ssl_send_chain holds small frames back until a
    // record's worth has gathered
    it->buf.flush = 1;
    it->buf.start = it->buf.pos = const_cast<u_char*>(b->data());
    it->buf.end = it->buf.last = it->buf.pos + b->size();
    it->link.buf = &it->buf;
    it->link.next = nullptr;
    it->next = nullptr;
    it->passed = false;
    if (tail_ != nullptr) {
        tail_->next = it;
        tail_->link.next = &it->link;
    } else {
        head_ = it;
    }
    tail_ = it;
    queued_ += b->size();
    return true;
}

void StreamWriter::reap()
{
    while (head_ != nullptr && head_->buf.pos == head_->buf.last) {
        Item* it = head_;
        head_ = it->next;
        queued_ -= it->blob->size();
        it->blob->unref();
        free_item(it);
    }
    if (head_ == nullptr) {
        tail_ = nullptr;
    }
}

void StreamWriter::clear()
{
    while (head_ != nullptr) {
        Item* it = head_;
        head_ = it->next;
        it->blob->unref();
        free_item(it);
    }
    tail_ = nullptr;
    queued_ = 0;
}

namespace {

// nginx's ngx_unix_send for a plain TCP connection, without its debug-log
// check, whose read of the connection's own log was a cache miss on every
// delivery (3-4% of a fan-out profile with Debian's --with-debug nginx).
ssize_t send_one(ngx_connection_t* c, u_char* buf, size_t size)
{
    while (true) {
        ssize_t n = ::send(c->fd, buf, size, 0);
        if (n > 0) {
            if (static_cast<size_t>(n) < size) {
                c->write->ready = 0;
            }
            c->sent += n;
            return n;
        }
        ngx_err_t err = ngx_socket_errno;
        if (n == 0) {
            ngx_log_error(NGX_LOG_ALERT, c->log, err, "send() returned zero");
            c->write->ready = 0;
            return 0;
        }
        if (err == NGX_EAGAIN) {
            c->write->ready = 0;
            return NGX_AGAIN;
        }
        if (err != NGX_EINTR) {
            c->write->error = 1;
            (void) ngx_connection_error(c, err,
                                        const_cast<char*>("send() failed"));
            return NGX_ERROR;
        }
    }
}

}  // namespace

ngx_int_t StreamWriter::flush()
{
    ngx_connection_t* c = c_;
    if (c->error) {
        return NGX_ERROR;
    }
    if (r_ != nullptr && r_->stream != nullptr) {
        // HTTP/2: the stream's DATA frames are made by the output filters.
        ngx_chain_t* in = nullptr;
        ngx_chain_t** last = &in;
        for (Item* it = head_; it != nullptr; it = it->next) {
            if (!it->passed) {
                it->passed = true;
                it->buf.flush = 1;
                *last = &it->link;
                last = &it->link.next;
            }
        }
        *last = nullptr;
        ngx_int_t rc = ngx_http_output_filter(r_, in);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
        reap();
        return head_ == nullptr && r_->out == nullptr ? NGX_OK : NGX_AGAIN;
    }
    // HTTP/1.x: whatever nginx still holds (the response header) goes
    // first, then one send_chain (writev) of all queued frames.
    if (r_ != nullptr && (r_->out != nullptr || c->buffered)) {
        if (ngx_http_output_filter(r_, nullptr) == NGX_ERROR) {
            return NGX_ERROR;
        }
        if (r_->out != nullptr || c->buffered) {
            return ngx_handle_write_event(c->write, 0) == NGX_OK ? NGX_AGAIN
                                                                 : NGX_ERROR;
        }
    }
    // TLS keeps up to a record of its own (NGX_SSL_BUFFERED, one of the
    // low-level flags), to be flushed even when nothing of ours is queued.
    if (head_ == nullptr && (c->buffered & NGX_LOWLEVEL_BUFFERED) == 0) {
        return NGX_OK;
    }
    if (head_ != nullptr && head_ == tail_ && c->send == ngx_unix_send) {
        // One frame on plain TCP, the usual case of a live stream: send(2)
        // skips the iovec and VFS layers of writev(2), a few percent of the
        // kernel time per delivery. TLS always takes send_chain: OpenSSL
        // wants a write it could not finish retried with the same buffer,
        // and ngx_ssl_send_chain writes from its own.
        ngx_buf_t* b = &head_->buf;
        ssize_t n = send_one(c, b->pos, static_cast<size_t>(b->last - b->pos));
        if (n == NGX_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }
        if (n > 0) {
            b->pos += n;
        }
    } else {
        // the items' links form the chain, tail_->link.next == nullptr;
        // with none, TLS flushes what it holds
        ngx_chain_t* rest =
            c->send_chain(c, head_ != nullptr ? &head_->link : nullptr, 0);
        if (rest == NGX_CHAIN_ERROR) {
            c->error = 1;
            return NGX_ERROR;
        }
    }
    reap();
    if (head_ != nullptr || (c->buffered & NGX_LOWLEVEL_BUFFERED) != 0) {
        return ngx_handle_write_event(c->write, 0) == NGX_OK ? NGX_AGAIN
                                                             : NGX_ERROR;
    }
    return NGX_OK;
}

// ------------------------------------------------------------ Subscriber

Subscriber::~Subscriber()
{
    detach();
}

void Subscriber::detach()
{
    LocalChannel* lc = channel_;
    if (lc == nullptr) {
        return;
    }
    channel_ = nullptr;
    ngx_queue_remove(&link_.q);
    ngx_queue_init(&link_.q);
    lc->count--;
    Worker* w = Worker::get();
    if (w == nullptr) {
        return;
    }
    {
        Store::Guard g(w->store());
        w->store().add_subscribers(g, lc->sub, -1, ngx_time());
    }
    w->release_if_empty(lc);
}

// ---------------------------------------------------------------- Worker

ngx_int_t Worker::start(ngx_cycle_t* cycle, Zone* zone)
{
    auto* w = new Worker(cycle, zone);
    instance_ = w;
    auto* mcf = static_cast<ngx_http_pulse_main_conf_t*>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_pulse_module));
    w->deflate_.level = static_cast<int>(mcf->deflate_level);
    w->deflate_.mem_level = static_cast<int>(mcf->deflate_memlevel);
    w->deflate_.strategy = static_cast<int>(mcf->deflate_strategy);
    w->deflate_.window_bits = static_cast<int>(mcf->deflate_window);
    uint64_t token = 0;
    {
        Store::Guard g(zone->store);
        auto slot = zone->store.claim_slot(g, static_cast<int32_t>(ngx_pid),
                                           process_alive);
        if (!slot.is_ok()) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                          PULSE_LOG_PREFIX
                          "no free worker slot (%ui in use): this worker "
                          "cannot hold subscribers",
                          static_cast<ngx_uint_t>(kMaxSlots));
            return NGX_OK;
        }
        w->slot_ = slot.value();
        w->has_slot_ = true;
        token = zone->store.token();
    }
    if (w->bell_.open(cycle, token, w->slot_, on_bell, w) != NGX_OK) {
        return NGX_OK;  // logged; publishes still work, delivery is local
    }
    w->local_bell_.handler = on_bell;
    w->local_bell_.data = w;
    w->local_bell_.log = cycle->log;
    w->tick_.handler = on_tick;
    w->tick_.data = w;
    w->tick_.log = cycle->log;
    w->tick_.cancelable = 1;
    ngx_add_timer(&w->tick_, kTickMs);
    return NGX_OK;
}

void Worker::stop(ngx_cycle_t* cycle)
{
    Worker* w = instance_;
    if (w == nullptr) {
        return;
    }
    // Subscribers nginx has not closed by now (HTTP/2 streams) go first.
    w->shutdown_subscribers();
    if (w->tick_.timer_set) {
        ngx_del_timer(&w->tick_);
    }
    if (w->local_bell_.posted) {
        ngx_delete_posted_event(&w->local_bell_);
    }
    w->bell_.close();
    if (w->has_slot_) {
        Store::Guard g(w->store());
        w->store().release_slot(g, w->slot_);
    }
    (void) cycle;
    instance_ = nullptr;
    delete w;
}

void Worker::ring(uint64_t ring)
{
    for (uint32_t s = 0; ring != 0; ++s, ring >>= 1) {
        if ((ring & 1) == 0) {
            continue;
        }
        if (has_slot_ && s == slot_) {
            if (!local_bell_.posted) {
                ngx_post_event(&local_bell_, &ngx_posted_events);
            }
        } else {
            bell_.ring(s);
        }
    }
}

void Worker::on_bell(ngx_event_t* ev) noexcept
try {
    (void) ev;
    Worker* w = instance_;
    if (w == nullptr) {
        return;
    }
    w->bell_.drain();
    w->process_mailbox();
}
PULSE_CATCH_VOID(ev->log)

void Worker::on_tick(ngx_event_t* ev) noexcept
try {
    Worker* w = instance_;
    if (w != nullptr) {
        w->tick();
    }
}
PULSE_CATCH_VOID(ev->log)

void Worker::tick()
{
    if (ngx_exiting || ngx_quit || ngx_terminate) {
        shutdown_subscribers();
        return;
    }
    {
        Store::Guard g(store());
        store().gc(g, ngx_time(), kDefaultChannelTimeout,
                   store().bucket_count() / kGcTicksPerSweep + 1);
        if (++ticks_ % 5 == 0) {
            store().reap_dead_slots(g, process_alive);
        }
    }
    ngx_add_timer(&tick_, kTickMs);
}

void Worker::process_mailbox()
{
    if (!has_slot_) {
        return;
    }
    std::vector<std::pair<LocalChannel*, std::vector<MsgPtr>>> batch;
    std::vector<LocalChannel*> ended;
    int64_t now = ngx_time();
    {
        Store::Guard g(store());
        auto visit = [&](ChannelHandle h) {
            auto it = channels_.find(handle_key(h));
            if (it == channels_.end()) {
                return;
            }
            LocalChannel* lc = it->second.get();
            if (store().is_deleted(g, h)) {
                ended.push_back(lc);
                lc->busy++;
                return;
            }
            std::vector<MsgPtr> msgs;
            store().read_for_slot(g, lc->sub, now, [&](const MessageView& m) {
                msgs.push_back(std::make_shared<LocalMsg>(m));
            });
            if (!msgs.empty()) {
                lc->busy++;
                batch.emplace_back(lc, std::move(msgs));
            }
        };
        if (store().drain_mailbox(g, slot_, visit)) {
            // The mailbox overflowed: look at every channel held here.
            for (auto& entry : channels_) {
                visit(entry.second->sub.channel);
            }
        }
    }
    for (auto& [lc, msgs] : batch) {
        dispatch(lc, msgs);
    }
    for (LocalChannel* lc : ended) {
        end_all(lc, NGX_HTTP_PULSE_GONE);
    }
    for (auto& entry : batch) {
        entry.first->busy--;
        release_if_empty(entry.first);
    }
    for (LocalChannel* lc : ended) {
        lc->busy--;
        release_if_empty(lc);
    }
}

void Worker::dispatch(LocalChannel* lc, const std::vector<MsgPtr>& msgs)
{
    lc->busy++;
    ngx_queue_t* q = ngx_queue_head(&lc->subscribers_);
    while (q != ngx_queue_sentinel(&lc->subscribers_)) {
        ngx_queue_t* next = ngx_queue_next(q);
        owner(q)->on_messages(msgs);
        q = next;
    }
    lc->busy--;
}

void Worker::end_all(LocalChannel* lc, ngx_uint_t status)
{
    lc->busy++;
    while (!ngx_queue_empty(&lc->subscribers_)) {
        ngx_queue_t* q = ngx_queue_head(&lc->subscribers_);
        Subscriber* s = owner(q);
        s->detach();
        s->on_end(status);
    }
    lc->busy--;
}

void Worker::shutdown_subscribers()
{
    if (shutting_down_) {
        return;
    }
    shutting_down_ = true;
    std::vector<LocalChannel*> all;
    for (auto& entry : channels_) {
        all.push_back(entry.second.get());
        entry.second->busy++;
    }
    for (LocalChannel* lc : all) {
        end_all(lc, NGX_HTTP_SERVICE_UNAVAILABLE);
    }
    for (LocalChannel* lc : all) {
        lc->busy--;
        release_if_empty(lc);
    }
}

void Worker::release_if_empty(LocalChannel* lc)
{
    if (lc->count != 0 || lc->busy != 0) {
        return;
    }
    {
        Store::Guard g(store());
        store().unsubscribe(g, lc->sub);
    }
    channels_.erase(handle_key(lc->sub.channel));
}

Result<Worker::Join> Worker::join(Subscriber* s, std::string_view key,
                                  int64_t now, bool existing_only,
                                  ngx_int_t max_subscribers,
                                  std::optional<MsgId> after,
                                  FirstMessage first, uint32_t limit)
{
    if (!has_slot_ || shutting_down_) {
        return Status(Code::kAgain, "worker cannot hold subscribers");
    }
    Join j;
    std::vector<MsgPtr> live;
    LocalChannel* lc = nullptr;
    {
        Store::Guard g(store());
        auto sub = store().subscribe(g, key, slot_, now, existing_only);
        if (!sub.is_ok()) {
            return sub.status();
        }
        auto& slot = channels_[handle_key(sub->channel)];
        bool fresh = slot == nullptr;
        if (fresh) {
            slot = std::make_unique<LocalChannel>();
            slot->sub = sub.value();
        }
        lc = slot.get();
        auto info = store().info(g, lc->sub.channel, now);
        if (max_subscribers > 0 && info
            && info->subscribers >= static_cast<uint32_t>(max_subscribers))
        {
            if (fresh) {
                store().unsubscribe(g, lc->sub);
                channels_.erase(handle_key(lc->sub.channel));
            }
            return Status(Code::kForbidden,
                          "Maximum channel subscribers reached.");
        }
        if (!fresh) {
            // Bring this worker's live subscribers up to the slot cursor so
            // that the newcomer's catch-up and their stream meet exactly.
            store().read_for_slot(g, lc->sub, now, [&](const MessageView& m) {
                live.push_back(std::make_shared<LocalMsg>(m));
            });
        }
        j.gap = store().read_buffered(
            g, lc->sub.channel, after, first, now, limit,
            [&](const MessageView& m) {
                j.catch_up.push_back(std::make_shared<LocalMsg>(m));
            });
        MsgId last = store().last_id(g, lc->sub.channel);
        s->last_sent_ = after && *after > last ? *after : last;
        store().add_subscribers(g, lc->sub, 1, now);
    }
    s->channel_ = lc;
    ngx_queue_insert_tail(&lc->subscribers_, &s->link_.q);
    lc->count++;
    if (!live.empty()) {
        dispatch(lc, live);  // the newcomer skips these: all <= last_sent_
    }
    return j;
}

}  // namespace pulse::ngx
