// pulse-publisher: Redis Pub/Sub and Streams -> publishes on the local
// nginx. Single-threaded: one poll loop over the Pub/Sub and the stream
// connections, pipelined publishes, a bounded Pub/Sub queue, /metrics and
// /healthz, SIGHUP reload (docs/publisher.md).

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "config.h"
#include "metrics.h"
#include "publish_client.h"
#include "pulse/message_id.h"
#include "pulse/publish_request.h"
#include "redis_source.h"
#include "rules.h"

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

void log_line(const std::string& s)
{
    std::fprintf(stderr, "publisher: %s\n", s.c_str());
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

// Logs a line when the state it describes changes, not per event.
class StateLog {
public:
    void set(const std::string& key, const std::string& state)
    {
        if (states_[key] != state) {
            states_[key] = state;
            if (!state.empty()) {
                log_line(key + ": " + state);
            }
        }
    }

private:
    std::map<std::string, std::string> states_;
};

using Counters = Metrics;

// A name for a log line: control characters as \xNN.
std::string printable(std::string_view s)
{
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            char hex[8];
            std::snprintf(hex, sizeof(hex), "\\x%02x", u);
            out += hex;
        } else {
            out += c;
        }
    }
    return out;
}

double seconds_since(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
        .count();
}

// Stream lag: how old the entry just published is (its id is its time).
void note_lag(Counters& n, const StreamEntry& e)
{
    size_t dash = e.id.find('-');
    double ms = std::strtod(e.id.substr(0, dash).c_str(), nullptr);
    double now = std::chrono::duration<double, std::milli>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
    n.stream_lag[e.source->name + "/" + e.key] = (now - ms) / 1000.0;
}

bool is_poison(int status)
{
    // The event itself is wrong (bad channel id, too large...): retrying
    // cannot help. 408/429 and 5xx/507 are nginx's state: retry.
    return status >= 400 && status < 500 && status != 408 && status != 429;
}

// A Pub/Sub event routed to its publish request, waiting in the queue.
struct Pending {
    const Source* source;
    PublishClient::Request request;
};

// Routes a Pub/Sub message (no I/O); nullopt when no source takes it or its
// target cannot be built (counted and logged as a drop).
std::optional<Pending> route_pubsub(const Config& config,
                                    const PubSubMessage& m, Counters& n,
                                    StateLog& log)
{
    for (const Source& s : config.sources) {
        if (s.kind != SourceKind::kPubSub) {
            continue;
        }
        std::vector<std::string> caps;
        bool mine = false;
        if (m.pattern.empty()) {
            mine = std::find(s.channels.begin(), s.channels.end(), m.channel)
                   != s.channels.end();
        } else if (std::find(s.patterns.begin(), s.patterns.end(), m.pattern)
                   != s.patterns.end())
        {
            auto c = glob_captures(m.pattern, m.channel);
            mine = c.has_value();
            caps = c.value_or(caps);
        }
        if (!mine) {
            continue;
        }
        n.in(s.name);
        auto target = expand(s.target, m.channel, caps);
        auto event = expand(s.event, m.channel, caps);
        if (!target || target->empty() || !event) {
            n.drop(s.name);
            log.set("dropping", "no target channel for '" + m.channel
                                    + "' in source " + s.name);
            return std::nullopt;
        }
        // A channel name is publisher input: it must not carry a line
        // break into the event header of the publish.
        if (pulse::Status v = pulse::validate(pulse::PublishFields{*event, ""});
            !v.is_ok())
        {
            n.drop(s.name);
            log.set("dropping", "channel '" + printable(m.channel)
                                    + "' in source " + s.name + ": "
                                    + v.message());
            return std::nullopt;
        }
        return Pending{&s, {*target, m.payload, "", *event, ""}};
    }
    return std::nullopt;
}

// The bounded Pub/Sub queue: when full, the oldest event goes (Pub/Sub is
// at-most-once; the newest state is what a dashboard wants).
void enqueue(std::deque<Pending>& queue, Pending p, uint32_t limit, Counters& n,
             StateLog& log)
{
    if (queue.size() >= limit) {
        n.drop(queue.front().source->name);
        queue.pop_front();
        log.set("pubsub queue", "full (" + std::to_string(limit)
                                    + "): dropping the oldest events");
    }
    queue.push_back(std::move(p));
}

// Publishes up to `max` queued events as one pipeline; one try each.
void publish_queued(std::deque<Pending>& queue, size_t max,
                    PublishClient& nginx, Counters& n, StateLog& log)
{
    std::vector<PublishClient::Request> reqs;
    std::vector<const Source*> sources;
    while (!queue.empty() && reqs.size() < max) {
        reqs.push_back(std::move(queue.front().request));
        sources.push_back(queue.front().source);
        queue.pop_front();
    }
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int> statuses = nginx.post_many(reqs);
    double took = seconds_since(t0);
    for (size_t i = 0; i < statuses.size(); ++i) {
        n.nginx_up = statuses[i] > 0;
        if (statuses[i] == 201 || statuses[i] == 202) {
            n.observe_latency(took);
            n.ok(sources[i]->name);
            log.set("dropping", "");
            log.set("nginx", "accepting publishes");
        } else {
            n.drop(sources[i]->name);
            if (statuses[i] < 0) {
                log.set("nginx", "unreachable: " + nginx.error());
            } else {
                log.set("dropping", "nginx answered "
                                        + std::to_string(statuses[i])
                                        + " for channel " + reqs[i].channel);
            }
        }
    }
    if (queue.empty()) {
        log.set("pubsub queue", "");
    }
}

