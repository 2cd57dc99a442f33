#include "ngx_http_pulse_request.h"

#include <algorithm>
#include <new>
#include <string>

#include "ngx_http_pulse_auth.h"
#include "ngx_http_pulse_group.h"
#include "ngx_http_pulse_metrics.h"
#include "ngx_http_pulse_worker.h"
#include "pulse/channel_id.h"
#include "pulse/text.h"

namespace pulse::ngx {

RequestCtx* find_request_ctx(ngx_http_request_t* r)
{
    return static_cast<RequestCtx*>(
        ngx_http_get_module_ctx(r, ngx_http_pulse_module));
}

RequestCtx& request_ctx(ngx_http_request_t* r)
{
    if (RequestCtx* ctx = find_request_ctx(r)) {
        return *ctx;
    }
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(r->pool, sizeof(RequestCtx));
    if (cln == nullptr) {
        throw std::bad_alloc();
    }
    auto* ctx = new (cln->data) RequestCtx();
    cln->handler = [](void* data) noexcept {
        static_cast<RequestCtx*>(data)->~RequestCtx();
    };
    ngx_http_set_ctx(r, ctx, ngx_http_pulse_module);
    return *ctx;
}

ngx_str_t pool_str(ngx_pool_t* pool, std::string_view s)
{
    ngx_str_t out;
    out.len = s.size();
    out.data = static_cast<u_char*>(ngx_pnalloc(pool, s.size() + 1));
    if (out.data == nullptr) {
        throw std::bad_alloc();
    }
    ngx_memcpy(out.data, s.data(), s.size());
    out.data[s.size()] = '\0';
    return out;
}

std::optional<std::string_view> header(ngx_http_request_t* r,
                                       std::string_view name)
{
    std::optional<std::string_view> found;
    for_each_header(&r->headers_in.headers, [&](ngx_table_elt_t& h) {
        if (!found && h.key.len == name.size()
            && ngx_strncasecmp(
                   h.key.data,
                   reinterpret_cast<u_char*>(const_cast<char*>(name.data())),
                   name.size())
                   == 0)
        {
            found = sv(h.value);
        }
    });
    return found;
}

PulseHeaders pulse_headers(ngx_http_request_t* r)
{
    PulseHeaders out;
    auto is = [](const ngx_table_elt_t& h, const char* name, size_t len) {
        return h.key.len == len
               && ngx_strncasecmp(
                      h.key.data,
                      reinterpret_cast<u_char*>(const_cast<char*>(name)), len)
                      == 0;
    };
    for_each_header(&r->headers_in.headers, [&](ngx_table_elt_t& h) {
        std::optional<std::string_view>* slot = nullptr;
        switch (h.key.len) {
            case 2:
                slot = is(h, "TE", 2) ? &out.te : nullptr;
                break;
            case 6:
                slot = is(h, "Origin", 6) ? &out.origin : nullptr;
                break;
            case 7:
                slot = is(h, "Upgrade", 7) ? &out.upgrade : nullptr;
                break;
            case 10:
                slot = is(h, "Connection", 10) ? &out.connection : nullptr;
                break;
            default:
                break;
        }
        if (slot != nullptr && !*slot) {
            *slot = sv(h.value);
        }
    });
    return out;
}

ngx_int_t add_header(ngx_http_request_t* r, std::string_view name,
                     std::string_view value)
{
    auto* h =
        static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr) {
        return NGX_ERROR;
    }
    h->hash = 1;
    h->key = pool_str(r->pool, name);
    h->value = pool_str(r->pool, value);
    return NGX_OK;
}

ngx_int_t add_static_header(ngx_http_request_t* r, ngx_str_t* name,
                            ngx_str_t* value)
{
    auto* h =
        static_cast<ngx_table_elt_t*>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr) {
        return NGX_ERROR;
    }
    h->hash = 1;
    h->key = *name;
    h->value = *value;
    return NGX_OK;
}

