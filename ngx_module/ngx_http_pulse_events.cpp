#include "ngx_http_pulse_events.h"

#include <string>
#include <string_view>

#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_request.h"
#include "ngx_http_pulse_worker.h"

namespace pulse::ngx {

namespace {

std::string_view event_name(ChannelEvent e)
{
    switch (e) {
        case ChannelEvent::kSubscriberEnqueue:
            return "subscriber_enqueue";
        case ChannelEvent::kSubscriberDequeue:
            return "subscriber_dequeue";
        case ChannelEvent::kChannelPublish:
            return "channel_publish";
        case ChannelEvent::kChannelDelete:
            break;
    }
    return "channel_delete";
}

struct Evaluated {
    std::string id;
    std::string body;
};

// The events channel's id and the event's string, as the request
// evaluates them with $pulse_channel_event set to `e`.
Evaluated evaluate(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                   ChannelEvent e)
{
    RequestCtx& ctx = request_ctx(r);
    ctx.channel_event = event_name(e);
    Evaluated out{eval(r, lcf->channel_events_id),
                  eval(r, lcf->channel_event_string)};
    ctx.channel_event = {};
    return out;
}

}  // namespace

void send_channel_event(ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf,
                        ChannelEvent event) noexcept
try {
    Worker* w = Worker::get();
    if (lcf->channel_events_id == nullptr || w == nullptr) {
        return;
    }
    Evaluated ev = evaluate(r, lcf, event);
    w->fanout().channel_event(ev.id, ev.body, w->now());
}
PULSE_CATCH_VOID(r->connection->log)

std::unique_ptr<Fanout::EventHold> subscriber_events(
    ngx_http_request_t* r, ngx_http_pulse_loc_conf_t* lcf)
{
    Worker* w = Worker::get();
    if (lcf->channel_events_id == nullptr || w == nullptr) {
        return nullptr;
    }
    Evaluated in = evaluate(r, lcf, ChannelEvent::kSubscriberEnqueue);
    Evaluated out = evaluate(r, lcf, ChannelEvent::kSubscriberDequeue);
    w->fanout().channel_event(in.id, in.body, w->now());
    return w->fanout().hold_event(out.id, out.body);
}

char* merge_channel_events(ngx_conf_t* cf, ngx_http_pulse_loc_conf_t* prev,
                           ngx_http_pulse_loc_conf_t* conf)
{
    if (conf->channel_events_id == nullptr) {
        conf->channel_events_id = prev->channel_events_id;
    }
    if (conf->channel_event_string == nullptr) {
        conf->channel_event_string = prev->channel_event_string;
    }
    if (conf->channel_events_id == nullptr
        || conf->channel_event_string != nullptr) {
        return NGX_CONF_OK;
    }
    static ngx_str_t kDefault =
        ngx_string("$pulse_channel_event $pulse_channel_id");
    auto* cv = static_cast<ngx_http_complex_value_t*>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_complex_value_t)));
    if (cv == nullptr) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    ngx_http_compile_complex_value_t ccv{};
    ccv.cf = cf;
    ccv.value = &kDefault;
    ccv.complex_value = cv;
    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    conf->channel_event_string = cv;
    return NGX_CONF_OK;
}

}  // namespace pulse::ngx