// A stream entry as a publish request, or nullopt (and why) when it can
// never be published: no body field, or no target channel.
std::optional<PublishClient::Request> route_entry(const StreamEntry& e,
                                                  std::string* why)
{
    const Source& s = *e.source;
    const std::string* body = field(e.fields, s.body_field);
    auto target = expand(s.target, e.key, {}, e.fields);
    std::optional<std::string> event;
    if (s.event_field.empty()) {
        event = expand(s.event, e.key, {}, e.fields);
    } else {
        const std::string* v = field(e.fields, s.event_field);
        event = v == nullptr ? std::string() : *v;
    }
    const std::string* ctype = s.content_type_field.empty()
                                   ? nullptr
                                   : field(e.fields, s.content_type_field);
    if (body == nullptr || !target || target->empty() || !event) {
        *why = body == nullptr ? "no field '" + s.body_field + "'"
                               : std::string("no target channel");
        return std::nullopt;
    }
    // The fields become headers of the publish: the module's rule, checked
    // here so that a line break can never reach the request.
    pulse::Status v = pulse::validate(
        pulse::PublishFields{*event, ctype == nullptr ? "" : *ctype});
    if (!v.is_ok()) {
        *why = v.message();
        return std::nullopt;
    }
    // Every node must give the entry the same id, so an entry whose id has
    // no message id (past the year 9999, or seq >= 1000000) is dropped
    // rather than published under an id nginx would pick.
    auto msg_id = stream_id_to_msg_id(e.id);
    if (!msg_id || !pulse::parse_publish_id(*msg_id).is_ok()) {
        *why = "its entry id maps to no message id";
        return std::nullopt;
    }
    return PublishClient::Request{
        *target, *body, ctype == nullptr ? "" : *ctype, *event, *msg_id};
}

void drop_entry(const StreamEntry& e, const std::string& why, Counters& n,
                StateLog& log)
{
    n.drop(e.source->name);
    log.set("dropping", "stream " + e.key + " entry " + e.id + ": " + why);
}

