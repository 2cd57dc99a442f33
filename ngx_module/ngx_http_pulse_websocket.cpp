// WebSocket connections (RFC 6455, 7692): the handshake, frame I/O on the
// connection, nchan's plain and ws+meta.nchan subscribers, publishing over
// the socket, and the pulse.v1 JSON protocol (docs/websocket.md). Frames
// are parsed and built by lib/pulse/websocket.h.
//
// Lifetime: a WsConn is a heap object. The 101 response is written raw to
// the socket, then (from a posted event) the request is freed as for a
// detached EventSource stream and the connection is all that is left:
// c->data is the WsConn, which closes it. Locations with
// pulse_websocket_upstream keep their request instead, because commands
// are subrequests of it; the request pool then owns the WsConn.

#include "ngx.h"

#include <algorithm>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_http.h"
#include "ngx_http_pulse_worker.h"
#include "pulse/channel_id.h"
#include "pulse/deflate.h"
#include "pulse/publish_request.h"
#include "pulse/websocket.h"
#include "pulse/ws_protocol.h"

namespace pulse::ngx {

namespace {

using ws::close_code::kGoingAway;
using ws::close_code::kInternalError;
using ws::close_code::kInvalidData;
using ws::close_code::kNormal;
using ws::close_code::kPolicy;
using ws::close_code::kTooBig;

// How long a closing connection waits for the client's close frame.
constexpr ngx_msec_t kCloseTimeoutMs = 1000;
// Commands in flight per connection.
constexpr unsigned kMaxCommandsInFlight = 16;

enum class Mode : uint8_t { kPlain, kMeta, kJson };

class WsConn;

// One channel a connection is subscribed to.
class WsSub final : public Subscriber {
public:
    WsSub(WsConn* conn, std::string channel, size_t index = 0)
        : Subscriber(nullptr),
          conn_(conn),
          channel_(std::move(channel)),
          index_(index)
    {}
    WsSub(const WsSub&) = delete;
    WsSub& operator=(const WsSub&) = delete;
    WsSub(WsSub&&) = delete;
    WsSub& operator=(WsSub&&) = delete;
    ~WsSub() override = default;

    void on_messages(const std::vector<MsgPtr>& msgs) override;
    void on_end(ngx_uint_t status) override;
    const std::string& channel() const { return channel_; }
    /// Position in a multiplexed URL subscription.
    size_t index() const { return index_; }

private:
    WsConn* conn_;
    std::string channel_;  // as the client named it (pulse.v1)
    size_t index_;
};

// The close frame for a subscriber status (reference 3.6).
std::pair<uint16_t, std::string> close_for_status(ngx_uint_t status)
{
    switch (status) {
        case NGX_HTTP_PULSE_GONE:
            return {kGoingAway, "410 Gone"};
        case NGX_HTTP_FORBIDDEN:
            return {kPolicy, "403 Forbidden"};
        case NGX_HTTP_INTERNAL_SERVER_ERROR:
            return {kInternalError, "500 Internal Server Error"};
        case 507:
            return {kInternalError, "507 Insufficient Storage"};
        case NGX_HTTP_REQUEST_TIME_OUT:
            return {kNormal, "408 408 Request Timeout"};
        case NGX_HTTP_SERVICE_UNAVAILABLE:
            // nchan: a subscriber dequeued otherwise (worker shutdown)
            return {kNormal, "410 Gone"};
        default:
            break;
    }
    std::string reason = std::to_string(status);
    return {status >= 500 ? kInternalError : kNormal, reason + " " + reason};
}

// The pulse.v1 error code for a Status of the store or the id parser.
std::string_view json_code(Code code)
{
    switch (code) {
        case Code::kNotFound:
            return "not_found";
        case Code::kForbidden:
            return "forbidden";
        case Code::kNoMemory:
            return "storage_full";
        case Code::kAgain:
            return "unavailable";
        case Code::kTooLarge:
            return "too_large";
        default:
            return "bad_request";
    }
}

struct Settings {
    Mode mode = Mode::kPlain;
    std::string protocol;  // echoed Sec-WebSocket-Protocol
    std::optional<ws::DeflateAgreement> deflate;
    bool compress_out = false;
    std::vector<std::string> sub_keys;
    std::vector<std::string> pub_keys;
    std::optional<MultiMsgId> after;
    PublishSpec spec;
    std::string content_type;  // for plain/meta publishes
    std::string accept;        // channel-info format of publish replies
    std::string group;         // pulse.v1 channel group
    std::string identity;
};

class WsConn {
public:
    WsConn(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf, Settings s)
        : r_(r),
          c_(r->connection),
          lcf_(lcf),
          set_(std::move(s)),
          writer_(r, lcf->subscriber_max_buffered),
          parser_(ws::Parser::Options{lcf->ws_max_message_size,
                                      set_.deflate.has_value()})
    {
        writer_.detach();  // frames go straight to the socket
        for (ngx_event_t* ev :
             {&start_ev_, &ping_, &timeout_, &close_timer_, &destroy_ev_})
        {
            ev->data = this;
            ev->log = c_->log;
        }
        start_ev_.handler = on_start;
        ping_.handler = on_ping;
        timeout_.handler = on_timeout;
        close_timer_.handler = on_close_timeout;
        destroy_ev_.handler = on_destroy;
    }
    WsConn(const WsConn&) = delete;
    WsConn& operator=(const WsConn&) = delete;
    WsConn(WsConn&&) = delete;
    WsConn& operator=(WsConn&&) = delete;
    ~WsConn()
    {
        subs_.clear();
        for (ngx_event_t* ev : {&ping_, &timeout_, &close_timer_}) {
            if (ev->timer_set) {
                ngx_del_timer(ev);
            }
        }
        for (ngx_event_t* ev : {&start_ev_, &destroy_ev_}) {
            if (ev->posted) {
                ngx_delete_posted_event(ev);
            }
        }
    }

