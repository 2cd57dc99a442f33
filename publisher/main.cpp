// pulse-publisher: Redis Pub/Sub and Streams -> publishes on the local
// nginx. Single-threaded: one poll loop over the Pub/Sub and the stream
// connections, pipelined publishes, a bounded Pub/Sub queue, /metrics and
// /healthz, SIGHUP reload, systemd readiness (docs/publisher.md).

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <random>
#include <string>

#include "config.h"
#include "delivery.h"
#include "ingest.h"
#include "log.h"
#include "metrics.h"
#include "publish_client.h"
#include "redis_source.h"

#ifdef PULSE_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#ifndef PULSE_VERSION
#error "PULSE_VERSION comes from debian/changelog (see the Makefile)"
#endif

namespace {

using namespace pulse::publisher;

constexpr int kExitUsage = 64;   // EX_USAGE
constexpr int kExitConfig = 78;  // EX_CONFIG

volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_reload = 0;

void on_signal(int)
{
    g_stop = 1;
}

void on_hup(int)
{
    g_reload = 1;
}

// Tells systemd (Type=notify) where we are: READY=1 once the metrics
// listener is bound and the loop is about to run, RELOADING=1 around a
// SIGHUP, STOPPING=1 on the way out. Without NOTIFY_SOCKET it does nothing.
void notify(const char* state)
{
#ifdef PULSE_HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void) state;
#endif
}

// Capped exponential backoff with jitter, per connection.
class Backoff {
public:
    void failed()
    {
        std::uniform_int_distribution<int> jitter(0, delay_ms_ / 2);
        next_ = now_ms() + delay_ms_ + jitter(rng_);
        delay_ms_ = std::min(delay_ms_ * 2, 5000);
    }
    void succeeded() { delay_ms_ = 100; }
    bool due() const { return now_ms() >= next_; }
    int delay_ms() const { return delay_ms_; }
    static int64_t now_ms()
    {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
            .count();
    }

private:
    int delay_ms_ = 100;
    int64_t next_ = 0;
    std::mt19937 rng_{static_cast<unsigned>(getpid())};
};

// Counts a lost connection by the kind of its failure.
void connection_lost(Metrics& n, const RedisConn& conn)
{
    n.reconnects++;
    n.redis_errors[kind_name(conn.error_kind())]++;
}

int run(const std::string& path, Config config_in)
{
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    struct sigaction hup {};
    hup.sa_handler = on_hup;
    sigaction(SIGHUP, &hup, nullptr);
    signal(SIGPIPE, SIG_IGN);
    // One Config object for the whole run: the readers refer to it, and a
    // SIGHUP replaces its contents (then every connection is rebuilt).
    Config config = std::move(config_in);
    bool has_pubsub = false;
    bool has_streams = false;
    auto kinds = [&] {
        has_pubsub = has_streams = false;
        for (const Source& s : config.sources) {
            (s.kind == SourceKind::kPubSub ? has_pubsub : has_streams) = true;
        }
    };
    kinds();
    PublishClient nginx(config.nginx);
    Metrics n;
    StateLog states;
    Delivery delivery(config, nginx, n, states);
    RedisConn pubsub;
    StreamReader streams(config);
    MetricsServer metrics;
    if (!config.metrics_listen.empty()) {
        std::string error;
        if (!metrics.listen(config.metrics_listen, &error)) {
            log(Level::kError, error);
            return 1;
        }
    }
    // The ingest keeps the settings it started with (a reload does not
    // move its socket under nginx).
    std::unique_ptr<IngestServer> ingest;
    if (!config.ingest.listen.empty()) {
        ingest = std::make_unique<IngestServer>(config.ingest, config.redis);
        std::string error;
        if (!ingest->listen(&error)) {
            log(Level::kError, error);
            return 1;
        }
        ingest->start();
        n.ingest_on = true;
        log(Level::kInfo, "ingest: listening on " + config.ingest.listen
                              + ", into stream " + config.ingest.stream);
    }
    Backoff ps_backoff;
    Backoff st_backoff;
    Backoff retry_backoff;  // held stream entries
    int64_t next_health = 0;
    auto deliver = [&](const std::vector<StreamEntry>& batch) {
        return delivery.streams(batch);
    };
    auto streams_lost = [&](const std::string& error) {
        states.set("redis streams",
                   (error.empty() ? "connection lost: " + streams.conn().error()
                                  : error)
                       + "; reconnecting");
        connection_lost(n, streams.conn());
        streams.conn().reset();
        st_backoff.failed();
    };
    // Asks for more entries, or schedules a retry of those nginx could not
    // take: the loop never waits for nginx.
    auto next_read = [&](std::string* error) {
        if (streams.holding()) {
            retry_backoff.failed();
            return true;
        }
        retry_backoff.succeeded();
        return g_stop || streams.request(error);
    };
    auto nginx_health = [&] {
        bool was = n.nginx_up;
        n.nginx_up = nginx.check();
        if (!n.nginx_up) {
            states.set("nginx", "unreachable: " + nginx.error(),
                       Level::kWarning);
        } else if (!was) {
            states.set("nginx", "reachable");
        }
        next_health = Backoff::now_ms() + 1000;
    };
    nginx_health();
    notify("READY=1");
    while (!g_stop) {
        std::string error;
        if (g_reload) {
            g_reload = 0;
            notify("RELOADING=1");
            try {
                Config fresh = Config::load(path);
                config = std::move(fresh);
                kinds();
                nginx.reset(config.nginx);
                pubsub.reset();
                streams.conn().reset();
                ps_backoff.succeeded();
                st_backoff.succeeded();
                states.set("redis pubsub", "");
                states.set("redis streams", "");
                log(Level::kInfo, "config reloaded from " + path + " ("
                                      + std::to_string(config.sources.size())
                                      + " sources)");
            } catch (const std::exception& e) {
                log(Level::kError, std::string("config reload failed, keeping "
                                               "the running config: ")
                                       + e.what());
            }
            notify("READY=1");
        }
        if (has_pubsub && !pubsub && ps_backoff.due()) {
            if (pubsub.connect(config.redis, &error)
                && subscribe_all(config, pubsub, &error))
            {
                ps_backoff.succeeded();
                states.set("redis pubsub", "subscribed");
            } else {
                n.redis_errors[kind_name(pubsub.error_kind())]++;
                pubsub.reset();
                ps_backoff.failed();
                states.set("redis pubsub", error + "; retrying with backoff",
                           Level::kWarning);
            }
        }
        if (has_streams && !streams.conn() && st_backoff.due()) {
            if (streams.start(deliver, &error) && next_read(&error)) {
                st_backoff.succeeded();
                states.set("redis streams", "reading");
            } else {
                n.redis_errors[kind_name(streams.conn().error_kind())]++;
                streams.conn().reset();
                st_backoff.failed();
                states.set("redis streams", error + "; retrying with backoff",
                           Level::kWarning);
            }
        }
        if (streams.conn() && streams.holding() && retry_backoff.due()) {
            if (!streams.retry(deliver, &error) || !next_read(&error)) {
                streams_lost(error);
            }
        }
        if (Backoff::now_ms() >= next_health) {
            nginx_health();
        }
        n.redis_pubsub_up = static_cast<bool>(pubsub);
        n.queue_depth = delivery.queued();
        n.redis_streams_up = static_cast<bool>(streams.conn());
        pollfd fds[4] = {{pubsub.fd(), POLLIN, 0},
                         {streams.conn().fd(), POLLIN, 0},
                         {metrics.fd(), POLLIN, 0},
                         {nginx.fd(), POLLIN, 0}};
        if (poll(fds, 4, 100) <= 0) {
            continue;
        }
        if (fds[3].revents != 0) {
            // the idle keep-alive connection closed: nginx's keepalive
            // timeout, or nginx went away
            nginx_health();
        }
        if (fds[2].revents != 0) {
            std::string why;
            if (has_pubsub && !pubsub) {
                why += "redis pubsub down; ";
            }
            if (has_streams && !streams.conn()) {
                why += "redis streams down; ";
            }
            if (!n.nginx_up) {
                why += "nginx down (" + nginx.error() + "); ";
            }
            if (ingest) {
                n.ingest_stored = ingest->stored;
                n.ingest_refused = ingest->refused;
                n.ingest_not_stored = ingest->not_stored;
            }
            metrics.serve(n, why.empty(), why);
        }
        if (fds[0].revents != 0) {
            // Read everything Redis has sent into the bounded queue, then
            // publish it in pipelined batches, reading again between
            // batches so that a slow nginx drops the oldest events here
            // rather than piling them up in Redis.
            bool ok = true;
            auto drain = [&] {
                std::vector<ReplyPtr> replies;
                ok = pubsub.read_available(&replies);
                for (const ReplyPtr& r : replies) {
                    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
                        continue;
                    }
                    auto s = [&](size_t i) {
                        const redisReply* e = r->element[i];
                        return std::string(e->str == nullptr ? "" : e->str,
                                           e->len);
                    };
                    if (s(0) == "message") {
                        delivery.pubsub({"", s(1), s(2)});
                    } else if (s(0) == "pmessage" && r->elements >= 4) {
                        delivery.pubsub({s(1), s(2), s(3)});
                    }
                }
            };
            drain();
            while (ok && delivery.queued() > 0 && !g_stop) {
                delivery.publish_queued(100);
                pollfd more{pubsub.fd(), POLLIN, 0};
                if (poll(&more, 1, 0) > 0) {
                    drain();
                }
            }
            if (!ok) {
                states.set(
                    "redis pubsub",
                    "connection lost: " + pubsub.error() + "; reconnecting",
                    Level::kWarning);
                connection_lost(n, pubsub);
                pubsub.reset();
                ps_backoff.failed();
            }
        }
        if (fds[1].revents != 0) {
            std::vector<ReplyPtr> replies;
            bool ok = streams.conn().read_available(&replies);
            for (const ReplyPtr& r : replies) {
                ok = ok && streams.handle(r.get(), deliver, &error)
                     && next_read(&error);
            }
            if (!ok) {
                streams_lost(error);
            }
        }
    }
    // SIGTERM: what was read is published before exiting (stream entries
    // not yet accepted are simply re-read next time: not acknowledged).
    notify("STOPPING=1");
    while (delivery.queued() > 0) {
        delivery.publish_queued(100);
    }
    log(Level::kInfo, "stopping: " + std::to_string(n.published)
                          + " published, " + std::to_string(n.dropped)
                          + " dropped");
    return 0;
}

void usage(FILE* out)
{
    std::fputs(
        "usage: pulse-publisher -c FILE [--check]\n"
        "       pulse-publisher --version\n"
        "  -c FILE   YAML configuration (see conf.d/publisher.yaml.example)\n"
        "  --check   validate the configuration and exit\n"
        "  --version print the version and exit\n",
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
        } else if (std::strcmp(argv[i], "--version") == 0) {
            std::puts("pulse-publisher " PULSE_VERSION);
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
        return run(path, std::move(config));
    } catch (const std::exception& e) {
        log(Level::kError, std::string("config error: ") + e.what());
        return kExitConfig;
    }
}
