#pragma once

// The sidecar's HTTP ingest (docs/publisher.md, "Ingest"): a backend POSTs
// /publish/<channel> to any node, with the module's headers (Content-Type,
// X-EventSource-Event, Pulse-Key); the event is written to a Redis Stream
// that every node's sidecar reads as a stream source, so it reaches every
// node's subscribers under the same id, and a client resumes on any node.
// The answer says whether Redis stored it.
//
// It runs on a thread of its own with its own Redis connection: a publish
// waits for its XADD, the delivery loop never does.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "config.h"
#include "redis_source.h"

namespace pulse::publisher {

/// One HTTP/1.x request read incrementally: the request line, the headers
/// and a Content-Length body. A chunked body, a head over 16 KiB or a body
/// over the bound is an error with the status to answer.
class HttpRequestParser {
public:
    explicit HttpRequestParser(size_t max_body) : max_body_(max_body) {}

    enum class State { kPartial, kDone, kError };
    /// Appends `in`; kDone once a whole request is there (the bytes after
    /// it stay for the next one: take_next()).
    State feed(std::string_view in);
    /// Starts on the next request with what followed this one.
    void take_next();

    std::string method;
    std::string target;
    std::string version;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    int error_status = 0;  // with kError
    std::string error;

    /// The first header called `name` (case-insensitive), or nullptr.
    const std::string* header(std::string_view name) const;
    bool keep_alive() const;

    static constexpr size_t kMaxHead = size_t{16} * 1024;

private:
    State fail(int status, std::string why);
    State parse_head(size_t end);

    size_t max_body_;
    std::string buf_;
    size_t body_at_ = 0;  // where the body starts in buf_; 0: head not read
    size_t body_len_ = 0;
    State state_ = State::kPartial;
};

/// An event to store, as a request gives it.
struct IngestEvent {
    std::string channel;
    std::string body;
    std::string content_type;
    std::string event;
    std::string key;  // Pulse-Key
};

/// What a request asks for: an event, or the status and reason it is
/// refused with (404 for another path, 405 for another method, 400 for a
/// bad channel or header).
struct IngestRequest {
    bool ok = false;
    IngestEvent event;
    int status = 0;
    std::string reason;
};
IngestRequest ingest_request(const HttpRequestParser& req);

/// XADD <stream> MAXLEN ~ <maxlen> * pulse_channel .. data .. content_type ..
/// event .. key .. : every field always there, so that the readers'
/// templates always expand.
std::vector<std::string> xadd_command(const IngestConfig& c,
                                      const IngestEvent& e);

/// An HTTP/1.1 response with a text/plain body.
std::string http_answer(int status, std::string_view body, bool keep_alive,
                        std::string_view extra_headers = "");

class IngestServer {
public:
    IngestServer(IngestConfig ingest, RedisEndpoint redis)
        : ingest_(std::move(ingest)), redis_(std::move(redis))
    {}
    IngestServer(const IngestServer&) = delete;
    IngestServer& operator=(const IngestServer&) = delete;
    IngestServer(IngestServer&&) = delete;
    IngestServer& operator=(IngestServer&&) = delete;
    ~IngestServer();

    /// Binds the listener (a unix socket is replaced if one is there).
    bool listen(std::string* error);
    /// Serves on a thread until stop().
    void start();
    void stop();

    std::atomic<uint64_t> stored{0};
    std::atomic<uint64_t> refused{0};     // bad requests
    std::atomic<uint64_t> not_stored{0};  // Redis did not take it

private:
    struct Client {
        explicit Client(size_t max_body) : parser(max_body) {}
        int fd = -1;
        HttpRequestParser parser;
        std::string out;
        bool closing = false;
        bool gone = false;
        int64_t active = 0;
    };
    void run();
    void serve(Client& c, std::string_view bytes);
    std::string handle(const HttpRequestParser& req);

    IngestConfig ingest_;
    RedisEndpoint redis_;
    RedisConn conn_;
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

}  // namespace pulse::publisher
