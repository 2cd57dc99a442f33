// Subscribers: transport detection, message-id resolution, EventSource and
// long-poll / interval-poll (reference 3).

#include "ngx.h"

#include <algorithm>
#include <memory>
#include <new>
#include <string>

#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_http.h"
#include "ngx_http_pulse_worker.h"
#include "pulse/http_date.h"
#include "pulse/publish_request.h"
#include "pulse/sse.h"

namespace pulse::ngx {

namespace {

constexpr size_t kMaxLastIdLength = 128;  // nchan's limit

enum class Transport {
    kNone,
    kEventSource,
    kChunked,
    kMultipart,
    kRawStream,
    kLongPoll,
    kIntervalPoll,
};

bool contains_ci(std::string_view hay, std::string_view needle)
{
    if (needle.size() > hay.size()) {
        return false;
    }
    for (size_t i = 0; i + needle.size() <= hay.size(); ++i) {
        if (ngx_strncasecmp(
                reinterpret_cast<u_char*>(const_cast<char*>(hay.data() + i)),
                reinterpret_cast<u_char*>(const_cast<char*>(needle.data())),
                needle.size())
            == 0)
        {
            return true;
        }
    }
    return false;
}

// nchan_pubsub_handler's order (reference 3.1), WebSocket handled before.
Transport detect(ngx_http_request_t* r, ngx_uint_t roles)
{
    std::string_view accept =
        r->headers_in.accept ? sv(r->headers_in.accept->value) : "";
    if ((roles & NGX_HTTP_PULSE_SUB_EVENTSOURCE)
        && contains_ci(accept, "text/event-stream"))
    {
        return Transport::kEventSource;
    }
    auto te = header(r, "TE");
    if ((roles & NGX_HTTP_PULSE_SUB_CHUNKED) && te
        && contains_ci(*te, "chunked") && !contains_ci(*te, "q=0"))
    {
        return Transport::kChunked;
    }
    if ((roles & NGX_HTTP_PULSE_SUB_MULTIPART)
        && contains_ci(accept, "multipart/mixed"))
    {
        return Transport::kMultipart;
    }
    if (roles & NGX_HTTP_PULSE_SUB_INTERVALPOLL) {
        return Transport::kIntervalPoll;
    }
    if (roles & NGX_HTTP_PULSE_SUB_RAWSTREAM) {
        return Transport::kRawStream;
    }
    if (roles & NGX_HTTP_PULSE_SUB_LONGPOLL) {
        return Transport::kLongPoll;
    }
    return Transport::kNone;
}

}  // namespace

// Where the subscriber resumes (reference 3.2): If-Modified-Since with
// If-None-Match tags, If-None-Match alone as a full id, then
// pulse_subscriber_last_message_id (default $http_last_event_id
// $arg_last_event_id), else pulse_subscriber_first_message.
Result<std::optional<MultiMsgId>> resume_multi_id(
    ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf, size_t channels)
{
    auto found = [](const MultiMsgId& m) -> std::optional<MultiMsgId> {
        return m;
    };
    ngx_table_elt_t* ims = r->headers_in.if_modified_since;
    ngx_table_elt_t* inm = r->headers_in.if_none_match;
    if (ims != nullptr && !lcf->compound_etag) {
        auto t = parse_http_date(sv(ims->value));
        if (!t || *t <= 0) {
            return std::optional<MultiMsgId>();
        }
        if (inm == nullptr) {
            return Status(Code::kInvalidArgument, "Message ID invalid");
        }
        auto m = parse_msg_tags(*t, sv(inm->value), channels);
        if (!m.is_ok()) {
            return Status(Code::kInvalidArgument, "Message ID invalid");
        }
        return found(m.value());
    }
    if (inm != nullptr) {
        auto m = parse_msg_id(sv(inm->value), channels);
        if (!m.is_ok()) {
            return Status(Code::kInvalidArgument, "Message ID invalid");
        }
        return found(m.value());
    }
    std::string text;
    if (lcf->last_message_id != nullptr) {
        auto* cvs =
            static_cast<ngx_http_complex_value_t*>(lcf->last_message_id->elts);
        for (ngx_uint_t i = 0; i < lcf->last_message_id->nelts; ++i) {
            text = unescape(eval(r, &cvs[i]));
            if (!text.empty()) {
                break;
            }
        }
    } else {
        if (auto h = header(r, "Last-Event-ID")) {
            text = unescape(*h);
        }
        ngx_str_t arg;
        if (text.empty()
            && ngx_http_arg(r,
                            reinterpret_cast<u_char*>(
                                const_cast<char*>("last_event_id")),
                            13, &arg)
                   == NGX_OK)
        {
            text = unescape(sv(arg));
        }
    }
    if (text.empty()) {
        return std::optional<MultiMsgId>();
    }
    if (text.size() > kMaxLastIdLength) {
        return Status(Code::kInvalidArgument, "Message ID invalid");
    }
    auto m = parse_msg_id(text, channels);
    if (!m.is_ok()) {
        return Status(Code::kInvalidArgument, "Message ID invalid");
    }
    return found(m.value());
}

Result<std::optional<MsgId>> resume_id(ngx_http_request_t* r,
                                       ngx_http_pulse_loc_conf_t* lcf)
{
    auto m = resume_multi_id(r, lcf, 1);
    if (!m.is_ok()) {
        return m.status();
    }
    if (!m.value()) {
        return std::optional<MsgId>();
    }
    return std::optional<MsgId>(MsgId{m.value()->time, m.value()->tags[0]});
}

FirstMessage first_message(ngx_http_pulse_loc_conf_t* lcf)
{
    if (lcf->first_message == NGX_HTTP_PULSE_FIRST_NEWEST) {
        return FirstMessage{FirstMessage::kNewest};
    }
    return FirstMessage{static_cast<int>(lcf->first_message)};
}

namespace {

// Places a T in the request pool, destroyed with it.
template <typename T, typename... Args>
T* pool_new(ngx_http_request_t* r, Args&&... args)
{
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(T));
    if (cln == nullptr) {
        throw std::bad_alloc();
    }
    T* obj = new (cln->data) T(std::forward<Args>(args)...);
    cln->handler = [](void* data) noexcept { static_cast<T*>(data)->~T(); };
    return obj;
}

void add_cors_expose(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    if (!header(r, "Origin")) {
        return;
    }
    std::string etag = lcf->custom_etag_header.len
                           ? std::string(sv(lcf->custom_etag_header))
                           : std::string("Etag");
    add_header(r, "Access-Control-Expose-Headers",
               "Last-Modified, " + etag + ", Content-Type");
}

// -------------------------------------- EventSource and other HTTP streams
//
// One class streams EventSource, chunked, multipart/mixed and raw-stream
// responses: they differ only in their content type, first bytes, message
// framing (LocalMsg::encoded) and last bytes.
//
// Lifetime: the subscriber is a heap object. While it streams through its
// request (HTTP/2, or until its HTTP/1.x response header has gone out) the
// request pool's cleanup deletes it. An HTTP/1.x stream then *detaches*:
// the request, its pool and the client header buffer are freed, as nginx
// does for a keepalive connection, and the subscriber keeps only the
// connection (c->data), which it closes itself. An idle EventSource client
// so costs a connection pool and this object instead of a whole request.

class SseSubscriber final : public Subscriber, public Member::Owner {
public:
    SseSubscriber(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                  Transport t)
        : Subscriber(r),
          c_(r->connection),
          lcf_(lcf),
          transport_(t),
          writer_(r, lcf->subscriber_max_buffered)
    {
        for (ngx_event_t* ev : {&ping_, &timeout_, &detach_}) {
            ev->data = this;
            ev->log = c_->log;
        }
        ping_.handler = on_ping;
        timeout_.handler = on_timeout;
        detach_.handler = on_detach;
    }
    SseSubscriber(const SseSubscriber&) = delete;
    SseSubscriber& operator=(const SseSubscriber&) = delete;
    SseSubscriber(SseSubscriber&&) = delete;
    SseSubscriber& operator=(SseSubscriber&&) = delete;
    ~SseSubscriber() override
    {
        for (ngx_event_t* ev : {&ping_, &timeout_}) {
            if (ev->timer_set) {
                ngx_del_timer(ev);
            }
        }
        if (detach_.posted) {
            ngx_delete_posted_event(&detach_);
        }
        if (part_end_ != nullptr) {
            part_end_->unref();
        }
    }

