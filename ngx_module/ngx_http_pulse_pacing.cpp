#include "ngx_http_pulse_pacing.h"

#include <string>
#include <string_view>

#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_request.h"
#include "pulse/text.h"

namespace pulse::ngx {

namespace {

constexpr ngx_uint_t kDefaultQueueMessages = 1024;
constexpr size_t kDefaultQueueBytes = size_t{1} << 20;
constexpr ngx_msec_t kDefaultPaceMax = 3600000;  // 1h

}  // namespace

pacing::Limits pace_limits(const ngx_http_pulse_loc_conf_t* lcf)
{
    pacing::Limits l;
    if (lcf->pace_throttle > 0) {
        l.fallback = pacing::Pace{pacing::Mode::kThrottle, lcf->pace_throttle};
    }
    l.min_ms = lcf->pace_min;
    l.max_ms = lcf->pace_max;
    return l;
}

pacing::Bounds queue_bounds(const ngx_http_pulse_loc_conf_t* lcf)
{
    return pacing::Bounds{static_cast<size_t>(lcf->queue_messages),
                          lcf->queue_bytes,
                          static_cast<pacing::Overflow>(lcf->queue_overflow)};
}

Result<pacing::Pace> request_pace(ngx_http_request_t* r,
                                  const ngx_http_pulse_loc_conf_t* lcf,
                                  bool manual_ok)
{
    std::string_view args = sv(r->args);
    std::optional<std::string_view> throttle;
    std::optional<std::string_view> interval;
    std::optional<std::string_view> mode;
    if (!args.empty()) {
        throttle = text::query_arg(args, "throttle");
        interval = text::query_arg(args, "interval");
        mode = text::query_arg(args, "mode");
    }
    auto ask = pacing::parse_ask(throttle, interval, mode);
    if (!ask.is_ok()) {
        return ask.status();
    }
    if (!manual_ok && ask.value() && ask.value()->mode == pacing::Mode::kManual)
    {
        return Status(Code::kInvalidArgument,
                      "mode=manual needs pulse.v1's fetch request; this "
                      "transport has none.");
    }
    return pacing::bounded(pace_limits(lcf), ask.value());
}

}  // namespace pulse::ngx

char* ngx_http_pulse_set_pace_duration(ngx_conf_t* cf, ngx_command_t* cmd,
                                       void* conf) noexcept
try {
    auto* field =
        reinterpret_cast<ngx_msec_t*>(static_cast<char*>(conf) + cmd->offset);
    if (*field != NGX_CONF_UNSET_MSEC) {
        return const_cast<char*>("is duplicate");
    }
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    std::string_view a = pulse::ngx::sv(args[1]);
    if (a == "off") {
        *field = 0;
        return NGX_CONF_OK;
    }
    auto ms = pulse::pacing::parse_duration_ms(a);
    if (!ms.is_ok()) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: %s", &cmd->name,
                           ms.status().message().c_str());
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    *field = static_cast<ngx_msec_t>(ms.value());
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

char* ngx_http_pulse_set_queue(ngx_conf_t* cf, ngx_command_t*,
                               void* conf) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(conf);
    if (lcf->queue_overflow != NGX_CONF_UNSET_UINT) {
        return const_cast<char*>("is duplicate");
    }
    lcf->queue_overflow =
        static_cast<ngx_uint_t>(pulse::pacing::Overflow::kClose);
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    for (ngx_uint_t i = 1; i < cf->args->nelts; ++i) {
        std::string_view a = pulse::ngx::sv(args[i]);
        size_t eq = a.find('=');
        std::string_view key = a.substr(0, eq);
        ngx_str_t value{eq == std::string_view::npos ? 0 : a.size() - eq - 1,
                        args[i].data + eq + 1};
        bool ok = eq != std::string_view::npos && value.len > 0;
        if (ok && key == "messages") {
            ngx_int_t n = ngx_atoi(value.data, value.len);
            ok = n != NGX_ERROR;
            lcf->queue_messages = static_cast<ngx_uint_t>(n);
        } else if (ok && key == "bytes") {
            ssize_t n = ngx_parse_size(&value);
            ok = n != NGX_ERROR;
            lcf->queue_bytes = static_cast<size_t>(n);
        } else if (ok && key == "overflow") {
            std::string_view v = pulse::ngx::sv(value);
            using pulse::pacing::Overflow;
            ok = false;
            for (Overflow o :
                 {Overflow::kClose, Overflow::kDropOldest, Overflow::kConflate})
            {
                if (v == pulse::pacing::overflow_name(o)) {
                    lcf->queue_overflow = static_cast<ngx_uint_t>(o);
                    ok = true;
                }
            }
        } else {
            ok = false;
        }
        if (!ok) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "pulse_subscriber_queue: \"%V\" is not "
                               "messages=N, bytes=SIZE or overflow=close|"
                               "drop-oldest|conflate",
                               &args[i]);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
    }
    return NGX_CONF_OK;
}
PULSE_CATCH_CONF(cf)

void ngx_http_pulse_merge_pacing(ngx_http_pulse_loc_conf_t* c,
                                 const ngx_http_pulse_loc_conf_t* p)
{
    ngx_conf_merge_msec_value(c->pace_throttle, p->pace_throttle, 0);
    ngx_conf_merge_msec_value(c->pace_min, p->pace_min, 0);
    ngx_conf_merge_msec_value(c->pace_max, p->pace_max,
                              pulse::ngx::kDefaultPaceMax);
    if (c->queue_overflow == NGX_CONF_UNSET_UINT) {
        c->queue_overflow = p->queue_overflow;
        c->queue_messages = p->queue_messages;
        c->queue_bytes = p->queue_bytes;
    }
    if (c->queue_overflow == NGX_CONF_UNSET_UINT) {
        c->queue_overflow =
            static_cast<ngx_uint_t>(pulse::pacing::Overflow::kClose);
    }
    ngx_conf_merge_uint_value(c->queue_messages, NGX_CONF_UNSET_UINT,
                              pulse::ngx::kDefaultQueueMessages);
    ngx_conf_merge_size_value(c->queue_bytes, NGX_CONF_UNSET_SIZE,
                              pulse::ngx::kDefaultQueueBytes);
}
