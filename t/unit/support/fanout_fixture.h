#pragma once

// A worker's fan-out over a heap arena, with a fake host: what the core
// needs of nginx, recorded for assertions.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pulse/fanout.h"
#include "support/buffer_arena.h"

namespace pulse::test {

class FakeHost final : public FanoutHost {
public:
    void ring(uint64_t slots) override { rung |= slots; }
    int64_t now() const override { return clock; }
    int64_t now_ms() const override { return clock * 1000 + ms; }
    int64_t mono_ns() const override { return mono; }
    void log(Level level, std::string_view message) override
    {
        logs.emplace_back(level, std::string(message));
    }

    uint64_t rung = 0;
    int64_t clock = 1000;
    int64_t ms = 0;    // now_ms() within the second
    int64_t mono = 0;  // mono_ns(): 0 is "not measured"
    std::vector<std::pair<Level, std::string>> logs;
};

struct FanoutWorld {
    explicit FanoutWorld(size_t arena_size = 4 << 20,
                         std::optional<uint32_t> slot = 0)
        : arena(arena_size), store(arena)
    {
        Store::Guard g(store);
        (void) store.open(g, 64, 42);
        if (slot) {
            (void) store.claim_slot(g, 1234);
        }
        fanout.emplace(store, slot, host, ws::DeflateOptions{});
    }

    /// Publishes `body` to `key` (buffer 10 unless said) and runs the
    /// mailbox when this worker's bell rang.
    Published publish(const std::string& key, std::string_view body,
                      uint32_t buffer = 10, std::string_view event = "",
                      std::string_view ctype = "",
                      std::string_view conflation_key = "")
    {
        PublishSpec spec;
        spec.max_messages = buffer;
        auto r = fanout->publish(
            {key}, spec,
            PublishInput{body, ctype, event, {}, {}, conflation_key},
            host.clock);
        return r.is_ok() ? r.value() : Published{};
    }
    void deliver()
    {
        host.rung = 0;
        fanout->process_mailbox(host.clock);
    }
    Fanout::JoinOptions opts() const
    {
        Fanout::JoinOptions o;
        o.now = host.clock;
        return o;
    }
    uint32_t subscribers(const std::string& key)
    {
        Store::Guard g(store);
        auto i = store.info(g, key, host.clock);
        return i.is_ok() ? i->subscribers : 0;
    }

    BufferArena arena;
    Store store;
    FakeHost host;
    std::optional<Fanout> fanout;
};

}  // namespace pulse::test
