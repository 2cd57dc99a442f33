#pragma once

// Reads the responses nginx sends back to the sidecar's pipelined publish
// requests: status line, headers, and a body framed by Content-Length or
// chunked encoding (which the sidecar skips). Pure: no I/O, so split reads,
// pipelined responses and garbage are unit-tested
// (t/unit/publisher/http_response_test.cpp).

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pulse::publisher {

class HttpResponseParser {
public:
    /// The largest head (status line and headers) accepted.
    static constexpr size_t kMaxHead = size_t{64} * 1024;
    /// The largest body kept in memory while skipping it (channel info
    /// bodies are a few hundred bytes).
    static constexpr size_t kMaxBody = size_t{1024} * 1024;

    struct Response {
        int status = 0;
        bool close = false;  // Connection: close
    };

    /// Consumes bytes; complete responses are appended to `out`. False on
    /// a malformed stream (see error()); the connection must be dropped.
    bool feed(std::string_view bytes, std::vector<Response>* out);
    const std::string& error() const { return error_; }
    /// True when no response is half read.
    bool idle() const { return buf_.empty() && state_ == State::kHead; }
    void reset();

private:
    enum class State { kHead, kBody, kChunkSize, kChunkData, kTrailer };
    bool head(std::vector<Response>* out, bool* progress);
    bool fail(std::string why);

    State state_ = State::kHead;
    std::string buf_;
    Response current_;
    size_t body_left_ = 0;
    std::string error_;
};

}  // namespace pulse::publisher
