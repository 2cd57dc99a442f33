#include "ngx_http_pulse_http.h"

#include <new>

#include "pulse/channel_id.h"

namespace pulse::ngx {

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

Result<std::vector<std::string>> channel_keys(ngx_http_request_t* r,
                                              ngx_http_pulse_loc_conf_t* lcf,
                                              bool publishing)
{
    ngx_array_t* ids = publishing ? lcf->pub_channel_id : lcf->sub_channel_id;
    if (ids == nullptr) {
        ids = lcf->channel_id;
    }
    if (ids == nullptr) {
        return Status(Code::kNotFound, "No channel id provided.");
    }
    std::vector<std::string> values;
    auto* cvs = static_cast<ngx_http_complex_value_t*>(ids->elts);
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
    std::string group;
    if (lcf->channel_group != nullptr) {
        group = eval(r, lcf->channel_group);
        Status g = validate_group(group);
        if (!g.is_ok()) {
            return g;
        }
    }
    std::vector<std::string> keys;
    for (std::string_view id : split.value()) {
        keys.push_back(channel_key(group, id));
    }
    return keys;
}

bool release_request(ngx_http_request_t* r, void* owner,
                     ngx_event_handler_pt on_read,
                     ngx_event_handler_pt on_write, const char* action)
{
    ngx_connection_t* c = r->connection;
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(
        ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    bool nodelay = clcf->tcp_nodelay != 0;
    ngx_http_free_request(r, 0);
    if (c->buffer != nullptr && ngx_pfree(c->pool, c->buffer->start) == NGX_OK)
    {
        c->buffer = nullptr;
    }
    c->data = owner;
    c->read->handler = on_read;
    c->write->handler = on_write;
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
    if (nodelay && ngx_tcp_nodelay(c) != NGX_OK) {
        return false;
    }
    return ngx_handle_read_event(c->read, 0) == NGX_OK;
}

ngx_uint_t http_status(Code code)
{
    switch (code) {
        case Code::kOk:
            return NGX_HTTP_OK;
        case Code::kInvalidArgument:
            return NGX_HTTP_BAD_REQUEST;
        case Code::kNotFound:
            return NGX_HTTP_NOT_FOUND;
        case Code::kForbidden:
            return NGX_HTTP_FORBIDDEN;
        case Code::kTooLarge:
            return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
        case Code::kNoMemory:
            return 507;
        case Code::kAgain:
            return NGX_HTTP_SERVICE_UNAVAILABLE;
    }
    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}

}  // namespace pulse::ngx
