// pulse_metrics: the Prometheus exposition of every worker's metrics
// (docs/metrics.md), and the helpers the transports count with.

#include "ngx_http_pulse_metrics.h"

#include <time.h>

#include <string>

#include "ngx_http_pulse_conf.h"
#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_handlers.h"
#include "ngx_http_pulse_request.h"
#include "ngx_http_pulse_worker.h"
#include "pulse/jwt.h"

namespace pulse::ngx {

metrics::Block* metrics_block()
{
    Worker* w = Worker::get();
    return w != nullptr ? w->metrics() : nullptr;
}

int64_t mono_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

metrics::Tp metrics_transport(Transport t)
{
    switch (t) {
        case Transport::kEventSource:
            return metrics::Tp::kEventSource;
        case Transport::kChunked:
            return metrics::Tp::kChunked;
        case Transport::kMultipart:
            return metrics::Tp::kMultipart;
        case Transport::kRawStream:
            return metrics::Tp::kRawStream;
        case Transport::kLongPoll:
            return metrics::Tp::kLongPoll;
        case Transport::kIntervalPoll:
            return metrics::Tp::kIntervalPoll;
        case Transport::kNone:
            break;
    }
    return metrics::Tp::kLongPoll;
}

void count_denial(metrics::Denial d)
{
    if (metrics::Block* b = metrics_block()) {
        b->counters.denials[static_cast<size_t>(d)]++;
    }
}

void count_token_denial(int refusal)
{
    auto r = static_cast<jwt::Refusal>(refusal);
    if (r != jwt::Refusal::kNone) {
        count_denial(metrics::token_denial(r));
    }
}

}  // namespace pulse::ngx

ngx_int_t ngx_http_pulse_metrics_handler(ngx_http_request_t* r) noexcept
try {
    pulse::ngx::Worker* w = nullptr;
    if (ngx_int_t rc = pulse::ngx::report_request(r, &w); rc != NGX_OK) {
        return rc;
    }
    auto* lcf = static_cast<ngx_http_pulse_loc_conf_t*>(
        ngx_http_get_module_loc_conf(r, ngx_http_pulse_module));
    pulse::metrics::Snapshot s;
    {
        pulse::Store::Guard g(w->store());
        w->report_metrics(g);  // this worker's counts as of now
        s = w->store().metrics(g);
    }
    pulse::metrics::bound_tenants(&s.tenants,
                                  static_cast<size_t>(lcf->metrics_tenants));
    return pulse::ngx::send_response(r, NGX_HTTP_OK,
                                     "text/plain; version=0.0.4; charset=utf-8",
                                     pulse::metrics::render(s));
}
PULSE_CATCH_RETURN(r->connection->log, NGX_LOG_ERR,
                   NGX_HTTP_INTERNAL_SERVER_ERROR)
