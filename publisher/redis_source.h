#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <hiredis/hiredis.h>

#include "config.h"
#include "rules.h"

namespace pulse::publisher {

struct RedisFree {
    void operator()(redisContext* c) const { redisFree(c); }
};
struct ReplyFree {
    void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ContextPtr = std::unique_ptr<redisContext, RedisFree>;
using ReplyPtr = std::unique_ptr<redisReply, ReplyFree>;

/// Why a Redis connection failed, after hiredis's error codes and the
/// server's error replies (redis-plus-plus's taxonomy).
enum class RedisErrorKind {
    kIo,        // REDIS_ERR_IO: a socket error (refused, reset, timeout)
    kEof,       // REDIS_ERR_EOF: the server closed the connection
    kProtocol,  // REDIS_ERR_PROTOCOL: bytes that are not RESP
    kOom,       // REDIS_ERR_OOM: hiredis could not allocate
    kAuth,      // NOAUTH, WRONGPASS, NOPERM replies
    kReply,     // another error reply (NOGROUP, a wrong type...)
    kOther,     // REDIS_ERR_OTHER (a resolver failure...)
};

/// The metric label of a kind: io, eof, protocol, oom, auth, reply, other.
const char* kind_name(RedisErrorKind k);

/// The kind of a server error reply's text.
RedisErrorKind reply_error_kind(std::string_view reply);

/// One hiredis 0.14 connection (RAII): connect with AUTH and SELECT,
/// synchronous commands, and the send / poll / read-available split that a
/// single-threaded loop over several connections needs.
class RedisConn {
public:
    bool connect(const RedisEndpoint& r, std::string* error);
    void reset() { c_.reset(); }
    explicit operator bool() const { return c_ != nullptr; }
    int fd() const { return c_ ? c_->fd : -1; }
    /// A synchronous command; nullptr on a connection error (see error).
    ReplyPtr command(const std::vector<std::string>& argv);
    /// Sends without waiting for the reply.
    bool send(const std::vector<std::string>& argv);
    /// Reads what the socket has and returns the complete replies; false
    /// when the connection failed.
    bool read_available(std::vector<ReplyPtr>* out);
    /// A reply already parsed and waiting, without reading the socket.
    bool pending_reply(ReplyPtr* out);
    std::string error() const;
    /// The kind of the last failure of this connection: its socket or
    /// protocol error, or the error reply that ended connect().
    RedisErrorKind error_kind() const;
    /// Notes an error reply as the connection's failure (a SUBSCRIBE or an
    /// XREAD refused).
    void failed_with_reply(std::string_view reply)
    {
        kind_ = reply_error_kind(reply);
    }

private:
    void note_failure();

    ContextPtr c_;
    RedisErrorKind kind_ = RedisErrorKind::kOther;
};

/// One Pub/Sub message as Redis delivered it.
struct PubSubMessage {
    std::string pattern;  // empty for SUBSCRIBE'd channels
    std::string channel;
    std::string payload;
};

/// A stream entry read from a stream source.
struct StreamEntry {
    const Source* source;
    std::string key;
    std::string id;
    Fields fields;
};

/// Subscribes every pubsub source's channels and patterns on one
/// connection.
bool subscribe_all(const Config& config, RedisConn& conn, std::string* error);

/// Reads the stream sources: XREAD from a position kept in Redis (hash
/// `pulse:publisher:<consumer or source name>`), or XREADGROUP with XACK.
class StreamReader {
public:
    explicit StreamReader(const Config& config) : config_(config) {}

    /// Delivers entries in order; returns how many (a prefix) were handled:
    /// fewer only when stopping.
    using Deliver = std::function<size_t(const std::vector<StreamEntry>&)>;

    /// (Re)connects, creates consumer groups, loads positions, and on the
    /// first start replays each stream's last `replay` entries through
    /// `deliver`. Returns false on a connection error.
    bool start(const Deliver& deliver, std::string* error);
    /// Sends the next blocking read (XREAD[GROUP] ... BLOCK 200).
    bool request(std::string* error);
    /// Handles a read reply: delivers each stream's entries as one batch;
    /// only what `deliver` handled is acknowledged (one XACK, or the saved
    /// position). What it could not handle now is held: no read is
    /// requested until retry() has delivered it. Returns false on a
    /// connection error.
    bool handle(const redisReply* reply, const Deliver& deliver,
                std::string* error);
    /// Entries read and not yet delivered (nginx could not take them).
    bool holding() const { return !held_.empty(); }
    /// Delivers the held entries again; false on a connection error.
    bool retry(const Deliver& deliver, std::string* error);
    RedisConn& conn() { return conn_; }
    bool active() const;

private:
    struct Position {
        const Source* source;
        std::string key;
        std::string id;  // XREAD: last id handled
    };
    /// XREAD positions this process reached, by (source, key): where to
    /// go on when Redis lost the ones kept in it.
    std::map<std::pair<const Source*, std::string>, std::string> had_;
    static StreamEntry entry_of(const Source* s, const std::string& key,
                                const redisReply* e);
    std::string pos_hash(const Source& s) const;
    bool save(const Position& p, std::string* error);

    const Config& config_;
    RedisConn conn_;
    /// Delivers held_ in order, acknowledging what was handled.
    bool deliver_held(const Deliver& deliver, std::string* error);
    bool commit(const std::string& key, const std::vector<StreamEntry>& batch,
                size_t done, std::string* error);

    struct Held {
        std::string key;
        std::vector<StreamEntry> entries;
    };
    std::vector<Position> positions_;
    std::vector<Held> held_;  // of the source positions_[next_] reads
    bool held_any_ = false;   // the held reply had entries (backlog)
    size_t next_ = 0;         // which source reads next (round robin)
    bool replayed_ = false;
    std::set<const Source*> backlog_done_;  // XREADGROUP: unacked re-read
};

}  // namespace pulse::publisher
