#include "ingest.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "log.h"
#include "metrics.h"
#include "pulse/publish_request.h"
#include "pulse/text.h"

namespace pulse::publisher {

namespace {

using text::iequals;
using text::trim;

const char* reason_phrase(int status)
{
    switch (status) {
        case 202:
            return "Accepted";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 411:
            return "Length Required";
        case 413:
            return "Payload Too Large";
        case 431:
            return "Request Header Fields Too Large";
        case 503:
            return "Service Unavailable";
        default:
            break;
    }
    return "Error";
}

constexpr size_t kMaxChannel = 1024;
constexpr size_t kMaxClients = 256;
constexpr int64_t kIdleMs = 60000;

int64_t now_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

// --------------------------------------------------------------- parser

HttpRequestParser::State HttpRequestParser::fail(int status, std::string why)
{
    error_status = status;
    error = std::move(why);
    state_ = State::kError;
    return state_;
}

HttpRequestParser::State HttpRequestParser::parse_head(size_t end)
{
    std::string_view head(buf_.data(), end);
    size_t eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != line.npos) {
        return fail(400, "malformed request line");
    }
    method = std::string(line.substr(0, sp1));
    target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
    version = std::string(line.substr(sp2 + 1));
    if (version != "HTTP/1.1" && version != "HTTP/1.0") {
        return fail(400, "not HTTP/1.x");
    }
    size_t at = eol == std::string_view::npos ? head.size() : eol + 2;
    while (at < head.size()) {
        size_t next = head.find("\r\n", at);
        std::string_view h =
            head.substr(at, next == std::string_view::npos ? next : next - at);
        at = next == std::string_view::npos ? head.size() : next + 2;
        size_t colon = h.find(':');
        if (colon == 0 || colon == std::string_view::npos || h[0] == ' '
            || h[0] == '\t')
        {
            return fail(400, "malformed header line");
        }
        headers.emplace_back(std::string(h.substr(0, colon)),
                             std::string(trim(h.substr(colon + 1))));
    }
    if (const std::string* te = header("Transfer-Encoding")) {
        (void) te;
        return fail(411,
                    "a chunked body is not taken: send Content-Length "
                    "(nginx does with proxy_request_buffering on)");
    }
    body_len_ = 0;
    if (const std::string* cl = header("Content-Length")) {
        if (cl->empty() || cl->size() > 12
            || cl->find_first_not_of("0123456789") != std::string::npos)
        {
            return fail(400, "bad Content-Length");
        }
        body_len_ = std::stoull(*cl);
        if (body_len_ > max_body_) {
            return fail(413, "body of " + *cl + " bytes, at most "
                                 + std::to_string(max_body_)
                                 + " (ingest.max_body)");
        }
    }
    body_at_ = end + 4;
    return State::kPartial;
}

HttpRequestParser::State HttpRequestParser::feed(std::string_view in)
{
    if (state_ != State::kPartial) {
        return state_;
    }
    buf_.append(in);
    if (body_at_ == 0) {
        size_t end = buf_.find("\r\n\r\n");
        if (end == std::string::npos) {
            if (buf_.size() > kMaxHead) {
                return fail(431, "request head over 16 KiB");
            }
            return State::kPartial;
        }
        if (end > kMaxHead) {
            return fail(431, "request head over 16 KiB");
        }
        if (parse_head(end) == State::kError) {
            return state_;
        }
    }
    if (buf_.size() - body_at_ < body_len_) {
        return State::kPartial;
    }
    body = buf_.substr(body_at_, body_len_);
    state_ = State::kDone;
    return state_;
}

void HttpRequestParser::take_next()
{
    std::string rest =
        state_ == State::kDone ? buf_.substr(body_at_ + body_len_) : "";
    method.clear();
    target.clear();
    version.clear();
    headers.clear();
    body.clear();
    error_status = 0;
    error.clear();
    buf_.clear();
    body_at_ = 0;
    body_len_ = 0;
    state_ = State::kPartial;
    feed(rest);
}

const std::string* HttpRequestParser::header(std::string_view name) const
{
    for (const auto& [k, v] : headers) {
        if (iequals(k, name)) {
            return &v;
        }
    }
    return nullptr;
}

bool HttpRequestParser::keep_alive() const
{
    const std::string* c = header("Connection");
    if (version == "HTTP/1.0") {
        return c != nullptr && iequals(*c, "keep-alive");
    }
    return c == nullptr || !iequals(*c, "close");
}

// -------------------------------------------------------------- requests

IngestRequest ingest_request(const HttpRequestParser& req)
{
    IngestRequest out;
    std::string_view path = req.target;
    path = path.substr(0, path.find('?'));
    constexpr std::string_view kPrefix = "/publish/";
    if (path.substr(0, kPrefix.size()) != kPrefix) {
        out.status = 404;
        out.reason = "POST /publish/<channel>";
        return out;
    }
    if (req.method != "POST" && req.method != "PUT") {
        out.status = 405;
        out.reason = "POST or PUT publishes";
        return out;
    }
    std::string_view channel = path.substr(kPrefix.size());
    if (channel.empty() || channel.size() > kMaxChannel) {
        out.status = 400;
        out.reason = "the channel must be 1 to 1024 bytes";
        return out;
    }
    for (char c : channel) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f) {
            out.status = 400;
            out.reason = "the channel has a space or a control character";
            return out;
        }
    }
    auto value = [&](std::string_view name) {
        const std::string* v = req.header(name);
        return v == nullptr ? std::string() : *v;
    };
    out.event.channel = std::string(channel);
    out.event.body = req.body;
    out.event.content_type = value("Content-Type");
    out.event.event = value("X-EventSource-Event");
    out.event.key = value("Pulse-Key");
    PublishFields f;
    f.event = out.event.event;
    f.content_type = out.event.content_type;
    f.key = out.event.key;
    f.event_name = "X-EventSource-Event header";
    f.content_type_name = "Content-Type header";
    f.key_name = "Pulse-Key header";
    if (Status v = validate(f); !v.is_ok()) {
        out.status = 400;
        out.reason = v.message();
        return out;
    }
    out.ok = true;
    return out;
}