    ngx_int_t start(const std::string& accept_key);
    void deliver(WsSub& s, const std::vector<MsgPtr>& msgs);
    void sub_ended(WsSub& s, ngx_uint_t status);
    /// The request pool is going away: delete, unless detached from it.
    void request_freed()
    {
        if (!detached_) {
            delete this;
        }
    }
    void on_read();
    void on_write();

private:
    static void on_start(ngx_event_t* ev) noexcept;
    static void on_ping(ngx_event_t* ev) noexcept;
    static void on_timeout(ngx_event_t* ev) noexcept;
    static void on_close_timeout(ngx_event_t* ev) noexcept;
    static void on_destroy(ngx_event_t* ev) noexcept;
    static void on_conn_read(ngx_event_t* ev) noexcept;
    static void on_conn_write(ngx_event_t* ev) noexcept;
    static ngx_int_t on_command_done(ngx_http_request_t* sr, void* data,
                                     ngx_int_t rc) noexcept;

    bool detach_request();
    bool feed(std::string_view bytes);
    bool handle(ws::Event& e);
    bool handle_message(std::string payload, bool binary);
    void handle_request(std::string_view text);
    void json_subscribe(const ws::Request& req);
    void json_unsubscribe(const ws::Request& req);
    void json_publish(const ws::Request& req);
    void json_command(const ws::Request& req);
    void publish_frame(std::string_view payload, bool binary);
    Result<std::string> json_key(std::string_view channel) const;
    void send_error(const ws::Request& req, const Status& st)
    {
        send_text(ws::error_frame(json_code(st.code()), st.message(), req.id,
                                  req.channel));
    }
    WsSub* find_sub(std::string_view channel);
    void push_catch_up(WsSub& s, const std::vector<MsgPtr>& msgs);
    bool push_message(WsSub& s, LocalMsg& m);
    Wire wire_for(const LocalMsg& m) const;

    bool send_frame(ws::Opcode op, std::string_view payload);
    bool send_text(std::string_view text)
    {
        return send_frame(ws::Opcode::kText, text);
    }
    bool push_blob(Blob* b);
    void too_slow();
    void flush();
    void close_with(uint16_t code, std::string_view reason);
    void abort();
    void destroy_later();
    void destroy();
    void drop_subs();
    void reset_timeout();

