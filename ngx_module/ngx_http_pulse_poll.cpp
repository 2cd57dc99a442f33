// Long-poll and interval-poll: the held request, its timeout, and the
// answer written as a response. What a poll answers is lib/pulse/poll.

#include "ngx.h"

#include <memory>
#include <new>
#include <string>

#include "ngx_http_pulse_auth.h"
#include "ngx_http_pulse_events.h"
#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_metrics.h"
#include "ngx_http_pulse_pacing.h"
#include "ngx_http_pulse_request.h"
#include "ngx_http_pulse_stream.h"
#include "ngx_http_pulse_variables.h"
#include "ngx_http_pulse_worker.h"
#include "pulse/http_date.h"
#include "pulse/poll.h"
#include "pulse/sse.h"

namespace pulse::ngx {

namespace {

ngx_str_t kVaryName = ngx_string("Vary");
ngx_str_t kVary = ngx_string("If-None-Match, If-Modified-Since");

class PollRequest final : public PollIo {
public:
    PollRequest(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                bool interval, pacing::Pace pace)
        : r_(r),
          lcf_(lcf),
          gauge_(interval ? metrics::Tp::kIntervalPoll
                          : metrics::Tp::kLongPoll),
          poll_(Worker::get()->fanout(), *this, interval,
                lcf->compound_etag != 0, pace,
                static_cast<PollParts>(lcf->longpoll_parts))
    {
        timeout_.handler = on_timeout;
        pace_.handler = on_pace;
        for (ngx_event_t* ev : {&timeout_, &pace_}) {
            ev->data = this;
            ev->log = r->connection->log;
        }
    }
    PollRequest(const PollRequest&) = delete;
    PollRequest& operator=(const PollRequest&) = delete;
    PollRequest(PollRequest&&) = delete;
    PollRequest& operator=(PollRequest&&) = delete;
    ~PollRequest()
    {
        arm_timer(&timeout_, std::nullopt);
        arm_timer(&pace_, std::nullopt);
    }

    ngx_int_t start(const std::vector<std::string>& keys,
                    std::optional<MultiMsgId> after,
                    std::unique_ptr<Fanout::TenantSeat> seat);
    // PollIo
    void respond(const PollAnswer& a) override;
    void fail() noexcept override;
    void pace_in(uint64_t ms) override { arm_timer(&pace_, ms); }

private:
    static void on_timeout(ngx_event_t* ev) noexcept;
    static void on_pace(ngx_event_t* ev) noexcept;
    ngx_int_t write(const PollAnswer& a);
    ngx_int_t send_message(const MsgPtr& m);
    ngx_int_t send_parts(const PollAnswer& a);
    void add_id_headers(const PollAnswer& a);