ngx_int_t send_response(ngx_http_request_t* r, ngx_uint_t status,
                        std::string_view content_type, std::string_view body,
                        bool typed)
{
    r->headers_out.status = status;
    r->headers_out.content_length_n = static_cast<off_t>(body.size());
    // nchan sends no Content-Type with an empty body (404, 403, 304...).
    if (!body.empty() && (typed || !content_type.empty())) {
        ngx_str_t ct = pool_str(r->pool, content_type.empty()
                                             ? std::string_view("text/plain")
                                             : content_type);
        r->headers_out.content_type = ct;
        r->headers_out.content_type_len = ct.len;
        r->headers_out.content_type_lowcase = nullptr;
    }
    if (body.empty() || r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }
    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }
    ngx_buf_t* b = ngx_create_temp_buf(r->pool, body.size());
    if (b == nullptr) {
        return NGX_ERROR;
    }
    b->last = ngx_cpymem(b->last, body.data(), body.size());
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    ngx_chain_t out{b, nullptr};
    return ngx_http_output_filter(r, &out);
}

bool cors_allow(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    auto origin = header(r, "Origin");
    if (!origin) {
        return true;
    }
    bool match = lcf->allow_origin == nullptr;
    bool star = false;
    if (!match) {
        std::string allowed = eval(r, lcf->allow_origin);
        star = allowed == "*";
        match = star;
        size_t pos = 0;
        while (!match && pos < allowed.size()) {
            size_t end = allowed.find(' ', pos);
            if (end == std::string::npos) {
                end = allowed.size();
            }
            std::string_view one(allowed.data() + pos, end - pos);
            match = one == *origin || one == "*";
            pos = end + 1;
        }
    }
    // As nchan, the CORS headers go out even with the 403 of a refused
    // origin: they grant nothing on an error response.
    add_header(r, "Access-Control-Allow-Origin", star ? "*" : *origin);
    if (lcf->allow_credentials) {
        add_header(r, "Access-Control-Allow-Credentials", "true");
    }
    return match;
}

std::string eval(ngx_http_request_t* r, ngx_http_complex_value_t* cv)
{
    ngx_str_t v;
    if (ngx_http_complex_value(r, cv, &v) != NGX_OK) {
        throw std::bad_alloc();
    }
    return std::string(sv(v));
}

std::string unescape(std::string_view s)
{
    std::string out(s);
    auto* dst = reinterpret_cast<u_char*>(out.data());
    auto* src = dst;
    ngx_unescape_uri(&dst, &src, out.size(), 0);  // 0: decode everything
    out.resize(
        static_cast<size_t>(dst - reinterpret_cast<u_char*>(out.data())));
    return out;
}

namespace {

// pulse_channel_group's value with the token's tenant (acl::Grant::group).
Result<std::string> request_group(ngx_http_request_t* r,
                                  ngx_http_pulse_loc_conf_t* lcf,
                                  const acl::Grant& grant)
{
    std::string group;
    if (lcf->channel_group != nullptr) {
        group = eval(r, lcf->channel_group);
        if (Status g = validate_group(group); !g.is_ok()) {
            return g;
        }
    }
    if (!grant.authenticated()) {
        return group;
    }
    return grant.group(group);
}

// 403 for the first id the token's ACL does not allow.
Status check_acl(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                 const acl::Grant& g, std::string_view id, bool publishing)
{
    auto d = publishing ? acl::Direction::kPublish : acl::Direction::kSubscribe;
    if (g.may(d, id)) {
        return Status::ok();
    }
    const char* why = publishing ? "channel outside the token's publish ACL"
                                 : "channel outside the token's subscribe ACL";
    audit(r, lcf, "deny", NGX_HTTP_FORBIDDEN, id, why);
    count_denial(metrics::Denial::kChannel);
    return Status(Code::kForbidden, "Forbidden: " + std::string(why) + ".");
}

}  // namespace

Result<std::string> channel_group(ngx_http_request_t* r,
                                  ngx_http_pulse_loc_conf_t* lcf)
{
    return request_group(r, lcf, request_grant(r));
}

