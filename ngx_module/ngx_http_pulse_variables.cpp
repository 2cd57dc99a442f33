#include "ngx_http_pulse_variables.h"

#include <string>

#include "ngx_http_pulse_conf.h"
#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_request.h"
#include "pulse/transport.h"

namespace pulse::ngx {

namespace {

ngx_int_t message_id_index = NGX_ERROR;

void set_value(ngx_http_request_t* r, ngx_http_variable_value_t* v,
               std::string_view s)
{
    ngx_str_t copy = pool_str(r->pool, s);
    v->data = copy.data;
    v->len = static_cast<unsigned>(copy.len);
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
}

ngx_http_pulse_loc_conf_t* pulse_location(ngx_http_request_t* r)
{
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(
        ngx_http_get_module_loc_conf(r, ngx_http_pulse_module));
    return lcf != nullptr && lcf->roles != 0 ? lcf : nullptr;
}

// A presence hook's own request: the values of the subscriber's.
const HookValues* fixed_values(ngx_http_request_t* r)
{
    RequestCtx* ctx = find_request_ctx(r);
    return ctx != nullptr ? ctx->fixed : nullptr;
}

// The channel ids as the request names them, comma-separated (evaluated
// when asked for: nothing is kept per request). A hook's subrequest reads
// those of the request it is for: every getter looks at r->main.
ngx_int_t get_channel_id(ngx_http_request_t* r, ngx_http_variable_value_t* v,
                         uintptr_t) noexcept
try {
    r = r->main;
    v->not_found = 1;
    if (const HookValues* f = fixed_values(r)) {
        if (!f->channel_ids.empty()) {
            set_value(r, v, f->channel_ids);
        }
        return NGX_OK;
    }
    ngx_http_pulse_loc_conf_t* lcf = pulse_location(r);
    if (lcf == nullptr) {
        return NGX_OK;
    }
    bool pub = r->method == NGX_HTTP_POST || r->method == NGX_HTTP_PUT
               || r->method == NGX_HTTP_DELETE;
    auto keys = channel_keys(r, lcf, pub, false);
    if (!keys.is_ok()) {
        return NGX_OK;
    }
    std::string ids;
    for (const std::string& k : keys.value()) {
        if (!ids.empty()) {
            ids += ',';
        }
        ids += k.substr(k.find('/') + 1);
    }
    set_value(r, v, ids);
    return NGX_OK;
}
PULSE_CATCH_RETURN(r->connection->log, NGX_LOG_ERR, NGX_ERROR)

// nchan's names: eventsource, longpoll, websocket, ...; empty for a
// publisher request.
ngx_int_t get_subscriber_type(ngx_http_request_t* r,
                              ngx_http_variable_value_t* v, uintptr_t) noexcept
try {
    r = r->main;
    v->not_found = 1;
    if (const HookValues* f = fixed_values(r)) {
        set_value(r, v, f->subscriber_type);
        return NGX_OK;
    }
    ngx_http_pulse_loc_conf_t* lcf = pulse_location(r);
    if (lcf == nullptr || r->method != NGX_HTTP_GET) {
        return NGX_OK;
    }
    PulseHeaders h = pulse_headers(r);
    if (is_websocket_upgrade(h.upgrade, h.connection)) {
        set_value(r, v, "websocket");
        return NGX_OK;
    }
    auto accept = r->headers_in.accept;
    Transport t = detect_transport(accept ? sv(accept->value) : "", h.te,
                                   static_cast<uint32_t>(lcf->roles));
    if (t != Transport::kNone) {
        set_value(r, v, transport_name(t));
    }
    return NGX_OK;
}
PULSE_CATCH_RETURN(r->connection->log, NGX_LOG_ERR, NGX_ERROR)

// The token's tenant (data 0) or sub (data 1).
ngx_int_t get_claim(ngx_http_request_t* r, ngx_http_variable_value_t* v,
                    uintptr_t which) noexcept
try {
    r = r->main;
    RequestCtx* ctx = find_request_ctx(r);
    v->not_found = 1;
    if (ctx == nullptr || !ctx->grant.claims) {
        return NGX_OK;
    }
    const std::string& s =
        which == 0 ? ctx->grant.claims->tenant : ctx->grant.claims->sub;
    if (!s.empty()) {
        set_value(r, v, s);
    }
    return NGX_OK;
}
PULSE_CATCH_RETURN(r->connection->log, NGX_LOG_ERR, NGX_ERROR)

// The channel event being sent (nchan's $nchan_channel_event): set only
// while pulse_channel_event_string is evaluated.
ngx_int_t get_channel_event(ngx_http_request_t* r, ngx_http_variable_value_t* v,
                            uintptr_t) noexcept
try {
    RequestCtx* ctx = find_request_ctx(r);
    v->not_found = 1;
    if (ctx != nullptr && !ctx->channel_event.empty()) {
        set_value(r, v, ctx->channel_event);
    }
    return NGX_OK;
}
PULSE_CATCH_RETURN(r->connection->log, NGX_LOG_ERR, NGX_ERROR)

ngx_int_t get_unset(ngx_http_request_t*, ngx_http_variable_value_t* v,
                    uintptr_t) noexcept
{
    v->not_found = 1;
    return NGX_OK;
}

struct Var {
    const char* name;
    ngx_http_get_variable_pt get;
    uintptr_t data;
};
const Var kVars[] = {
    {"pulse_channel_id", get_channel_id, 0},
    {"pulse_subscriber_type", get_subscriber_type, 0},
    {"pulse_message_id", get_unset, 0},
    {"pulse_tenant", get_claim, 0},
    {"pulse_sub", get_claim, 1},
    {"pulse_channel_event", get_channel_event, 0},
};

}  // namespace

ngx_int_t add_variables(ngx_conf_t* cf)
{
    for (const Var& var : kVars) {
        ngx_str_t name;
        name.data = reinterpret_cast<u_char*>(const_cast<char*>(var.name));
        name.len = ngx_strlen(var.name);
        // $pulse_message_id is set by the handlers, so it is cacheable
        ngx_uint_t flags = var.get == get_unset ? 0 : NGX_HTTP_VAR_NOCACHEABLE;
        ngx_http_variable_t* v = ngx_http_add_variable(cf, &name, flags);
        if (v == nullptr) {
            return NGX_ERROR;
        }
        v->get_handler = var.get;
        v->data = var.data;
    }
    return NGX_OK;
}

void find_variable_indexes(ngx_cycle_t* cycle)
{
    message_id_index = NGX_ERROR;
    auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module));
    if (cmcf == nullptr) {
        return;
    }
    // the indexed variables: those some directive refers to
    auto* v = static_cast<ngx_http_variable_t*>(cmcf->variables.elts);
    for (ngx_uint_t i = 0; i < cmcf->variables.nelts; ++i) {
        if (sv(v[i].name) == "pulse_message_id") {
            message_id_index = static_cast<ngx_int_t>(i);
        }
    }
}

void set_message_id(ngx_http_request_t* r, std::string_view id)
{
    if (message_id_index == NGX_ERROR) {
        return;
    }
    ngx_http_variable_value_t* v =
        &r->variables[static_cast<ngx_uint_t>(message_id_index)];
    set_value(r, v, id);
}

}  // namespace pulse::ngx
