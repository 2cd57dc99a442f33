#pragma once

#include "ngx.h"

#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <utility>

namespace pulse::ngx {

/// Arms `ev` in `ms` milliseconds, or disarms it (nullopt).
inline void arm_timer(ngx_event_t* ev, std::optional<uint64_t> ms)
{
    if (ms) {
        ngx_add_timer(ev, static_cast<ngx_msec_t>(*ms));
    } else if (ev->timer_set) {
        ngx_del_timer(ev);
    }
}

/// A subscriber connection that lives across events: an EventSource or
/// other HTTP stream, a WebSocket. The one place of its lifecycle:
///
///  - created on the heap; while it is bound to its request, the request
///    pool's cleanup deletes it (client gone, nginx finalized the request);
///  - detach(): once the response header is out, the request, its pool and
///    the client header buffer are freed as nginx does for an idle
///    keepalive connection (ngx_http_set_keepalive), and only the
///    connection is kept: c->data is this object, which closes it;
///  - close_later(): ends it from a posted event, so that no caller up the
///    stack (a fan-out dispatch, a write handler) meets a deleted object.
///    A detached stream closes its connection; a bound one finalizes its
///    request.
///
/// Every event handler is noexcept: an exception is logged and the
/// connection closed, never left half-served.
class HeldConnection {
public:
    /// A T (derived from HeldConnection) for request `r`, owned by the
    /// request pool until detached. Throws std::bad_alloc.
    template <typename T, typename... Args>
    static T* create(ngx_http_request_t* r, Args&&... args)
    {
        ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, 0);
        if (cln == nullptr) {
            throw std::bad_alloc();
        }
        T* obj = new T(r, std::forward<Args>(args)...);
        cln->data = static_cast<HeldConnection*>(obj);
        cln->handler = request_freed;
        return obj;
    }

    HeldConnection(const HeldConnection&) = delete;
    HeldConnection& operator=(const HeldConnection&) = delete;
    HeldConnection(HeldConnection&&) = delete;
    HeldConnection& operator=(HeldConnection&&) = delete;

protected:
    explicit HeldConnection(ngx_http_request_t* r);
    virtual ~HeldConnection();

    /// The connection is readable (or the request's read handler ran).
    virtual void on_read() = 0;
    /// The connection is writable (or the request's write handler ran).
    virtual void on_write() = 0;
    /// Ending: called once, before the object goes.
    virtual void on_close() noexcept {}
    /// on_close(), once.
    void notify_close() noexcept;

    /// Runs `f` for an event handler of this connection: an exception is
    /// logged and the connection closed, never left half-served.
    template <typename F>
    void guarded(F&& f) noexcept
    {
        try {
            f();
        } catch (const std::exception& e) {
            failed(e.what());
        } catch (...) {
            failed("unknown exception");
        }
    }

    /// Sets the request's ctx and its read/write handlers to this object's.
    void bind_handlers();
    /// Frees the request and keeps the connection (see above). False when
    /// the socket could not be set up: the connection is then closing.
    bool detach(const char* action);
    /// Ends the connection from a posted event. `error`: the client must
    /// not see an orderly end (too slow, broken, a protocol error). A bound
    /// request that ends without error sends its last chunk first.
    void close_later(bool error);
    /// The same, now. The object is gone after it: return at once.
    void close_now(bool error);

    /// A WebSocket's request ends with its connection: no HTTP end (last
    /// chunk) is sent when it closes while bound.
    void no_http_end() { http_end_ = false; }

    ngx_http_request_t* request() const { return r_; }
    ngx_connection_t* connection() const { return c_; }
    bool detached() const { return detached_; }
    bool closing() const { return closing_; }

private:
    static void request_freed(void* data) noexcept;
    static void on_request_read(ngx_http_request_t* r) noexcept;
    static void on_request_write(ngx_http_request_t* r) noexcept;
    static void on_conn_read(ngx_event_t* ev) noexcept;
    static void on_conn_write(ngx_event_t* ev) noexcept;
    static void on_close_event(ngx_event_t* ev) noexcept;
    /// An exception escaped a handler: log it and close.
    void failed(const char* what) noexcept;

    ngx_http_request_t* r_;  // nullptr once detached
    ngx_connection_t* c_;
    ngx_event_t close_ev_{};
    bool detached_ = false;
    bool closing_ = false;
    bool close_error_ = false;
    bool notified_ = false;
    bool http_end_ = true;
};

}  // namespace pulse::ngx
