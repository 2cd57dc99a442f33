#pragma once

// nchan's hooks (docs/auth.md "Hooks"), as subrequests:
//
//  - pulse_authorize_request: a GET subrequest of the subscriber's or
//    publisher's own request, before anything is subscribed or published
//    (before a WebSocket upgrade);
//  - pulse_publisher_upstream_request: a POST subrequest with the published
//    body, whose answer decides what is published;
//  - pulse_subscribe_request / pulse_unsubscribe_request: fire-and-forget
//    GETs that must not depend on the subscriber's connection (it may be
//    gone, and a detached stream has freed its request long before): they
//    run from a request of their own, made from a snapshot of the
//    subscriber's (Presence).
//
// What an answer means is lib/pulse/hooks.h.

#include "ngx.h"

#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>

#include "ngx_http_pulse_conf.h"
#include "pulse/hooks.h"

namespace pulse::ngx {

/// What a finished hook subrequest answered: nginx may call a
/// post-subrequest handler more than once (an error, then its error page);
/// the first call decides.
struct SubrequestAnswer {
    hooks::Answer answer;
    std::string_view body;  // in the request pool; empty when too_big
};
SubrequestAnswer subrequest_answer(ngx_http_request_t* sr, ngx_int_t rc);

/// A hook subrequest's body as it arrives, kept by our body filter up to
/// the hook location's subrequest_output_buffer_size. nginx's own
/// in-memory subrequests end the client's connection when the answer is
/// bigger; with this the answer's status still counts (docs/auth.md
/// "Hooks").
struct Capture {
    ngx_http_post_subrequest_t then;  // the caller's handler and data
    u_char* data;
    size_t len;
    size_t room;
    bool too_big;
};
/// Puts the capturing body filter at the top of nginx's chain.
void add_capture_filter();

/// A subrequest of `r` (nginx's `flags`, never in memory) whose answer
/// (status, and body as Capture keeps it) goes to `handler` with `data`;
/// the subrequest, or nullptr when nginx refused it. Nothing of it reaches
/// r's client. Throws std::bad_alloc.
ngx_http_request_t* captured_subrequest(ngx_http_request_t* r, ngx_str_t* uri,
                                        ngx_str_t* args,
                                        ngx_http_post_subrequest_pt handler,
                                        void* data, ngx_uint_t flags);

/// A waited captured_subrequest whose handler gets a copy of `ctx` (plain
/// data, in r's pool), placed at `*placed`.
template <typename Ctx>
ngx_http_request_t* captured_subrequest(ngx_http_request_t* r, ngx_str_t* uri,
                                        ngx_str_t* args,
                                        ngx_http_post_subrequest_pt handler,
                                        const Ctx& ctx, Ctx** placed)
{
    static_assert(std::is_trivially_destructible_v<Ctx>);
    void* mem = ngx_palloc(r->pool, sizeof(Ctx));
    if (mem == nullptr) {
        throw std::bad_alloc();
    }
    *placed = new (mem) Ctx(ctx);
    return captured_subrequest(r, uri, args, handler, *placed,
                               NGX_HTTP_SUBREQUEST_WAITED);
}

/// Makes `sr` a POST of `body` (copied into r's pool). Throws
/// std::bad_alloc.
void post_body(ngx_http_request_t* r, ngx_http_request_t* sr,
               std::string_view body);

/// pulse_authorize_request for a request whose location has one. `resume`
/// is called as the request's write handler once the upstream answered
/// and allowed it, and returns what the content handler would. Returns
/// NGX_DONE while the subrequest runs, or the rc of the response already
/// sent (the channel id's 404/403, the refusal).
using Resume = ngx_int_t (*)(ngx_http_request_t* r,
                             ngx_http_pulse_loc_conf_t* lcf);
ngx_int_t authorize(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                    Resume resume);

/// pulse_publisher_upstream_request for an HTTP publish whose body is
/// read: the upstream's answer goes to `publish` with the body and
/// content type to publish; a 204, a refusal or a failure is answered
/// here. Returns NGX_DONE while the subrequest runs, or an rc to finalize
/// the request with.
using PublishWith = ngx_int_t (*)(ngx_http_request_t* r,
                                  ngx_http_pulse_loc_conf_t* lcf,
                                  std::string body,
                                  const std::string* content_type);
ngx_int_t publisher_upstream(ngx_http_request_t* r,
                             ngx_http_pulse_loc_conf_t* lcf,
                             PublishWith publish);

/// Where pulse_publisher_upstream_request answers for a WebSocket frame.
class UpstreamSink {
public:
    /// Must not throw.
    virtual void upstream_answer(uint64_t token, const hooks::Answer& a,
                                 std::string_view body,
                                 std::string_view content_type) noexcept = 0;

protected:
    ~UpstreamSink() = default;
};

/// pulse_publisher_upstream_request for one frame published on the
/// WebSocket of kept request `r`: a POST of `body` (as `content_type`) with
/// the handshake's headers and query. False when nginx refused the
/// subrequest. Throws std::bad_alloc.
bool frame_upstream(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                    uint64_t token, std::string_view body,
                    std::string_view content_type, UpstreamSink* sink);

struct RequestSnapshot;

/// A subscriber's presence hooks: pulse_subscribe_request fired once it
/// is subscribed, pulse_unsubscribe_request once when it goes, however it
/// goes (closed by the client, dropped, ended by the server), unless the
/// worker exits first. Each runs from a request of its own, so neither
/// waits on nor holds up the subscriber.
class Presence {
public:
    /// nullptr when the location has neither hook. Takes what the hooks
    /// need from `r` now. Throws std::bad_alloc.
    static std::unique_ptr<Presence> make(ngx_http_request_t* r,
                                          ngx_http_pulse_loc_conf_t* lcf,
                                          std::string_view subscriber_type);
    ~Presence();
    Presence(const Presence&) = delete;
    Presence& operator=(const Presence&) = delete;
    Presence(Presence&&) = delete;
    Presence& operator=(Presence&&) = delete;

    /// The subscriber is subscribed: pulse_subscribe_request.
    void subscribed() noexcept;
    /// The subscriber is gone: pulse_unsubscribe_request, if it had been
    /// subscribed; at most once.
    void unsubscribed() noexcept;

private:
    Presence() = default;
    std::shared_ptr<const RequestSnapshot> snap_;
    std::string subscribe_uri_;
    std::string unsubscribe_uri_;
    bool subscribed_ = false;
};

}  // namespace pulse::ngx
