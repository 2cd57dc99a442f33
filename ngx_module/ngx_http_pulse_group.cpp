// pulse_group_location (nchan's group location API): GET the group's
// counts and limits, POST its limits, DELETE its channels.

#include "ngx_http_pulse_group.h"

#include <optional>
#include <string>

#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_request.h"
#include "ngx_http_pulse_worker.h"
#include "pulse/channel_info.h"
#include "pulse/store.h"

namespace pulse::ngx {

namespace {

constexpr const char* kLimitNames[4] = {
    "pulse_group_max_channels",
    "pulse_group_max_subscribers",
    "pulse_group_max_messages",
    "pulse_group_max_messages_memory",
};

// One limit as the request evaluates it: unset when empty.
Result<std::optional<uint64_t>> eval_limit(ngx_http_request_t* r,
                                           ngx_http_complex_value_t* cv,
                                           bool size, const char* name)
{
    if (cv == nullptr) {
        return std::optional<uint64_t>();
    }
    ngx_str_t v;
    if (ngx_http_complex_value(r, cv, &v) != NGX_OK) {
        throw std::bad_alloc();
    }
    if (v.len == 0) {
        return std::optional<uint64_t>();
    }
    ngx_int_t n = size ? ngx_parse_size(&v) : ngx_atoi(v.data, v.len);
    if (n == NGX_ERROR || n < 0) {
        return Status(Code::kForbidden,
                      "invalid " + std::string(name) + " value");
    }
    return std::optional<uint64_t>(static_cast<uint64_t>(n));
}

Result<GroupLimitsUpdate> eval_limits(ngx_http_request_t* r,
                                      ngx_http_pulse_loc_conf_t* lcf)
{
    GroupLimitsUpdate u;
    std::optional<uint64_t>* fields[4] = {&u.channels, &u.subscribers,
                                          &u.messages, &u.messages_memory};
    for (size_t i = 0; i < 4; ++i) {
        auto v = eval_limit(r, lcf->group_max[i], i == 3, kLimitNames[i]);
        if (!v.is_ok()) {
            return v.status();
        }
        *fields[i] = v.value();
    }
    return u;
}

ngx_int_t send_group(ngx_http_request_t* r, const GroupInfo& info)
{
    auto accept = r->headers_in.accept;
    InfoFormat f = info_format_from_accept(accept ? sv(accept->value) : "");
    return send_response(r, NGX_HTTP_OK, info_content_type(f),
                         format_group_info(info, f));
}

ngx_int_t group_request(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }
    if (lcf->group_accounting == 0) {
        return send_response(r, NGX_HTTP_FORBIDDEN, "text/plain",
                             "Channel group accounting is disabled.");
    }
    Worker* w = Worker::get();
    if (w == nullptr) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }
    auto group = channel_group(r, lcf);
    if (!group.is_ok()) {
        return send_status(r, group.status());
    }
    if (r->method == NGX_HTTP_OPTIONS) {
        if (add_header(r, "Allow", "GET, POST, DELETE") != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        return send_response(r, NGX_HTTP_OK, "", "");
    }
    ngx_uint_t want = 0;
    if (r->method == NGX_HTTP_GET) {
        want = kGroupGet;
    } else if (r->method == NGX_HTTP_POST) {
        want = kGroupSet;
    } else if (r->method == NGX_HTTP_DELETE) {
        want = kGroupDelete;
    }
    if ((lcf->group_location & want) == 0) {
        return send_response(r, NGX_HTTP_FORBIDDEN, "", "");
    }
    Store& store = w->store();
    if (want == kGroupSet) {
        auto u = eval_limits(r, lcf);
        if (!u.is_ok()) {
            return send_status(r, u.status());
        }
        Store::Guard g(store);
        if (Status s = store.set_group_limits(g, group.value(), u.value());
            !s.is_ok()) {
            return send_status(r, s);
        }
    }
    GroupInfo info;
    uint64_t ring = 0;
    {
        Store::Guard g(store);
        info = want == kGroupDelete
                   ? store.remove_group(g, group.value(), w->now(), &ring)
                   : store.group_info(g, group.value());
    }
    w->ring(ring);
    return send_group(r, info);
}

}  // namespace

Status set_group_limits(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                        std::string_view group)
{
    if (lcf->group_accounting == 0) {
        return Status::ok();
    }
    auto u = eval_limits(r, lcf);
    if (!u.is_ok() || !u->any()) {
        return u.is_ok() ? Status::ok() : u.status();
    }
    Worker* w = Worker::get();
    if (w == nullptr) {
        return Status::ok();
    }
    Store::Guard g(w->store());
    return w->store().set_group_limits(g, group, u.value());
}

}  // namespace pulse::ngx

ngx_int_t ngx_http_pulse_group_handler(ngx_http_request_t* r) noexcept
{
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(
        ngx_http_get_module_loc_conf(r, ngx_http_pulse_module));
    return pulse::ngx::rc_or_500(
        r, [r, lcf] { return pulse::ngx::group_request(r, lcf); });
}
