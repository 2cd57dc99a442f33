#include "ngx_http_pulse_stream.h"

#include "ngx_http_pulse_conf.h"
#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_request.h"

namespace pulse::ngx {

HeldConnection::HeldConnection(ngx_http_request_t* r) : r_(r), c_(r->connection)
{
    close_ev_.handler = on_close_event;
    close_ev_.data = this;
    close_ev_.log = c_->log;
}

HeldConnection::~HeldConnection()
{
    if (close_ev_.posted) {
        ngx_delete_posted_event(&close_ev_);
    }
}

void HeldConnection::request_freed(void* data) noexcept
{
    auto* self = static_cast<HeldConnection*>(data);
    if (self->detached_) {
        return;  // the connection outlives the request: ours now
    }
    self->closing_ = true;
    self->notify_close();
    delete self;
}

void HeldConnection::notify_close() noexcept
{
    if (!notified_) {
        notified_ = true;
        on_close();
    }
}

void HeldConnection::bind_handlers()
{
    request_ctx(r_).transport = this;
    r_->read_event_handler = on_request_read;
    r_->write_event_handler = on_request_write;
}

void HeldConnection::failed(const char* what) noexcept
{
    ngx_log_error(NGX_LOG_ALERT, c_->log, 0, PULSE_LOG_PREFIX "%s, closing",
                  what);
    close_now(true);
}

void HeldConnection::on_request_read(ngx_http_request_t* r) noexcept
{
    RequestCtx* ctx = find_request_ctx(r);
    auto* self = static_cast<HeldConnection*>(ctx ? ctx->transport : nullptr);
    if (self != nullptr && !self->closing_) {
        self->guarded([self] { self->on_read(); });
    }
}

void HeldConnection::on_request_write(ngx_http_request_t* r) noexcept
{
    RequestCtx* ctx = find_request_ctx(r);
    auto* self = static_cast<HeldConnection*>(ctx ? ctx->transport : nullptr);
    if (self != nullptr && !self->closing_) {
        self->guarded([self] { self->on_write(); });
    }
}

void HeldConnection::on_conn_read(ngx_event_t* ev) noexcept
{
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    auto* self = static_cast<HeldConnection*>(c->data);
    if (!self->closing_) {
        self->guarded([self] { self->on_read(); });
    }
}

void HeldConnection::on_conn_write(ngx_event_t* ev) noexcept
{
    auto* c = static_cast<ngx_connection_t*>(ev->data);
    auto* self = static_cast<HeldConnection*>(c->data);
    if (!self->closing_) {
        self->guarded([self] { self->on_write(); });
    }
}

void HeldConnection::on_close_event(ngx_event_t* ev) noexcept
{
    auto* self = static_cast<HeldConnection*>(ev->data);
    self->closing_ = false;  // close_now's own guard
    self->close_now(self->close_error_);
}

// nginx 1.22's ngx_http_set_keepalive (src/http/ngx_http_request.c) frees
// an idle keepalive connection's request the same way: ngx_http_free_request,
// then the client header buffer from c->pool, tcp_nodelay, and the read
// event re-armed on the connection. test_nginx_mirrors.py fails when that
// function changes in the installed nginx.
bool HeldConnection::detach(const char* action)
{
    ngx_http_request_t* r = r_;
    ngx_connection_t* c = c_;
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
        ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    bool nodelay = clcf->tcp_nodelay != 0;
    detached_ = true;  // the pool cleanup must not delete us now
    r_ = nullptr;
    // Logs the request (the access-log line: status, bytes so far) and
    // frees its pool.
    ngx_http_free_request(r, 0);
    if (c->buffer != nullptr && ngx_pfree(c->pool, c->buffer->start) == NGX_OK)
    {
        c->buffer = nullptr;
    }
    c->data = this;
    c->read->handler = on_conn_read;
    c->write->handler = on_conn_write;
    c->log->action = const_cast<char*>(action);
    // Lets nginx close the stream at shutdown/reload like an idle keepalive
    // connection (ngx_close_idle_connections).
    c->idle = 1;
    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }
    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }
    // Each event is a small write that must go now: tcp_nodelay (on by
    // default), which nginx itself only applies to keepalive connections.
    if ((nodelay && ngx_tcp_nodelay(c) != NGX_OK)
        || ngx_handle_read_event(c->read, 0) != NGX_OK)
    {
        close_later(true);
        return false;
    }
    return true;
}

void HeldConnection::close_later(bool error)
{
    if (closing_) {
        return;
    }
    closing_ = true;
    close_error_ = close_error_ || error;
    if (!close_ev_.posted) {
        ngx_post_event(&close_ev_, &ngx_posted_events);
    }
}

void HeldConnection::close_now(bool error)
{
    if (closing_) {
        return;
    }
    closing_ = true;
    if (close_ev_.posted) {
        ngx_delete_posted_event(&close_ev_);
    }
    notify_close();
    ngx_connection_t* c = c_;
    if (detached_) {
        if (error) {
            c->error = 1;
        }
        delete this;
        ngx_http_close_connection(c);
        return;
    }
    ngx_http_request_t* r = r_;
    c->idle = 0;
    if (error || !http_end_) {
        c->error = 1;
        ngx_http_finalize_request(r, NGX_ERROR);
    } else {
        // the response's end: the last chunk (HTTP/1.1), END_STREAM (h2)
        ngx_http_finalize_request(r, ngx_http_send_special(r, NGX_HTTP_LAST));
    }
    // The request pool's cleanup deleted this object; a subrequest
    // (pulse.v1 commands) may still have to run.
    ngx_http_run_posted_requests(c);
}

}  // namespace pulse::ngx
