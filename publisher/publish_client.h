#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config.h"

namespace pulse::publisher {

/// HTTP/1.1 keep-alive POSTs to the nginx publisher location, over TCP or
/// a unix socket. One request at a time: a pipelined client with several
/// requests in flight is still to do (issue 5).
class PublishClient {
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

    /// Publishes to `channel`; returns the HTTP status, or -1 when nginx
    /// cannot be reached (one reconnect is tried first). `error()` says why.
    /// `msg_id` (time:tag) goes in Pulse-Message-Id when not empty.
    int post(std::string_view channel, std::string_view body,
             std::string_view content_type, std::string_view event,
             std::string_view msg_id = {});
    struct Request {
        std::string channel;
        std::string body;
        std::string content_type;
        std::string event;
        std::string msg_id;
    };
    /// Pipelines `reqs` on the keep-alive connection (all sent, then the
    /// answers read in order); statuses in order, -1 for requests that got
    /// no answer (the connection failed: see error()).
    std::vector<int> post_many(const std::vector<Request>& reqs);
    const std::string& error() const { return error_; }

private:
    bool connect_nginx();
    std::string format(std::string_view channel, std::string_view body,
                       std::string_view content_type, std::string_view event,
                       std::string_view msg_id) const;
    bool send_all(const std::string& data);
    int read_response();
    int exchange(const std::string& request);
    void disconnect();

    NginxEndpoint endpoint_;
    int fd_ = -1;
    std::string in_;
    std::string error_;
};

}  // namespace pulse::publisher