    /// Joins `keys` (more than one: multiplexed) and starts the response.
    ngx_int_t start(const std::vector<std::string>& keys,
                    std::optional<MultiMsgId> after);
    void on_messages(const std::vector<MsgPtr>& msgs) override;
    void on_end(ngx_uint_t status) override;
    void member_messages(size_t index,
                         const std::vector<MsgPtr>& msgs) override;
    void member_end(size_t index, ngx_uint_t status) override;
    void on_writable();
    /// The request pool is going away: delete, unless detached from it.
    void request_freed()
    {
        if (!detached_) {
            delete this;
        }
    }

private:
    static void on_ping(ngx_event_t* ev) noexcept;
    static void on_timeout(ngx_event_t* ev) noexcept;
    static void on_detach(ngx_event_t* ev) noexcept;
    static void on_conn_read(ngx_event_t* ev) noexcept;
    static void on_conn_write(ngx_event_t* ev) noexcept;
    bool push_text(std::string text);
    bool send();
    void fail();
    void detach_request();
    void close_detached();

    bool push_message(LocalMsg& m);
    bool push_member_message(size_t index, LocalMsg& m);
    void deliver(const std::vector<MsgPtr>& msgs, Member* member, size_t index);
    void leave();
    bool chunked() const;

    ngx_connection_t* c_;
    ngx_http_pulse_loc_conf_t* lcf_;
    Transport transport_;
    std::vector<std::unique_ptr<Member>> members_;  // multiplexed
    MultiMsgId multi_;  // the last id shown, multiplexed
    StreamWriter writer_;
    Wire wire_ = Wire::kSse;
    std::string variant_;       // see LocalMsg::encoded
    std::string boundary_;      // multipart/mixed
    Blob* part_end_ = nullptr;  // multipart: "\r\n--<boundary>", framed
    ngx_event_t ping_{};
    ngx_event_t timeout_{};
    ngx_event_t detach_{};
    bool started_ = false;
    bool finishing_ = false;
    bool detached_ = false;
};

void sse_write_handler(ngx_http_request_t* r) noexcept
try {
    auto* s = static_cast<SseSubscriber*>(
        ngx_http_get_module_ctx(r, ngx_http_pulse_module));
    if (s != nullptr) {
        s->on_writable();
    }
}
PULSE_CATCH_VOID(r->connection->log)

ngx_int_t SseSubscriber::start(const std::vector<std::string>& keys,
                               std::optional<MultiMsgId> after)
{
    ngx_http_request_t* r = r_;
    if (transport_ == Transport::kEventSource
        && lcf_->eventsource_event != nullptr) {
        // the `event:` line of every message: a line break in it would
        // forge lines of this stream
        variant_ = eval(r, lcf_->eventsource_event);
        Status v = validate_field("pulse_eventsource_event value", variant_,
                                  kMaxEventLength);
        if (!v.is_ok()) {
            return send_response(r, NGX_HTTP_BAD_REQUEST, "", v.message());
        }
    }
    // The catch-up of every channel, in id order, with its channel index.
    std::vector<std::pair<MsgPtr, size_t>> catch_up;
    bool multi = keys.size() > 1;
    multi_.tags.assign(keys.size(), -1);
    for (size_t i = 0; i < keys.size(); ++i) {
        std::optional<MsgId> from;
        if (after) {
            from = MsgId{after->time, after->tags[i]};
        }
        Subscriber* who = this;
        if (multi) {
            members_.push_back(std::make_unique<Member>(this, i));
            who = members_.back().get();
        }
        auto join =
            Worker::get()->join(who, keys[i], ngx_time(), lcf_->existing_only,
                                lcf_->max_channel_subscribers, from,
                                first_message(lcf_), UINT32_MAX);
        if (!join.is_ok()) {
            leave();
            return send_response(r, http_status(join.status().code()), "",
                                 join.status().message());
        }
        for (MsgPtr& m : join->catch_up) {
            catch_up.emplace_back(std::move(m), i);
        }
    }
    std::stable_sort(
        catch_up.begin(), catch_up.end(),
        [](const auto& a, const auto& b) { return a.first->id < b.first->id; });
    // What the transport sends first, and how its messages are framed
    // (reference 3.5, 3.7-3.9).
    std::string_view ctype;
    std::string hello;
    Wire wire = Wire::kRaw;
    switch (transport_) {
        case Transport::kEventSource:
            ctype = "text/event-stream; charset=utf-8";
            hello = sse::kHello;
            wire = Wire::kSse;
            break;
        case Transport::kMultipart: {
            // This stream's own boundary: the shared parts leave it out,
            // so that no body can end another stream's part.
            boundary_ = stream::random_boundary(32);
            ctype =
                sv(pool_str(r->pool, "multipart/mixed; boundary=" + boundary_));
            hello = "--" + boundary_;
            wire = Wire::kMultipart;
            variant_ = lcf_->compound_etag ? "c" : "p";
            break;
        }
        case Transport::kRawStream:
            // nchan ends a non-empty separator with a newline
            variant_ = std::string(sv(lcf_->raw_stream_separator));
            if (!variant_.empty() && variant_.back() != '\n') {
                variant_ += '\n';
            }
            break;
        default:  // chunked: each message one chunk, nothing between
            break;
    }
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    if (!ctype.empty()) {
        r->headers_out.content_type.data =
            reinterpret_cast<u_char*>(const_cast<char*>(ctype.data()));
        r->headers_out.content_type.len = ctype.size();
        r->headers_out.content_type_len = ctype.size();
        r->headers_out.content_type_lowcase = nullptr;
    }
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }
    // After the header filters: HTTP/1.1 responses are chunked, and the
    // frames carry their chunk framing, made once per message.
    if (r->chunked) {
        wire = wire == Wire::kSse         ? Wire::kSseChunked
               : wire == Wire::kMultipart ? Wire::kMultipartChunked
                                          : Wire::kRawChunked;
    }
    wire_ = wire;
    if (transport_ == Transport::kMultipart) {
        std::string tail = "\r\n--" + boundary_;
        if (chunked()) {
            stream::wrap_chunk(tail);
        }
        part_end_ = Blob::make(tail);
    }
    auto* first = static_cast<ngx_buf_t*>(ngx_calloc_buf(r->pool));
    if (first == nullptr) {
        return NGX_ERROR;
    }
    if (!hello.empty()) {
        ngx_str_t h = pool_str(r->pool, hello);
        first->pos = h.data;
        first->last = h.data + h.len;
        first->memory = 1;
    }
    first->flush = 1;  // the header goes out now
    ngx_chain_t out{first, nullptr};
    rc = ngx_http_output_filter(r, &out);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }
    started_ = true;
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = sse_write_handler;
    ngx_http_set_ctx(r, this, ngx_http_pulse_module);
    if (r->stream == nullptr) {
        // Lets nginx close the stream at shutdown/reload like an idle
        // keepalive connection (ngx_close_idle_connections); the client
        // reconnects with Last-Event-ID and loses nothing.
        c_->idle = 1;
    }
    for (auto& [m, index] : catch_up) {
        bool ok = members_.empty() ? push_message(*m)
                                   : push_member_message(index, *m);
        if (!ok) {
            // More than the send buffer holds: end the stream after what
            // fits; the client resumes from its Last-Event-ID (skipping the
            // rest would be a silent gap).
            finishing_ = true;
            leave();
            break;
        }
    }
    if (lcf_->es_ping_interval > 0 && transport_ == Transport::kEventSource) {
        ngx_add_timer(&ping_,
                      static_cast<ngx_msec_t>(lcf_->es_ping_interval) * 1000);
    }
    if (lcf_->subscriber_timeout > 0) {
        ngx_add_timer(&timeout_,
                      static_cast<ngx_msec_t>(lcf_->subscriber_timeout) * 1000);
    }
    r->main->count++;
    // The first write, and for HTTP/1.x the detach, run from a posted event:
    // ending the stream here would finalize the request under the content
    // handler, which finalizes it again with our NGX_DONE.
    ngx_post_event(&detach_, &ngx_posted_events);
    return NGX_DONE;
}