// Streams: nothing is lost. An event nginx cannot take now is retried with
// backoff (reading stops meanwhile); an event nginx refuses for good (a
// channel it rejects, a body too large) is dropped, logged and
// acknowledged. Returns false only when stopping.
bool deliver_stream(PublishClient& nginx, const StreamEntry& e,
                    const PublishClient::Request& req, Counters& n,
                    StateLog& log)
{
    Backoff backoff;
    while (!g_stop) {
        auto t0 = std::chrono::steady_clock::now();
        int status = nginx.post(req.channel, req.body, req.content_type,
                                req.event, req.msg_id);
        n.nginx_up = status > 0;
        if (status == 201 || status == 202) {
            n.observe_latency(seconds_since(t0));
            n.ok(e.source->name);
            note_lag(n, e);
            log.set("nginx", "accepting publishes");
            return true;
        }
        if (is_poison(status)) {
            drop_entry(e, "nginx answered " + std::to_string(status), n, log);
            return true;
        }
        log.set("nginx", (status < 0 ? "unreachable: " + nginx.error()
                                     : "answered " + std::to_string(status))
                             + "; holding stream reads and retrying");
        backoff.failed();
        while (!g_stop && !backoff.due()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    return false;
}

// Publishes a batch of stream entries as one pipeline. Entries that can
// never be published are dropped in place; from the first entry nginx
// could not take now, the rest go one by one with retries (keeping the
// order). Returns how many were handled (all, unless stopping).
size_t deliver_batch(PublishClient& nginx,
                     const std::vector<StreamEntry>& batch, Counters& n,
                     StateLog& log)
{
    std::vector<PublishClient::Request> reqs;
    std::vector<size_t> index;  // reqs[k] is batch[index[k]]
    for (size_t i = 0; i < batch.size(); ++i) {
        n.in(batch[i].source->name);
        std::string why;
        if (auto req = route_entry(batch[i], &why)) {
            reqs.push_back(std::move(*req));
            index.push_back(i);
        } else {
            drop_entry(batch[i], why, n, log);
        }
    }
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int> statuses = nginx.post_many(reqs);
    double took = seconds_since(t0);
    size_t k = 0;
    for (; k < statuses.size(); ++k) {
        const StreamEntry& e = batch[index[k]];
        n.nginx_up = statuses[k] > 0;
        if (statuses[k] == 201 || statuses[k] == 202) {
            n.observe_latency(took);
            n.ok(e.source->name);
            note_lag(n, e);
            log.set("nginx", "accepting publishes");
        } else if (is_poison(statuses[k])) {
            drop_entry(e, "nginx answered " + std::to_string(statuses[k]), n,
                       log);
        } else {
            break;
        }
    }
    for (; k < reqs.size(); ++k) {
        if (!deliver_stream(nginx, batch[index[k]], reqs[k], n, log)) {
            return index[k];
        }
    }
    return batch.size();
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
    Counters n;
    StateLog log;
    RedisConn pubsub;
    std::deque<Pending> queue;
    StreamReader streams(config);
    MetricsServer metrics;
    if (!config.metrics_listen.empty()) {
        std::string error;
        if (!metrics.listen(config.metrics_listen, &error)) {
            log_line(error);
            return 1;
        }
    }
    Backoff ps_backoff;
    Backoff st_backoff;
    auto deliver = [&](const std::vector<StreamEntry>& batch) {
        return deliver_batch(nginx, batch, n, log);
    };
    while (!g_stop) {
        std::string error;
        if (g_reload) {
            g_reload = 0;
            try {
                Config fresh = Config::load(path);
                config = std::move(fresh);
                kinds();
                nginx.reset(config.nginx);
                pubsub.reset();
                streams.conn().reset();
                ps_backoff.succeeded();
                st_backoff.succeeded();
                log.set("redis pubsub", "");
                log.set("redis streams", "");
                log_line("config reloaded from " + path + " ("
                         + std::to_string(config.sources.size()) + " sources)");
            } catch (const std::exception& e) {
                log_line(std::string("config reload failed, keeping the "
                                     "running config: ")
                         + e.what());
            }
        }
        if (has_pubsub && !pubsub && ps_backoff.due()) {
            if (pubsub.connect(config.redis, &error)
                && subscribe_all(config, pubsub, &error))
            {
                ps_backoff.succeeded();
                log.set("redis pubsub", "subscribed");
            } else {
                pubsub.reset();
                ps_backoff.failed();
                log.set("redis pubsub", error + "; retrying with backoff");
            }
        }
        if (has_streams && !streams.conn() && st_backoff.due()) {
            if (streams.start(deliver, &error) && streams.request(&error)) {
                st_backoff.succeeded();
                log.set("redis streams", "reading");
            } else {
                streams.conn().reset();
                st_backoff.failed();
                log.set("redis streams", error + "; retrying with backoff");
            }
        }
        n.redis_pubsub_up = static_cast<bool>(pubsub);
        n.queue_depth = queue.size();
        n.redis_streams_up = static_cast<bool>(streams.conn());
        pollfd fds[3] = {{pubsub.fd(), POLLIN, 0},
                         {streams.conn().fd(), POLLIN, 0},
                         {metrics.fd(), POLLIN, 0}};
        if (poll(fds, 3, 200) <= 0) {
            continue;
        }
        if (fds[2].revents != 0) {
            std::string why;
            if (has_pubsub && !pubsub) {
                why += "redis pubsub down; ";
            }
            if (has_streams && !streams.conn()) {
                why += "redis streams down; ";
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
                    std::optional<Pending> p;
                    if (s(0) == "message") {
                        p = route_pubsub(config, {"", s(1), s(2)}, n, log);
                    } else if (s(0) == "pmessage" && r->elements >= 4) {
                        p = route_pubsub(config, {s(1), s(2), s(3)}, n, log);
                    }
                    if (p) {
                        enqueue(queue, std::move(*p), config.queue_size, n,
                                log);
                    }
                }
            };
            drain();
            while (ok && !queue.empty() && !g_stop) {
                publish_queued(queue, 100, nginx, n, log);
                pollfd more{pubsub.fd(), POLLIN, 0};
                if (poll(&more, 1, 0) > 0) {
                    drain();
                }
            }
            if (!ok) {
                n.reconnects++;
                log.set("redis pubsub", "connection lost: " + pubsub.error()
                                            + "; reconnecting");
                pubsub.reset();
                ps_backoff.failed();
            }
        }
        if (fds[1].revents != 0) {
            std::vector<ReplyPtr> replies;
            bool ok = streams.conn().read_available(&replies);
            for (const ReplyPtr& r : replies) {
                ok = ok && streams.handle(r.get(), deliver, &error)
                     && (g_stop || streams.request(&error));
            }
            if (!ok) {
                log.set("redis streams",
                        (error.empty()
                             ? "connection lost: " + streams.conn().error()
                             : error)
                            + "; reconnecting");
                n.reconnects++;
                streams.conn().reset();
                st_backoff.failed();
            }
        }
    }
    // SIGTERM: what was read is published before exiting (stream entries
    // not yet accepted are simply re-read next time: not acknowledged).
    while (!queue.empty()) {
        publish_queued(queue, 100, nginx, n, log);
    }
    log_line("stopping: " + std::to_string(n.published) + " published, "
             + std::to_string(n.dropped) + " dropped");
    return 0;
}

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
        return run(path, std::move(config));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "publisher: config error: %s\n", e.what());
        return kExitConfig;
    }
}
