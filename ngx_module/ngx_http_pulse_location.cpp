// The content handler of pulse locations: CORS, then dispatch by method,
// role and transport, in nchan's order (docs/protocol.md §1, §3); the transport
// is decided by lib/pulse/transport.

#include "ngx.h"

#include "ngx_http_pulse_auth.h"
#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_hooks.h"
#include "ngx_http_pulse_request.h"

namespace {

using pulse::ngx::add_header;
using pulse::ngx::header;
using pulse::ngx::send_response;

ngx_int_t preflight(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    bool pub = (lcf->roles & NGX_HTTP_PULSE_PUB_ANY) != 0;
    bool sub = (lcf->roles & NGX_HTTP_PULSE_SUB_ANY) != 0;
    std::string_view methods = pub ? "GET, POST, PUT, DELETE" : "GET";
    add_header(r, "Allow", methods);
    if (header(r, "Origin")) {
        add_header(r, "Access-Control-Allow-Headers",
                   sub ? "If-None-Match, If-Modified-Since, Content-Type, "
                         "Cache-Control, X-EventSource-Event"
                       : "Content-Type");
        add_header(r, "Access-Control-Allow-Methods", methods);
    }
    return send_response(r, NGX_HTTP_OK, "", "");
}

}  // namespace

ngx_int_t ngx_http_pulse_handler(ngx_http_request_t* r) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(
        ngx_http_get_module_loc_conf(r, ngx_http_pulse_module));
    if (!pulse::ngx::cors_allow(r, lcf)) {
        ngx_http_discard_request_body(r);
        return send_response(r, NGX_HTTP_FORBIDDEN, "", "");
    }
    if (r->method == NGX_HTTP_OPTIONS) {
        // a CORS preflight carries no credentials
        ngx_http_discard_request_body(r);
        return preflight(r, lcf);
    }
    // before anything else, WebSocket upgrades included: a refusal is a
    // plain HTTP status
    if (ngx_int_t rc = pulse::ngx::authenticate(r, lcf); rc != NGX_DECLINED) {
        return rc;
    }
    if (lcf->authorize_request != nullptr) {
        // the token first, then the hook, told the claims
        return pulse::ngx::authorize(r, lcf, pulse::ngx::dispatch);
    }
    return pulse::ngx::dispatch(r, lcf);
}
PULSE_CATCH_RETURN(r->connection->log, NGX_LOG_ERR,
                   NGX_HTTP_INTERNAL_SERVER_ERROR)

ngx_int_t pulse::ngx::dispatch(ngx_http_request_t* r,
                               ngx_http_pulse_loc_conf_t* lcf)
{
    bool pub_http = (lcf->roles & NGX_HTTP_PULSE_PUB_HTTP) != 0;
    bool sub_any = (lcf->roles & NGX_HTTP_PULSE_SUB_ANY) != 0;
    switch (r->method) {
        case NGX_HTTP_GET: {
            // one pass over the header list for what dispatch needs
            pulse::ngx::PulseHeaders h = pulse::ngx::pulse_headers(r);
            if (pulse::is_websocket_upgrade(h.upgrade, h.connection)) {
                if (lcf->roles
                    & (NGX_HTTP_PULSE_SUB_WEBSOCKET
                       | NGX_HTTP_PULSE_PUB_WEBSOCKET)) {
                    return pulse::ngx::websocket(r, lcf);
                }
                ngx_http_discard_request_body(r);
                return send_response(r, NGX_HTTP_FORBIDDEN, "", "");
            }
            if (sub_any) {
                auto accept = r->headers_in.accept;
                pulse::Transport t = pulse::detect_transport(
                    accept ? pulse::ngx::sv(accept->value) : "", h.te,
                    static_cast<uint32_t>(lcf->roles));
                if (t == pulse::Transport::kLongPoll
                    || t == pulse::Transport::kIntervalPoll) {
                    return pulse::ngx::poll_subscribe(
                        r, lcf, t == pulse::Transport::kIntervalPoll);
                }
                if (t != pulse::Transport::kNone) {
                    return pulse::ngx::stream_subscribe(r, lcf, t);
                }
            }
            if (pub_http) {
                return pulse::ngx::channel_info(r, lcf);
            }
            ngx_http_discard_request_body(r);
            return send_response(r, NGX_HTTP_FORBIDDEN, "", "");
        }
        case NGX_HTTP_POST:
        case NGX_HTTP_PUT:
            if (pub_http) {
                return pulse::ngx::publish(r, lcf);
            }
            break;
        case NGX_HTTP_DELETE:
            if (pub_http) {
                return pulse::ngx::delete_channel(r, lcf);
            }
            break;
        default:
            break;
    }
    ngx_http_discard_request_body(r);
    return send_response(r, NGX_HTTP_FORBIDDEN, "", "");
}