void SseSubscriber::on_detach(ngx_event_t* ev) noexcept
try {
    auto* s = static_cast<SseSubscriber*>(ev->data);
    if (!s->send()) {
        return;  // the stream ended
    }
    if (s->r_ == nullptr || s->finishing_ || s->r_->stream != nullptr) {
        return;  // detached already, ending, or HTTP/2
    }
    if (s->r_->out != nullptr || s->c_->buffered) {
        return;  // the header is still going out; on_writable retries
    }
    s->detach_request();
}
PULSE_CATCH_VOID(ev->log)

void SseSubscriber::detach_request()
{
    ngx_http_request_t* r = r_;
    detached_ = true;  // the pool cleanup must not delete us now
    writer_.detach();
    r_ = nullptr;
    // Logs the request (status 200, the bytes so far) and frees its pool.
    if (!release_request(r, this, on_conn_read, on_conn_write,
                         "streaming events")) {
        close_detached();
    }
}

// The detached stream's read side: nothing is expected from the client, so
// EOF, an error, data (as nchan) or a shutdown (c->close) ends it.
void SseSubscriber::on_conn_read(ngx_event_t* ev) noexcept
try {
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    auto* s = static_cast<SseSubscriber*>(c->data);
    if (c->close) {
        s->close_detached();
        return;
    }
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
    if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
        if (ngx_handle_read_event(ev, 0) != NGX_OK) {
            s->close_detached();
        }
        return;
    }
    if (n == 0) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "client closed the event stream");
    }
    s->close_detached();
}
PULSE_CATCH_VOID(ev->log)

