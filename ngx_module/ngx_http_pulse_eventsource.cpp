// EventSource and the other HTTP streams (chunked, multipart/mixed, raw):
// the response header, the socket writer, the ping and timeout timers and
// the connection's lifetime. What a stream sends is lib/pulse/http_stream.

#include "ngx.h"

#include <memory>
#include <string>

#include "ngx_http_pulse_auth.h"
#include "ngx_http_pulse_events.h"
#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_hooks.h"
#include "ngx_http_pulse_pacing.h"
#include "ngx_http_pulse_request.h"
#include "ngx_http_pulse_stream.h"
#include "ngx_http_pulse_worker.h"
#include "ngx_http_pulse_writer.h"
#include "pulse/http_stream.h"
#include "pulse/publish_request.h"

namespace pulse::ngx {

namespace {

class StreamConn final : public HeldConnection, public StreamIo {
public:
    StreamConn(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
               StreamOptions o)
        : HeldConnection(r),
          lcf_(lcf),
          writer_(r, lcf->subscriber_max_buffered,
                  metrics_transport(o.transport)),
          stream_(Worker::get()->fanout(), *this, std::move(o))
    {
        for (ngx_event_t* ev :
             {&ping_, &timeout_, &expire_, &start_ev_, &pace_}) {
            ev->data = this;
            ev->log = r->connection->log;
        }
        pace_.handler = on_pace;
        ping_.handler = on_ping;
        timeout_.handler = on_timeout;
        expire_.handler = on_expire;
        start_ev_.handler = on_start;
    }
    StreamConn(const StreamConn&) = delete;
    StreamConn& operator=(const StreamConn&) = delete;
    StreamConn(StreamConn&&) = delete;
    StreamConn& operator=(StreamConn&&) = delete;
    ~StreamConn() override { StreamConn::on_close(); }

    ngx_int_t start(const std::vector<std::string>& keys,
                    const std::optional<MultiMsgId>& after, Transport t,
                    std::unique_ptr<Fanout::TenantSeat> seat);

    // StreamIo
    bool push(Frame* f) override { return writer_.push(f); }
    void send() override;
    void finish() override;
    void fail() override
    {
        stream_.leave();
        close_later(true);
    }
    void delivered() override
    {
        if (timeout_.timer_set) {
            ngx_add_timer(&timeout_, timeout_ms());
        }
    }
    bool idle() const override { return writer_.empty(); }
    size_t room() const override { return writer_.room(); }
    void pace_in(std::optional<uint64_t> ms) override { arm_timer(&pace_, ms); }
    uint64_t clock_ms() const override { return ngx_current_msec; }

private:
    void on_read() override;
    void on_write() override;
    void on_close() noexcept override;
    static void on_ping(ngx_event_t* ev) noexcept;
    static void on_timeout(ngx_event_t* ev) noexcept;
    static void on_expire(ngx_event_t* ev) noexcept;
    static void on_start(ngx_event_t* ev) noexcept;
    static void on_pace(ngx_event_t* ev) noexcept;
    ngx_msec_t timeout_ms() const
    {
        return static_cast<ngx_msec_t>(lcf_->subscriber_timeout) * 1000;
    }
    void try_detach();