    ngx_http_request_t* r_;
    ngx_http_pulse_loc_conf_t* lcf_;
    ConnectionGauge gauge_;
    Poll poll_;
    ngx_event_t timeout_{};
    ngx_event_t pace_{};    // pacing (lib/pulse/pacing.h)
    MsgPtr msg_;            // the answer's message: its body is the response's
    bool held_ = false;     // waiting: answers finalize the request
    bool expires_ = false;  // timeout_ is the token's deadline
    ngx_int_t rc_ = NGX_OK;
    std::unique_ptr<Fanout::TenantSeat> seat_;  // among its tenant's
    // channel events: enqueued once subscribed, dequeued with the request
    std::unique_ptr<Fanout::EventHold> events_;
    std::unique_ptr<Fanout::InfoListener> info_;  // while it waits
};

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

ngx_int_t PollRequest::start(const std::vector<std::string>& keys,
                             std::optional<MultiMsgId> after,
                             std::unique_ptr<Fanout::TenantSeat> seat)
{
    seat_ = std::move(seat);
    auto waiting = poll_.start(keys, std::move(after), join_options(lcf_));
    if (!waiting.is_ok()) {
        return send_status(r_, waiting.status());
    }
    events_ = subscriber_events(r_, lcf_);
    if (!waiting.value()) {
        return rc_;  // answered at once
    }
    info_ = subscriber_info(r_, lcf_, keys);
    held_ = true;
    r_->read_event_handler = ngx_http_test_reading;
    if (r_->stream == nullptr) {
        r_->connection->idle = 1;
    }
    ngx_msec_t hold =
        lcf_->subscriber_timeout > 0
            ? static_cast<ngx_msec_t>(lcf_->subscriber_timeout) * 1000
            : 0;
    if (auto deadline = token_deadline(r_, lcf_)) {
        // the token expires first: the poll ends then, with 401
        ngx_msec_t left = ms_until(*deadline);
        if (hold == 0 || left < hold) {
            hold = left;
            expires_ = true;
        }
    }
    if (hold > 0 || expires_) {
        ngx_add_timer(&timeout_, hold);
    }
    r_->main->count++;
    return NGX_DONE;
}

// nginx's header filter would format last_modified_time with ngx_sprintf
// for every answer (a tenth of a long-poll's CPU); the answers to one
// message share one time, so the worker formats it once and the header
// filter finds it ready in headers_out.last_modified.
void set_last_modified(ngx_http_request_t* r, int64_t t)
{
    static HttpDateCache dates;  // per worker process
    auto* h =
        static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr) {
        throw std::bad_alloc();
    }
    h->hash = 1;
    ngx_str_set(&h->key, "Last-Modified");
    h->value = pool_str(r->pool, dates.format(t));
    r->headers_out.last_modified = h;
    r->headers_out.last_modified_time = static_cast<time_t>(t);
}

// Last-Modified carries the time and Etag the tag(s), or Etag the whole id
// in compound mode (pulse_subscriber_message_id_custom_etag_header names
// it); the ids are ours, not cache validators.
void PollRequest::add_id_headers(const PollAnswer& a)
{
    ngx_http_request_t* r = r_;
    if (a.etag) {
        r->disable_not_modified = 1;
        std::string_view name = lcf_->custom_etag_header.len
                                    ? sv(lcf_->custom_etag_header)
                                    : std::string_view("Etag");
        add_header(r, name, *a.etag);
        if (a.last_modified) {
            set_last_modified(r, *a.last_modified);
        }
    }
    add_static_header(r, &kVaryName, &kVary);
    if (a.etag && header(r, "Origin")) {
        std::string expose = "Last-Modified, "
                             + std::string(lcf_->custom_etag_header.len
                                               ? sv(lcf_->custom_etag_header)
                                               : std::string_view("Etag"))
                             + ", Content-Type"
                             + (lcf_->gap_signal != 0 ? ", Pulse-Gap" : "");
        add_header(r, "Access-Control-Expose-Headers", expose);
    }
}

// The message as the response, its body sent from the message itself (the
// worker's one copy, kept alive by this request) instead of copied.
ngx_int_t PollRequest::send_message(const MsgPtr& m)
{
    ngx_http_request_t* r = r_;
    msg_ = m;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = static_cast<off_t>(m->body.size());
    // as nchan: no Content-Type with an empty body
    if (!m->content_type.empty() && !m->body.empty()) {
        r->headers_out.content_type.data =
            reinterpret_cast<u_char*>(m->content_type.data());
        r->headers_out.content_type.len = m->content_type.size();
        r->headers_out.content_type_len = m->content_type.size();
        r->headers_out.content_type_lowcase = nullptr;
    }
    if (m->body.empty() || r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }
    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }
    auto* b = static_cast<ngx_buf_t*>(ngx_calloc_buf(r->pool));
    if (b == nullptr) {
        return NGX_ERROR;
    }
    b->pos = b->start = reinterpret_cast<u_char*>(m->body.data());
    b->last = b->end = b->pos + m->body.size();
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    ngx_chain_t out{b, nullptr};
    return ngx_http_output_filter(r, &out);
}

