#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "http_response.h"

namespace pulse::publisher {

/// A publish request, as the sidecar sends it to nginx.
struct PublishRequest {
    std::string channel;
    std::string body;
    std::string content_type;
    std::string event;
    std::string msg_id;  // Pulse-Message-Id when not empty
    std::string key;     // Pulse-Key (conflation) when not empty
};

/// Where publishes go: the nginx client, or a fake in tests.
class PublishSink {
public:
    /// Statuses in order; -1 for a request that got no answer.
    virtual std::vector<int> post_many(
        const std::vector<PublishRequest>& reqs) = 0;
    /// Why the last request got no answer.
    virtual const std::string& error() const = 0;

protected:
    ~PublishSink() = default;
};

/// HTTP/1.1 keep-alive POSTs to the nginx publisher location, over TCP or
/// a unix socket, pipelined: a batch of requests is written at once, then
/// the answers read in order. Connecting, sending and reading each time
/// out after 5 s.
class PublishClient final : public PublishSink {
public:
    explicit PublishClient(NginxEndpoint endpoint)
        : endpoint_(std::move(endpoint))
    {}
    PublishClient(const PublishClient&) = delete;
    PublishClient& operator=(const PublishClient&) = delete;
    PublishClient(PublishClient&&) = delete;
    PublishClient& operator=(PublishClient&&) = delete;
    ~PublishClient();
    /// Drops the connection and targets `endpoint` from now on (reload).
    void reset(NginxEndpoint endpoint)
    {
        disconnect();
        endpoint_ = std::move(endpoint);
    }

    using Request = PublishRequest;
    /// Pipelines `reqs` on the keep-alive connection; statuses in order,
    /// -1 for requests that got no answer (the connection failed: see
    /// error()). A kept-alive connection that nginx closed meanwhile is
    /// retried once on a fresh one.
    std::vector<int> post_many(const std::vector<Request>& reqs) override;
    const std::string& error() const override { return error_; }

    /// The kept-alive connection's socket, -1 when there is none: readable
    /// while idle means nginx closed it (or is gone).
    int fd() const { return fd_; }
    /// Whether nginx can be reached now: the idle connection is still
    /// open, or a new one connects. Cheap when connected.
    bool check();

private:
    bool connect_nginx();
    std::string format(const Request& r) const;
    bool send_all(const std::string& data);
    /// Reads until `n` responses arrived; their statuses.
    bool read_responses(size_t n, std::vector<int>* statuses);
    void disconnect();

    NginxEndpoint endpoint_;
    int fd_ = -1;
    HttpResponseParser parser_;
    std::string error_;
};

}  // namespace pulse::publisher
