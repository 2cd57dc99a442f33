#include "ngx_http_pulse_v1.h"

#include <exception>
#include <new>
#include <string>

#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_hooks.h"
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
    SubrequestAnswer a = subrequest_answer(sr, rc);
    // a command fails on any error answer too (its reply would be nginx's
    // error page); with no answer at all, or one too big to keep, the
    // client is told 502
    bool failed =
        a.answer.failed || a.answer.too_big || rc >= NGX_HTTP_SPECIAL_RESPONSE;
    int status = a.answer.too_big ? NGX_HTTP_BAD_GATEWAY : a.answer.status;
    if (failed && status < NGX_HTTP_SPECIAL_RESPONSE) {
        status = rc >= NGX_HTTP_SPECIAL_RESPONSE ? static_cast<int>(rc)
                                                 : NGX_HTTP_BAD_GATEWAY;
    }
    ctx->sink->command_answer(ctx->token, status, a.body, failed);
    return rc;
}

}  // namespace

bool start_command(ngx_http_request_t* r, ngx_str_t uri, uint64_t token,
                   std::string_view channel, std::string_view identity,
                   std::string_view data, CommandSink* sink)
{
    CommandCtx* ctx = nullptr;
    ngx_http_request_t* sr =
        captured_subrequest(r, &uri, nullptr, on_command_done,
                            CommandCtx{sink, token, false}, &ctx);
    if (sr == nullptr) {
        return false;
    }
    // a body and headers of its own: the channel and the identity
    post_body(r, sr, data);
    if (ngx_list_init(&sr->headers_in.headers, r->pool, 4,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        throw std::bad_alloc();
    }
    sr->headers_in.content_length = nullptr;
    sr->headers_in.content_type = nullptr;
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