// Several messages in one response (pulse_longpoll_multipart_response):
// nchan's multipart/mixed body with a boundary of its own, or the bodies
// with the raw separator after each.
ngx_int_t PollRequest::send_parts(const PollAnswer& a)
{
    ngx_http_request_t* r = r_;
    std::string body;
    if (static_cast<PollParts>(lcf_->longpoll_parts) == PollParts::kRaw) {
        body = raw_poll_body(a.msg, a.more, sv(lcf_->raw_stream_separator));
    } else {
        std::string boundary = stream::random_boundary(32);
        body = multipart_poll_body(a.msg, a.more, boundary);
        ngx_str_t ct =
            pool_str(r->pool, "multipart/mixed; boundary=" + boundary);
        r->headers_out.content_type = ct;
        r->headers_out.content_type_len = ct.len;
        r->headers_out.content_type_lowcase = nullptr;
    }
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = static_cast<off_t>(body.size());
    if (body.empty() || r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;  // raw: empty bodies, an empty separator
    }
    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }
    ngx_str_t copy = pool_str(r->pool, body);
    auto* b = static_cast<ngx_buf_t*>(ngx_calloc_buf(r->pool));
    if (copy.data == nullptr || b == nullptr) {
        return NGX_ERROR;
    }
    b->pos = b->start = copy.data;
    b->last = b->end = copy.data + copy.len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    ngx_chain_t out{b, nullptr};
    return ngx_http_output_filter(r, &out);
}

ngx_int_t PollRequest::write(const PollAnswer& a)
{
    if (a.status == 200 || a.status == 304) {
        add_id_headers(a);
        if (a.gap && lcf_->gap_signal != 0) {
            add_header(r_, "Pulse-Gap", "1");
        }
    }
    if (a.status == 200 && a.msg && !a.more.empty()) {
        set_message_id(r_, to_string(a.more.back()->id));
        ngx_int_t rc = send_parts(a);
        metrics::Block* b = metrics_block();
        if (b != nullptr && (rc == NGX_OK || rc == NGX_AGAIN)) {
            int64_t now = mono_ns();
            count_delivery(b, gauge_.transport(), a.msg->body.size(),
                           a.msg->published_ns, now);
            for (const MsgPtr& m : a.more) {
                count_delivery(b, gauge_.transport(), m->body.size(),
                               m->published_ns, now);
            }
        }
        return rc;
    }
    if (a.status == 200 && a.msg) {
        set_message_id(r_, to_string(a.msg->id));
        ngx_int_t rc = send_message(a.msg);
        metrics::Block* b = metrics_block();
        if (b != nullptr && (rc == NGX_OK || rc == NGX_AGAIN)) {
            // handed to nginx's output; its body's bytes
            count_delivery(b, gauge_.transport(), a.msg->body.size(),
                           a.msg->published_ns, mono_ns());
        }
        return rc;
    }
    return send_response(r_, static_cast<ngx_uint_t>(a.status), "", "");
}

void PollRequest::respond(const PollAnswer& a)
{
    if (!held_) {
        rc_ = write(a);  // from start(): the content handler returns it
        return;
    }
    held_ = false;
    arm_timer(&timeout_, std::nullopt);
    arm_timer(&pace_, std::nullopt);
    ngx_http_request_t* r = r_;
    r->connection->idle = 0;
    ngx_http_finalize_request(r, write(a));
}

void PollRequest::fail() noexcept
{
    if (!held_) {
        rc_ = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }
    held_ = false;
    ngx_http_request_t* r = r_;
    r->connection->idle = 0;
    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
}

// An exception from the poll ends the request with an error.
template <typename F>
void guarded_poll(ngx_event_t* ev, F&& f) noexcept
{
    auto* p = static_cast<PollRequest*>(ev->data);
    try {
        f(p);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0, PULSE_LOG_PREFIX "%s",
                      e.what());
        p->fail();
    } catch (...) {
        p->fail();
    }
}

void PollRequest::on_timeout(ngx_event_t* ev) noexcept
{
    guarded_poll(ev, [](PollRequest* p) {
        p->poll_.end(p->expires_ ? end_status::kUnauthorized
                                 : end_status::kTimeout);
    });
}

void PollRequest::on_pace(ngx_event_t* ev) noexcept
{
    guarded_poll(ev, [](PollRequest* p) { p->poll_.on_pace(); });
}

}  // namespace

ngx_int_t poll_subscribe(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                         bool interval)
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
    auto pace = request_pace(r, lcf);
    if (!pace.is_ok()) {
        return send_status(r, pace.status());
    }
    auto seat = tenant_seat(r, lcf, Worker::get()->fanout());
    if (!seat.is_ok()) {
        return send_status(r, seat.status());
    }
    return pool_new<PollRequest>(r, r, lcf, interval, pace.value())
        ->start(keys.value(), std::move(after.value()),
                std::move(seat.value()));
}

}  // namespace pulse::ngx
