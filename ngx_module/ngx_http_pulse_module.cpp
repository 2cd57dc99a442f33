// ngx_http_pulse_module: module struct, directives, configuration, process
// hooks. Requests are dispatched by ngx_http_pulse_location.cpp to one file
// per transport; the per-process runtime is ngx_http_pulse_worker.cpp.

#include "ngx.h"

#include <zlib.h>

#include <cstring>
#include <string>
#include <vector>

#include "ngx_http_pulse_auth.h"
#include "ngx_http_pulse_conf.h"
#include "ngx_http_pulse_events.h"
#include "ngx_http_pulse_group.h"
#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_hooks.h"
#include "ngx_http_pulse_pacing.h"
#include "ngx_http_pulse_request.h"
#include "ngx_http_pulse_shm.h"
#include "ngx_http_pulse_variables.h"
#include "ngx_http_pulse_worker.h"
#include "pulse/channel_id.h"
#include "pulse/limits.h"
#include "pulse/nchan_directives.h"
#include "pulse/poll.h"
#include "pulse/publish_request.h"

namespace {

using pulse::ngx::Worker;

constexpr size_t kDefaultShmSize = size_t{128} * 1024 * 1024;
constexpr size_t kMinShmSize = size_t{1024} * 1024;
constexpr size_t kDefaultMaxBuffered = size_t{4} * 1024 * 1024;
constexpr size_t kDefaultWsMaxMessage = size_t{1024} * 1024;
constexpr ngx_int_t kDefaultMaxChannelsPerConnection = 64;
// pulse_metrics: tenants with a label of their own; the rest are `other`
constexpr ngx_int_t kDefaultMetricsTenants = 20;
constexpr ngx_int_t kMaxMetricsTenants = 1000;

ngx_conf_num_bounds_t kDeflateLevelBounds = {ngx_conf_check_num_bounds, 0, 9};
ngx_conf_num_bounds_t kDeflateMemlevelBounds = {ngx_conf_check_num_bounds, 1,
                                                9};
ngx_conf_num_bounds_t kDeflateWindowBounds = {ngx_conf_check_num_bounds, 9, 15};
ngx_conf_enum_t kLongpollParts[] = {
    {ngx_string("off"), static_cast<ngx_uint_t>(pulse::PollParts::kOne)},
    {ngx_string("on"), static_cast<ngx_uint_t>(pulse::PollParts::kMultipart)},
    {ngx_string("raw"), static_cast<ngx_uint_t>(pulse::PollParts::kRaw)},
    {ngx_null_string, 0},
};
ngx_conf_enum_t kDeflateStrategies[] = {
    {ngx_string("default"), Z_DEFAULT_STRATEGY},
    {ngx_string("filtered"), Z_FILTERED},
    {ngx_string("huffman-only"), Z_HUFFMAN_ONLY},
    {ngx_string("rle"), Z_RLE},
    {ngx_string("fixed"), Z_FIXED},
    {ngx_null_string, 0},
};

struct RoleName {
    const char* name;
    ngx_uint_t bit;
};

constexpr RoleName kPublisherRoles[] = {
    {"http", NGX_HTTP_PULSE_PUB_HTTP},
    {"websocket", NGX_HTTP_PULSE_PUB_WEBSOCKET},
};

constexpr RoleName kSubscriberRoles[] = {
    {"websocket", NGX_HTTP_PULSE_SUB_WEBSOCKET},
    {"eventsource", NGX_HTTP_PULSE_SUB_EVENTSOURCE},
    {"longpoll", NGX_HTTP_PULSE_SUB_LONGPOLL},
    {"intervalpoll", NGX_HTTP_PULSE_SUB_INTERVALPOLL},
    {"chunked", NGX_HTTP_PULSE_SUB_CHUNKED},
    {"multipart-mixed", NGX_HTTP_PULSE_SUB_MULTIPART},
    {"http-raw-stream", NGX_HTTP_PULSE_SUB_RAWSTREAM},
};

// nchan's defaults: intervalpoll and http-raw-stream are opt-in.
constexpr ngx_uint_t kDefaultSubscriber =
    NGX_HTTP_PULSE_SUB_WEBSOCKET | NGX_HTTP_PULSE_SUB_EVENTSOURCE
    | NGX_HTTP_PULSE_SUB_LONGPOLL | NGX_HTTP_PULSE_SUB_CHUNKED
    | NGX_HTTP_PULSE_SUB_MULTIPART;
constexpr ngx_uint_t kDefaultPublisher =
    NGX_HTTP_PULSE_PUB_HTTP | NGX_HTTP_PULSE_PUB_WEBSOCKET;

enum RoleKind : uintptr_t { kPublisher = 1, kSubscriber = 2, kPubSub = 3 };

void mark_used(ngx_conf_t* cf)
{
    auto* mcf = static_cast<ngx_http_pulse_main_conf_t*>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_pulse_module));
    mcf->used = 1;
}

void set_content_handler(ngx_conf_t* cf, ngx_http_handler_pt h)
{
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    clcf->handler = h;
}