    ngx_http_pulse_loc_conf_t* lcf_;
    StreamWriter writer_;
    HttpStream stream_;
    ngx_event_t ping_{};
    ngx_event_t timeout_{};
    ngx_event_t expire_{};  // the token's exp
    ngx_event_t start_ev_{};
    ngx_event_t pace_{};  // pacing (lib/pulse/pacing.h)
    bool finishing_ = false;
    std::unique_ptr<Presence> presence_;          // pulse_(un)subscribe_request
    std::unique_ptr<Fanout::EventHold> events_;   // channel events
    std::unique_ptr<Fanout::InfoListener> info_;  // subscriber info
    std::unique_ptr<Fanout::TenantSeat> seat_;    // among its tenant's
};

ngx_int_t StreamConn::start(const std::vector<std::string>& keys,
                            const std::optional<MultiMsgId>& after, Transport t,
                            std::unique_ptr<Fanout::TenantSeat> seat)
{
    ngx_http_request_t* r = request();
    seat_ = std::move(seat);
    if (Status s = stream_.join(keys, after, join_options(lcf_)); !s.is_ok()) {
        return send_status(r, s);
    }
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    if (!stream_.content_type().empty()) {
        ngx_str_t ct = pool_str(r->pool, stream_.content_type());
        r->headers_out.content_type = ct;
        r->headers_out.content_type_len = ct.len;
        r->headers_out.content_type_lowcase = nullptr;
    }
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        return rc;
    }
    auto* first = static_cast<ngx_buf_t*>(ngx_calloc_buf(r->pool));
    if (first == nullptr) {
        return NGX_ERROR;
    }
    if (!stream_.hello().empty()) {
        ngx_str_t h = pool_str(r->pool, stream_.hello());
        first->pos = h.data;
        first->last = h.data + h.len;
        first->memory = 1;
    }
    first->flush = 1;  // the header goes out now
    ngx_chain_t out{first, nullptr};
    if (ngx_http_output_filter(r, &out) == NGX_ERROR) {
        return NGX_ERROR;
    }
    // After the header filters: HTTP/1.1 responses are chunked, and the
    // frames carry their chunk framing, made once per message.
    stream_.start(r->chunked != 0);
    bind_handlers();
    presence_ = Presence::make(r, lcf_, transport_name(t));
    if (presence_) {
        presence_->subscribed();
    }
    events_ = subscriber_events(r, lcf_);
    info_ = subscriber_info(r, lcf_, keys);
    if (r->stream == nullptr) {
        // Lets nginx close the stream at shutdown/reload like an idle
        // keepalive connection (ngx_close_idle_connections); the client
        // reconnects with Last-Event-ID and loses nothing.
        r->connection->idle = 1;
    }
    if (lcf_->es_ping_interval > 0) {
        ngx_add_timer(&ping_,
                      static_cast<ngx_msec_t>(lcf_->es_ping_interval) * 1000);
    }
    if (lcf_->subscriber_timeout > 0) {
        ngx_add_timer(&timeout_, timeout_ms());
    }
    if (auto deadline = token_deadline(r, lcf_)) {
        ngx_add_timer(&expire_, ms_until(*deadline));
    }
    r->main->count++;
    // The first write, and for HTTP/1.x the detach, run from a posted event:
    // ending the stream here would finalize the request under the content
    // handler, which finalizes it again with our NGX_DONE.
    ngx_post_event(&start_ev_, &ngx_posted_events);
    return NGX_DONE;
}

void StreamConn::on_close() noexcept
{
    for (ngx_event_t* ev : {&ping_, &timeout_, &expire_, &pace_}) {
        if (ev->timer_set) {
            ngx_del_timer(ev);
        }
    }
    if (start_ev_.posted) {
        ngx_delete_posted_event(&start_ev_);
    }
    stream_.leave();
    if (presence_) {
        presence_->unsubscribed();
    }
    events_.reset();  // subscriber_dequeue
    info_.reset();
}

// Writes what is queued; a finished stream closes once all of it is out.
void StreamConn::send()
{
    if (closing()) {
        return;
    }
    ngx_int_t rc = writer_.flush();
    if (rc == NGX_ERROR) {
        fail();
    } else if (rc == NGX_OK && finishing_) {
        close_later(false);
    }
}

void StreamConn::finish()
{
    if (finishing_) {
        return;
    }
    finishing_ = true;
    if (detached() && stream_.chunked()) {
        // The last chunk that nginx's chunked filter would have sent.
        FrameRef last(Frame::make("0\r\n\r\n"));
        if (!writer_.push(last.get())) {
            fail();
            return;
        }
    }
    send();
}

void StreamConn::try_detach()
{
    ngx_http_request_t* r = request();
    if (r == nullptr || finishing_ || closing() || r->stream != nullptr) {
        return;  // detached already, ending, or HTTP/2
    }
    if (r->out != nullptr || r->connection->buffered) {
        return;  // the header is still going out; on_write retries
    }
    writer_.detach();
    detach("streaming events");
}

void StreamConn::on_start(ngx_event_t* ev) noexcept
{
    auto* s = static_cast<StreamConn*>(ev->data);
    s->guarded([s] {
        s->send();
        s->try_detach();
    });
}

void StreamConn::on_write()
{
    ngx_connection_t* c = connection();
    if (c->write->timedout) {
        fail();
        return;
    }
    send();
    if (writer_.empty()) {
        stream_.on_pace();  // the socket drained: what a pacer held may go
    }
    // The header had not gone out when the detach was first tried.
    if (!detached() && !start_ev_.posted) {
        try_detach();
    }
}

// Nothing is expected from the client: EOF, an error, data (as nchan) or a
// shutdown (c->close) ends the stream. Bound to its request, nginx's own
// check does it.
void StreamConn::on_read()
{
    if (!detached()) {
        ngx_http_test_reading(request());
        return;
    }
    ngx_connection_t* c = connection();
    if (c->close) {
        close_now(false);
        return;
    }
    // c->recv, not recv(MSG_PEEK): on TLS the socket's bytes are records,
    // not the client's data. Any byte ends the stream anyway.
    u_char b;
    ssize_t n = c->recv(c, &b, 1);
    if (n == NGX_AGAIN) {
        if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
            close_now(true);
        }
        return;
    }
    if (n == 0) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "client closed the event stream");
    }
    close_now(n != 0);
}

