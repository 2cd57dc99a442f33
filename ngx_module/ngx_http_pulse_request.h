#pragma once

// Request helpers every handler uses: headers, small responses, CORS, the
// channel keys and the evaluated location settings of a request.

#include "ngx.h"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ngx_http_pulse_conf.h"
#include "pulse/acl.h"
#include "pulse/fanout.h"
#include "pulse/message_id.h"
#include "pulse/status.h"
#include "pulse/transport.h"

namespace pulse::ngx {

class Worker;

/// A GET or HEAD of a report location (pulse_stub_status, pulse_metrics):
/// its body discarded, and this process's worker. NGX_OK with *w set, or
/// the status to answer (405, 503, a discard error).
ngx_int_t report_request(ngx_http_request_t* r, Worker** w);

inline std::string_view sv(const ngx_str_t& s)
{
    return std::string_view(reinterpret_cast<const char*>(s.data), s.len);
}

/// What $pulse_channel_id and $pulse_subscriber_type read in a presence
/// hook's own request (ngx_http_pulse_hooks.cpp), taken from the
/// subscriber's request while it was there.
struct HookValues {
    std::string channel_ids;
    std::string subscriber_type;
};

/// The module's request context: the request's grant (its token's claims)
/// and the transport object that serves it, if any. In the request pool.
struct RequestCtx {
    acl::Grant grant;
    void* transport = nullptr;
    bool auth_pending = false;  // a pulse.v1 socket to authenticate by frame
    void* hook = nullptr;       // a hook subrequest's state (hooks.cpp)
    const HookValues* fixed = nullptr;  // a presence hook's own request
    std::string_view channel_event;     // $pulse_channel_event, while set
    uint32_t info_request = 0;  // pulse_subscriber_info: its meta/sr<id>
};
RequestCtx* find_request_ctx(ngx_http_request_t* r);
/// The context, made on first use.
RequestCtx& request_ctx(ngx_http_request_t* r);

/// Copies `s` into the request pool as an ngx_str_t.
ngx_str_t pool_str(ngx_pool_t* pool, std::string_view s);

/// The first request header called `name` (case-insensitive), if any.
std::optional<std::string_view> header(ngx_http_request_t* r,
                                       std::string_view name);

/// The request headers a pulse location looks at, found in one pass over
/// the header list (first occurrence of each, names case-insensitive).
struct PulseHeaders {
    std::optional<std::string_view> upgrade;
    std::optional<std::string_view> connection;
    std::optional<std::string_view> te;
    std::optional<std::string_view> origin;
};
PulseHeaders pulse_headers(ngx_http_request_t* r);

/// Adds a response header; the strings must outlive the request (pool or
/// static).
ngx_int_t add_header(ngx_http_request_t* r, std::string_view name,
                     std::string_view value);

/// Adds a response header whose name and value are static (no copy).
ngx_int_t add_static_header(ngx_http_request_t* r, ngx_str_t* name,
                            ngx_str_t* value);

/// Sends a complete small response. An empty content type means
/// text/plain, unless `typed` is false: then no Content-Type at all (a
/// message published without one).
ngx_int_t send_response(ngx_http_request_t* r, ngx_uint_t status,
                        std::string_view content_type, std::string_view body,
                        bool typed = true);

/// nchan's CORS rule: with an Origin header, the origin must be allowed by
/// pulse_access_control_allow_origin (default: any). Adds
/// Access-Control-Allow-Origin/-Credentials when allowed; false means 403.
bool cors_allow(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf);

/// The channel keys (`<group>/<id>`) of this request for publishing or
/// subscribing, or the Status that explains why not (404, 403). The group
/// includes the token's tenant, and every channel is checked against its
/// ACL (a refusal is audited). `checked` false leaves out the charset and
/// ACL checks, and so their audit lines ($pulse_channel_id reads ids).
Result<std::vector<std::string>> channel_keys(ngx_http_request_t* r,
                                              ngx_http_pulse_loc_conf_t* lcf,
                                              bool publishing,
                                              bool checked = true);

/// The request's channel group: pulse_channel_group's value, with the
/// token's tenant.
Result<std::string> channel_group(ngx_http_request_t* r,
                                  ngx_http_pulse_loc_conf_t* lcf);

/// Evaluates a complex value to a std::string.
std::string eval(ngx_http_request_t* r, ngx_http_complex_value_t* cv);

/// URL-decodes a query argument value.
std::string unescape(std::string_view s);

/// Calls fn(ngx_table_elt_t&) for each element of a header list.
template <typename Fn>
void for_each_header(ngx_list_t* list, Fn fn)
{
    ngx_list_part_t* part = &list->part;
    auto* h = static_cast<ngx_table_elt_t*>(part->elts);
    for (ngx_uint_t i = 0;; ++i) {
        if (i >= part->nelts) {
            if (part->next == nullptr) {
                break;
            }
            part = part->next;
            h = static_cast<ngx_table_elt_t*>(part->elts);
            i = 0;
        }
        fn(h[i]);
    }
}

/// HTTP status for a lib Status code.
inline ngx_uint_t ngx_status(Code code)
{
    return static_cast<ngx_uint_t>(pulse::http_status(code));
}

/// Answers with a Status: its HTTP status and message (and Retry-After
/// when it says one).
ngx_int_t send_status(ngx_http_request_t* r, const Status& s);

/// The subscriber's place among its tenant's (pulse_max_tenant_subscribers),
/// held as long as the subscriber is: nullptr without a tenant; kForbidden
/// (audited) when the tenant has its limit already.
Result<std::unique_ptr<Fanout::TenantSeat>> tenant_seat(
    ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf, Fanout& fanout);

/// What the request says about where a subscriber resumes: the headers,
/// and pulse_subscriber_last_message_id's values evaluated and decoded.
ResumeRequest resume_request(ngx_http_request_t* r,
                             ngx_http_pulse_loc_conf_t* lcf);

/// The location's subscribe options (existing-only, subscriber limit,
/// first message) at the request's time.
Fanout::JoinOptions join_options(ngx_http_pulse_loc_conf_t* lcf);

/// The location's publish settings, its variables evaluated on `r`;
/// kForbidden for values that are not numbers.
Result<PublishSpec> publish_spec(ngx_http_request_t* r,
                                 ngx_http_pulse_loc_conf_t* lcf);

}  // namespace pulse::ngx