// pulse_publisher [http|websocket], pulse_subscriber [types...],
// pulse_pubsub [both]: which roles a location has (nchan's rules).
char* ngx_http_pulse_set_roles(ngx_conf_t* cf, ngx_command_t* cmd,
                               void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    auto kind = reinterpret_cast<uintptr_t>(cmd->post);
    if (lcf->roles != NGX_CONF_UNSET_UINT) {
        return const_cast<char*>("is duplicate");
    }
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    ngx_uint_t roles = 0;
    if (cf->args->nelts == 1) {
        roles = (kind & kPublisher ? kDefaultPublisher : 0)
                | (kind & kSubscriber ? kDefaultSubscriber : 0);
    }
    for (ngx_uint_t i = 1; i < cf->args->nelts; ++i) {
        ngx_uint_t bit = 0;
        if (kind & kPublisher) {
            for (const RoleName& rn : kPublisherRoles) {
                if (pulse::ngx::sv(args[i]) == rn.name
                    && (kind == kPublisher
                        || std::strcmp(rn.name, "http") == 0))
                {
                    bit = rn.bit;
                }
            }
            // In pulse_pubsub, "websocket" means both directions.
            if (kind == kPubSub && pulse::ngx::sv(args[i]) == "websocket") {
                bit =
                    NGX_HTTP_PULSE_PUB_WEBSOCKET | NGX_HTTP_PULSE_SUB_WEBSOCKET;
            }
        }
        if (bit == 0 && (kind & kSubscriber)) {
            for (const RoleName& rn : kSubscriberRoles) {
                if (pulse::ngx::sv(args[i]) == rn.name) {
                    bit = rn.bit;
                }
            }
        }
        if (bit == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               PULSE_LOG_PREFIX
                               "invalid value \"%V\" in "
                               "\"%V\"; expected %s",
                               &args[i], &cmd->name,
                               kind == kPublisher
                                   ? "http or websocket"
                                   : "websocket, eventsource, longpoll, "
                                     "intervalpoll, chunked, "
                                     "multipart-mixed or http-raw-stream");
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        roles |= bit;
    }
    if ((roles & NGX_HTTP_PULSE_SUB_LONGPOLL)
        && (roles & NGX_HTTP_PULSE_SUB_INTERVALPOLL))
    {
        // nchan picks interval-poll before long-poll, so the pair means
        // interval-poll; say so rather than silently ignore longpoll.
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           PULSE_LOG_PREFIX
                           "\"%V\": with intervalpoll, "
                           "GET requests are interval-polls, "
                           "never long-polls",
                           &cmd->name);
    }
    lcf->roles = roles;
    mark_used(cf);
    set_content_handler(cf, ngx_http_pulse_handler);
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

char* ngx_http_pulse_set_stub_status(ngx_conf_t* cf, ngx_command_t* cmd,
                                     void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    (void) cmd;
    lcf->stub_status = 1;
    mark_used(cf);
    set_content_handler(cf, ngx_http_pulse_stub_status_handler);
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

// pulse_subscriber_info: a subscriber location (every transport) whose
// subscribers ask the subscribers of its channel for their info.
char* ngx_http_pulse_set_subscriber_info(ngx_conf_t* cf, ngx_command_t* cmd,
                                         void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    (void) cmd;
    // nchan's: the streams and WebSocket, no polls (a curl of the location
    // gets the raw stream)
    lcf->roles = NGX_HTTP_PULSE_SUB_WEBSOCKET | NGX_HTTP_PULSE_SUB_EVENTSOURCE
                 | NGX_HTTP_PULSE_SUB_CHUNKED | NGX_HTTP_PULSE_SUB_MULTIPART
                 | NGX_HTTP_PULSE_SUB_RAWSTREAM;
    lcf->subscriber_info = 1;
    auto* mcf = static_cast<ngx_http_pulse_main_conf_t*>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_pulse_module));
    mcf->subscriber_info = 1;
    mark_used(cf);
    set_content_handler(cf, ngx_http_pulse_handler);
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

// pulse_group_location [get] [set] [delete] [off]: nchan's group API;
// no argument is all three.
char* ngx_http_pulse_set_group_location(ngx_conf_t* cf, ngx_command_t* cmd,
                                        void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    (void) cmd;
    const auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    ngx_uint_t methods = 0;
    if (cf->args->nelts == 1) {
        methods = pulse::ngx::kGroupGet | pulse::ngx::kGroupSet
                  | pulse::ngx::kGroupDelete;
    }
    for (ngx_uint_t i = 1; i < cf->args->nelts; ++i) {
        std::string_view a = pulse::ngx::sv(args[i]);
        if (a == "get") {
            methods |= pulse::ngx::kGroupGet;
        } else if (a == "set") {
            methods |= pulse::ngx::kGroupSet;
        } else if (a == "delete") {
            methods |= pulse::ngx::kGroupDelete;
        } else if (a == "off") {
            return NGX_CONF_OK;
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "pulse_group_location: \"%V\" is not get, "
                               "set, delete or off",
                               &args[i]);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
    }
    lcf->group_location = methods | pulse::ngx::kGroupOn;
    mark_used(cf);
    set_content_handler(cf, ngx_http_pulse_group_handler);
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

// nchan's directives that Pulse does not implement (the table is made from
// lib/pulse/nchan_directives.h below): fail with what replaces each.
char* ngx_http_pulse_refuse(ngx_conf_t* cf, ngx_command_t* cmd, void*) noexcept
try {
    std::string why = pulse::nchan_refusal(pulse::ngx::sv(cmd->name));
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%*s", why.size(), why.data());
    return static_cast<char*>(NGX_CONF_ERROR);
}
PULSE_CATCH_CONF(cf)

// pulse_storage_engine memory: nchan's default and Pulse's only engine.
char* ngx_http_pulse_set_storage_engine(ngx_conf_t* cf, ngx_command_t* cmd,
                                        void*) noexcept
try {
    const auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    if (pulse::ngx::sv(args[1]) == "memory") {
        return NGX_CONF_OK;
    }
    if (pulse::ngx::sv(args[1]) == "redis") {
        std::string why = pulse::nchan_storage_engine_refusal();
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%*s", why.size(), why.data());
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid value \"%V\" in \"%V\": Pulse's one "
                       "storage engine is \"memory\"",
                       &args[1], &cmd->name);
    return static_cast<char*>(NGX_CONF_ERROR);
}
PULSE_CATCH_CONF(cf)

// pulse_metrics [tenants=N]
char* ngx_http_pulse_set_metrics(ngx_conf_t* cf, ngx_command_t*,
                                 void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    if (lcf->metrics_tenants != NGX_CONF_UNSET) {
        return const_cast<char*>("is duplicate");
    }
    lcf->metrics_tenants = kDefaultMetricsTenants;
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    if (cf->args->nelts == 2) {
        std::string_view a = pulse::ngx::sv(args[1]);
        constexpr std::string_view kKey = "tenants=";
        ngx_int_t n = a.substr(0, kKey.size()) == kKey ? ngx_atoi(
                          args[1].data + kKey.size(), args[1].len - kKey.size())
                                                       : NGX_ERROR;
        if (n == NGX_ERROR || n > kMaxMetricsTenants) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "pulse_metrics: \"%V\" is not tenants=N "
                               "with N from 0 to %i",
                               &args[1], kMaxMetricsTenants);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        lcf->metrics_tenants = n;
    }
    auto* mcf = static_cast<ngx_http_pulse_main_conf_t*>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_pulse_module));
    mcf->metrics = 1;
    mark_used(cf);
    set_content_handler(cf, ngx_http_pulse_metrics_handler);
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

