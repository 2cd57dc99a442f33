#include "redis_source.h"

#include <poll.h>

#include <algorithm>
#include <map>

namespace pulse::publisher {

namespace {

std::string str(const redisReply* r)
{
    return r == nullptr || r->str == nullptr ? std::string()
                                             : std::string(r->str, r->len);
}

bool is_error(const ReplyPtr& r, std::string* error, const char* what)
{
    if (r && r->type == REDIS_REPLY_ERROR) {
        *error = std::string(what) + ": " + str(r.get());
        return true;
    }
    return false;
}

}  // namespace

// ------------------------------------------------------------ RedisConn

bool RedisConn::connect(const RedisEndpoint& r, std::string* error)
{
    timeval tv{5, 0};
    c_.reset(r.unix_socket.empty()
                 ? redisConnectWithTimeout(r.host.c_str(), r.port, tv)
                 : redisConnectUnixWithTimeout(r.unix_socket.c_str(), tv));
    if (!c_ || c_->err != 0) {
        *error = "connect: " + this->error();
        note_failure();
        c_.reset();
        return false;
    }
    if (!r.password.empty()) {
        std::vector<std::string> argv{"AUTH"};
        if (!r.username.empty()) {
            argv.push_back(r.username);
        }
        argv.push_back(r.password);
        ReplyPtr rep = command(argv);
        if (!rep || is_error(rep, error, "AUTH")) {
            if (!rep) {
                *error = "AUTH: " + this->error();
            } else {
                failed_with_reply(str(rep.get()));
            }
            c_.reset();
            return false;
        }
    }
    if (r.db != 0) {
        ReplyPtr rep = command({"SELECT", std::to_string(r.db)});
        if (!rep || is_error(rep, error, "SELECT")) {
            if (!rep) {
                *error = "SELECT: " + this->error();
            } else {
                failed_with_reply(str(rep.get()));
            }
            c_.reset();
            return false;
        }
    }
    return true;
}

const char* kind_name(RedisErrorKind k)
{
    switch (k) {
        case RedisErrorKind::kIo:
            return "io";
        case RedisErrorKind::kEof:
            return "eof";
        case RedisErrorKind::kProtocol:
            return "protocol";
        case RedisErrorKind::kOom:
            return "oom";
        case RedisErrorKind::kAuth:
            return "auth";
        case RedisErrorKind::kReply:
            return "reply";
        case RedisErrorKind::kOther:
            break;
    }
    return "other";
}

RedisErrorKind reply_error_kind(std::string_view reply)
{
    for (std::string_view auth : {"NOAUTH", "WRONGPASS", "NOPERM"}) {
        if (reply.substr(0, auth.size()) == auth) {
            return RedisErrorKind::kAuth;
        }
    }
    return RedisErrorKind::kReply;
}

RedisErrorKind RedisConn::error_kind() const
{
    return kind_;
}

void RedisConn::note_failure()
{
    int err = c_ ? c_->err : REDIS_ERR_OTHER;
    switch (err) {
        case REDIS_ERR_IO:
            kind_ = RedisErrorKind::kIo;
            break;
        case REDIS_ERR_EOF:
            kind_ = RedisErrorKind::kEof;
            break;
        case REDIS_ERR_PROTOCOL:
            kind_ = RedisErrorKind::kProtocol;
            break;
        case REDIS_ERR_OOM:
            kind_ = RedisErrorKind::kOom;
            break;
        default:
            kind_ = RedisErrorKind::kOther;
    }
}

std::string RedisConn::error() const
{
    return !c_ ? "no connection" : c_->err ? c_->errstr : "protocol error";
}

ReplyPtr RedisConn::command(const std::vector<std::string>& argv)
{
    if (!send(argv)) {
        return nullptr;
    }
    void* raw = nullptr;
    if (redisGetReply(c_.get(), &raw) != REDIS_OK) {
        note_failure();
        return nullptr;
    }
    return ReplyPtr(static_cast<redisReply*>(raw));
}

bool RedisConn::send(const std::vector<std::string>& argv)
{
    if (!c_) {
        return false;
    }
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
        ptrs.push_back(a.c_str());
        lens.push_back(a.size());
    }
    if (redisAppendCommandArgv(c_.get(), static_cast<int>(argv.size()),
                               ptrs.data(), lens.data())
        != REDIS_OK)
    {
        return false;
    }
    int done = 0;
    while (!done) {
        if (redisBufferWrite(c_.get(), &done) != REDIS_OK) {
            note_failure();
            return false;
        }
    }
    return true;
}

bool RedisConn::pending_reply(ReplyPtr* out)
{
    void* raw = nullptr;
    if (!c_ || redisGetReplyFromReader(c_.get(), &raw) != REDIS_OK) {
        return false;
    }
    out->reset(static_cast<redisReply*>(raw));
    return true;
}

