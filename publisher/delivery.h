#pragma once

// The sidecar's delivery policy, apart from its I/O: which source takes a
// Redis event, what publish request it becomes, the bounded Pub/Sub queue,
// and what happens to each answer nginx gives. Tested against a fake
// client (t/unit/publisher/delivery_test.cpp).
//
// - Pub/Sub is at-most-once: a full queue drops its oldest event (the
//   newest state is what a dashboard wants); each queued event is tried
//   once.
// - Streams lose nothing: an entry nginx cannot take now (unreachable, 5xx,
//   408, 429) stops the batch there, and the caller holds the rest and
//   retries later without blocking; an entry nginx refuses for good (a
//   channel it rejects, a body too large: the other 4xx) or that can never
//   be a publish (no body field, no target, a field that would inject a
//   header, an id with no message id) is dropped, counted, logged and
//   acknowledged.

#include <cstddef>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "publish_client.h"
#include "redis_source.h"

namespace pulse::publisher {

/// Logs a line when the state it describes changes, not per event.
class StateLog {
public:
    /// `level` is the line's syslog priority: a failure is a warning.
    void set(const std::string& key, const std::string& state,
             Level level = Level::kInfo);
    /// Lines logged so far (for tests); the real log is stderr.
    const std::vector<std::string>& lines() const { return lines_; }

private:
    std::map<std::string, std::string> states_;
    std::vector<std::string> lines_;
};

/// True for a status that says the event itself is wrong: retrying cannot
/// help. 408/429 and 5xx are nginx's state: retry.
bool is_poison(int status);

class Delivery {
public:
    Delivery(const Config& config, PublishSink& nginx, Metrics& metrics,
             StateLog& log)
        : config_(config), nginx_(nginx), n_(metrics), log_(log)
    {}

    // ---------------------------------------------------------- Pub/Sub
    /// Routes a Pub/Sub message into the bounded queue (or drops it).
    void pubsub(const PubSubMessage& m);
    /// Publishes up to `max` queued events as one pipeline.
    void publish_queued(size_t max);
    size_t queued() const { return queue_.size(); }

    // ---------------------------------------------------------- streams
    /// Publishes a batch of stream entries as one pipeline; returns how
    /// many (a prefix) are done: published, or dropped for good. Fewer
    /// when nginx could not take the next one now.
    size_t streams(const std::vector<StreamEntry>& batch);

private:
    struct Pending {
        const Source* source;
        PublishClient::Request request;
    };
    std::optional<Pending> route_pubsub(const PubSubMessage& m);
    /// The publish request for an entry, or why it can never be one.
    std::optional<PublishClient::Request> route_entry(const StreamEntry& e,
                                                      std::string* why);
    void drop_entry(const StreamEntry& e, const std::string& why);
    void published(const Source& s, double seconds);
    void note_lag(const StreamEntry& e);

    const Config& config_;
    PublishSink& nginx_;
    Metrics& n_;
    StateLog& log_;
    std::deque<Pending> queue_;
};

}  // namespace pulse::publisher
