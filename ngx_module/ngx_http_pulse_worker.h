#pragma once

#include "ngx.h"

#include <optional>
#include <string_view>

#include "ngx_http_pulse_ipc.h"
#include "ngx_http_pulse_shm.h"
#include "pulse/fanout.h"

namespace pulse::ngx {

/// The per-process runtime: this worker's slot in the zone, its doorbell,
/// the housekeeping timer, and the fan-out (lib/pulse/fanout.h), for which
/// it is the host: it rings other workers' doorbells, posts its own, gives
/// nginx's time and logs.
class Worker final : public FanoutHost {
public:
    /// nullptr in the master, or when no location uses pulse.
    static Worker* get() { return instance_; }
    /// Claims a slot and opens the doorbell. When either fails the worker
    /// runs without a slot (logged): publishes work, subscribers get 503.
    static void start(ngx_cycle_t* cycle, Zone* zone);
    static void stop(ngx_cycle_t* cycle);

    Fanout& fanout() { return *fanout_; }
    Store& store() { return zone_->store; }
    /// This worker's metrics; nullptr unless a location has pulse_metrics.
    metrics::Block* metrics()
    {
        return metrics_on_ ? &fanout_->metrics() : nullptr;
    }
    /// Copies this worker's metrics into its slot of the zone (done every
    /// tick, and by a scrape).
    void report_metrics(const Store::Guard& g);

    // FanoutHost
    void ring(uint64_t slots) override;
    int64_t now() const override { return static_cast<int64_t>(ngx_time()); }
    int64_t mono_ns() const override;
    void log(Level level, std::string_view message) override;

    Worker(ngx_cycle_t* cycle, Zone* zone) : cycle_(cycle), zone_(zone) {}
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;
    Worker(Worker&&) = delete;
    Worker& operator=(Worker&&) = delete;
    ~Worker() = default;

private:
    static void on_bell(ngx_event_t* ev) noexcept;
    static void on_tick(ngx_event_t* ev) noexcept;
    void tick();
    /// Releases the slots of processes that died (SIGKILL) holding them:
    /// their pids are read under the zone lock, checked outside it.
    void reap_dead_slots();

    static Worker* instance_;
    ngx_cycle_t* cycle_;
    Zone* zone_;
    std::optional<uint32_t> slot_;
    uint64_t token_ = 0;  // names the doorbells of this zone
    Doorbell bell_;
    ngx_event_t local_bell_{};
    ngx_event_t tick_{};
    ngx_msec_t ticks_ = 0;
    bool metrics_on_ = false;
    std::optional<Fanout> fanout_;
};

}  // namespace pulse::ngx