// pulse_gap_signal on [event=NAME] | off
char* ngx_http_pulse_set_gap_signal(ngx_conf_t* cf, ngx_command_t*,
                                    void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    if (lcf->gap_signal != NGX_CONF_UNSET) {
        return const_cast<char*>("is duplicate");
    }
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    std::string_view mode = pulse::ngx::sv(args[1]);
    if (mode == "off" && cf->args->nelts == 2) {
        lcf->gap_signal = 0;
        return NGX_CONF_OK;
    }
    if (mode != "on") {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "pulse_gap_signal: \"%V\" is neither on nor off",
                           &args[1]);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    lcf->gap_signal = 1;
    if (cf->args->nelts == 3) {
        std::string_view a = pulse::ngx::sv(args[2]);
        constexpr std::string_view kKey = "event=";
        std::string_view name = a.substr(0, kKey.size()) == kKey
                                    ? a.substr(kKey.size())
                                    : std::string_view();
        if (name.empty()
            || !pulse::validate_field("pulse_gap_signal event", name,
                                      pulse::kMaxEventLength)
                    .is_ok())
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "pulse_gap_signal: \"%V\" is not event=NAME "
                               "(1 to 256 bytes, no control characters)",
                               &args[2]);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        lcf->gap_event.data = args[2].data + kKey.size();
        lcf->gap_event.len = name.size();
    }
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

// pulse_websocket_client_heartbeat <in> <out>
char* ngx_http_pulse_set_charset(ngx_conf_t* cf, ngx_command_t*,
                                 void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    if (lcf->channel_charset.set) {
        return const_cast<char*>("is duplicate");
    }
    auto* value = static_cast<ngx_str_t*>(cf->args->elts);
    auto cs = pulse::ChannelCharset::parse(pulse::ngx::sv(value[1]));
    if (!cs.is_ok()) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           PULSE_LOG_PREFIX "pulse_channel_id_charset: %s",
                           cs.status().message().c_str());
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    lcf->channel_charset = cs.value();
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

// pulse_tenant_publish_rate RATE [burst=N] (lib/pulse/limits.h)
char* ngx_http_pulse_set_tenant_rate(ngx_conf_t* cf, ngx_command_t*,
                                     void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    if (lcf->tenant_rate_milli != NGX_CONF_UNSET_UINT) {
        return const_cast<char*>("is duplicate");
    }
    auto* value = static_cast<ngx_str_t*>(cf->args->elts);
    auto r = pulse::parse_tenant_rate(
        pulse::ngx::sv(value[1]),
        cf->args->nelts > 2 ? pulse::ngx::sv(value[2]) : std::string_view());
    if (!r.is_ok()) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, PULSE_LOG_PREFIX "%s",
                           r.status().message().c_str());
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    lcf->tenant_rate_milli = r->per_second_milli;
    lcf->tenant_burst = r->burst;
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

char* ngx_http_pulse_set_heartbeat(ngx_conf_t* cf, ngx_command_t* cmd,
                                   void* conf) noexcept
{
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    (void) cmd;
    if (lcf->ws_heartbeat_in.data != nullptr) {
        return const_cast<char*>("is duplicate");
    }
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    lcf->ws_heartbeat_in = args[1];
    lcf->ws_heartbeat_out = args[2];
    return NGX_CONF_OK;
}

// Compiles `value` (which may hold nginx variables) into *cv.
bool compile(ngx_conf_t* cf, ngx_str_t* value, ngx_http_complex_value_t* cv)
{
    if (cv == nullptr) {
        return false;
    }
    ngx_http_compile_complex_value_t ccv;
    ngx_memzero(&ccv, sizeof(ccv));
    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;
    return ngx_http_compile_complex_value(&ccv) == NGX_OK;
}

// pulse_channel_id and friends: 1..7 values with nginx variables.
char* ngx_http_pulse_set_channel_ids(ngx_conf_t* cf, ngx_command_t* cmd,
                                     void* conf) noexcept