    ngx_http_request_t* r_;  // nullptr once detached
    ngx_connection_t* c_;
    ngx_http_pulse_loc_conf_t* lcf_;
    Settings set_;
    StreamWriter writer_;
    ws::Parser parser_;
    std::unique_ptr<ws::Inflater> inflater_;
    std::vector<std::unique_ptr<WsSub>> subs_;
    MultiMsgId multi_;      // multiplexed ws+meta.nchan: the last id shown
    std::string leftover_;  // bytes read with the request header
    ngx_event_t start_ev_{};
    ngx_event_t ping_{};
    ngx_event_t timeout_{};
    ngx_event_t close_timer_{};
    ngx_event_t destroy_ev_{};
    unsigned commands_ = 0;
    bool started_ = false;
    bool detached_ = false;
    bool awaiting_pong_ = false;
    bool close_sent_ = false;
    bool close_after_flush_ = false;
    bool dead_ = false;  // being destroyed: no more I/O
};

struct CommandCtx {
    WsConn* conn;
    std::string id;
    bool answered = false;
};

void ws_read_handler(ngx_http_request_t* r) noexcept
try {
    static_cast<WsConn*>(ngx_http_get_module_ctx(r, ngx_http_pulse_module))
        ->on_read();
}
PULSE_CATCH_VOID(r->connection->log)

void ws_write_handler(ngx_http_request_t* r) noexcept
try {
    static_cast<WsConn*>(ngx_http_get_module_ctx(r, ngx_http_pulse_module))
        ->on_write();
}
PULSE_CATCH_VOID(r->connection->log)

// -------------------------------------------------------------- delivery

void WsSub::on_messages(const std::vector<MsgPtr>& msgs)
{
    conn_->deliver(*this, msgs);
}

void WsSub::on_end(ngx_uint_t status)
{
    conn_->sub_ended(*this, status);
}

Wire WsConn::wire_for(const LocalMsg& m) const
{
    bool z = set_.compress_out && !m.deflated.empty();
    switch (set_.mode) {
        case Mode::kMeta:
            return z ? Wire::kWsMetaDeflate : Wire::kWsMeta;
        case Mode::kJson:
            return z ? Wire::kWsJsonDeflate : Wire::kWsJson;
        case Mode::kPlain:
            break;
    }
    return z ? Wire::kWsPlainDeflate : Wire::kWsPlain;
}

void WsConn::deliver(WsSub& s, const std::vector<MsgPtr>& msgs)
{
    if (dead_ || close_sent_ || !started_) {
        return;
    }
    bool any = false;
    for (const MsgPtr& m : msgs) {
        if (!s.take(m->id)) {
            continue;
        }
        if (!push_message(s, *m)) {
            too_slow();
            return;
        }
        any = true;
    }
    if (any) {
        reset_timeout();
        flush();
    }
}

// The buffered messages a new subscription asked for. What does not fit
// in pulse_subscriber_max_buffered is not skipped silently: the socket is
// closed after what fits, and the client resumes from the last id it got.
// One message for `s`: the worker's shared frame, or with a multiplexed
// ws+meta.nchan subscription a frame of its own (its id has a tag per
// channel). False when it does not fit in pulse_subscriber_max_buffered.
bool WsConn::push_message(WsSub& s, LocalMsg& m)
{
    if (set_.mode != Mode::kMeta || set_.sub_keys.size() < 2) {
        return writer_.push(m.encoded(wire_for(m), s.channel()));
    }
    multi_ = advance_multi_id(multi_, s.index(), m.id);
    std::string payload;
    ws::append_meta_payload(payload, to_string(multi_), m.content_type, m.body);
    std::string frame;
    ws::append_frame(frame,
                     ws::is_binary_content(m.content_type) ? ws::Opcode::kBinary
                                                           : ws::Opcode::kText,
                     payload);
    Blob* b = Blob::make(frame);
    bool ok = writer_.push(b);
    b->unref();
    return ok;
}

void WsConn::push_catch_up(WsSub& s, const std::vector<MsgPtr>& msgs)
{
    for (const MsgPtr& m : msgs) {
        if (!push_message(s, *m)) {
            close_with(kGoingAway,
                       "Catch-up over pulse_subscriber_max_buffered: resume "
                       "from the last id.");
            return;
        }
    }
}

void WsConn::sub_ended(WsSub& s, ngx_uint_t status)
{
    if (dead_ || close_sent_) {
        return;
    }
    if (set_.mode == Mode::kJson && status == NGX_HTTP_PULSE_GONE) {
        // one channel of several went away: say so, keep the socket
        std::string channel = s.channel();
        for (auto it = subs_.begin(); it != subs_.end(); ++it) {
            if (it->get() == &s) {
                // deleting `s` here is safe: the worker detached it and
                // iterates from the channel's queue head
                subs_.erase(it);
                break;
            }
        }
        send_text(ws::reply_frame("gone", "", channel, R"("status":410)"));
        flush();
        return;
    }
    if (set_.mode == Mode::kJson && status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        close_with(kGoingAway, "Server shutting down.");
        return;
    }
    auto [code, reason] = close_for_status(status);
    close_with(code, reason);
}

// ------------------------------------------------------------- handshake

ngx_int_t WsConn::start(const std::string& accept_key)
{
    ngx_http_request_t* r = r_;
    // Join first: a refused subscription is still a plain HTTP answer.
    std::vector<std::pair<MsgPtr, WsSub*>> catch_up;
    multi_.tags.assign(set_.sub_keys.size(), -1);
    for (size_t i = 0; i < set_.sub_keys.size(); ++i) {
        const std::string& key = set_.sub_keys[i];
        auto sub = std::make_unique<WsSub>(
            this, std::string(key.substr(key.find('/') + 1)), i);
        std::optional<MsgId> from;
        if (set_.after) {
            from = MsgId{set_.after->time, set_.after->tags[i]};
        }
        auto join =
            Worker::get()->join(sub.get(), key, ngx_time(), lcf_->existing_only,
                                lcf_->max_channel_subscribers, from,
                                first_message(lcf_), UINT32_MAX);
        if (!join.is_ok()) {
            subs_.clear();
            return send_response(r, http_status(join.status().code()), "",
                                 join.status().message());
        }
        for (MsgPtr& m : join->catch_up) {
            catch_up.emplace_back(std::move(m), sub.get());
        }
        subs_.push_back(std::move(sub));
    }
    std::stable_sort(
        catch_up.begin(), catch_up.end(),
        [](const auto& a, const auto& b) { return a.first->id < b.first->id; });

    std::string head =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: "
        + accept_key + "\r\n";
    if (!set_.protocol.empty()) {
        head += "Sec-WebSocket-Protocol: " + set_.protocol + "\r\n";
    }
    if (set_.deflate) {
        head += "Sec-WebSocket-Extensions: " + ws::format_deflate(*set_.deflate)
                + "\r\n";
    }
    // what the handler added (CORS)
    for_each_header(&r->headers_out.headers, [&](ngx_table_elt_t& h) {
        if (h.hash != 0) {
            head.append(sv(h.key)).append(": ").append(sv(h.value));
            head += "\r\n";
        }
    });
    head += "\r\n";
    Blob* b = Blob::make(head);
    writer_.push(b);  // an empty writer holds any first blob
    b->unref();
    started_ = true;
    for (auto& [m, sub] : catch_up) {
        if (close_sent_ || dead_) {
            break;
        }
        push_catch_up(*sub, {m});
    }

    r->headers_out.status = NGX_HTTP_SWITCHING_PROTOCOLS;
    r->header_sent = 1;  // nginx must never write a response of its own
    r->keepalive = 0;
    if (r->header_in->pos < r->header_in->last) {
        leftover_.assign(
            reinterpret_cast<const char*>(r->header_in->pos),
            static_cast<size_t>(r->header_in->last - r->header_in->pos));
        r->header_in->pos = r->header_in->last;
    }
    ngx_http_set_ctx(r, this, ngx_http_pulse_module);
    r->read_event_handler = ws_read_handler;
    r->write_event_handler = ws_write_handler;
    if (lcf_->ws_upstream.len != 0) {
        // A kept request is ended by nginx itself at shutdown
        // (ngx_http_request_handler sees c->close): say goodbye first.
        ngx_http_cleanup_t* cln = ngx_http_cleanup_add(r, 0);
        if (cln == nullptr) {
            throw std::bad_alloc();
        }
        cln->data = this;
        cln->handler = [](void* data) noexcept {
            auto* w = static_cast<WsConn*>(data);
            if (w->c_->close && !w->dead_) {
                try {
                    w->close_with(kGoingAway, "Server shutting down.");
                } catch (...) {
                    // best effort: the connection closes anyway
                }
            }
        };
    }
    c_->idle = 1;  // graceful shutdown closes it like a keepalive connection
    if (lcf_->ws_ping_interval > 0) {
        ngx_add_timer(&ping_,
                      static_cast<ngx_msec_t>(lcf_->ws_ping_interval) * 1000);
    }
    if (!subs_.empty() && lcf_->subscriber_timeout > 0) {
        reset_timeout();
    }
    r->main->count++;
    // The request is freed (or kept) from a posted event: the content
    // handler's caller still finalizes it with our NGX_DONE.
    ngx_post_event(&start_ev_, &ngx_posted_events);
    return NGX_DONE;
}

void WsConn::on_start(ngx_event_t* ev) noexcept
try {
    auto* w = static_cast<WsConn*>(ev->data);
    if (w->lcf_->ws_upstream.len == 0) {
        if (!w->detach_request()) {
            return;  // destroyed
        }
    } else {
        ngx_connection_t* c = w->c_;
        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }
    }
    w->flush();
    if (!w->dead_) {
        w->on_read();  // the leftover, and whatever epoll already reported
    }
}
PULSE_CATCH_VOID(ev->log)

// False when the connection could not be kept: it is destroyed then.
bool WsConn::detach_request()
{
    ngx_http_request_t* r = r_;
    detached_ = true;  // the pool cleanup must not delete us now
    r_ = nullptr;
    // Logs the 101 and frees the request.
    if (!release_request(r, this, on_conn_read, on_conn_write,
                         "serving a WebSocket"))
    {
        destroy();
        return false;
    }
    return true;
}

void WsConn::on_conn_read(ngx_event_t* ev) noexcept
try {
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    static_cast<WsConn*>(c->data)->on_read();
}
PULSE_CATCH_VOID(ev->log)

void WsConn::on_conn_write(ngx_event_t* ev) noexcept
try {
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    static_cast<WsConn*>(c->data)->on_write();
}
PULSE_CATCH_VOID(ev->log)

// ------------------------------------------------------------------- I/O

void WsConn::on_read()
{
    if (dead_) {
        return;
    }
    ngx_connection_t* c = c_;
    if (c->close) {
        // worker shutdown (ngx_close_idle_connections): say goodbye
        close_with(kGoingAway, "Server shutting down.");
        destroy();
        return;
    }
    if (!leftover_.empty()) {
        std::string bytes;
        bytes.swap(leftover_);
        if (!feed(bytes)) {
            return;
        }
    }
    u_char buf[16384];
    for (;;) {
        ssize_t n = c->recv(c, buf, sizeof(buf));
        if (n == NGX_AGAIN) {
            break;
        }
        if (n == 0 || n == NGX_ERROR) {
            c->error = n == NGX_ERROR;
            destroy();
            return;
        }
        if (!feed(std::string_view(reinterpret_cast<const char*>(buf),
                                   static_cast<size_t>(n))))
        {
            return;
        }
        if (static_cast<size_t>(n) < sizeof(buf)) {
            break;
        }
    }
    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        destroy();
    }
}