std::vector<std::string> xadd_command(const IngestConfig& c,
                                      const IngestEvent& e)
{
    return {"XADD",
            c.stream,
            "MAXLEN",
            "~",
            std::to_string(c.maxlen),
            "*",
            "pulse_channel",
            e.channel,
            "data",
            e.body,
            "content_type",
            e.content_type,
            "event",
            e.event,
            "key",
            e.key};
}

std::string http_answer(int status, std::string_view body, bool keep_alive,
                        std::string_view extra_headers)
{
    std::string out = "HTTP/1.1 " + std::to_string(status) + " "
                      + reason_phrase(status)
                      + "\r\nContent-Type: text/plain\r\nContent-Length: "
                      + std::to_string(body.size()) + "\r\n";
    out += extra_headers;
    out += keep_alive ? "" : "Connection: close\r\n";
    out += "\r\n";
    out += body;
    return out;
}

// ---------------------------------------------------------------- server

IngestServer::~IngestServer()
{
    stop();
    if (fd_ >= 0) {
        close(fd_);
    }
}

bool IngestServer::listen(std::string* error)
{
    const std::string& spec = ingest_.listen;
    if (spec.rfind("unix:", 0) == 0) {
        std::string path = spec.substr(5);
        sockaddr_un sa{};
        if (path.empty() || path.size() >= sizeof(sa.sun_path)) {
            *error = "ingest: bad unix socket path " + spec;
            return false;
        }
        sa.sun_family = AF_UNIX;
        std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        unlink(path.c_str());  // a socket left by a previous run
        if (fd_ < 0
            || bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0
            || ::listen(fd_, 128) != 0)
        {
            *error = "ingest: listen " + spec + ": " + std::strerror(errno);
            return false;
        }
        // nginx's workers connect as their own user
        chmod(path.c_str(), 0666);
        return true;
    }
    fd_ = listen_tcp(spec, 128, "ingest", error);
    return fd_ >= 0;
}

void IngestServer::start()
{
    thread_ = std::thread([this] { run(); });
}

void IngestServer::stop()
{
    stop_ = true;
    if (thread_.joinable()) {
        thread_.join();
    }
}