try {
    auto* field =
        reinterpret_cast<ngx_array_t**>(static_cast<char*>(conf) + cmd->offset);
    if (*field != NGX_CONF_UNSET_PTR) {
        return const_cast<char*>("is duplicate");
    }
    ngx_uint_t n = cf->args->nelts - 1;
    *field = ngx_array_create(cf->pool, n, sizeof(ngx_http_complex_value_t));
    if (*field == nullptr) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    for (ngx_uint_t i = 1; i < cf->args->nelts; ++i) {
        auto* cv =
            static_cast<ngx_http_complex_value_t*>(ngx_array_push(*field));
        if (!compile(cf, &args[i], cv)) {
            return static_cast<char*>(NGX_CONF_ERROR);
        }
    }
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

// A number, or an nginx variable evaluated per publish.
char* ngx_http_pulse_set_num_or_var(ngx_conf_t* cf, ngx_command_t* cmd,
                                    void* conf) noexcept
try {
    auto* base = static_cast<char*>(conf);
    auto* num = reinterpret_cast<ngx_int_t*>(base + cmd->offset);
    auto* cv = reinterpret_cast<ngx_http_complex_value_t**>(
        base + reinterpret_cast<uintptr_t>(cmd->post));
    if (*num != NGX_CONF_UNSET || *cv != nullptr) {
        return const_cast<char*>("is duplicate");
    }
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    ngx_str_t* v = &args[1];
    if (ngx_strlchr(v->data, v->data + v->len, '$') != nullptr) {
        *cv = static_cast<ngx_http_complex_value_t*>(
            ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t)));
        return compile(cf, v, *cv) ? NGX_CONF_OK
                                   : static_cast<char*>(NGX_CONF_ERROR);
    }
    bool is_time = std::strcmp(reinterpret_cast<const char*>(cmd->name.data),
                               "pulse_message_timeout")
                   == 0;
    ngx_int_t n = is_time ? ngx_parse_time(v, 1) : ngx_atoi(v->data, v->len);
    if (n == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           PULSE_LOG_PREFIX
                           "invalid value \"%V\" in \"%V\"; "
                           "expected %s or a variable",
                           v, &cmd->name,
                           is_time ? "a time like 30s or 1h" : "a number");
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    *num = n;
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

// oldest | newest | n (-32..32), as nchan.
char* ngx_http_pulse_set_first_message(ngx_conf_t* cf, ngx_command_t* cmd,
                                       void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    if (lcf->first_message != NGX_CONF_UNSET) {
        return const_cast<char*>("is duplicate");
    }
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    std::string_view v = pulse::ngx::sv(args[1]);
    if (v == "oldest") {
        lcf->first_message = 0;
        return NGX_CONF_OK;
    }
    if (v == "newest" || v == "0") {
        lcf->first_message = NGX_HTTP_PULSE_FIRST_NEWEST;
        return NGX_CONF_OK;
    }
    bool neg = !v.empty() && v[0] == '-';
    ngx_int_t n =
        ngx_atoi(args[1].data + (neg ? 1 : 0), args[1].len - (neg ? 1 : 0));
    if (n == NGX_ERROR || n > 32) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           PULSE_LOG_PREFIX
                           "invalid value \"%V\" in \"%V\"; "
                           "expected oldest, newest or a "
                           "number from -32 to 32",
                           &args[1], &cmd->name);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    lcf->first_message = neg ? -n : n;
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

ngx_conf_num_bounds_t max_id_length_bounds = {ngx_conf_check_num_bounds, 1,
                                              65536};

