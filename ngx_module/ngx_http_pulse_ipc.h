#pragma once

#include "ngx.h"

#include <cstdint>

namespace pulse::ngx {

/// A worker's doorbell: a non-blocking unix datagram socket bound to the
/// abstract name `pulse-<zone token>-<slot>`. Any worker of any generation
/// (old workers finishing a request during a reload, respawned ones) can
/// ring any slot by name, so nothing has to be created before fork or
/// predicted from nginx's spawn order. The payload is one byte; what
/// happened is in the slot's mailbox in shared memory. See docs/design.md.
class Doorbell {
public:
    Doorbell() = default;
    Doorbell(const Doorbell&) = delete;
    Doorbell& operator=(const Doorbell&) = delete;
    Doorbell(Doorbell&&) = delete;
    Doorbell& operator=(Doorbell&&) = delete;
    ~Doorbell() { close(); }

    /// Binds this worker's bell and registers `handler` for its read event.
    ngx_int_t open(ngx_cycle_t* cycle, uint64_t token, uint32_t slot,
                   ngx_event_handler_pt handler, void* data);
    /// Rings another slot's bell; a full or missing bell is not an error
    /// (a full one is already going to wake its worker). A worker without
    /// a bell of its own (open failed, no slot) rings from an unbound
    /// socket: its publishes still wake the others.
    void ring(uint64_t token, uint32_t slot);
    /// Reads every pending ring (the event is edge-triggered).
    void drain();
    void close();

private:
    ngx_connection_t* conn_ = nullptr;
    int sender_ = -1;  // unbound, for ringing without a bell
};

}  // namespace pulse::ngx
