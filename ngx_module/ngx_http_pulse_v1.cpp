#include "ngx_http_pulse_v1.h"

#include <exception>
#include <new>
#include <string>

#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_request.h"

namespace pulse::ngx {

namespace {

struct CommandCtx {
    CommandSink* sink;
    uint64_t token;
    bool answered;
};

ngx_int_t on_command_done(ngx_http_request_t* sr, void* data,
                          ngx_int_t rc) noexcept
{
    auto* ctx = static_cast<CommandCtx*>(data);
    // nginx may call this more than once for one subrequest (an error,
    // then the finalization of its error page): answer the first only.
    if (ctx->answered) {
        return rc;
    }
    ctx->answered = true;
    ngx_uint_t status = sr->headers_out.status;
    std::string_view body;
    if (sr->out != nullptr && sr->out->buf != nullptr) {
        body = std::string_view(
            reinterpret_cast<const char*>(sr->out->buf->pos),
            static_cast<size_t>(sr->out->buf->last - sr->out->buf->pos));
    }
    bool failed =
        rc == NGX_ERROR || status == 0 || rc >= NGX_HTTP_SPECIAL_RESPONSE;
    if (failed && (status == 0 || status < NGX_HTTP_SPECIAL_RESPONSE)) {
        status = rc >= NGX_HTTP_SPECIAL_RESPONSE ? static_cast<ngx_uint_t>(rc)
                                                 : NGX_HTTP_BAD_GATEWAY;
    }
    ctx->sink->command_answer(ctx->token, static_cast<int>(status), body,
                              failed);
    return rc;
}

}  // namespace

bool start_command(ngx_http_request_t* r, ngx_str_t uri, uint64_t token,
                   std::string_view channel, std::string_view identity,
                   std::string_view data, CommandSink* sink)
{
    auto* psr = static_cast<ngx_http_post_subrequest_t*>(
        ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t)));
    auto* ctx =
        static_cast<CommandCtx*>(ngx_palloc(r->pool, sizeof(CommandCtx)));
    if (psr == nullptr || ctx == nullptr) {
        throw std::bad_alloc();
    }
    static_assert(std::is_trivially_destructible_v<CommandCtx>);
    new (ctx) CommandCtx{sink, token, false};
    psr->handler = on_command_done;
    psr->data = ctx;
    ngx_http_request_t* sr = nullptr;
    if (ngx_http_subrequest(
            r, &uri, nullptr, &sr, psr,
            NGX_HTTP_SUBREQUEST_IN_MEMORY | NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return false;
    }
    sr->method = NGX_HTTP_POST;
    static ngx_str_t post = ngx_string("POST");
    sr->method_name = post;
    // a body and headers of its own: the channel and the identity
    sr->request_body = static_cast<ngx_http_request_body_t*>(
        ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t)));
    ngx_buf_t* b = ngx_create_temp_buf(r->pool, data.size() + 1);
    ngx_chain_t* cl = ngx_alloc_chain_link(r->pool);
    if (sr->request_body == nullptr || b == nullptr || cl == nullptr
        || ngx_list_init(&sr->headers_in.headers, r->pool, 4,
                         sizeof(ngx_table_elt_t))
               != NGX_OK)
    {
        throw std::bad_alloc();
    }
    b->last = ngx_cpymem(b->pos, data.data(), data.size());
    b->last_buf = 1;
    cl->buf = b;
    cl->next = nullptr;
    sr->request_body->bufs = cl;
    sr->headers_in.content_length_n = static_cast<off_t>(data.size());
    sr->headers_in.content_length = nullptr;
    sr->headers_in.content_type = nullptr;
    sr->headers_in.chunked = 0;
    // channel and identity were validated (no control characters): they
    // cannot add header lines to the upstream request
    auto add_in = [&](std::string_view name, std::string_view value) {
        auto* h = static_cast<ngx_table_elt_t*>(
            ngx_list_push(&sr->headers_in.headers));
        if (h == nullptr) {
            throw std::bad_alloc();
        }
        h->key = pool_str(r->pool, name);
        h->value = pool_str(r->pool, value);
        h->lowcase_key =
            static_cast<u_char*>(ngx_pnalloc(r->pool, name.size()));
        if (h->lowcase_key == nullptr) {
            throw std::bad_alloc();
        }
        h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, h->key.len);
        return h;
    };
    add_in("X-Pulse-Channel", channel);
    add_in("X-Pulse-Identity", identity);
    // the proxy module sends Content-Length from content_length_n
    sr->headers_in.content_type = add_in("Content-Type", "application/json");
    return true;
}

}  // namespace pulse::ngx