bool RedisConn::read_available(std::vector<ReplyPtr>* out)
{
    if (!c_ || redisBufferRead(c_.get()) != REDIS_OK) {
        note_failure();
        return false;
    }
    while (true) {
        ReplyPtr r;
        if (!pending_reply(&r)) {
            return false;
        }
        if (!r) {
            return true;
        }
        out->push_back(std::move(r));
    }
}

// ------------------------------------------------------------- pub/sub

bool subscribe_all(const Config& config, RedisConn& conn, std::string* error)
{
    for (const Source& s : config.sources) {
        if (s.kind != SourceKind::kPubSub) {
            continue;
        }
        // An error reply (NOAUTH, ACL denied...) is a failure too, not a
        // subscription.
        for (const auto& ch : s.channels) {
            ReplyPtr r = conn.command({"SUBSCRIBE", ch});
            if (!r || is_error(r, error, "SUBSCRIBE")) {
                if (!r) {
                    *error = "SUBSCRIBE: " + conn.error();
                } else {
                    conn.failed_with_reply(str(r.get()));
                }
                return false;
            }
        }
        for (const auto& p : s.patterns) {
            ReplyPtr r = conn.command({"PSUBSCRIBE", p});
            if (!r || is_error(r, error, "PSUBSCRIBE")) {
                if (!r) {
                    *error = "PSUBSCRIBE: " + conn.error();
                } else {
                    conn.failed_with_reply(str(r.get()));
                }
                return false;
            }
        }
    }
    return true;
}

// -------------------------------------------------------------- streams

bool StreamReader::active() const
{
    return !positions_.empty();
}

std::string StreamReader::pos_hash(const Source& s) const
{
    return "pulse:publisher:" + (s.consumer.empty() ? s.name : s.consumer);
}

bool StreamReader::save(const Position& p, std::string* error)
{
    ReplyPtr r = conn_.command({"HSET", pos_hash(*p.source), p.key, p.id});
    if (!r || is_error(r, error, "HSET")) {
        if (!r) {
            *error = "HSET: " + conn_.error();
        }
        return false;
    }
    return true;
}

bool StreamReader::start(const Deliver& deliver, std::string* error)
{
    // Where this process had got to, kept over failed starts too: a Redis
    // that restarted empty has lost the positions kept in it, and its new
    // entries (ids from its clock) come after these.
    for (const Position& p : positions_) {
        if (p.id != "$") {
            had_[{p.source, p.key}] = p.id;
        }
    }
    positions_.clear();
    held_.clear();  // not acknowledged: read again
    if (!conn_.connect(config_.redis, error)) {
        return false;
    }
    for (const Source& s : config_.sources) {
        if (s.kind != SourceKind::kStream) {
            continue;
        }
        for (const auto& key : s.keys) {
            Position p{&s, key, "$"};
            if (!s.group.empty()) {
                ReplyPtr r = conn_.command(
                    {"XGROUP", "CREATE", key, s.group, "$", "MKSTREAM"});
                if (!r) {
                    *error = "XGROUP: " + conn_.error();
                    return false;
                }
                if (r->type == REDIS_REPLY_ERROR
                    && str(r.get()).rfind("BUSYGROUP", 0) != 0) {
                    *error = "XGROUP CREATE " + key + ": " + str(r.get());
                    return false;
                }
            } else {
                ReplyPtr r = conn_.command({"HGET", pos_hash(s), key});
                if (!r) {
                    *error = "HGET: " + conn_.error();
                    return false;
                }
                if (r->type == REDIS_REPLY_STRING) {
                    p.id = str(r.get());
                } else if (auto it = had_.find({&s, key}); it != had_.end()) {
                    p.id = it->second;
                }
            }
            // Replay the newest entries once per process start, so that a
            // new node can serve resumes at once (the module drops ids it
            // already has).
            if (!replayed_ && s.replay > 0) {
                ReplyPtr r = conn_.command({"XREVRANGE", key, "+", "-", "COUNT",
                                            std::to_string(s.replay)});
                if (!r) {
                    *error = "XREVRANGE: " + conn_.error();
                    return false;
                }
                if (r->type == REDIS_REPLY_ARRAY) {
                    std::vector<StreamEntry> batch;
                    for (size_t i = r->elements; i-- > 0;) {
                        batch.push_back(entry_of(&s, key, r->element[i]));
                    }
                    if (deliver(batch) < batch.size()) {
                        *error = "stopped during replay";
                        return false;
                    }
                    if (s.group.empty() && p.id == "$" && !batch.empty()) {
                        p.id = batch.back().id;
                    }
                }
            }
            if (p.id == "$" && s.group.empty()) {
                // "$" in every XREAD would miss entries added between two
                // reads: pin the position to the current last entry.
                ReplyPtr r =
                    conn_.command({"XREVRANGE", key, "+", "-", "COUNT", "1"});
                if (!r) {
                    *error = "XREVRANGE: " + conn_.error();
                    return false;
                }
                p.id = r->type == REDIS_REPLY_ARRAY && r->elements == 1
                           ? str(r->element[0]->element[0])
                           : "0-0";
            }
            positions_.push_back(p);
        }
    }
    replayed_ = true;
    backlog_done_.clear();
    return true;
}