void WsConn::on_write()
{
    if (dead_) {
        return;
    }
    if (c_->write->timedout) {
        c_->error = 1;
        destroy();
        return;
    }
    flush();
}

// False when the connection is closing or gone: stop reading.
bool WsConn::feed(std::string_view bytes)
{
    std::vector<ws::Event> events;
    Status st = parser_.feed(bytes, events);
    for (ws::Event& e : events) {
        if (!handle(e)) {
            return false;
        }
    }
    if (!st.is_ok()) {
        close_with(parser_.close_code(), st.message());
        return false;
    }
    return !dead_;
}

bool WsConn::handle(ws::Event& e)
{
    switch (e.kind) {
        case ws::Event::Kind::kPing:
            if (!close_sent_) {
                send_frame(ws::Opcode::kPong, e.payload);
                flush();
            }
            return !dead_;
        case ws::Event::Kind::kPong:
            awaiting_pong_ = false;
            return true;
        case ws::Event::Kind::kClose:
            if (close_sent_) {
                destroy();  // the closing handshake is complete
                return false;
            }
            // echo the client's code and reason, then close the TCP
            // connection once it is sent (the server closes first)
            drop_subs();
            if (e.code == 0) {
                send_frame(ws::Opcode::kClose, "");
            } else {
                send_frame(ws::Opcode::kClose,
                           ws::close_payload(e.code, e.payload));
            }
            close_sent_ = true;
            close_after_flush_ = true;
            flush();
            return false;
        case ws::Event::Kind::kMessage:
            break;
    }
    if (close_sent_) {
        return true;  // data after our close frame is ignored
    }
    std::string payload = std::move(e.payload);
    if (e.compressed) {
        if (!inflater_) {
            inflater_ = std::make_unique<ws::Inflater>();
        }
        auto out =
            inflater_->inflate(payload, lcf_->ws_max_message_size, false);
        if (!out.is_ok()) {
            if (out.status().code() == Code::kTooLarge) {
                close_with(kTooBig,
                           "Message larger than "
                               + std::to_string(lcf_->ws_max_message_size)
                               + " bytes.");
            } else {
                close_with(kInvalidData, "Invalid permessage-deflate data");
            }
            return false;
        }
        payload = std::move(out.value());
        if (set_.deflate && set_.deflate->client_no_context_takeover) {
            inflater_.reset();  // nothing to keep: free the window
        }
        if (!e.binary && !ws::valid_utf8(payload)) {
            close_with(kInvalidData, "Invalid text frame (not UTF8).");
            return false;
        }
    }
    return handle_message(std::move(payload), e.binary);
}