Result<std::vector<std::string>> channel_keys(ngx_http_request_t* r,
                                              ngx_http_pulse_loc_conf_t* lcf,
                                              bool publishing, bool checked)
{
    if (lcf->subscriber_info != 0 && !publishing) {
        // the asker subscribes to its request's own channel
        RequestCtx& ctx = request_ctx(r);
        if (ctx.info_request == 0) {
            Worker* w = Worker::get();
            if (w == nullptr) {
                return Status(Code::kAgain, "");
            }
            ctx.info_request = w->fanout().new_info_request();
        }
        std::vector<std::string> keys;
        keys.push_back("meta/sr" + std::to_string(ctx.info_request));
        return keys;
    }
    ngx_array_t* ids = publishing ? lcf->pub_channel_id : lcf->sub_channel_id;
    if (ids == nullptr) {
        ids = lcf->channel_id;
    }
    if (ids == nullptr) {
        return Status(Code::kNotFound, "No channel id provided.");
    }
    auto* cvs = static_cast<ngx_http_complex_value_t*>(ids->elts);
    const acl::Grant& grant = request_grant(r);
    if (ids->nelts == 1 && lcf->split_delimiter.len == 0) {
        // one channel, the usual case: no intermediate copies
        ngx_str_t v;
        if (ngx_http_complex_value(r, &cvs[0], &v) != NGX_OK) {
            throw std::bad_alloc();
        }
        if (v.len > static_cast<size_t>(lcf->max_channel_id_length)) {
            return Status(Code::kForbidden, "Channel id too long.");
        }
        if (v.len == 0) {
            return Status(Code::kNotFound, "No channel id provided.");
        }
        auto group = request_group(r, lcf, grant);
        if (!group.is_ok()) {
            return group.status();
        }
        if (checked) {
            if (Status l = set_group_limits(r, lcf, group.value()); !l.is_ok())
            {
                return l;
            }
            if (Status c = lcf->channel_charset.check(sv(v)); !c.is_ok()) {
                return c;
            }
            if (Status a = check_acl(r, lcf, grant, sv(v), publishing);
                !a.is_ok()) {
                return a;
            }
        }
        std::vector<std::string> keys;
        keys.push_back(channel_key(group.value(), sv(v)));
        return keys;
    }
    std::vector<std::string> values;
    for (ngx_uint_t i = 0; i < ids->nelts; ++i) {
        values.push_back(eval(r, &cvs[i]));
    }
    std::vector<std::string_view> views(values.begin(), values.end());
    auto split =
        split_channel_ids(views, sv(lcf->split_delimiter),
                          static_cast<size_t>(lcf->max_channel_id_length));
    if (!split.is_ok()) {
        return split.status();
    }
    auto group = request_group(r, lcf, grant);
    if (!group.is_ok()) {
        return group.status();
    }
    if (checked) {
        if (Status l = set_group_limits(r, lcf, group.value()); !l.is_ok()) {
            return l;
        }
    }
    std::vector<std::string> keys;
    for (std::string_view id : split.value()) {
        if (checked) {
            if (Status c = lcf->channel_charset.check(id); !c.is_ok()) {
                return c;
            }
            if (Status a = check_acl(r, lcf, grant, id, publishing); !a.is_ok())
            {
                return a;
            }
        }
        keys.push_back(channel_key(group.value(), id));
    }
    return keys;
}

ngx_int_t send_status(ngx_http_request_t* r, const Status& s)
{
    if (s.retry_after() > 0) {
        if (add_header(r, "Retry-After", std::to_string(s.retry_after()))
            != NGX_OK) {
            return NGX_ERROR;
        }
    }
    return send_response(r, ngx_status(s.code()), "", s.message());
}

Result<std::unique_ptr<Fanout::TenantSeat>> tenant_seat(
    ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf, Fanout& fanout)
{
    const acl::Grant& g = request_grant(r);
    if (!g.claims || g.claims->tenant.empty()) {
        return std::unique_ptr<Fanout::TenantSeat>();
    }
    auto seat = fanout.seat(g.claims->tenant,
                            static_cast<uint32_t>(lcf->max_tenant_subscribers));
    if (!seat.is_ok() && seat.status().code() == Code::kForbidden) {
        audit(r, lcf, "deny", NGX_HTTP_FORBIDDEN, "",
              "tenant subscriber limit");
        count_denial(metrics::Denial::kTenantLimit);
    }
    return seat;
}