// nchan's aliases (pulse_publisher_location, pulse_pub_channel_id, ...)
// follow their directives, with the same handler and meaning.
// clang-format off
ngx_command_t ngx_http_pulse_commands[] = {

    { ngx_string("pulse_publisher"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_NOARGS
          |NGX_CONF_TAKE12,
      ngx_http_pulse_set_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      reinterpret_cast<void*>(kPublisher) },

    { ngx_string("pulse_publisher_location"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_NOARGS
          |NGX_CONF_TAKE12,
      ngx_http_pulse_set_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      reinterpret_cast<void*>(kPublisher) },

    { ngx_string("pulse_subscriber"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_ANY,
      ngx_http_pulse_set_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      reinterpret_cast<void*>(kSubscriber) },

    { ngx_string("pulse_subscriber_location"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_ANY,
      ngx_http_pulse_set_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      reinterpret_cast<void*>(kSubscriber) },

    { ngx_string("pulse_pubsub"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_ANY,
      ngx_http_pulse_set_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      reinterpret_cast<void*>(kPubSub) },

    { ngx_string("pulse_pubsub_location"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_ANY,
      ngx_http_pulse_set_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      reinterpret_cast<void*>(kPubSub) },

    { ngx_string("pulse_subscriber_info"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_pulse_set_subscriber_info,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_subscriber_info_string"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, subscriber_info_string),
      nullptr },

    { ngx_string("pulse_channel_group_accounting"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, group_accounting),
      nullptr },

    { ngx_string("pulse_group_location"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE123,
      ngx_http_pulse_set_group_location,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_group_max_channels"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, group_max),
      nullptr },

    { ngx_string("pulse_group_max_subscribers"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, group_max)
          + sizeof(ngx_http_complex_value_t*),
      nullptr },

    { ngx_string("pulse_group_max_messages"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, group_max)
          + 2 * sizeof(ngx_http_complex_value_t*),
      nullptr },

    { ngx_string("pulse_group_max_messages_memory"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, group_max)
          + 3 * sizeof(ngx_http_complex_value_t*),
      nullptr },

    { ngx_string("pulse_stub_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_pulse_set_stub_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_gap_signal"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_pulse_set_gap_signal,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_subscriber_throttle"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_pulse_set_pace_duration,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, pace_throttle),
      nullptr },

    { ngx_string("pulse_subscriber_throttle_min"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_pulse_set_pace_duration,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, pace_min),
      nullptr },

    { ngx_string("pulse_subscriber_throttle_max"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_pulse_set_pace_duration,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, pace_max),
      nullptr },

    { ngx_string("pulse_subscriber_queue"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_pulse_set_queue,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_pulse_set_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_channel_id"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_1MORE,
      ngx_http_pulse_set_channel_ids,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, channel_id),
      nullptr },

    { ngx_string("pulse_pubsub_channel_id"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_1MORE,
      ngx_http_pulse_set_channel_ids,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, channel_id),
      nullptr },

    { ngx_string("pulse_publisher_channel_id"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_1MORE,
      ngx_http_pulse_set_channel_ids,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, pub_channel_id),
      nullptr },

    { ngx_string("pulse_pub_channel_id"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_1MORE,
      ngx_http_pulse_set_channel_ids,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, pub_channel_id),
      nullptr },

    { ngx_string("pulse_subscriber_channel_id"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_1MORE,
      ngx_http_pulse_set_channel_ids,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, sub_channel_id),
      nullptr },

    { ngx_string("pulse_sub_channel_id"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_1MORE,
      ngx_http_pulse_set_channel_ids,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, sub_channel_id),
      nullptr },

    { ngx_string("pulse_channel_id_split_delimiter"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, split_delimiter),
      nullptr },

    { ngx_string("pulse_max_channel_id_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, max_channel_id_length),
      &max_id_length_bounds },

    { ngx_string("pulse_channel_group"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, channel_group),
      nullptr },

    { ngx_string("pulse_message_buffer_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_pulse_set_num_or_var,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, buffer_length),
      reinterpret_cast<void*>(
          offsetof(ngx_http_pulse_loc_conf_t, buffer_length_cv)) },

    { ngx_string("pulse_message_max_buffer_length"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_pulse_set_num_or_var,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, buffer_length),
      reinterpret_cast<void*>(
          offsetof(ngx_http_pulse_loc_conf_t, buffer_length_cv)) },

    { ngx_string("pulse_message_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_pulse_set_num_or_var,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, message_timeout),
      reinterpret_cast<void*>(
          offsetof(ngx_http_pulse_loc_conf_t, message_timeout_cv)) },

    { ngx_string("pulse_store_messages"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF
          |NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, store_messages),
      nullptr },

    { ngx_string("pulse_channel_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, channel_timeout),
      nullptr },

    { ngx_string("pulse_storage_engine"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_pulse_set_storage_engine,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_shared_memory_size"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pulse_main_conf_t, shm_size),
      nullptr },

    { ngx_string("pulse_max_reserved_memory"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pulse_main_conf_t, shm_size),
      nullptr },

    { ngx_string("pulse_subscriber_first_message"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_http_pulse_set_first_message,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_subscriber_last_message_id"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_1MORE,
      ngx_http_pulse_set_channel_ids,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, last_message_id),
      nullptr },

    { ngx_string("pulse_subscriber_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF
          |NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, subscriber_timeout),
      nullptr },

    { ngx_string("pulse_subscriber_compound_etag_message_id"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, compound_etag),
      nullptr },

    { ngx_string("pulse_subscriber_message_id_custom_etag_header"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, custom_etag_header),
      nullptr },

    { ngx_string("pulse_subscribe_existing_channels_only"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, existing_only),
      nullptr },

    { ngx_string("pulse_longpoll_multipart_response"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, longpoll_parts),
      kLongpollParts },

    { ngx_string("pulse_subscriber_http_raw_stream_separator"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, raw_stream_separator),
      nullptr },

    { ngx_string("pulse_max_channel_subscribers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, max_channel_subscribers),
      nullptr },

    { ngx_string("pulse_subscriber_max_buffered"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, subscriber_max_buffered),
      nullptr },

    { ngx_string("pulse_eventsource_event"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, eventsource_event),
      nullptr },

    { ngx_string("pulse_eventsource_ping_interval"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, es_ping_interval),
      nullptr },

    { ngx_string("pulse_eventsource_ping_event"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, es_ping_event),
      nullptr },

    { ngx_string("pulse_eventsource_ping_data"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, es_ping_data),
      nullptr },

    { ngx_string("pulse_eventsource_ping_comment"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, es_ping_comment),
      nullptr },

    { ngx_string("pulse_access_control_allow_origin"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF
          |NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, allow_origin),
      nullptr },

    { ngx_string("pulse_access_control_allow_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF
          |NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, allow_credentials),
      nullptr },

    { ngx_string("pulse_websocket_ping_interval"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, ws_ping_interval),
      nullptr },

    { ngx_string("pulse_websocket_client_heartbeat"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE2,
      ngx_http_pulse_set_heartbeat,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_websocket_max_message_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, ws_max_message_size),
      nullptr },

    { ngx_string("pulse_deflate_message_for_websocket"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, deflate_message),
      nullptr },

    { ngx_string("pulse_permessage_deflate_compression_level"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pulse_main_conf_t, deflate_level),
      &kDeflateLevelBounds },

    { ngx_string("pulse_permessage_deflate_compression_memlevel"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pulse_main_conf_t, deflate_memlevel),
      &kDeflateMemlevelBounds },

    { ngx_string("pulse_permessage_deflate_compression_strategy"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pulse_main_conf_t, deflate_strategy),
      kDeflateStrategies },

    { ngx_string("pulse_permessage_deflate_compression_window"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pulse_main_conf_t, deflate_window),
      &kDeflateWindowBounds },

    { ngx_string("pulse_max_channels_per_connection"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, max_channels_per_connection),
      nullptr },

    { ngx_string("pulse_authorize_request"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, authorize_request),
      nullptr },

    { ngx_string("pulse_subscribe_request"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, subscribe_request),
      nullptr },

    { ngx_string("pulse_unsubscribe_request"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, unsubscribe_request),
      nullptr },

    { ngx_string("pulse_channel_events_channel_id"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, channel_events_id),
      nullptr },

    { ngx_string("pulse_channel_event_string"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, channel_event_string),
      nullptr },

    { ngx_string("pulse_publisher_upstream_request"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LIF_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, publisher_upstream_request),
      nullptr },

    { ngx_string("pulse_max_tenant_subscribers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, max_tenant_subscribers),
      nullptr },

    { ngx_string("pulse_tenant_publish_rate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_pulse_set_tenant_rate,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_websocket_upstream"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, ws_upstream),
      nullptr },

    { ngx_string("pulse_websocket_identity"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, ws_identity),
      nullptr },

    { ngx_string("pulse_publisher_message_id"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, publisher_message_id),
      nullptr },

    { ngx_string("pulse_max_message_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pulse_loc_conf_t, max_message_size),
      nullptr },

    { ngx_string("pulse_channel_id_charset"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_pulse_set_charset,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_jwt_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      pulse::ngx::set_jwt_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_jwt_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      pulse::ngx::set_jwt_token,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      pulse::ngx::set_jwt_leeway,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_jwt_max_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      pulse::ngx::set_jwt_max_size,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

    { ngx_string("pulse_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      pulse::ngx::set_jwt_string,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &pulse::ngx::kJwtIssuer },

    { ngx_string("pulse_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      pulse::ngx::set_jwt_string,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &pulse::ngx::kJwtAudience },

    { ngx_string("pulse_jwt_tenant_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      pulse::ngx::set_jwt_string,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &pulse::ngx::kJwtTenantClaim },

    { ngx_string("pulse_jwt_channels_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      pulse::ngx::set_jwt_string,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      &pulse::ngx::kJwtChannelsClaim },

    { ngx_string("pulse_auth_audit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      pulse::ngx::set_auth_audit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      nullptr },

      ngx_null_command
};
// clang-format on

void* ngx_http_pulse_create_main_conf(ngx_conf_t* cf) noexcept
{
    auto* mcf = static_cast<ngx_http_pulse_main_conf_t*>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_pulse_main_conf_t)));
    if (mcf == nullptr) {
        return nullptr;
    }
    mcf->shm_size = NGX_CONF_UNSET_SIZE;
    mcf->deflate_level = NGX_CONF_UNSET;
    mcf->deflate_memlevel = NGX_CONF_UNSET;
    mcf->deflate_strategy = NGX_CONF_UNSET_UINT;
    mcf->deflate_window = NGX_CONF_UNSET;
    return mcf;
}

char* ngx_http_pulse_init_main_conf(ngx_conf_t* cf, void* conf) noexcept
{
    auto* mcf = static_cast<ngx_http_pulse_main_conf_t*>(conf);
    ngx_conf_init_size_value(mcf->shm_size, kDefaultShmSize);
    ngx_conf_init_value(mcf->deflate_level, 6);
    ngx_conf_init_value(mcf->deflate_memlevel, 8);
    ngx_conf_init_uint_value(mcf->deflate_strategy, Z_DEFAULT_STRATEGY);
    ngx_conf_init_value(mcf->deflate_window, 10);
    if (mcf->shm_size < kMinShmSize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           PULSE_LOG_PREFIX
                           "pulse_shared_memory_size must be "
                           "at least 1m");
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    if (mcf->shm_size > 0xffffffffu) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           PULSE_LOG_PREFIX
                           "pulse_shared_memory_size must be "
                           "below 4g");
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    return NGX_CONF_OK;
}

void* ngx_http_pulse_create_loc_conf(ngx_conf_t* cf) noexcept
{
    auto* c = static_cast<ngx_http_pulse_loc_conf_t*>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_pulse_loc_conf_t)));
    if (c == nullptr) {
        return nullptr;
    }
    // ngx_pcalloc zeroed: channel_group, eventsource_event, allow_origin,
    // *_cv = nullptr; split_delimiter, es_ping_* strings empty.
    c->roles = NGX_CONF_UNSET_UINT;
    c->channel_id = static_cast<ngx_array_t*>(NGX_CONF_UNSET_PTR);
    c->pub_channel_id = static_cast<ngx_array_t*>(NGX_CONF_UNSET_PTR);
    c->sub_channel_id = static_cast<ngx_array_t*>(NGX_CONF_UNSET_PTR);
    c->last_message_id = static_cast<ngx_array_t*>(NGX_CONF_UNSET_PTR);
    c->max_channel_id_length = NGX_CONF_UNSET;
    c->buffer_length = NGX_CONF_UNSET;
    c->message_timeout = NGX_CONF_UNSET;
    c->store_messages = NGX_CONF_UNSET;
    c->channel_timeout = NGX_CONF_UNSET;
    c->publisher_message_id = NGX_CONF_UNSET;
    c->first_message = NGX_CONF_UNSET;
    c->subscriber_timeout = NGX_CONF_UNSET;
    c->compound_etag = NGX_CONF_UNSET;
    c->existing_only = NGX_CONF_UNSET;
    c->max_channel_subscribers = NGX_CONF_UNSET;
    c->subscriber_max_buffered = NGX_CONF_UNSET_SIZE;
    c->es_ping_interval = NGX_CONF_UNSET;
    c->es_ping_event.data = nullptr;
    c->allow_credentials = NGX_CONF_UNSET;
    c->stub_status = NGX_CONF_UNSET;
    c->group_accounting = NGX_CONF_UNSET;
    c->metrics_tenants = NGX_CONF_UNSET;
    c->gap_signal = NGX_CONF_UNSET;
    c->longpoll_parts = NGX_CONF_UNSET_UINT;
    c->pace_throttle = NGX_CONF_UNSET_MSEC;
    c->pace_min = NGX_CONF_UNSET_MSEC;
    c->pace_max = NGX_CONF_UNSET_MSEC;
    c->queue_messages = NGX_CONF_UNSET_UINT;
    c->queue_bytes = NGX_CONF_UNSET_SIZE;
    c->queue_overflow = NGX_CONF_UNSET_UINT;
    c->ws_ping_interval = NGX_CONF_UNSET;
    c->ws_max_message_size = NGX_CONF_UNSET_SIZE;
    c->max_message_size = NGX_CONF_UNSET_SIZE;
    c->deflate_message = NGX_CONF_UNSET;
    c->max_channels_per_connection = NGX_CONF_UNSET;
    c->max_tenant_subscribers = NGX_CONF_UNSET;
    c->tenant_rate_milli = NGX_CONF_UNSET_UINT;
    c->tenant_burst = NGX_CONF_UNSET_UINT;
    return c;
}

void merge_array(ngx_array_t** conf, ngx_array_t* prev)
{
    if (*conf == NGX_CONF_UNSET_PTR) {
        *conf = prev == NGX_CONF_UNSET_PTR ? nullptr : prev;
    }
}

char* ngx_http_pulse_merge_loc_conf(ngx_conf_t* cf, void* parent,
                                    void* child) noexcept
try {
    auto* p = static_cast<ngx_http_pulse_loc_conf_t*>(parent);
    auto* c = static_cast<ngx_http_pulse_loc_conf_t*>(child);
    ngx_conf_merge_uint_value(c->roles, p->roles, 0);
    merge_array(&c->channel_id, p->channel_id);
    merge_array(&c->pub_channel_id, p->pub_channel_id);
    merge_array(&c->sub_channel_id, p->sub_channel_id);
    merge_array(&c->last_message_id, p->last_message_id);
    if (c->channel_group == nullptr) {
        c->channel_group = p->channel_group;
    }
    ngx_conf_merge_str_value(c->split_delimiter, p->split_delimiter, "");
    ngx_conf_merge_value(
        c->max_channel_id_length, p->max_channel_id_length,
        static_cast<ngx_int_t>(pulse::kDefaultMaxChannelIdLength));
    if (c->buffer_length == NGX_CONF_UNSET && c->buffer_length_cv == nullptr) {
        c->buffer_length = p->buffer_length;
        c->buffer_length_cv = p->buffer_length_cv;
    }
    ngx_conf_merge_value(c->buffer_length, p->buffer_length, 10);
    if (c->message_timeout == NGX_CONF_UNSET
        && c->message_timeout_cv == nullptr) {
        c->message_timeout = p->message_timeout;
        c->message_timeout_cv = p->message_timeout_cv;
    }
    ngx_conf_merge_value(c->message_timeout, p->message_timeout, 3600);
    ngx_conf_merge_value(c->store_messages, p->store_messages, 1);
    ngx_conf_merge_sec_value(c->channel_timeout, p->channel_timeout, 5);
    ngx_conf_merge_value(c->publisher_message_id, p->publisher_message_id, 0);
    ngx_conf_merge_value(c->first_message, p->first_message, 0);
    ngx_conf_merge_sec_value(c->subscriber_timeout, p->subscriber_timeout, 0);
    ngx_conf_merge_value(c->compound_etag, p->compound_etag, 0);
    ngx_conf_merge_str_value(c->custom_etag_header, p->custom_etag_header, "");
    ngx_conf_merge_value(c->existing_only, p->existing_only, 0);
    ngx_conf_merge_str_value(c->raw_stream_separator, p->raw_stream_separator,
                             "\n");
    ngx_conf_merge_value(c->max_channel_subscribers, p->max_channel_subscribers,
                         0);
    ngx_conf_merge_size_value(c->subscriber_max_buffered,
                              p->subscriber_max_buffered, kDefaultMaxBuffered);
    if (c->eventsource_event == nullptr) {
        c->eventsource_event = p->eventsource_event;
    }
    ngx_conf_merge_sec_value(c->es_ping_interval, p->es_ping_interval, 0);
    ngx_conf_merge_str_value(c->es_ping_event, p->es_ping_event, "ping");
    ngx_conf_merge_str_value(c->es_ping_data, p->es_ping_data, "");
    // nchan merges ping_data from the parent's ping_comment and never
    // merges ping_comment (a bug in nchan 1.3); Pulse merges each from itself.
    ngx_conf_merge_str_value(c->es_ping_comment, p->es_ping_comment, "");
    // Written into every stream as lines: a line break would end the ping
    // early and forge fields.
    for (auto [name, value] :
         {std::pair{"pulse_eventsource_ping_event", &c->es_ping_event},
          std::pair{"pulse_eventsource_ping_data", &c->es_ping_data},
          std::pair{"pulse_eventsource_ping_comment", &c->es_ping_comment}})
    {
        pulse::Status v = pulse::validate_field(name, pulse::ngx::sv(*value),
                                                pulse::kMaxEventLength);
        if (!v.is_ok()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, PULSE_LOG_PREFIX "%s",
                               v.message().c_str());
            return static_cast<char*>(NGX_CONF_ERROR);
        }
    }
    if (c->allow_origin == nullptr) {
        c->allow_origin = p->allow_origin;
    }
    ngx_conf_merge_value(c->allow_credentials, p->allow_credentials, 1);
    ngx_conf_merge_value(c->stub_status, p->stub_status, 0);
    ngx_conf_merge_value(c->group_accounting, p->group_accounting, 0);
    for (size_t i = 0; i < 4; ++i) {
        if (c->group_max[i] == nullptr) {
            c->group_max[i] = p->group_max[i];
        }
    }
    ngx_conf_merge_value(c->gap_signal, p->gap_signal, 0);
    ngx_conf_merge_uint_value(c->longpoll_parts, p->longpoll_parts,
                              static_cast<ngx_uint_t>(pulse::PollParts::kOne));
    ngx_conf_merge_str_value(c->gap_event, p->gap_event, "pulse-gap");
    ngx_http_pulse_merge_pacing(c, p);
    ngx_conf_merge_sec_value(c->ws_ping_interval, p->ws_ping_interval, 0);
    if (c->ws_heartbeat_in.data == nullptr) {
        c->ws_heartbeat_in = p->ws_heartbeat_in;
        c->ws_heartbeat_out = p->ws_heartbeat_out;
    }
    ngx_conf_merge_size_value(c->ws_max_message_size, p->ws_max_message_size,
                              kDefaultWsMaxMessage);
    ngx_conf_merge_value(c->deflate_message, p->deflate_message, 0);
    ngx_conf_merge_value(c->max_channels_per_connection,
                         p->max_channels_per_connection,
                         kDefaultMaxChannelsPerConnection);
    ngx_conf_merge_str_value(c->ws_upstream, p->ws_upstream, "");
    if (c->ws_identity == nullptr) {
        c->ws_identity = p->ws_identity;
    }
    ngx_conf_merge_size_value(c->max_message_size, p->max_message_size, 0);
    if (!c->channel_charset.set) {
        c->channel_charset = p->channel_charset;
    }
    ngx_conf_merge_value(c->max_tenant_subscribers, p->max_tenant_subscribers,
                         0);
    if (c->tenant_rate_milli == NGX_CONF_UNSET_UINT) {
        c->tenant_rate_milli = p->tenant_rate_milli == NGX_CONF_UNSET_UINT
                                   ? 0
                                   : p->tenant_rate_milli;
        c->tenant_burst = p->tenant_burst;
    }
    for (auto hook : {&ngx_http_pulse_loc_conf_t::authorize_request,
                      &ngx_http_pulse_loc_conf_t::subscribe_request,
                      &ngx_http_pulse_loc_conf_t::unsubscribe_request,
                      &ngx_http_pulse_loc_conf_t::publisher_upstream_request})
    {
        if (c->*hook == nullptr) {
            c->*hook = p->*hook;
        }
    }
    if (char* rv = pulse::ngx::merge_channel_events(cf, p, c);
        rv != NGX_CONF_OK) {
        return rv;
    }
    if (char* rv = pulse::ngx::merge_subscriber_info(cf, p, c);
        rv != NGX_CONF_OK) {
        return rv;
    }
    return pulse::ngx::merge_auth(cf, p, c);
}
PULSE_CATCH_CONF(cf)

ngx_int_t ngx_http_pulse_preconfiguration(ngx_conf_t* cf) noexcept
try {
    return pulse::ngx::add_variables(cf);
}
PULSE_CATCH_RETURN(cf->log, NGX_LOG_EMERG, NGX_ERROR)

ngx_int_t ngx_http_pulse_postconfiguration(ngx_conf_t* cf) noexcept
try {
    auto* mcf = static_cast<ngx_http_pulse_main_conf_t*>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_pulse_module));
    if (!mcf->used) {
        return NGX_OK;  // loaded but unused: no zone, no cost
    }
    mcf->shm_zone = pulse::ngx::add_zone(cf, mcf->shm_size);
    pulse::ngx::add_capture_filter();
    return mcf->shm_zone == nullptr ? NGX_ERROR : NGX_OK;
}
PULSE_CATCH_RETURN(cf->log, NGX_LOG_EMERG, NGX_ERROR)

ngx_int_t ngx_http_pulse_init_process(ngx_cycle_t* cycle) noexcept
try {
    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }
    pulse::ngx::find_variable_indexes(cycle);
    pulse::ngx::Zone* zone = pulse::ngx::zone(cycle);
    if (zone == nullptr) {
        return NGX_OK;
    }
    Worker::start(cycle, zone);
    return NGX_OK;
}
// A failed init_process costs the worker slot for good (docs/conventions.md
// §2): log and carry on without the runtime instead.
PULSE_CATCH_RETURN(cycle->log, NGX_LOG_ALERT, NGX_OK)

void ngx_http_pulse_exit_process(ngx_cycle_t* cycle) noexcept
try {
    Worker::stop(cycle);
}
PULSE_CATCH_VOID(cycle->log)

ngx_http_module_t ngx_http_pulse_module_ctx = {
    ngx_http_pulse_preconfiguration,   // preconfiguration
    ngx_http_pulse_postconfiguration,  // postconfiguration
    ngx_http_pulse_create_main_conf,   // create main configuration
    ngx_http_pulse_init_main_conf,     // init main configuration
    nullptr,                           // create server configuration
    nullptr,                           // merge server configuration
    ngx_http_pulse_create_loc_conf,    // create location configuration
    ngx_http_pulse_merge_loc_conf      // merge location configuration
};

}  // namespace

// clang-format off
extern "C" {
// The only symbol the .so exports (built with -fvisibility=hidden).
__attribute__((visibility("default")))
ngx_module_t ngx_http_pulse_module = {
    NGX_MODULE_V1,
    &ngx_http_pulse_module_ctx,          // module context
    ngx_http_pulse_commands,             // module directives
    NGX_HTTP_MODULE,                     // module type
    nullptr,                             // init master
    nullptr,                             // init module
    ngx_http_pulse_init_process,         // init process
    nullptr,                             // init thread
    nullptr,                             // exit thread
    ngx_http_pulse_exit_process,         // exit process
    nullptr,                             // exit master
    NGX_MODULE_V1_PADDING
};
}
// clang-format on

namespace {

// The table nginx reads: ngx_http_pulse_commands, then a refusal for each of
// nchan's directives that Pulse does not implement. A static initializer
// builds it when nginx dlopen()s the module, before nginx reads the table.
std::vector<ngx_command_t> make_commands()
{
    std::vector<ngx_command_t> all;
    for (const ngx_command_t* c = ngx_http_pulse_commands; c->name.len != 0;
         ++c) {
        all.push_back(*c);
    }
    for (std::string_view name : pulse::nchan_refused_directives()) {
        all.push_back(
            {{name.size(),
              reinterpret_cast<u_char*>(const_cast<char*>(name.data()))},
             NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF
                 | NGX_HTTP_LIF_CONF | NGX_HTTP_SIF_CONF | NGX_HTTP_UPS_CONF
                 | NGX_CONF_ANY,
             ngx_http_pulse_refuse,
             NGX_HTTP_LOC_CONF_OFFSET,
             0,
             nullptr});
    }
    all.push_back(ngx_null_command);
    return all;
}

// NOLINTNEXTLINE(cert-err58-cpp): the lambda is noexcept and catches all
const bool kCommandsBuilt = []() noexcept {
    try {
        static std::vector<ngx_command_t> all = make_commands();
        ngx_http_pulse_module.commands = all.data();
        return true;
    } catch (...) {
        // out of memory while loading: the table without the refusals
        return false;
    }
}();

}  // namespace