bool WsConn::handle_message(std::string payload, bool binary)
{
    if (!binary && lcf_->ws_heartbeat_in.len > 0
        && payload == sv(lcf_->ws_heartbeat_in))
    {
        send_text(sv(lcf_->ws_heartbeat_out));
        flush();
        return !dead_;
    }
    if (set_.mode == Mode::kJson) {
        if (binary) {
            send_text(ws::error_frame(
                "bad_request", "pulse.v1 requests are text frames.", ""));
        } else {
            handle_request(payload);
        }
        flush();
        return !dead_;
    }
    if ((lcf_->roles & NGX_HTTP_PULSE_PUB_WEBSOCKET) == 0) {
        close_with(kPolicy, "Publishing not allowed.");
        return false;
    }
    publish_frame(payload, binary);
    return !dead_ && !close_sent_;
}

// nchan's WebSocket publisher (reference 2.5).
void WsConn::publish_frame(std::string_view payload, bool binary)
{
    std::string_view ctype = binary
                                 ? std::string_view("application/octet-stream")
                                 : std::string_view(set_.content_type);
    auto out = publish_to(c_->log, set_.pub_keys, set_.spec, payload, ctype, "",
                          std::nullopt);
    if (!out.is_ok()) {
        auto [code, reason] =
            close_for_status(http_status(out.status().code()));
        close_with(code, reason);
        return;
    }
    if ((lcf_->roles & NGX_HTTP_PULSE_SUB_WEBSOCKET) == 0) {
        std::string_view ct;
        send_text(info_body(set_.accept, out->info, &ct));
    }
    flush();
}

// ---------------------------------------------------------------- pulse.v1

void WsConn::handle_request(std::string_view text)
{
    ws::RequestError err;
    auto req = ws::parse_request(text, &err);
    if (!req) {
        send_text(ws::error_frame(err.code, err.message, err.id));
        return;
    }
    switch (req->type) {
        case ws::Request::Type::kPing:
            send_text(ws::reply_frame("pong", req->id, ""));
            return;
        case ws::Request::Type::kSubscribe:
            json_subscribe(*req);
            return;
        case ws::Request::Type::kUnsubscribe:
            json_unsubscribe(*req);
            return;
        case ws::Request::Type::kPublish:
            json_publish(*req);
            return;
        case ws::Request::Type::kCommand:
            json_command(*req);
            return;
    }
}

Result<std::string> WsConn::json_key(std::string_view channel) const
{
    if (channel.size() > static_cast<size_t>(lcf_->max_channel_id_length)) {
        return Status(Code::kForbidden, "Channel id too long.");
    }
    return channel_key(set_.group, channel);
}

WsSub* WsConn::find_sub(std::string_view channel)
{
    for (auto& s : subs_) {
        if (s->channel() == channel) {
            return s.get();
        }
    }
    return nullptr;
}

void WsConn::json_subscribe(const ws::Request& req)
{
    if ((lcf_->roles & NGX_HTTP_PULSE_SUB_WEBSOCKET) == 0) {
        send_text(ws::error_frame("forbidden",
                                  "Subscribing is not allowed here.", req.id,
                                  req.channel));
        return;
    }
    if (find_sub(req.channel) != nullptr) {
        send_text(ws::error_frame("already_subscribed",
                                  "Already subscribed to this channel.", req.id,
                                  req.channel));
        return;
    }
    if (subs_.size() >= static_cast<size_t>(lcf_->max_channels_per_connection))
    {
        send_text(ws::error_frame(
            "too_many_channels",
            "At most " + std::to_string(lcf_->max_channels_per_connection)
                + " channels per connection.",
            req.id, req.channel));
        return;
    }
    auto key = json_key(req.channel);
    if (!key.is_ok()) {
        send_error(req, key.status());
        return;
    }
    std::optional<MsgId> after;
    if (req.last_event_id) {
        auto id = parse_msg_id(*req.last_event_id);
        if (!id.is_ok()) {
            send_text(ws::error_frame("bad_request", "Message ID invalid",
                                      req.id, req.channel));
            return;
        }
        after = MsgId{id->time, id->tags[0]};
    }
    auto sub = std::make_unique<WsSub>(this, req.channel);
    auto join = Worker::get()->join(
        sub.get(), key.value(), ngx_time(), lcf_->existing_only,
        lcf_->max_channel_subscribers, after, first_message(lcf_), UINT32_MAX);
    if (!join.is_ok()) {
        send_error(req, join.status());
        return;
    }
    WsSub& s = *sub;
    subs_.push_back(std::move(sub));
    send_text(ws::reply_frame("subscribed", req.id, req.channel,
                              join->gap ? R"("gap":true)" : ""));
    push_catch_up(s, join->catch_up);
    if (lcf_->subscriber_timeout > 0) {
        reset_timeout();
    }
}