void SseSubscriber::on_conn_write(ngx_event_t* ev) noexcept
try {
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    static_cast<SseSubscriber*>(c->data)->on_writable();
}
PULSE_CATCH_VOID(ev->log)

void SseSubscriber::close_detached()
{
    ngx_connection_t* c = c_;
    leave();
    delete this;
    ngx_http_close_connection(c);
}

void SseSubscriber::on_messages(const std::vector<MsgPtr>& msgs)
{
    deliver(msgs, nullptr, 0);
}

void SseSubscriber::member_messages(size_t index,
                                    const std::vector<MsgPtr>& msgs)
{
    deliver(msgs, members_[index].get(), index);
}

// nchan: deleting any channel of a multiplexed subscription ends it.
void SseSubscriber::member_end(size_t index, ngx_uint_t status)
{
    (void) index;
    leave();
    on_end(status);
}

void SseSubscriber::leave()
{
    detach();
    for (auto& m : members_) {
        m->detach();
    }
}

void SseSubscriber::deliver(const std::vector<MsgPtr>& msgs, Member* member,
                            size_t index)
{
    bool any = false;
    if (!started_) {
        return;  // the catch-up at start covers these
    }
    for (const MsgPtr& m : msgs) {
        if (!(member != nullptr ? member->take(m->id) : take(m->id))) {
            continue;
        }
        bool ok = member != nullptr ? push_member_message(index, *m)
                                    : push_message(*m);
        if (!ok) {
            ngx_log_error(NGX_LOG_INFO, c_->log, 0,
                          PULSE_LOG_PREFIX
                          "subscriber too slow: more than %uz bytes unsent, "
                          "closing",
                          lcf_->subscriber_max_buffered);
            fail();
            return;
        }
        any = true;
    }
    if (!any) {
        return;
    }
    if (timeout_.timer_set) {
        ngx_add_timer(&timeout_,
                      static_cast<ngx_msec_t>(lcf_->subscriber_timeout) * 1000);
    }
    send();
}

