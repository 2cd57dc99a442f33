// Publisher API: POST/PUT publish, GET channel info, DELETE (reference 2).

#include "ngx.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_http.h"
#include "ngx_http_pulse_worker.h"
#include "pulse/channel_info.h"
#include "pulse/publish_request.h"

namespace pulse::ngx {

namespace {

std::string request_body(ngx_http_request_t* r)
{
    std::string body;
    if (r->request_body == nullptr) {
        return body;
    }
    for (ngx_chain_t* cl = r->request_body->bufs; cl != nullptr; cl = cl->next)
    {
        ngx_buf_t* b = cl->buf;
        if (b->in_file) {
            // nginx spooled a large body to a temp file.
            auto size = static_cast<size_t>(b->file_last - b->file_pos);
            size_t at = body.size();
            body.resize(at + size);
            ssize_t n = ngx_read_file(
                b->file, reinterpret_cast<u_char*>(body.data() + at), size,
                b->file_pos);
            if (n != static_cast<ssize_t>(size)) {
                throw std::runtime_error("cannot read the spooled body");
            }
        } else {
            body.append(reinterpret_cast<const char*>(b->pos),
                        static_cast<size_t>(b->last - b->pos));
        }
    }
    return body;
}

// nchan's multi-channel aggregate: messages = max, subscribers = sum,
// last_seen = max, last id = zero.
void aggregate(ChannelInfo* total, const ChannelInfo& one, size_t n)
{
    if (n == 0) {
        *total = one;
        return;
    }
    total->messages = std::max(total->messages, one.messages);
    total->subscribers += one.subscribers;
    total->requested = std::max(total->requested, one.requested);
    total->last_id = MsgId{};
}

ngx_int_t send_info(ngx_http_request_t* r, ngx_uint_t status,
                    const ChannelInfo& info)
{
    auto accept = r->headers_in.accept;
    InfoFormat f = info_format_from_accept(accept ? sv(accept->value) : "");
    return send_response(r, status, info_content_type(f),
                         format_channel_info(info, f));
}

ngx_int_t fail(ngx_http_request_t* r, const Status& s)
{
    return send_response(r, http_status(s.code()), "", s.message());
}

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

void publish_body_handler(ngx_http_request_t* r) noexcept
try {
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(
        ngx_http_get_module_loc_conf(r, ngx_http_pulse_module));
    if (Worker::get() == nullptr) {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }
    auto keys = channel_keys(r, lcf, true);
    if (!keys.is_ok()) {
        ngx_http_finalize_request(r, fail(r, keys.status()));
        return;
    }
    auto spec = publish_spec(r, lcf);
    if (!spec.is_ok()) {
        ngx_http_finalize_request(r, fail(r, spec.status()));
        return;
    }
    std::string body = request_body(r);
    std::string ctype;
    if (r->headers_in.content_type != nullptr) {
        ctype = std::string(sv(r->headers_in.content_type->value));
    }
    std::string event;
    PublishFields fields;
    fields.content_type_name = "Content-Type header";
    if (lcf->eventsource_event != nullptr) {
        event = eval(r, lcf->eventsource_event);
        fields.event_name = "pulse_eventsource_event value";
    } else if (auto e = header(r, "X-EventSource-Event")) {
        event = std::string(*e);
        fields.event_name = "X-EventSource-Event header";
    }
    fields.event = event;
    fields.content_type = ctype;
    if (Status v = validate(fields); !v.is_ok()) {
        ngx_http_finalize_request(r, fail(r, v));
        return;
    }
    std::optional<MsgId> id;
    if (lcf->publisher_message_id) {
        if (auto h = header(r, "Pulse-Message-Id")) {
            auto parsed = parse_publish_id(*h);
            if (!parsed.is_ok()) {
                ngx_http_finalize_request(r, fail(r, parsed.status()));
                return;
            }
            id = parsed.value();
        }
    }
    auto out = publish_to(r->connection->log, keys.value(), spec.value(), body,
                          ctype, event, id);
    if (!out.is_ok()) {
        ngx_http_finalize_request(r, fail(r, out.status()));
        return;
    }
    ngx_http_finalize_request(r, send_info(r, out->status, out->info));
} catch (const std::exception& e) {
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0, PULSE_LOG_PREFIX "%s",
                  e.what());
    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
} catch (...) {
    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
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
    return spec;
}

Result<Published> publish_to(ngx_log_t* log,
                             const std::vector<std::string>& keys,
                             const PublishSpec& spec, std::string_view body,
                             std::string_view content_type,
                             std::string_view event, std::optional<MsgId> id)
{
    Worker* w = Worker::get();
    Store::PublishParams p;
    p.body = body;
    p.content_type = content_type;
    p.event = event;
    p.max_messages = spec.max_messages;
    p.timeout = spec.timeout;
    p.channel_timeout = spec.channel_timeout;
    // Compressed once here, outside the zone lock, and stored beside the
    // body: every worker serves permessage-deflate subscribers from it.
    std::string deflated;
    if (spec.deflate) {
        auto z = ws::deflate_message(body, w->deflate_options());
        if (z.is_ok()) {
            deflated = std::move(z.value());
        } else {
            // Frames go out uncompressed instead (RFC 7692 allows it).
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          PULSE_LOG_PREFIX "%s: message stored uncompressed",
                          z.status().message().c_str());
        }
    }
    p.deflated = deflated;
    p.now = ngx_time();
    p.id = id;
    Published out;
    uint64_t ring = 0;
    bool stored = false;
    for (size_t i = 0; i < keys.size(); ++i) {
        p.key = keys[i];
        // A full zone is logged once per episode by all workers together
        // (the flag is in the zone), not once per failed publish.
        bool first_full = false;
        auto res = [&] {
            Store::Guard g(w->store());
            auto r = w->store().publish(g, p);
            if (r.is_ok()) {
                w->store().clear_full(g);
            } else if (r.status().code() == Code::kNoMemory) {
                first_full = w->store().mark_full(g);
            }
            return r;
        }();
        if (!res.is_ok()) {
            w->ring(ring);
            if (first_full) {
                ngx_log_error(NGX_LOG_ALERT, log, 0,
                              PULSE_LOG_PREFIX
                              "shared memory zone \"pulse\" is full: "
                              "publishes fail with 507 until messages expire "
                              "(raise pulse_shared_memory_size)");
            }
            return res.status();
        }
        stored = stored || !res->duplicate;
        ring |= res->ring;
        aggregate(&out.info, res->info, i);
    }
    w->ring(ring);
    out.status = stored && out.info.subscribers > 0 ? NGX_HTTP_CREATED
                                                    : NGX_HTTP_ACCEPTED;
    return out;
}