void WsConn::json_unsubscribe(const ws::Request& req)
{
    for (auto it = subs_.begin(); it != subs_.end(); ++it) {
        if ((*it)->channel() == req.channel) {
            subs_.erase(it);
            send_text(ws::reply_frame("unsubscribed", req.id, req.channel));
            return;
        }
    }
    send_text(ws::error_frame("not_subscribed",
                              "Not subscribed to this channel.", req.id,
                              req.channel));
}

void WsConn::json_publish(const ws::Request& req)
{
    if ((lcf_->roles & NGX_HTTP_PULSE_PUB_WEBSOCKET) == 0) {
        send_text(ws::error_frame("forbidden",
                                  "Publishing is not allowed here.", req.id,
                                  req.channel));
        return;
    }
    auto key = json_key(req.channel);
    if (!key.is_ok()) {
        send_error(req, key.status());
        return;
    }
    auto out = publish_to(c_->log, {key.value()}, set_.spec, req.data,
                          req.content_type, req.event, std::nullopt);
    if (!out.is_ok()) {
        send_error(req, out.status());
        return;
    }
    std::string extra =
        R"("message_id":)" + ws::json_string(to_string(out->info.last_id))
        + R"(,"subscribers":)" + std::to_string(out->info.subscribers);
    send_text(ws::reply_frame("published", req.id, req.channel, extra));
}

// A command goes to pulse_websocket_upstream as a POST subrequest with the
// channel and identity in headers; the reply goes back to this client.
void WsConn::json_command(const ws::Request& req)
{
    if (lcf_->ws_upstream.len == 0 || r_ == nullptr) {
        send_text(ws::error_frame("not_configured",
                                  "This location takes no commands.", req.id,
                                  req.channel));
        return;
    }
    if (commands_ >= kMaxCommandsInFlight) {
        send_text(ws::error_frame("busy", "Too many commands in flight; retry.",
                                  req.id, req.channel));
        return;
    }
    ngx_http_request_t* r = r_;
    auto* psr = static_cast<ngx_http_post_subrequest_t*>(
        ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t)));
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(CommandCtx));
    if (psr == nullptr || cln == nullptr) {
        throw std::bad_alloc();
    }
    auto* ctx = new (cln->data) CommandCtx{this, req.id};
    cln->handler = [](void* data) noexcept {
        static_cast<CommandCtx*>(data)->~CommandCtx();
    };
    psr->handler = on_command_done;
    psr->data = ctx;
    ngx_http_request_t* sr = nullptr;
    ngx_str_t uri = lcf_->ws_upstream;
    if (ngx_http_subrequest(
            r, &uri, nullptr, &sr, psr,
            NGX_HTTP_SUBREQUEST_IN_MEMORY | NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        send_text(ws::error_frame("upstream_failed",
                                  "Cannot start the command.", req.id,
                                  req.channel));
        return;
    }
    sr->method = NGX_HTTP_POST;
    static ngx_str_t post = ngx_string("POST");
    sr->method_name = post;
    // a body and headers of its own: the channel and the identity
    sr->request_body = static_cast<ngx_http_request_body_t*>(
        ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t)));
    ngx_buf_t* b = ngx_create_temp_buf(r->pool, req.data.size() + 1);
    ngx_chain_t* cl = ngx_alloc_chain_link(r->pool);
    if (sr->request_body == nullptr || b == nullptr || cl == nullptr
        || ngx_list_init(&sr->headers_in.headers, r->pool, 4,
                         sizeof(ngx_table_elt_t))
               != NGX_OK)
    {
        throw std::bad_alloc();
    }
    b->last = ngx_cpymem(b->pos, req.data.data(), req.data.size());
    b->last_buf = 1;
    cl->buf = b;
    cl->next = nullptr;
    sr->request_body->bufs = cl;
    sr->headers_in.content_length_n = static_cast<off_t>(req.data.size());
    sr->headers_in.content_length = nullptr;
    sr->headers_in.content_type = nullptr;
    sr->headers_in.chunked = 0;
    auto add_in = [&](std::string_view name, std::string_view value) {
        auto* h = static_cast<ngx_table_elt_t*>(
            ngx_list_push(&sr->headers_in.headers));
        if (h == nullptr) {
            throw std::bad_alloc();
        }
        h->key = pool_str(r->pool, name);
        h->value = pool_str(r->pool, value);
        h->lowcase_key =
            static_cast<u_char*>(ngx_pnalloc(r->pool, name.size()));
        if (h->lowcase_key == nullptr) {
            throw std::bad_alloc();
        }
        h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, h->key.len);
        return h;
    };
    add_in("X-Pulse-Channel", req.channel);
    add_in("X-Pulse-Identity", set_.identity);
    // the proxy module sends Content-Length from content_length_n
    sr->headers_in.content_type = add_in("Content-Type", "application/json");
    commands_++;
}

ngx_int_t WsConn::on_command_done(ngx_http_request_t* sr, void* data,
                                  ngx_int_t rc) noexcept
