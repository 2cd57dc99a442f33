#pragma once

#include <functional>
#include <memory>
#include <string>

#include <hiredis/hiredis.h>

#include "config.h"

namespace pulse::publisher {

struct RedisFree {
    void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyFree {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ContextPtr = std::unique_ptr<redisContext, RedisFree>;
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

/// One Pub/Sub message as Redis delivered it.
struct PubSubMessage {
    std::string pattern;  // empty for SUBSCRIBE'd channels
    std::string channel;
    std::string payload;
};

/// Connects (AUTH, SELECT), subscribes every pubsub source's channels and
/// patterns on one connection, and calls `on_message` for each message until
/// `stop()` returns true. Returns false with `error` set when the connection
/// fails or drops (the caller backs off and calls again).
bool run_pubsub(const Config& config, const std::function<bool()>& stop,
                const std::function<void(const PubSubMessage&)>& on_message,
                std::string* error);

}  // namespace pulse::publisher