std::string info_body(std::string_view accept, const ChannelInfo& info,
                      std::string_view* content_type)
{
    InfoFormat f = info_format_from_accept(accept);
    *content_type = info_content_type(f);
    return format_channel_info(info, f);
}

ngx_int_t publish(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    (void) lcf;
    // The whole body, in memory or spooled to a file by nginx; nginx itself
    // answers 413 past client_max_body_size.
    ngx_int_t rc = ngx_http_read_client_request_body(r, publish_body_handler);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }
    return NGX_DONE;
}

namespace {

// GET (info) and DELETE: the same lookup, DELETE also removes the channels
// and wakes their subscribers' workers (who end them with 410).
ngx_int_t info_or_delete(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                         bool remove)
{
    ngx_http_discard_request_body(r);
    Worker* w = Worker::get();
    if (w == nullptr) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }
    auto keys = channel_keys(r, lcf, true);
    if (!keys.is_ok()) {
        return fail(r, keys.status());
    }
    ChannelInfo total;
    size_t found = 0;
    uint64_t ring = 0;
    {
        Store::Guard g(w->store());
        for (const std::string& key : keys.value()) {
            if (remove) {
                auto d = w->store().remove(g, key, ngx_time());
                if (d.is_ok()) {
                    ring |= d->ring;
                    aggregate(&total, d->info, found++);
                }
            } else if (auto info = w->store().info(g, key, ngx_time());
                       info.is_ok()) {
                aggregate(&total, info.value(), found++);
            }
        }
    }
    w->ring(ring);
    if (found == 0) {
        return send_response(r, NGX_HTTP_NOT_FOUND, "", "");
    }
    return send_info(r, NGX_HTTP_OK, total);
}

}  // namespace

ngx_int_t channel_info(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    return info_or_delete(r, lcf, false);
}

ngx_int_t delete_channel(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    return info_or_delete(r, lcf, true);
}

}  // namespace pulse::ngx