// False when the message does not fit in the send buffer limit.
bool SseSubscriber::push_message(LocalMsg& m)
{
    Blob* b = m.encoded(wire_, variant_);
    if (b->size() != 0 && !writer_.push(b)) {
        return false;
    }
    return part_end_ == nullptr || writer_.push(part_end_);
}

// A multiplexed message shows the subscription's id (one time, a tag per
// channel), so its frame is this subscriber's own; streams without ids
// share the worker's.
bool SseSubscriber::push_member_message(size_t index, LocalMsg& m)
{
    multi_ = advance_multi_id(multi_, index, m.id);
    if (transport_ == Transport::kChunked
        || transport_ == Transport::kRawStream) {
        return push_message(m);
    }
    std::string id = to_string(multi_);
    std::string frame;
    if (transport_ == Transport::kEventSource) {
        sse::append_message(frame, id,
                            variant_.empty() ? std::string_view(m.event)
                                             : std::string_view(variant_),
                            m.body);
    } else {  // multipart: the tags in Etag, the time in Last-Modified
        bool compound = lcf_->compound_etag != 0;
        std::string tags = id.substr(id.find(':') + 1);
        stream::append_multipart_part(
            frame, boundary_,
            compound ? std::string() : format_http_date(multi_.time),
            compound ? id : tags, m.content_type, m.body);
    }
    if (chunked()) {
        stream::wrap_chunk(frame);
    }
    if (frame.empty()) {
        return true;
    }
    Blob* b = Blob::make(frame);
    bool ok = writer_.push(b);
    b->unref();
    return ok;
}

