#include "publish_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "rules.h"

namespace pulse::publisher {

namespace {

constexpr int kTimeoutMs = 5000;

// connect() bounded by kTimeoutMs: a non-blocking connect, then poll.
bool connect_with_timeout(int fd, const sockaddr* sa, socklen_t len,
                          std::string* error)
{
    int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    int rc = ::connect(fd, sa, len);
    if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int n;
        do {
            n = ::poll(&p, 1, kTimeoutMs);
        } while (n < 0 && errno == EINTR);
        if (n == 0) {
            *error = "timed out after 5 s";
            return false;
        }
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        rc = err == 0 ? 0 : -1;
        errno = err;
    }
    if (rc != 0) {
        *error = std::strerror(errno);
        return false;
    }
    fcntl(fd, F_SETFL, flags);
    return true;
}

}  // namespace

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
    parser_.reset();
}

bool PublishClient::connect_nginx()
{
    disconnect();
    std::string why;
    if (!endpoint_.unix_socket.empty()) {
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, endpoint_.unix_socket.c_str(),
                     sizeof(sa.sun_path) - 1);
        if (fd_ < 0
            || !connect_with_timeout(fd_, reinterpret_cast<sockaddr*>(&sa),
                                     sizeof(sa), &why))
        {
            error_ = "connect " + endpoint_.unix_socket + ": " + why;
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
        bool ok =
            fd_ >= 0
            && connect_with_timeout(fd_, res->ai_addr, res->ai_addrlen, &why);
        freeaddrinfo(res);
        if (!ok) {
            error_ = "connect " + endpoint_.host + ":" + port + ": " + why;
            disconnect();
            return false;
        }
        int one = 1;
        setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    timeval tv{kTimeoutMs / 1000, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return true;
}

bool PublishClient::check()
{
    if (fd_ >= 0) {
        char b;
        ssize_t n = recv(fd_, &b, 1, MSG_DONTWAIT | MSG_PEEK);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;  // idle and open
        }
        // closed by nginx (keepalive_timeout, a restart) or unexpected
        // bytes on an idle connection: start over
        disconnect();
    }
    // A request, not a bare connection: nginx closes an idle keep-alive
    // connection at once when it shuts down or reloads, but waits for a
    // connection that has sent nothing yet, which would hold its old
    // workers for client_header_timeout. OPTIONS on the publish location
    // is a CORS preflight: no channel is touched, nothing is logged.
    if (!connect_nginx()) {
        return false;
    }
    std::string path = endpoint_.publish_path;
    path.replace(path.find("{channel}"), 9, "healthz");
    std::vector<int> statuses;
    if (!send_all("OPTIONS " + path + " HTTP/1.1\r\nHost: pulse\r\n\r\n")
        || !read_responses(1, &statuses))
    {
        disconnect();
        return false;
    }
    return true;  // any answer: nginx is there
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

bool PublishClient::read_responses(size_t n, std::vector<int>* statuses)
{
    std::vector<HttpResponseParser::Response> got;
    char buf[16384];
    while (statuses->size() < n) {
        for (const auto& r : got) {
            statuses->push_back(r.status);
            if (r.close) {
                // nginx ends the connection after this one
                disconnect();
                return statuses->size() == n;
            }
        }
        got.clear();
        if (statuses->size() >= n) {
            break;
        }
        ssize_t k = recv(fd_, buf, sizeof(buf), 0);
        if (k < 0 && errno == EINTR) {
            continue;  // a signal during the exchange: keep reading
        }
        if (k <= 0) {
            error_ = k == 0 ? "nginx closed the connection"
                            : std::string("recv: ") + std::strerror(errno);
            return false;
        }
        if (!parser_.feed(std::string_view(buf, static_cast<size_t>(k)), &got))
        {
            error_ = "bad response from nginx: " + parser_.error();
            return false;
        }
    }
    return true;
}

std::string PublishClient::format(const Request& r) const
{
    std::string path = endpoint_.publish_path;
    size_t at = path.find("{channel}");
    path.replace(at, 9, url_path_escape(r.channel));
    std::string req = "POST " + path + " HTTP/1.1\r\nHost: pulse\r\n";
    if (!r.content_type.empty()) {
        req.append("Content-Type: ").append(r.content_type).append("\r\n");
    }
    if (!r.event.empty()) {
        req.append("X-EventSource-Event: ").append(r.event).append("\r\n");
    }
    if (!r.msg_id.empty()) {
        req.append("Pulse-Message-Id: ").append(r.msg_id).append("\r\n");
    }
    if (!r.key.empty()) {
        req.append("Pulse-Key: ").append(r.key).append("\r\n");
    }
    req += "Content-Length: " + std::to_string(r.body.size()) + "\r\n\r\n";
    req.append(r.body);
    return req;
}

std::vector<int> PublishClient::post_many(const std::vector<Request>& reqs)
{
    std::vector<int> statuses;
    if (reqs.empty()) {
        return statuses;
    }
    std::string all;
    for (const Request& r : reqs) {
        all += format(r);
    }
    // A kept-alive connection that nginx closed meanwhile answers nothing:
    // then one fresh connection gets the whole pipeline again.
    for (int attempt = 0; attempt < 2; ++attempt) {
        bool reused = fd_ >= 0;
        statuses.clear();
        if (fd_ < 0 && !connect_nginx()) {
            break;
        }
        if (send_all(all) && read_responses(reqs.size(), &statuses)) {
            return statuses;
        }
        disconnect();
        if (!statuses.empty() || !reused) {
            break;
        }
    }
    statuses.resize(reqs.size(), -1);
    return statuses;
}

}  // namespace pulse::publisher