void StreamConn::on_ping(ngx_event_t* ev) noexcept
{
    auto* s = static_cast<StreamConn*>(ev->data);
    s->guarded([s] {
        ngx_add_timer(
            &s->ping_,
            static_cast<ngx_msec_t>(s->lcf_->es_ping_interval) * 1000);
        s->stream_.ping(sv(s->lcf_->es_ping_comment),
                        sv(s->lcf_->es_ping_event), sv(s->lcf_->es_ping_data));
    });
}

void StreamConn::on_pace(ngx_event_t* ev) noexcept
{
    auto* s = static_cast<StreamConn*>(ev->data);
    s->guarded([s] { s->stream_.on_pace_timer(); });
}

void StreamConn::on_timeout(ngx_event_t* ev) noexcept
{
    auto* s = static_cast<StreamConn*>(ev->data);
    s->guarded([s] { s->stream_.end(end_status::kTimeout); });
}

void StreamConn::on_expire(ngx_event_t* ev) noexcept
{
    auto* s = static_cast<StreamConn*>(ev->data);
    s->guarded([s] { s->stream_.end(end_status::kUnauthorized); });
}

}  // namespace

ngx_int_t stream_subscribe(ngx_http_request_t* r,
                           ngx_http_pulse_loc_conf_t* lcf, Transport t)
{
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }
    if (Worker::get() == nullptr) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }
    auto keys = channel_keys(r, lcf, false);
    if (!keys.is_ok()) {
        return send_status(r, keys.status());
    }
    auto after = resume_id(resume_request(r, lcf), keys->size());
    if (!after.is_ok()) {
        return send_status(r, after.status());
    }
    StreamOptions o;
    o.transport = t;
    o.compound_etag = lcf->compound_etag != 0;
    o.separator = std::string(sv(lcf->raw_stream_separator));
    if (lcf->gap_signal != 0) {
        o.gap_event = std::string(sv(lcf->gap_event));
    }
    auto pace = request_pace(r, lcf);
    if (!pace.is_ok()) {
        return send_status(r, pace.status());
    }
    o.pace = pace.value();
    o.bounds = queue_bounds(lcf);
    if (t == Transport::kEventSource && lcf->eventsource_event != nullptr) {
        // the `event:` line of every message: a line break in it would
        // forge lines of this stream
        o.event = eval(r, lcf->eventsource_event);
        Status v = validate_field("pulse_eventsource_event value", o.event,
                                  kMaxEventLength);
        if (!v.is_ok()) {
            return send_status(r, v);
        }
    }
    auto seat = tenant_seat(r, lcf, Worker::get()->fanout());
    if (!seat.is_ok()) {
        return send_status(r, seat.status());
    }
    auto* s = HeldConnection::create<StreamConn>(r, lcf, std::move(o));
    return s->start(keys.value(), after.value(), t, std::move(seat.value()));
}

}  // namespace pulse::ngx