bool SseSubscriber::chunked() const
{
    return wire_ == Wire::kSseChunked || wire_ == Wire::kRawChunked
           || wire_ == Wire::kMultipartChunked;
}

// False when the text did not fit: the stream failed and `this` is gone.
bool SseSubscriber::push_text(std::string text)
{
    if (chunked()) {
        stream::wrap_chunk(text);
    }
    Blob* b = Blob::make(text);
    bool ok = writer_.push(b);
    b->unref();
    if (!ok) {
        fail();
    }
    return ok;
}

void SseSubscriber::on_end(ngx_uint_t status)
{
    if (finishing_) {
        return;
    }
    finishing_ = true;
    std::string text;
    if (transport_ == Transport::kMultipart) {
        text = "--\r\n";  // the last boundary becomes the closing one
    } else if (transport_ != Transport::kEventSource) {
        // chunked and raw streams just end
    } else if (status == NGX_HTTP_PULSE_GONE) {
        sse::append_status(text, 410, "410 Gone");
    } else if (status == NGX_HTTP_REQUEST_TIME_OUT) {
        sse::append_status(text, 408, "408 Request Timeout");
    }
    if (!text.empty() && !push_text(std::move(text))) {
        return;
    }
    if (detached_ && chunked()) {
        // The last chunk that nginx's chunked filter would have sent.
        Blob* b = Blob::make("0\r\n\r\n");
        writer_.push(b);
        b->unref();
    }
    send();
}

// Writes what is queued; when finishing and drained, ends the response.
// Returns false when the stream ended: `this` is gone then.
bool SseSubscriber::send()
{
    ngx_int_t rc = writer_.flush();
    if (rc == NGX_ERROR) {
        fail();
        return false;
    }
    if (rc == NGX_OK && finishing_) {
        leave();
        if (detached_) {
            close_detached();
            return false;
        }
        ngx_http_request_t* r = r_;
        c_->idle = 0;
        ngx_http_finalize_request(r, ngx_http_send_special(r, NGX_HTTP_LAST));
        return false;
    }
    return true;
}

void SseSubscriber::on_writable()
{
    if (c_->write->timedout) {
        fail();
        return;
    }
    if (!send()) {
        return;
    }
    // The header had not gone out when the detach was first tried.
    if (!detached_ && r_ != nullptr && r_->stream == nullptr && !detach_.posted)
    {
        ngx_post_event(&detach_, &ngx_posted_events);
    }
}

void SseSubscriber::fail()
{
    leave();
    if (detached_) {
        c_->error = 1;
        close_detached();
        return;
    }
    ngx_http_request_t* r = r_;
    c_->error = 1;
    ngx_http_finalize_request(r, NGX_ERROR);
}

void SseSubscriber::on_ping(ngx_event_t* ev) noexcept
try {
    auto* s = static_cast<SseSubscriber*>(ev->data);
    std::string text;
    sse::append_ping(text, sv(s->lcf_->es_ping_comment),
                     sv(s->lcf_->es_ping_event), sv(s->lcf_->es_ping_data));
    ngx_add_timer(&s->ping_,
                  static_cast<ngx_msec_t>(s->lcf_->es_ping_interval) * 1000);
    if (s->push_text(std::move(text))) {
        s->send();
    }
}
PULSE_CATCH_VOID(ev->log)