ResumeRequest resume_request(ngx_http_request_t* r,
                             ngx_http_pulse_loc_conf_t* lcf)
{
    ResumeRequest out;
    if (r->headers_in.if_modified_since != nullptr) {
        out.if_modified_since = sv(r->headers_in.if_modified_since->value);
    }
    if (r->headers_in.if_none_match != nullptr) {
        out.if_none_match = sv(r->headers_in.if_none_match->value);
    }
    out.compound_etag = lcf->compound_etag != 0;
    if (out.if_none_match || (out.if_modified_since && !out.compound_etag)) {
        return out;  // the headers decide; nothing else is evaluated
    }
    if (lcf->last_message_id != nullptr) {
        auto* cvs =
            static_cast<ngx_http_complex_value_t*>(lcf->last_message_id->elts);
        for (ngx_uint_t i = 0; i < lcf->last_message_id->nelts; ++i) {
            out.last_id_values.push_back(unescape(eval(r, &cvs[i])));
            if (!out.last_id_values.back().empty()) {
                break;
            }
        }
        return out;
    }
    // nchan's default: $http_last_event_id $arg_last_event_id
    if (auto h = header(r, "Last-Event-ID")) {
        out.last_id_values.push_back(unescape(*h));
        if (!out.last_id_values.back().empty()) {
            return out;
        }
    }
    // ngx_http_arg's rules; its compare at every byte made a token in the
    // query a cost of every subscriber (docs/performance.md)
    if (auto arg = text::query_arg(sv(r->args), "last_event_id")) {
        out.last_id_values.push_back(unescape(*arg));
    }
    return out;
}

Fanout::JoinOptions join_options(ngx_http_pulse_loc_conf_t* lcf)
{
    Fanout::JoinOptions o;
    o.now = static_cast<int64_t>(ngx_time());
    o.existing_only = lcf->existing_only != 0;
    o.max_subscribers = static_cast<uint32_t>(lcf->max_channel_subscribers);
    o.group_limits = lcf->group_accounting != 0;
    o.first = lcf->first_message == NGX_HTTP_PULSE_FIRST_NEWEST
                  ? FirstMessage{FirstMessage::kNewest}
                  : FirstMessage{static_cast<int>(lcf->first_message)};
    return o;
}

namespace {

int64_t eval_number(ngx_http_request_t* r, ngx_http_complex_value_t* cv,
                    ngx_int_t fixed, bool is_time)
{
    if (cv == nullptr) {
        return fixed;
    }
    ngx_str_t v;
    if (ngx_http_complex_value(r, cv, &v) != NGX_OK) {
        return fixed;
    }
    ngx_int_t n = is_time ? ngx_parse_time(&v, 1) : ngx_atoi(v.data, v.len);
    return n == NGX_ERROR ? -1 : n;
}

}  // namespace

Result<PublishSpec> publish_spec(ngx_http_request_t* r,
                                 ngx_http_pulse_loc_conf_t* lcf)
{
    int64_t buffer =
        eval_number(r, lcf->buffer_length_cv, lcf->buffer_length, false);
    int64_t timeout =
        eval_number(r, lcf->message_timeout_cv, lcf->message_timeout, true);
    if (buffer < 0 || timeout < 0) {
        return Status(Code::kForbidden,
                      "Invalid message buffer length or timeout.\n");
    }
    PublishSpec spec;
    spec.max_messages =
        lcf->store_messages
            ? static_cast<uint32_t>(std::min<int64_t>(buffer, UINT32_MAX))
            : 0;
    spec.timeout = timeout;
    spec.channel_timeout = lcf->channel_timeout;
    spec.deflate = lcf->deflate_message != 0;
    spec.max_size = lcf->max_message_size;
    spec.tenant_rate.per_second_milli = lcf->tenant_rate_milli;
    spec.tenant_rate.burst = static_cast<uint32_t>(lcf->tenant_burst);
    spec.group_limits = lcf->group_accounting != 0;
    return spec;
}

ngx_int_t report_request(ngx_http_request_t* r, Worker** w)
{
    if (r->method != NGX_HTTP_GET && r->method != NGX_HTTP_HEAD) {
        return NGX_HTTP_NOT_ALLOWED;
    }
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }
    *w = Worker::get();
    return *w == nullptr ? NGX_HTTP_SERVICE_UNAVAILABLE : NGX_OK;
}

}  // namespace pulse::ngx