// One request: the XADD, and the answer saying whether Redis stored it.
std::string IngestServer::handle(const HttpRequestParser& req)
{
    bool keep = req.keep_alive();
    IngestRequest r = ingest_request(req);
    if (!r.ok) {
        refused++;
        std::string extra =
            r.status == 405 ? "Allow: POST, PUT\r\n" : std::string();
        return http_answer(r.status, r.reason + "\n", keep, extra);
    }
    if (conn_) {
        // Redis closed an idle connection (a restart): reconnect first,
        // rather than lose this publish or send it twice.
        pollfd p{conn_.fd(), POLLIN, 0};
        if (poll(&p, 1, 0) > 0) {
            conn_.reset();
        }
    }
    std::string error;
    if (!conn_ && !conn_.connect(redis_, &error)) {
        conn_.reset();
        not_stored++;
        return http_answer(503, "not stored: " + error + "\n", keep);
    }
    ReplyPtr reply = conn_.command(xadd_command(ingest_, r.event));
    if (!reply || reply->type != REDIS_REPLY_STRING) {
        std::string why =
            !reply ? conn_.error()
                   : std::string(reply->str == nullptr ? "unexpected reply"
                                                       : reply->str);
        if (!reply) {
            conn_.reset();
        }
        not_stored++;
        return http_answer(503, "not stored: " + why + "\n", keep);
    }
    stored++;
    std::string id(reply->str, reply->len);
    return http_answer(202, "stored " + id + "\n", keep,
                       "Pulse-Stream-Id: " + id + "\r\n");
}

// Answers every whole request the bytes complete, in order.
void IngestServer::serve(Client& c, std::string_view bytes)
{
    auto st = c.parser.feed(bytes);
    while (st == HttpRequestParser::State::kDone && !c.closing) {
        c.out += handle(c.parser);
        c.closing = !c.parser.keep_alive();
        c.parser.take_next();
        st = c.parser.feed("");
    }
    if (st == HttpRequestParser::State::kError && !c.closing) {
        refused++;
        c.out +=
            http_answer(c.parser.error_status, c.parser.error + "\n", false);
        c.closing = true;
    }
}

void IngestServer::run()
{
    std::vector<std::unique_ptr<Client>> clients;
    char buf[65536];
    while (!stop_) {
        std::vector<pollfd> fds;
        fds.push_back({fd_, POLLIN, 0});
        for (auto& c : clients) {
            fds.push_back(
                {c->fd, static_cast<short>(c->out.empty() ? POLLIN : POLLOUT),
                 0});
        }
        if (poll(fds.data(), fds.size(), 200) < 0 && errno != EINTR) {
            log(Level::kError,
                std::string("ingest: poll: ") + std::strerror(errno));
            return;
        }
        if ((fds[0].revents & POLLIN) != 0) {
            while (clients.size() < kMaxClients) {
                int c = accept4(fd_, nullptr, nullptr,
                                SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (c < 0) {
                    break;
                }
                auto client = std::make_unique<Client>(ingest_.max_body);
                client->fd = c;
                client->active = now_ms();
                clients.push_back(std::move(client));
            }
        }
        int64_t now = now_ms();
        // fds[i + 1] is clients[i]'s: the gone are erased after the pass
        for (size_t i = 0; i < clients.size(); ++i) {
            Client& c = *clients[i];
            short rev = fds[i + 1].revents;
            bool dead = (rev & (POLLERR | POLLNVAL)) != 0;
            if (!dead && (rev & (POLLIN | POLLHUP)) != 0) {
                ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
                if (n <= 0) {
                    dead = n == 0 || (errno != EAGAIN && errno != EINTR);
                } else {
                    c.active = now;
                    serve(c, std::string_view(buf, static_cast<size_t>(n)));
                }
            }
            if (!dead && !c.out.empty()) {
                ssize_t n = send(c.fd, c.out.data(), c.out.size(),
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) {
                    c.out.erase(0, static_cast<size_t>(n));
                } else if (errno != EAGAIN && errno != EINTR) {
                    dead = true;
                }
            }
            c.gone = dead || (c.closing && c.out.empty())
                     || now - c.active > kIdleMs;
            if (c.gone) {
                close(c.fd);
            }
        }
        clients.erase(std::remove_if(clients.begin(), clients.end(),
                                     [](const std::unique_ptr<Client>& c) {
                                         return c->gone;
                                     }),
                      clients.end());
    }
    for (auto& c : clients) {
        close(c->fd);
    }
}

}  // namespace pulse::publisher