void SseSubscriber::on_timeout(ngx_event_t* ev) noexcept
try {
    auto* s = static_cast<SseSubscriber*>(ev->data);
    s->leave();
    s->on_end(NGX_HTTP_REQUEST_TIME_OUT);
}
PULSE_CATCH_VOID(ev->log)

// ------------------------------------------------------ long/interval poll

class PollSubscriber final : public Subscriber, public Member::Owner {
public:
    PollSubscriber(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                   bool interval)
        : Subscriber(r), lcf_(lcf), interval_(interval)
    {
        timeout_.handler = on_timeout;
        timeout_.data = this;
        timeout_.log = r->connection->log;
    }
    PollSubscriber(const PollSubscriber&) = delete;
    PollSubscriber& operator=(const PollSubscriber&) = delete;
    PollSubscriber(PollSubscriber&&) = delete;
    PollSubscriber& operator=(PollSubscriber&&) = delete;
    ~PollSubscriber() override
    {
        if (timeout_.timer_set) {
            ngx_del_timer(&timeout_);
        }
    }

    /// Joins `keys` (more than one: multiplexed): answers at once with the
    /// oldest newer message of any channel, else waits (long-poll) or
    /// answers 304 (interval-poll).
    ngx_int_t start(const std::vector<std::string>& keys,
                    std::optional<MultiMsgId> after);
    void on_messages(const std::vector<MsgPtr>& msgs) override;
    void on_end(ngx_uint_t status) override;
    void member_messages(size_t index,
                         const std::vector<MsgPtr>& msgs) override;
    void member_end(size_t index, ngx_uint_t status) override
    {
        (void) index;
        on_end(status);
    }

private:
    static void on_timeout(ngx_event_t* ev) noexcept;
    ngx_int_t respond(const LocalMsg& m, size_t index);
    ngx_int_t respond_status(ngx_uint_t status);
    void id_headers(const MultiMsgId& id);
    void leave();
    void answer(const LocalMsg& m, size_t index);

    ngx_http_pulse_loc_conf_t* lcf_;
    bool interval_;
    std::optional<MultiMsgId> asked_;
    size_t channels_ = 1;
    std::vector<std::unique_ptr<Member>> members_;  // multiplexed
    ngx_event_t timeout_{};
    bool waiting_ = false;
};

// Last-Modified carries the time and Etag the tag(s), or Etag the whole id
// in compound mode; a multiplexed id has a tag per channel.
void PollSubscriber::id_headers(const MultiMsgId& id)
{
    ngx_http_request_t* r = r_;
    r->disable_not_modified = 1;  // the ids are ours, not cache validators
    std::string_view etag_name = lcf_->custom_etag_header.len
                                     ? sv(lcf_->custom_etag_header)
                                     : std::string_view("Etag");
    std::string text = to_string(id);
    if (lcf_->compound_etag) {
        add_header(r, etag_name, text);
    } else {
        r->headers_out.last_modified_time = static_cast<time_t>(id.time);
        add_header(r, etag_name, text.substr(text.find(':') + 1));
    }
    add_header(r, "Vary", "If-None-Match, If-Modified-Since");
    add_cors_expose(r, lcf_);
}

ngx_int_t PollSubscriber::respond(const LocalMsg& m, size_t index)
{
    MultiMsgId shown;
    if (channels_ > 1) {
        MultiMsgId prev;
        if (asked_) {
            prev = *asked_;
        } else {
            prev.tags.assign(channels_, -1);
        }
        shown = advance_multi_id(prev, index, m.id);
    } else {
        shown.time = m.id.time;
        shown.tags = {m.id.tag};
    }
    id_headers(shown);
    return send_response(r_, NGX_HTTP_OK, m.content_type, m.body, false);
}

ngx_int_t PollSubscriber::respond_status(ngx_uint_t status)
{
    if (status == NGX_HTTP_NOT_MODIFIED) {
        if (asked_) {
            id_headers(*asked_);
        } else {
            add_header(r_, "Vary", "If-None-Match, If-Modified-Since");
        }
    }
    return send_response(r_, status, "", "");
}

void PollSubscriber::leave()
{
    detach();
    for (auto& m : members_) {
        m->detach();
    }
}

