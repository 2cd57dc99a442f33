// WebSocket connections: the handshake, frame I/O on the connection, the
// session's timers and the commands' subrequests. The protocol is
// lib/pulse/ws_session, what the messages mean lib/pulse/ws_connection
// (docs/websocket.md).
//
// The 101 response is written raw to the socket, then (from a posted
// event) the request is freed (HeldConnection::detach) and the connection
// is all that is left. Locations with pulse_websocket_upstream keep their
// request instead, because commands are subrequests of it.

#include "ngx.h"

#include <algorithm>
#include <memory>
#include <string>

#include "ngx_http_pulse_auth.h"
#include "ngx_http_pulse_events.h"
#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_hooks.h"
#include "ngx_http_pulse_metrics.h"
#include "ngx_http_pulse_pacing.h"
#include "ngx_http_pulse_request.h"
#include "ngx_http_pulse_stream.h"
#include "ngx_http_pulse_v1.h"
#include "ngx_http_pulse_worker.h"
#include "ngx_http_pulse_writer.h"
#include "pulse/channel_id.h"
#include "pulse/publish_request.h"
#include "pulse/websocket.h"
#include "pulse/ws_connection.h"

namespace pulse::ngx {

namespace {

class WsSocket final : public HeldConnection,
                       public WsConnectionHost,
                       public CommandSink,
                       public UpstreamSink {
public:
    WsSocket(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
             WsSettings s, ws::SessionOptions o, std::string identity)
        : HeldConnection(r),
          lcf_(lcf),
          writer_(r, lcf->subscriber_max_buffered, metrics::Tp::kWebSocket),
          conn_(Worker::get()->fanout(), *this, std::move(s), std::move(o)),
          identity_(std::move(identity))
    {
        writer_.detach();  // frames go straight to the socket
        no_http_end();
        for (ngx_event_t* ev :
             {&start_ev_, &ping_, &idle_, &close_, &expire_, &pace_}) {
            ev->data = this;
            ev->log = r->connection->log;
        }
        pace_.handler = on_pace;
        expire_.handler = on_expire;
        start_ev_.handler = on_start;
        ping_.handler = on_timer_event;
        idle_.handler = on_timer_event;
        close_.handler = on_timer_event;
    }
    WsSocket(const WsSocket&) = delete;
    WsSocket& operator=(const WsSocket&) = delete;
    WsSocket(WsSocket&&) = delete;
    WsSocket& operator=(WsSocket&&) = delete;
    ~WsSocket() override { WsSocket::on_close(); }

    ngx_int_t start(const std::string& head,
                    std::unique_ptr<Fanout::TenantSeat> seat);

    // ws::SessionHost
    bool push(Frame* f) override { return writer_.push(f); }
    void flush() override;
    void arm(ws::Timer t, uint64_t ms) override
    {
        ngx_add_timer(event(t), static_cast<ngx_msec_t>(ms));
    }
    void disarm(ws::Timer t) override
    {
        if (event(t)->timer_set) {
            ngx_del_timer(event(t));
        }
    }
    void destroy(bool error) override { close_later(error); }
    // WsConnectionHost
    bool command(uint64_t token, std::string_view channel,
                 std::string_view data) override;
    void denied(const jwt::Claims* claims, int status, std::string_view channel,
                std::string_view reason) override
    {
        // the request may be gone (a detached socket): the connection's
        audit_connection(connection(), lcf_, claims, "deny", status, channel,
                         reason);
        if (status == NGX_HTTP_FORBIDDEN) {
            count_denial(metrics::Denial::kChannel);  // verify_token counts
        }
    }
    std::shared_ptr<const jwt::Claims> verify_token(
        std::string_view token, std::string* why,
        std::optional<int64_t>* deadline) override
    {
        auto claims = pulse::ngx::verify_token(lcf_, token, why, deadline);
        if (claims == nullptr) {
            denied(nullptr, NGX_HTTP_UNAUTHORIZED, "", *why);
        }
        return claims;
    }
    void expires_at(std::optional<int64_t> deadline) override
    {
        authenticated_ = true;
        if (expire_.timer_set) {
            ngx_del_timer(&expire_);
        }
        if (deadline) {
            ngx_add_timer(&expire_, ms_until(*deadline));
        }
    }
    void pace_in(std::optional<uint64_t> ms) override { arm_timer(&pace_, ms); }
    uint64_t clock_ms() const override { return ngx_current_msec; }
    bool idle() const override { return writer_.empty(); }
    size_t room() const override { return writer_.room(); }
    // CommandSink
    void command_answer(uint64_t token, int status, std::string_view body,
                        bool failed) noexcept override;
    bool publish_upstream(uint64_t token, std::string_view body,
                          std::string_view content_type) override;
    void upstream_answer(uint64_t token, const hooks::Answer& a,
                         std::string_view body,
                         std::string_view content_type) noexcept override;
    /// Subrequests (commands, the publisher upstream) need the request:
    /// the socket keeps it instead of detaching.
    bool keeps_request() const
    {
        return lcf_->ws_upstream.len != 0
               || (lcf_->publisher_upstream_request != nullptr
                   && (lcf_->roles & NGX_HTTP_PULSE_PUB_WEBSOCKET) != 0);
    }

private:
    void on_read() override;
    void on_write() override;
    void on_close() noexcept override;
    static void on_start(ngx_event_t* ev) noexcept;
    static void on_timer_event(ngx_event_t* ev) noexcept;
    static void on_expire(ngx_event_t* ev) noexcept;
    static void on_pace(ngx_event_t* ev) noexcept;
    ngx_event_t* event(ws::Timer t)
    {
        return t == ws::Timer::kPing   ? &ping_
               : t == ws::Timer::kIdle ? &idle_
                                       : &close_;
    }

    ngx_http_pulse_loc_conf_t* lcf_;
    StreamWriter writer_;
    WsConnection conn_;
    std::string identity_;  // pulse_websocket_identity, for commands
    std::string leftover_;  // bytes read with the request header
    ngx_event_t start_ev_{};
    ngx_event_t ping_{};
    ngx_event_t idle_{};
    ngx_event_t close_{};
    ngx_event_t expire_{};  // the token's exp, or the auth frame's timeout
    ngx_event_t pace_{};    // pacing (lib/pulse/pacing.h)
    bool authenticated_ = false;
    bool started_ = false;
    std::unique_ptr<Presence> presence_;          // pulse_(un)subscribe_request
    std::unique_ptr<Fanout::EventHold> events_;   // channel events
    std::unique_ptr<Fanout::InfoListener> info_;  // subscriber info
    std::unique_ptr<Fanout::TenantSeat> seat_;    // among its tenant's
};

ngx_int_t WsSocket::start(const std::string& head,
                          std::unique_ptr<Fanout::TenantSeat> seat)
{
    ngx_http_request_t* r = request();
    seat_ = std::move(seat);
    // Join first: a refused subscription is still a plain HTTP answer.
    if (Status s = conn_.join(static_cast<int64_t>(ngx_time())); !s.is_ok()) {
        return send_status(r, s);
    }
    FrameRef h(Frame::make(head));
    writer_.push(h.get());  // an empty writer holds any first frame
    started_ = true;
    conn_.start();
    if ((lcf_->roles & NGX_HTTP_PULSE_SUB_WEBSOCKET) != 0) {
        // a subscriber or pulse.v1 socket, from its upgrade to its close
        presence_ = Presence::make(r, lcf_, "websocket");
        if (presence_) {
            presence_->subscribed();
        }
        events_ = subscriber_events(r, lcf_);
        if (wants_subscriber_info(r)) {
            if (auto keys = channel_keys(r, lcf_, false); keys.is_ok()) {
                info_ = subscriber_info(r, lcf_, keys.value());
            }
        }
    }
    if (RequestCtx* ctx = find_request_ctx(r); ctx && ctx->auth_pending) {
        ngx_add_timer(&expire_, auth_frame_timeout(lcf_));
    } else if (auto deadline = token_deadline(r, lcf_)) {
        authenticated_ = true;
        ngx_add_timer(&expire_, ms_until(*deadline));
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
    bind_handlers();
    if (keeps_request()) {
        // A kept request is ended by nginx itself at shutdown
        // (ngx_http_request_handler sees c->close): say goodbye first.
        ngx_http_cleanup_t* cln = ngx_http_cleanup_add(r, 0);
        if (cln == nullptr) {
            throw std::bad_alloc();
        }
        cln->data = this;
        cln->handler = [](void* data) noexcept {
            auto* w = static_cast<WsSocket*>(data);
            if (w->connection()->close && !w->closing()) {
                try {
                    w->conn_.shutdown();
                } catch (...) {
                    // best effort: the connection closes anyway
                }
            }
        };
    }
    connection()->idle = 1;  // shutdown closes it like a keepalive one
    r->main->count++;
    // The request is freed (or kept) from a posted event: the content
    // handler's caller still finalizes it with our NGX_DONE.
    ngx_post_event(&start_ev_, &ngx_posted_events);
    return NGX_DONE;
}

void WsSocket::on_close() noexcept
{
    for (ngx_event_t* ev : {&ping_, &idle_, &close_, &expire_, &pace_}) {
        if (ev->timer_set) {
            ngx_del_timer(ev);
        }
    }
    if (start_ev_.posted) {
        ngx_delete_posted_event(&start_ev_);
    }
    conn_.on_closing();
    if (presence_) {
        presence_->unsubscribed();
    }
    events_.reset();  // subscriber_dequeue
    info_.reset();
}

void WsSocket::on_start(ngx_event_t* ev) noexcept
{
    auto* w = static_cast<WsSocket*>(ev->data);
    w->guarded([w] {
        if (!w->keeps_request()) {
            if (!w->detach("serving a WebSocket")) {
                return;  // closing
            }
        } else {
            ngx_connection_t* c = w->connection();
            if (c->read->timer_set) {
                ngx_del_timer(c->read);
            }
        }
        w->flush();
        if (!w->closing()) {
            w->on_read();  // the leftover, and whatever epoll reported
        }
    });
}

// docs/auth.md: 4401, in the 4000-4999 range RFC 6455 leaves to
// applications, mirrors HTTP's 401.
void WsSocket::on_expire(ngx_event_t* ev) noexcept
{
    auto* w = static_cast<WsSocket*>(ev->data);
    if (!w->closing()) {
        w->guarded([w] {
            w->conn_.session().close(4401, w->authenticated_
                                               ? "token expired"
                                               : "authentication timeout");
        });
    }
}

void WsSocket::on_pace(ngx_event_t* ev) noexcept
{
    auto* w = static_cast<WsSocket*>(ev->data);
    if (!w->closing()) {
        w->guarded([w] { w->conn_.on_pace_timer(); });
    }
}

void WsSocket::on_timer_event(ngx_event_t* ev) noexcept
{
    auto* w = static_cast<WsSocket*>(ev->data);
    if (!w->closing()) {
        w->guarded([w, ev] {
            w->conn_.on_timer(ev == &w->ping_   ? ws::Timer::kPing
                              : ev == &w->idle_ ? ws::Timer::kIdle
                                                : ws::Timer::kClose);
        });
    }
}

void WsSocket::flush()
{
    if (closing() || !started_ || (!detached() && start_ev_.posted)) {
        return;  // on_start flushes
    }
    ngx_int_t rc = writer_.flush();
    if (rc == NGX_ERROR) {
        conn_.on_gone(true);
    } else if (rc == NGX_OK) {
        conn_.on_flushed();
    }
}

void WsSocket::on_read()
{
    ngx_connection_t* c = connection();
    if (c->close) {
        // worker shutdown (ngx_close_idle_connections): say goodbye
        conn_.shutdown();
        conn_.on_gone(false);
        return;
    }
    if (!leftover_.empty()) {
        std::string bytes;
        bytes.swap(leftover_);
        if (!conn_.on_bytes(bytes) && conn_.session().dead()) {
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
            conn_.on_gone(n == NGX_ERROR);
            return;
        }
        conn_.on_bytes(std::string_view(reinterpret_cast<const char*>(buf),
                                        static_cast<size_t>(n)));
        if (conn_.session().dead()) {
            return;
        }
        if (static_cast<size_t>(n) < sizeof(buf)) {
            break;
        }
    }
    if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
        conn_.on_gone(true);
    }
}

void WsSocket::on_write()
{
    if (connection()->write->timedout) {
        conn_.on_gone(true);
        return;
    }
    flush();
}

bool WsSocket::command(uint64_t token, std::string_view channel,
                       std::string_view data)
{
    ngx_http_request_t* r = request();
    if (r == nullptr) {
        return false;
    }
    return start_command(r, lcf_->ws_upstream, token, channel, identity_, data,
                         this);
}

void WsSocket::command_answer(uint64_t token, int status, std::string_view body,
                              bool failed) noexcept
{
    if (closing()) {
        return;
    }
    try {
        conn_.command_done(token, status, body, failed);
    } catch (const std::exception& e) {
        // the client would wait for this answer forever: close instead
        ngx_log_error(NGX_LOG_ALERT, connection()->log, 0,
                      PULSE_LOG_PREFIX "command answer: %s, closing", e.what());
        close_later(true);
    } catch (...) {
        close_later(true);
    }
}

bool WsSocket::publish_upstream(uint64_t token, std::string_view body,
                                std::string_view content_type)
{
    ngx_http_request_t* r = request();
    if (r == nullptr) {
        return false;
    }
    return frame_upstream(r, lcf_, token, body, content_type, this);
}

void WsSocket::upstream_answer(uint64_t token, const hooks::Answer& a,
                               std::string_view body,
                               std::string_view content_type) noexcept
{
    if (closing()) {
        return;
    }
    try {
        conn_.upstream_done(token, a, body, content_type);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, connection()->log, 0,
                      PULSE_LOG_PREFIX "publisher upstream answer: %s, closing",
                      e.what());
        close_later(true);
    } catch (...) {
        close_later(true);
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
    Worker* worker = Worker::get();
    if (worker == nullptr) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }
    WsSettings s;
    std::string protocol;
    std::tie(s.mode, protocol) =
        choose_subprotocol(header(r, "Sec-WebSocket-Protocol"));
    s.roles = static_cast<uint32_t>(lcf->roles);
    bool sub = (s.roles & role::kSubWebSocket) != 0;
    bool pub = (s.roles & role::kPubWebSocket) != 0;
    if (sub) {
        auto keys = channel_keys(r, lcf, false);
        if (keys.is_ok()) {
            s.sub_keys = std::move(keys.value());
        } else if (s.mode != WsMode::kJson
                   || keys.status().code() != Code::kNotFound) {
            return send_status(r, keys.status());
        }
        auto after = resume_id(resume_request(r, lcf),
                               std::max<size_t>(s.sub_keys.size(), 1));
        if (!after.is_ok()) {
            return send_status(r, after.status());
        }
        s.after = after.value();
    }
    if (pub) {
        if (s.mode != WsMode::kJson) {
            auto keys = channel_keys(r, lcf, true);
            if (!keys.is_ok()) {
                return send_status(r, keys.status());
            }
            s.pub_keys = std::move(keys.value());
        }
        auto spec = publish_spec(r, lcf);
        if (!spec.is_ok()) {
            return send_status(r, spec.status());
        }
        s.spec = spec.value();
    }
    if (lcf->channel_group != nullptr) {
        s.group = eval(r, lcf->channel_group);
        if (Status g = validate_group(s.group); !g.is_ok()) {
            return send_status(r, g);
        }
    }
    s.configured_group = s.group;
    s.grant = request_grant(r);
    s.group = s.grant.group(s.group);
    if (RequestCtx* ctx = find_request_ctx(r); ctx && ctx->auth_pending) {
        if (!s.sub_keys.empty()) {
            // the URL names channels: they need the token now
            add_header(r, "WWW-Authenticate", "Bearer");
            return send_response(r, NGX_HTTP_UNAUTHORIZED, "text/plain",
                                 "Unauthorized: no token.\n");
        }
        s.auth_pending = true;
    }
    std::string identity;
    if (lcf->ws_identity != nullptr) {
        identity = eval(r, lcf->ws_identity);
        // it goes into a header of every command's upstream request
        Status v = validate_field("pulse_websocket_identity value", identity,
                                  kMaxHeaderChannelLength);
        if (!v.is_ok()) {
            return send_status(r, v);
        }
    }
    if (r->headers_in.content_type != nullptr) {
        s.content_type = std::string(sv(r->headers_in.content_type->value));
        // the content type of every message published on the socket
        Status v = validate_field("Content type", s.content_type,
                                  kMaxContentTypeLength);
        if (pub && !v.is_ok()) {
            return send_status(r, v);
        }
    }
    if (r->headers_in.accept != nullptr) {
        s.accept = std::string(sv(r->headers_in.accept->value));
    }
    ws::SessionOptions o;
    if (auto ext = header(r, "Sec-WebSocket-Extensions")) {
        int window = worker->fanout().deflate_options().window_bits;
        o.deflate = ws::negotiate_deflate(*ext, window);
        // A client that wants a smaller window than the shared compressed
        // copies were made with gets them uncompressed.
        s.compress_out =
            o.deflate && o.deflate->server_max_window_bits >= window;
    }
    s.max_channel_id_length = static_cast<size_t>(lcf->max_channel_id_length);
    s.charset = lcf->channel_charset;
    s.max_channels = static_cast<size_t>(lcf->max_channels_per_connection);
    s.commands = lcf->ws_upstream.len != 0;
    s.publisher_upstream = lcf->publisher_upstream_request != nullptr;
    s.max_tenant_subscribers =
        static_cast<uint32_t>(lcf->max_tenant_subscribers);
    s.join = join_options(lcf);
    auto pace = request_pace(r, lcf, s.mode == WsMode::kJson);
    if (!pace.is_ok()) {
        return send_status(r, pace.status());
    }
    s.url_pace = pace.value();
    s.pace_limits = pace_limits(lcf);
    s.queue = queue_bounds(lcf);
    o.max_message = lcf->ws_max_message_size;
    o.ping_interval_ms = static_cast<uint64_t>(lcf->ws_ping_interval) * 1000;
    o.idle_timeout_ms = static_cast<uint64_t>(lcf->subscriber_timeout) * 1000;
    o.heartbeat_in = std::string(sv(lcf->ws_heartbeat_in));
    o.heartbeat_out = std::string(sv(lcf->ws_heartbeat_out));

    std::string head =
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: "
        + ws::accept_key(*key) + "\r\n";
    if (!protocol.empty()) {
        head += "Sec-WebSocket-Protocol: " + protocol + "\r\n";
    }
    if (o.deflate) {
        head += "Sec-WebSocket-Extensions: " + ws::format_deflate(*o.deflate)
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
    std::unique_ptr<Fanout::TenantSeat> seat;
    if ((lcf->roles & NGX_HTTP_PULSE_SUB_WEBSOCKET) != 0) {
        // a subscriber (or pulse.v1) socket: a refusal before the upgrade
        auto got = tenant_seat(r, lcf, worker->fanout());
        if (!got.is_ok()) {
            return send_status(r, got.status());
        }
        seat = std::move(got.value());
    }
    auto* w = HeldConnection::create<WsSocket>(
        r, lcf, std::move(s), std::move(o), std::move(identity));
    return w->start(head, std::move(seat));
}

}  // namespace pulse::ngx