bool StreamReader::request(std::string* error)
{
    // One source per read, round robin: a source's keys share its group.
    const Source* s = positions_[next_ % positions_.size()].source;
    std::vector<std::string> argv;
    if (s->group.empty()) {
        argv = {"XREAD", "COUNT", "100", "BLOCK", "200", "STREAMS"};
    } else {
        argv = {"XREADGROUP", "GROUP", s->group, s->consumer, "COUNT",
                "100",        "BLOCK", "200",    "STREAMS"};
    }
    std::vector<std::string> ids;
    for (const Position& p : positions_) {
        if (p.source == s) {
            argv.push_back(p.key);
            // XREADGROUP: first what this consumer read but never
            // acknowledged (a crash before XACK), then new entries.
            ids.push_back(s->group.empty()              ? p.id
                          : backlog_done_.count(s) == 0 ? "0"
                                                        : ">");
        }
    }
    argv.insert(argv.end(), ids.begin(), ids.end());
    if (!conn_.send(argv)) {
        *error = "XREAD: " + conn_.error();
        return false;
    }
    return true;
}

bool StreamReader::handle(const redisReply* reply, const Deliver& deliver,
                          std::string* error)
{
    const Source* s = positions_[next_ % positions_.size()].source;
    if (reply->type == REDIS_REPLY_ERROR) {
        *error = "XREAD: " + str(reply);
        conn_.failed_with_reply(str(reply));
        return false;
    }
    held_.clear();
    held_any_ = false;
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; ++i) {
            const redisReply* stream = reply->element[i];
            Held h{str(stream->element[0]), {}};
            const redisReply* entries = stream->element[1];
            for (size_t j = 0; j < entries->elements; ++j) {
                h.entries.push_back(entry_of(s, h.key, entries->element[j]));
            }
            if (!h.entries.empty()) {
                held_any_ = true;
                held_.push_back(std::move(h));
            }
        }
    }
    return deliver_held(deliver, error);
}

bool StreamReader::retry(const Deliver& deliver, std::string* error)
{
    return deliver_held(deliver, error);
}

// Acknowledges the first `done` entries of a batch: one XACK, or the
// position saved in Redis.
bool StreamReader::commit(const std::string& key,
                          const std::vector<StreamEntry>& batch, size_t done,
                          std::string* error)
{
    if (done == 0) {
        return true;
    }
    const Source* s = positions_[next_ % positions_.size()].source;
    if (!s->group.empty()) {
        std::vector<std::string> argv{"XACK", key, s->group};
        for (size_t j = 0; j < done; ++j) {
            argv.push_back(batch[j].id);
        }
        ReplyPtr r = conn_.command(argv);
        if (!r) {
            *error = "XACK: " + conn_.error();
            return false;
        }
        return true;
    }
    auto pos = std::find_if(
        positions_.begin(), positions_.end(),
        [&](const Position& p) { return p.source == s && p.key == key; });
    if (pos == positions_.end()) {
        return true;
    }
    pos->id = batch[done - 1].id;
    return save(*pos, error);
}

bool StreamReader::deliver_held(const Deliver& deliver, std::string* error)
{
    while (!held_.empty()) {
        Held& h = held_.front();
        size_t done = deliver(h.entries);
        if (!commit(h.key, h.entries, done, error)) {
            return false;
        }
        if (done < h.entries.size()) {
            // nginx cannot take the rest now: hold it, read nothing more
            h.entries.erase(h.entries.begin(),
                            h.entries.begin() + static_cast<long>(done));
            return true;
        }
        held_.erase(held_.begin());
    }
    const Source* s = positions_[next_ % positions_.size()].source;
    if (!s->group.empty() && !held_any_) {
        backlog_done_.insert(s);
    }
    next_++;
    return true;
}

StreamEntry StreamReader::entry_of(const Source* s, const std::string& key,
                                   const redisReply* e)
{
    StreamEntry entry{s, key, str(e->element[0]), {}};
    const redisReply* f = e->element[1];
    for (size_t k = 0; f != nullptr && k + 1 < f->elements; k += 2) {
        entry.fields.emplace_back(str(f->element[k]), str(f->element[k + 1]));
    }
    return entry;
}

}  // namespace pulse::publisher