ngx_int_t PollSubscriber::start(const std::vector<std::string>& keys,
                                std::optional<MultiMsgId> after)
{
    asked_ = after;
    channels_ = keys.size();
    // the oldest buffered message newer than the asked id, of any channel
    MsgPtr first;
    size_t first_index = 0;
    for (size_t i = 0; i < keys.size(); ++i) {
        std::optional<MsgId> from;
        if (after) {
            from = MsgId{after->time, after->tags[i]};
        }
        Subscriber* who = this;
        if (keys.size() > 1) {
            members_.push_back(std::make_unique<Member>(this, i));
            who = members_.back().get();
        }
        auto join = Worker::get()->join(
            who, keys[i], ngx_time(), lcf_->existing_only,
            lcf_->max_channel_subscribers, from, first_message(lcf_), 1);
        if (!join.is_ok()) {
            leave();
            return send_response(r_, http_status(join.status().code()), "",
                                 join.status().message());
        }
        if (!join->catch_up.empty()
            && (!first || join->catch_up.front()->id < first->id))
        {
            first = join->catch_up.front();
            first_index = i;
        }
    }
    if (first) {
        leave();
        return respond(*first, first_index);
    }
    if (interval_) {
        leave();
        return respond_status(NGX_HTTP_NOT_MODIFIED);
    }
    waiting_ = true;
    ngx_http_set_ctx(r_, this, ngx_http_pulse_module);
    r_->read_event_handler = ngx_http_test_reading;
    if (r_->stream == nullptr) {
        r_->connection->idle = 1;
    }
    if (lcf_->subscriber_timeout > 0) {
        ngx_add_timer(&timeout_,
                      static_cast<ngx_msec_t>(lcf_->subscriber_timeout) * 1000);
    }
    r_->main->count++;
    return NGX_DONE;
}

void PollSubscriber::answer(const LocalMsg& m, size_t index)
{
    waiting_ = false;
    leave();
    ngx_http_request_t* r = r_;
    r->connection->idle = 0;
    ngx_http_finalize_request(r, respond(m, index));
}

void PollSubscriber::on_messages(const std::vector<MsgPtr>& msgs)
{
    if (!waiting_) {
        return;
    }
    for (const MsgPtr& m : msgs) {
        if (m->id > last_sent_) {
            answer(*m, 0);
            return;
        }
    }
}

void PollSubscriber::member_messages(size_t index,
                                     const std::vector<MsgPtr>& msgs)
{
    if (!waiting_) {
        return;
    }
    for (const MsgPtr& m : msgs) {
        if (members_[index]->take(m->id)) {
            answer(*m, index);
            return;
        }
    }
}

void PollSubscriber::on_end(ngx_uint_t status)
{
    if (!waiting_) {
        return;
    }
    waiting_ = false;
    leave();
    ngx_http_request_t* r = r_;
    r->connection->idle = 0;
    ngx_http_finalize_request(r, respond_status(status));
}

void PollSubscriber::on_timeout(ngx_event_t* ev) noexcept
try {
    static_cast<PollSubscriber*>(ev->data)->on_end(NGX_HTTP_REQUEST_TIME_OUT);
}
PULSE_CATCH_VOID(ev->log)

}  // namespace

ngx_int_t subscribe(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    Transport t = detect(r, lcf->roles);
    if (t == Transport::kNone) {
        return NGX_DECLINED;
    }
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }
    Worker* w = Worker::get();
    if (w == nullptr) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }
    auto keys = channel_keys(r, lcf, false);
    if (!keys.is_ok()) {
        return send_response(r, http_status(keys.status().code()), "",
                             keys.status().message());
    }
    bool poll = t == Transport::kLongPoll || t == Transport::kIntervalPoll;
    auto after = resume_multi_id(r, lcf, keys->size());
    if (!after.is_ok()) {
        return send_response(r, NGX_HTTP_BAD_REQUEST, "",
                             after.status().message());
    }
    if (!poll) {
        ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        auto* s = new SseSubscriber(r, lcf, t);
        cln->data = s;
        cln->handler = [](void* data) noexcept {
            static_cast<SseSubscriber*>(data)->request_freed();
        };
        return s->start(keys.value(), after.value());
    }
    return pool_new<PollSubscriber>(r, r, lcf, t == Transport::kIntervalPoll)
        ->start(keys.value(), after.value());
}

}  // namespace pulse::ngx