try {
    auto* ctx = static_cast<CommandCtx*>(data);
    // nginx may call this more than once for one subrequest (an error,
    // then the finalization of its error page): answer the first only.
    if (ctx->answered) {
        return rc;
    }
    ctx->answered = true;
    WsConn* w = ctx->conn;
    w->commands_--;
    if (w->dead_ || w->close_sent_) {
        return rc;
    }
    ngx_uint_t status = sr->headers_out.status;
    std::string body;
    if (sr->out != nullptr && sr->out->buf != nullptr) {
        body.assign(
            reinterpret_cast<const char*>(sr->out->buf->pos),
            static_cast<size_t>(sr->out->buf->last - sr->out->buf->pos));
    }
    if (rc == NGX_ERROR || status == 0 || rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        if (status == 0 || status < NGX_HTTP_SPECIAL_RESPONSE) {
            status = rc >= NGX_HTTP_SPECIAL_RESPONSE
                         ? static_cast<ngx_uint_t>(rc)
                         : NGX_HTTP_BAD_GATEWAY;
        }
        w->send_text(ws::error_frame(
            "upstream_failed",
            "The command upstream answered " + std::to_string(status) + ".",
            ctx->id));
    } else {
        std::string extra = R"("status":)" + std::to_string(status);
        if (ws::valid_utf8(body)) {
            extra += R"(,"data":)" + ws::json_string(body);
        }
        w->send_text(ws::reply_frame("reply", ctx->id, "", extra));
    }
    w->flush();
    return rc;
} catch (...) {
    return NGX_ERROR;
}

// --------------------------------------------------------------- writing

bool WsConn::push_blob(Blob* b)
{
    if (dead_) {
        return false;
    }
    if (!writer_.push(b)) {
        too_slow();
        return false;
    }
    return true;
}

void WsConn::too_slow()
{
    ngx_log_error(NGX_LOG_INFO, c_->log, 0,
                  PULSE_LOG_PREFIX
                  "WebSocket client too slow: more than %uz bytes unsent, "
                  "closing",
                  lcf_->subscriber_max_buffered);
    abort();
}

bool WsConn::send_frame(ws::Opcode op, std::string_view payload)
{
    std::string frame;
    ws::append_frame(frame, op, payload);
    Blob* b = Blob::make(frame);
    bool ok = push_blob(b);
    b->unref();
    return ok;
}

void WsConn::flush()
{
    if (dead_ || !started_) {
        return;
    }
    if (!detached_ && start_ev_.posted) {
        return;  // on_start flushes
    }
    ngx_int_t rc = writer_.flush();
    if (rc == NGX_ERROR) {
        abort();
        return;
    }
    if (rc == NGX_OK && close_after_flush_) {
        destroy_later();
    }
}

// Starts the closing handshake: our close frame, then wait for the
// client's (at most kCloseTimeoutMs).
void WsConn::close_with(uint16_t code, std::string_view reason)
{
    if (dead_ || close_sent_) {
        return;
    }
    drop_subs();
    close_sent_ = true;
    if (ping_.timer_set) {
        ngx_del_timer(&ping_);
    }
    if (timeout_.timer_set) {
        ngx_del_timer(&timeout_);
    }
    send_frame(ws::Opcode::kClose, ws::close_payload(code, reason));
    if (dead_) {
        return;
    }
    ngx_add_timer(&close_timer_, kCloseTimeoutMs);
    flush();
}

void WsConn::abort()
{
    c_->error = 1;
    destroy_later();
}

void WsConn::drop_subs()
{
    // may run inside the worker's dispatch over one of these channels:
    // detach first (the worker copes), free later with the connection
    for (auto& s : subs_) {
        s->detach();
    }
}

void WsConn::destroy_later()
{
    if (dead_) {
        return;
    }
    dead_ = true;
    drop_subs();
    ngx_post_event(&destroy_ev_, &ngx_posted_events);
}

void WsConn::on_destroy(ngx_event_t* ev) noexcept
try {
    auto* w = static_cast<WsConn*>(ev->data);
    w->destroy();
}
PULSE_CATCH_VOID(ev->log)

void WsConn::destroy()
{
    dead_ = true;
    drop_subs();
    ngx_connection_t* c = c_;
    if (detached_) {
        delete this;
        ngx_http_close_connection(c);
        return;
    }
    ngx_http_request_t* r = r_;
    c->error = 1;
    ngx_http_finalize_request(r, NGX_ERROR);
    ngx_http_run_posted_requests(c);
}

void WsConn::reset_timeout()
{
    if (lcf_->subscriber_timeout > 0 && !close_sent_) {
        ngx_add_timer(&timeout_,
                      static_cast<ngx_msec_t>(lcf_->subscriber_timeout) * 1000);
    }
}

void WsConn::on_ping(ngx_event_t* ev) noexcept
try {
    auto* w = static_cast<WsConn*>(ev->data);
    if (w->awaiting_pong_) {
        w->close_with(kGoingAway, "No pong received.");
        return;
    }
    w->awaiting_pong_ = true;
    ngx_add_timer(&w->ping_,
                  static_cast<ngx_msec_t>(w->lcf_->ws_ping_interval) * 1000);
    w->send_frame(ws::Opcode::kPing, "");
    w->flush();
}
PULSE_CATCH_VOID(ev->log)

void WsConn::on_timeout(ngx_event_t* ev) noexcept
try {
    auto* w = static_cast<WsConn*>(ev->data);
    auto [code, reason] = close_for_status(NGX_HTTP_REQUEST_TIME_OUT);
    w->close_with(code, reason);
}
PULSE_CATCH_VOID(ev->log)

