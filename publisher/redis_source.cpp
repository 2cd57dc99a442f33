#include "redis_source.h"

#include <poll.h>

namespace pulse::publisher {

namespace {

std::string context_error(redisContext* c, const char* what)
{
    return std::string(what) + ": "
           + (c == nullptr ? "cannot allocate a context" : c->errstr);
}

ReplyPtr command(redisContext* c, const std::vector<std::string>& argv)
{
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
        ptrs.push_back(a.c_str());
        lens.push_back(a.size());
    }
    return ReplyPtr(static_cast<redisReply*>(redisCommandArgv(
        c, static_cast<int>(argv.size()), ptrs.data(), lens.data())));
}

}  // namespace

bool run_pubsub(const Config& config, const std::function<bool()>& stop,
                const std::function<void(const PubSubMessage&)>& on_message,
                std::string* error)
{
    const RedisEndpoint& r = config.redis;
    timeval tv{5, 0};
    ContextPtr c(r.unix_socket.empty()
                     ? redisConnectWithTimeout(r.host.c_str(), r.port, tv)
                     : redisConnectUnixWithTimeout(r.unix_socket.c_str(), tv));
    if (c == nullptr || c->err != 0) {
        *error = context_error(c.get(), "connect");
        return false;
    }
    if (!r.password.empty()) {
        std::vector<std::string> argv{"AUTH"};
        if (!r.username.empty()) {
            argv.push_back(r.username);
        }
        argv.push_back(r.password);
        ReplyPtr rep = command(c.get(), argv);
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            *error = rep ? "AUTH: " + std::string(rep->str, rep->len)
                         : context_error(c.get(), "AUTH");
            return false;
        }
    }
    if (r.db != 0) {
        ReplyPtr rep = command(c.get(), {"SELECT", std::to_string(r.db)});
        if (!rep || rep->type == REDIS_REPLY_ERROR) {
            *error = rep ? "SELECT: " + std::string(rep->str, rep->len)
                         : context_error(c.get(), "SELECT");
            return false;
        }
    }
    for (const Source& s : config.sources) {
        if (s.kind != SourceKind::kPubSub) {
            continue;
        }
        for (const auto& ch : s.channels) {
            ReplyPtr rep = command(c.get(), {"SUBSCRIBE", ch});
            if (!rep) {
                *error = context_error(c.get(), "SUBSCRIBE");
                return false;
            }
        }
        for (const auto& p : s.patterns) {
            ReplyPtr rep = command(c.get(), {"PSUBSCRIBE", p});
            if (!rep) {
                *error = context_error(c.get(), "PSUBSCRIBE");
                return false;
            }
        }
    }
    // Read with poll() first, so that a signal (stop()) is seen within
    // 200 ms even when Redis is quiet; hiredis's blocking read would retry
    // through EINTR forever.
    while (!stop()) {
        void* raw = nullptr;
        if (redisGetReplyFromReader(c.get(), &raw) != REDIS_OK) {
            *error = context_error(c.get(), "read");
            return false;
        }
        if (raw == nullptr) {
            pollfd p{c->fd, POLLIN, 0};
            if (poll(&p, 1, 200) > 0 && redisBufferRead(c.get()) != REDIS_OK) {
                *error = context_error(c.get(), "connection lost");
                return false;
            }
            continue;
        }
        ReplyPtr rep(static_cast<redisReply*>(raw));
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 3) {
            continue;
        }
        auto str = [&](size_t i) {
            redisReply* e = rep->element[i];
            return std::string(e->str == nullptr ? "" : e->str, e->len);
        };
        std::string kind = str(0);
        if (kind == "message") {
            on_message(PubSubMessage{"", str(1), str(2)});
        } else if (kind == "pmessage" && rep->elements >= 4) {
            on_message(PubSubMessage{str(1), str(2), str(3)});
        }
    }
    return true;
}

}  // namespace pulse::publisher
