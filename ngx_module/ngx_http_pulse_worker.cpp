#include "ngx_http_pulse_worker.h"

#include <signal.h>

#include <cerrno>
#include <string>
#include <vector>

#include "ngx_http_pulse_conf.h"
#include "ngx_http_pulse_guard.h"
#include "ngx_http_pulse_metrics.h"
#include "ngx_http_pulse_writer.h"

namespace pulse::ngx {

Worker* Worker::instance_ = nullptr;

namespace {

// Housekeeping period: message expiry, idle channels, dead slots.
constexpr ngx_msec_t kTickMs = 1000;
// Every bucket is swept within about 5 ticks, whatever the zone size.
constexpr uint32_t kGcTicksPerSweep = 5;
constexpr int64_t kDefaultChannelTimeout = 5;

bool process_alive(int32_t pid)
{
    return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace

void Worker::start(ngx_cycle_t* cycle, Zone* zone)
{
    auto* mcf = static_cast<ngx_http_pulse_main_conf_t*>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_pulse_module));
    ws::DeflateOptions deflate;
    deflate.level = static_cast<int>(mcf->deflate_level);
    deflate.mem_level = static_cast<int>(mcf->deflate_memlevel);
    deflate.strategy = static_cast<int>(mcf->deflate_strategy);
    deflate.window_bits = static_cast<int>(mcf->deflate_window);

    auto* w = new Worker(cycle, zone);
    instance_ = w;
    w->metrics_on_ = mcf->metrics != 0;
    w->local_bell_.handler = on_bell;
    w->local_bell_.data = w;
    w->local_bell_.log = cycle->log;
    w->tick_.handler = on_tick;
    w->tick_.data = w;
    w->tick_.log = cycle->log;
    w->tick_.cancelable = 1;

    {
        // the doorbells' names: reaping may ring (the dead worker's
        // channel events)
        Store::Guard g(zone->store);
        w->token_ = zone->store.token();
    }
    w->reap_dead_slots();
    uint64_t token = 0;
    {
        Store::Guard g(zone->store);
        auto slot = zone->store.claim_slot(g, static_cast<int32_t>(ngx_pid));
        if (slot.is_ok()) {
            w->slot_ = slot.value();
        }
        token = zone->store.token();
    }
    w->token_ = token;
    if (!w->slot_) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      PULSE_LOG_PREFIX
                      "no free worker slot (%ui in use): this worker "
                      "cannot hold subscribers",
                      static_cast<ngx_uint_t>(kMaxSlots));
    } else if (w->bell_.open(cycle, token, *w->slot_, on_bell, w) != NGX_OK) {
        // Without a doorbell no other worker can wake this one: give the
        // slot back and hold no subscribers (they get 503 and retry on
        // another worker) rather than miss their messages.
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      PULSE_LOG_PREFIX
                      "no doorbell for slot %ui: this worker cannot hold "
                      "subscribers",
                      static_cast<ngx_uint_t>(*w->slot_));
        Store::Guard g(zone->store);
        (void) zone->store.release_slot(g, *w->slot_, w->now());
        w->slot_.reset();
    }
    w->fanout_.emplace(zone->store, w->slot_, *w, deflate);
    w->fanout_->count_tenants(w->metrics_on_);
    if (w->slot_) {
        // counted from the start: a scrape sees every worker at once
        Store::Guard g(zone->store);
        w->report_metrics(g);
    }
    ngx_add_timer(&w->tick_, kTickMs);
}

void Worker::stop(ngx_cycle_t* cycle)
{
    Worker* w = instance_;
    if (w == nullptr) {
        return;
    }
    // Subscribers nginx has not closed by now (HTTP/2 streams) go first;
    // they close from posted events, which the event loop no longer runs.
    w->fanout_->shutdown();
    ngx_event_process_posted(cycle, &ngx_posted_events);
    if (w->tick_.timer_set) {
        ngx_del_timer(&w->tick_);
    }
    if (w->local_bell_.posted) {
        ngx_delete_posted_event(&w->local_bell_);
    }
    if (w->slot_) {
        uint64_t bells = 0;
        {
            Store::Guard g(w->store());
            // what it counted stays counted (the slot's counters are
            // retired)
            w->report_metrics(g);
            // the channel events of subscribers still held go out now
            bells = w->store().release_slot(g, *w->slot_, w->now());
        }
        w->slot_.reset();
        w->ring(bells);
    }
    w->bell_.close();
    instance_ = nullptr;
    delete w;
}

void Worker::ring(uint64_t slots)
{
    for (uint32_t s = 0; slots != 0; ++s, slots >>= 1) {
        if ((slots & 1) == 0) {
            continue;
        }
        if (slot_ && s == *slot_) {
            if (!local_bell_.posted) {
                ngx_post_event(&local_bell_, &ngx_posted_events);
            }
        } else {
            bell_.ring(token_, s);
        }
    }
}

void Worker::log(Level level, std::string_view message)
{
    ngx_uint_t ngx_level =
        level == Level::kAlert ? NGX_LOG_ALERT : NGX_LOG_WARN;
    ngx_log_error(ngx_level, cycle_->log, 0, PULSE_LOG_PREFIX "%*s",
                  message.size(), message.data());
}

// Nothing above is C++: an exception here (bad_alloc reading messages)
// loses no subscriber's state, the fan-out's pins are RAII, and the
// subscribers that could not be served were closed by the fan-out.
void Worker::on_bell(ngx_event_t* ev) noexcept
try {
    Worker* w = instance_;
    if (w == nullptr) {
        return;
    }
    w->bell_.drain();
    w->fanout_->process_mailbox(w->now());
}
PULSE_CATCH_VOID(ev->log)

void Worker::on_tick(ngx_event_t* ev) noexcept
try {
    Worker* w = instance_;
    if (w != nullptr) {
        w->tick();
    }
}
PULSE_CATCH_VOID(ev->log)

void Worker::reap_dead_slots()
{
    std::array<int32_t, kMaxSlots> pids;
    {
        Store::Guard g(store());
        pids = store().slot_pids(g);
    }
    std::vector<std::pair<uint32_t, int32_t>> dead;
    for (uint32_t s = 0; s < kMaxSlots; ++s) {
        if (pids[s] != 0 && pids[s] != static_cast<int32_t>(ngx_pid)
            && !process_alive(pids[s]))
        {
            dead.emplace_back(s, pids[s]);
        }
    }
    if (dead.empty()) {
        return;
    }
    uint64_t bells = 0;
    {
        Store::Guard g(store());
        for (auto [slot, pid] : dead) {
            // the dead worker's subscribers' channel events go out here
            bells |= store().reap_slot(g, slot, pid, now()).value_or(0);
        }
    }
    ring(bells);
}

int64_t Worker::mono_ns() const
{
    return metrics_on_ ? pulse::ngx::mono_ns() : 0;
}

void Worker::report_metrics(const Store::Guard& g)
{
    if (!metrics_on_ || !slot_) {
        return;
    }
    metrics::Block& b = fanout_->metrics();
    b.gauges.queue = StreamWriter::queue_histogram();
    store().put_metrics(g, *slot_, b);
}

void Worker::tick()
{
    if (ngx_exiting || ngx_quit || ngx_terminate) {
        fanout_->shutdown();
        return;
    }
    {
        Store::Guard g(store());
        store().gc(g, now(), kDefaultChannelTimeout,
                   store().bucket_count() / kGcTicksPerSweep + 1);
        report_metrics(g);
    }
    if (++ticks_ % 5 == 0) {
        reap_dead_slots();
    }
    ngx_add_timer(&tick_, kTickMs);
}

}  // namespace pulse::ngx