void WsConn::on_close_timeout(ngx_event_t* ev) noexcept
try {
    static_cast<WsConn*>(ev->data)->destroy();
}
PULSE_CATCH_VOID(ev->log)

// What the client offers: pulse.v1, then ws+meta.nchan (a prefix match, as
// nchan), else no subprotocol.
void choose_protocol(ngx_http_request_t* r, Settings* s)
{
    auto offered = header(r, "Sec-WebSocket-Protocol");
    if (!offered) {
        return;
    }
    auto list = ws::split_protocols(*offered);
    for (std::string_view p : list) {
        if (p == ws::kPulseProtocol) {
            s->mode = Mode::kJson;
            s->protocol = std::string(p);
            return;
        }
    }
    for (std::string_view p : list) {
        if (p.substr(0, ws::kMetaProtocol.size()) == ws::kMetaProtocol) {
            s->mode = Mode::kMeta;
            s->protocol = std::string(p);
            return;
        }
    }
}

}  // namespace

ngx_int_t websocket(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }
    if (r->http_version != NGX_HTTP_VERSION_11 || r->stream != nullptr) {
        return send_response(r, NGX_HTTP_BAD_REQUEST, "",
                             "WebSocket needs HTTP/1.1.");
    }
    auto version = header(r, "Sec-WebSocket-Version");
    if (!version) {
        return send_response(r, NGX_HTTP_BAD_REQUEST, "",
                             "No Sec-Websocket-Version header present");
    }
    if (*version != "13") {
        add_header(r, "Sec-WebSocket-Version", "13");
        return send_response(
            r, NGX_HTTP_BAD_REQUEST, "",
            "Unsupported websocket protocol version (only version 13 is "
            "supported)");
    }
    auto key = header(r, "Sec-WebSocket-Key");
    if (!key) {
        return send_response(r, NGX_HTTP_BAD_REQUEST, "",
                             "No Sec-Websocket-Key header present");
    }
    if (!ws::valid_client_key(*key)) {
        return send_response(r, NGX_HTTP_BAD_REQUEST, "",
                             "Invalid Sec-WebSocket-Key header");
    }
    if (Worker::get() == nullptr) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }
    Settings s;
    choose_protocol(r, &s);
    bool sub = (lcf->roles & NGX_HTTP_PULSE_SUB_WEBSOCKET) != 0;
    bool pub = (lcf->roles & NGX_HTTP_PULSE_PUB_WEBSOCKET) != 0;
    if (sub) {
        auto keys = channel_keys(r, lcf, false);
        if (keys.is_ok()) {
            s.sub_keys = std::move(keys.value());
        } else if (s.mode != Mode::kJson
                   || keys.status().code() != Code::kNotFound) {
            return send_response(r, http_status(keys.status().code()), "",
                                 keys.status().message());
        }
        auto after =
            resume_multi_id(r, lcf, std::max<size_t>(s.sub_keys.size(), 1));
        if (!after.is_ok()) {
            return send_response(r, NGX_HTTP_BAD_REQUEST, "",
                                 after.status().message());
        }
        s.after = after.value();
    }
    if (pub) {
        if (s.mode != Mode::kJson) {
            auto keys = channel_keys(r, lcf, true);
            if (!keys.is_ok()) {
                return send_response(r, http_status(keys.status().code()), "",
                                     keys.status().message());
            }
            s.pub_keys = std::move(keys.value());
        }
        auto spec = publish_spec(r, lcf);
        if (!spec.is_ok()) {
            return send_response(r, http_status(spec.status().code()), "",
                                 spec.status().message());
        }
        s.spec = spec.value();
    }
    if (lcf->channel_group != nullptr) {
        s.group = eval(r, lcf->channel_group);
        if (Status g = validate_group(s.group); !g.is_ok()) {
            return send_response(r, http_status(g.code()), "", g.message());
        }
    }
    if (lcf->ws_identity != nullptr) {
        s.identity = eval(r, lcf->ws_identity);
        // it goes into a header of every command's upstream request
        Status v = validate_field("pulse_websocket_identity value", s.identity,
                                  kMaxHeaderChannelLength);
        if (!v.is_ok()) {
            return send_response(r, NGX_HTTP_BAD_REQUEST, "", v.message());
        }
    }
    if (r->headers_in.content_type != nullptr) {
        s.content_type = std::string(sv(r->headers_in.content_type->value));
        // the content type of every message published on the socket
        Status v = validate_field("Content type", s.content_type,
                                  kMaxContentTypeLength);
        if (pub && !v.is_ok()) {
            return send_response(r, NGX_HTTP_BAD_REQUEST, "", v.message());
        }
    }
    if (r->headers_in.accept != nullptr) {
        s.accept = std::string(sv(r->headers_in.accept->value));
    }
    if (auto ext = header(r, "Sec-WebSocket-Extensions")) {
        int window =
            static_cast<int>(Worker::get()->deflate_options().window_bits);
        s.deflate = ws::negotiate_deflate(*ext, window);
        // A client that wants a smaller window than the shared compressed
        // copies were made with gets them uncompressed.
        s.compress_out =
            s.deflate && s.deflate->server_max_window_bits >= window;
    }
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    auto* conn = new WsConn(r, lcf, std::move(s));
    cln->data = conn;
    cln->handler = [](void* data) noexcept {
        static_cast<WsConn*>(data)->request_freed();
    };
    return conn->start(ws::accept_key(*key));
}

}  // namespace pulse::ngx
