// pulse-publisher: Redis Pub/Sub -> publishes on the local nginx.
// Streams, the bounded queue, pipelining and /metrics are issue 5; this is
// the Pub/Sub path the demo runs on.

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <random>
#include <string>
#include <thread>

#include "config.h"
#include "publish_client.h"
#include "redis_source.h"
#include "rules.h"

namespace {

using namespace pulse::publisher;

volatile sig_atomic_t g_stop = 0;

void on_signal(int)
{
    g_stop = 1;
}

void log_line(const std::string& s)
{
    std::fprintf(stderr, "publisher: %s\n", s.c_str());
}

// Routes one message by its source's rules and publishes it. Returns false
// when it was dropped (counted by the caller).
bool route(const Config& config, PublishClient& nginx, const PubSubMessage& m,
           std::string* why)
{
    for (const Source& s : config.sources) {
        if (s.kind != SourceKind::kPubSub) {
            continue;
        }
        std::vector<std::string> caps;
        bool mine = false;
        if (m.pattern.empty()) {
            for (const auto& ch : s.channels) {
                mine = mine || ch == m.channel;
            }
        } else {
            for (const auto& p : s.patterns) {
                if (p == m.pattern) {
                    auto c = glob_captures(p, m.channel);
                    if (c) {
                        caps = *c;
                        mine = true;
                    }
                }
            }
        }
        if (!mine) {
            continue;
        }
        auto target = expand(s.target, m.channel, caps);
        auto event = expand(s.event, m.channel, caps);
        if (!target || target->empty() || !event) {
            *why =
                "no target channel for '" + m.channel + "' in source " + s.name;
            return false;
        }
        int status = nginx.post(*target, m.payload, "", *event);
        if (status == 201 || status == 202) {
            return true;
        }
        *why = status < 0 ? "nginx unreachable: " + nginx.error()
                          : "nginx answered " + std::to_string(status)
                                + " for channel " + *target;
        return false;
    }
    *why = "no source for '" + m.channel + "'";
    return false;
}

int run(const Config& config)
{
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    for (const Source& s : config.sources) {
        if (s.kind == SourceKind::kStream) {
            log_line("source " + s.name
                     + ": stream sources are not implemented yet (issue 5); "
                       "ignored");
        }
    }
    PublishClient nginx(config.nginx);
    std::mt19937 rng(static_cast<unsigned>(getpid()));
    int backoff_ms = 100;
    bool connected = false;
    std::string last_drop;
    unsigned long published = 0, dropped = 0;
    auto stop = [] { return g_stop != 0; };
    while (!g_stop) {
        std::string error;
        bool ok = run_pubsub(
            config,
            [&] {
                if (!connected) {
                    connected = true;
                    backoff_ms = 100;
                    log_line("redis: subscribed");
                }
                return stop();
            },
            [&](const PubSubMessage& m) {
                std::string why;
                if (route(config, nginx, m, &why)) {
                    published++;
                    if (!last_drop.empty()) {
                        log_line("publishing again after " + last_drop);
                        last_drop.clear();
                    }
                } else {
                    dropped++;
                    if (why != last_drop) {  // one line per state change
                        log_line("dropping: " + why);
                        last_drop = why;
                    }
                }
            },
            &error);
        if (ok || g_stop) {
            break;
        }
        if (connected) {
            log_line("redis: " + error + "; reconnecting");
            connected = false;
        } else if (backoff_ms == 100) {
            log_line("redis: " + error + "; retrying with backoff");
        }
        // Capped exponential backoff with jitter.
        std::uniform_int_distribution<int> jitter(0, backoff_ms / 2);
        int wait = backoff_ms + jitter(rng);
        for (int t = 0; t < wait && !g_stop; t += 50) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        backoff_ms = std::min(backoff_ms * 2, 5000);
    }
    log_line("stopping: " + std::to_string(published) + " published, "
             + std::to_string(dropped) + " dropped");
    return 0;
}

constexpr int kExitUsage = 64;   // EX_USAGE
constexpr int kExitConfig = 78;  // EX_CONFIG

void usage(FILE* out)
{
    std::fputs(
        "usage: pulse-publisher -c FILE [--check]\n"
        "  -c FILE   YAML configuration (see conf.d/publisher.yaml.example)\n"
        "  --check   validate the configuration and exit\n",
        out);
}

}  // namespace

int main(int argc, char** argv)
{
    std::string path;
    bool check = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (std::strcmp(argv[i], "--check") == 0) {
            check = true;
        } else if (std::strcmp(argv[i], "-h") == 0
                   || std::strcmp(argv[i], "--help") == 0)
        {
            usage(stdout);
            return 0;
        } else {
            std::fprintf(stderr, "publisher: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return kExitUsage;
        }
    }
    if (path.empty()) {
        usage(stderr);
        return kExitUsage;
    }
    try {
        pulse::publisher::Config config = pulse::publisher::Config::load(path);
        if (check) {
            std::printf("publisher: %s: ok (%zu sources)\n", path.c_str(),
                        config.sources.size());
            return 0;
        }
        return run(config);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "publisher: config error: %s\n", e.what());
        return kExitConfig;
    }
}
