#include "publish_client.h"

#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "rules.h"

namespace pulse::publisher {

PublishClient::~PublishClient()
{
    disconnect();
}

void PublishClient::disconnect()
{
    if (fd_ >= 0) {
        close(fd_);
        fd_ = -1;
    }
    in_.clear();
}

bool PublishClient::connect_nginx()
{
    disconnect();
    timeval tv{5, 0};
    if (!endpoint_.unix_socket.empty()) {
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, endpoint_.unix_socket.c_str(),
                     sizeof(sa.sun_path) - 1);
        if (fd_ < 0
            || connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0)
        {
            error_ = "connect " + endpoint_.unix_socket + ": "
                     + std::strerror(errno);
            disconnect();
            return false;
        }
    } else {
        addrinfo hints{};
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        std::string port = std::to_string(endpoint_.port);
        int rc =
            getaddrinfo(endpoint_.host.c_str(), port.c_str(), &hints, &res);
        if (rc != 0) {
            error_ = "resolve " + endpoint_.host + ": " + gai_strerror(rc);
            return false;
        }
        fd_ = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool ok = fd_ >= 0 && connect(fd_, res->ai_addr, res->ai_addrlen) == 0;
        freeaddrinfo(res);
        if (!ok) {
            error_ = "connect " + endpoint_.host + ":" + port + ": "
                     + std::strerror(errno);
            disconnect();
            return false;
        }
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return true;
}

bool PublishClient::send_all(const std::string& data)
{
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n =
            send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;  // a signal (SIGTERM, SIGHUP) is no transport error
        }
        if (n <= 0) {
            error_ = std::string("send: ") + std::strerror(errno);
            return false;
        }
        off += static_cast<size_t>(n);
    }
    return true;
}

// Reads one response; its status, or -1 on a transport error.
int PublishClient::read_response()
{
    char buf[16384];
    while (true) {
        size_t end = in_.find("\r\n\r\n");
        if (end != std::string::npos) {
            int status = std::atoi(in_.c_str() + 9);
            size_t len = 0;
            std::string head = in_.substr(0, end);
            for (char& c : head) {
                c = static_cast<char>(
                    std::tolower(static_cast<unsigned char>(c)));
            }
            size_t cl = head.find("\r\ncontent-length:");
            if (cl != std::string::npos) {
                len = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
            }
            if (in_.size() >= end + 4 + len) {
                in_.erase(0, end + 4 + len);
                if (head.find("\r\nconnection: close") != std::string::npos) {
                    disconnect();
                }
                return status;
            }
        }
        ssize_t n = recv(fd_, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR) {
            continue;  // a signal during the exchange: keep reading
        }
        if (n <= 0) {
            error_ = n == 0 ? "nginx closed the connection"
                            : std::string("recv: ") + std::strerror(errno);
            return -1;
        }
        in_.append(buf, static_cast<size_t>(n));
    }
}

int PublishClient::exchange(const std::string& request)
{
    return send_all(request) ? read_response() : -1;
}

std::string PublishClient::format(std::string_view channel,
                                  std::string_view body,
                                  std::string_view content_type,
                                  std::string_view event,
                                  std::string_view msg_id) const
{
    std::string path = endpoint_.publish_path;
    size_t at = path.find("{channel}");
    path.replace(at, 9, url_path_escape(channel));
    std::string req = "POST " + path + " HTTP/1.1\r\nHost: pulse\r\n";
    if (!content_type.empty()) {
        req.append("Content-Type: ").append(content_type).append("\r\n");
    }
    if (!event.empty()) {
        req.append("X-EventSource-Event: ").append(event).append("\r\n");
    }
    if (!msg_id.empty()) {
        req.append("Pulse-Message-Id: ").append(msg_id).append("\r\n");
    }
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    req.append(body);
    return req;
}

int PublishClient::post(std::string_view channel, std::string_view body,
                        std::string_view content_type, std::string_view event,
                        std::string_view msg_id)
{
    std::string req = format(channel, body, content_type, event, msg_id);
    // A kept-alive connection may have been closed by nginx meanwhile: one
    // fresh connection is tried before giving up.
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (fd_ < 0 && !connect_nginx()) {
            return -1;
        }
        int status = exchange(req);
        if (status > 0) {
            return status;
        }
        disconnect();
    }
    return -1;
}

std::vector<int> PublishClient::post_many(const std::vector<Request>& reqs)
{
    std::vector<int> statuses(reqs.size(), -1);
    if (reqs.empty()) {
        return statuses;
    }
    std::string all;
    for (const Request& r : reqs) {
        all += format(r.channel, r.body, r.content_type, r.event, r.msg_id);
    }
    // A kept-alive connection that nginx closed meanwhile answers nothing:
    // then one fresh connection gets the whole pipeline again.
    for (int attempt = 0; attempt < 2; ++attempt) {
        bool reused = fd_ >= 0;
        if (fd_ < 0 && !connect_nginx()) {
            return statuses;
        }
        size_t answered = 0;
        if (send_all(all)) {
            for (; answered < reqs.size(); ++answered) {
                statuses[answered] = read_response();
                if (statuses[answered] < 0 || fd_ < 0) {
                    break;
                }
            }
        }
        if (answered == reqs.size()) {
            return statuses;
        }
        disconnect();
        if (answered > 0 || statuses[0] > 0 || !reused) {
            return statuses;
        }
    }
    return statuses;
}

}  // namespace pulse::publisher
