#pragma once

#include <string>
#include <string_view>

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

    /// Publishes to `channel`; returns the HTTP status, or -1 when nginx
    /// cannot be reached (one reconnect is tried first). `error()` says why.
    /// `msg_id` (time:tag) goes in Pulse-Message-Id when not empty.
    int post(std::string_view channel, std::string_view body,
             std::string_view content_type, std::string_view event,
             std::string_view msg_id = {});
    const std::string& error() const { return error_; }

private:
    bool connect_nginx();
    int exchange(const std::string& request);
    void disconnect();

    NginxEndpoint endpoint_;
    int fd_ = -1;
    std::string in_;
    std::string error_;
};

}  // namespace pulse::publisher
