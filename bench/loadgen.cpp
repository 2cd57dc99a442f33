// Pulse/nchan load generator: epoll, no threads.
//
//   loadgen sub --port P --subs N --channels C [--path /sub/bench{c}]
//               [--sources K] [--transport sse|longpoll|ws|ws-meta]
//               [--expect M] [--tokens FILE]
//               [--idle] [--seconds S] [--last L]
//     Opens N subscribers spread over C channels and over source addresses
//     127.0.0.1 .. 127.0.0.K; prints "ready" once all are connected, then
//     counts deliveries. Every payload is "<seq> <send time ns>" (wall
//     clock): each one yields a latency, up to the kernel's receive
//     timestamp of the bytes that carried it (SO_TIMESTAMPNS), so that this
//     process's own queueing is not charged to the server; read_latency_ms
//     is up to the moment this process parsed it. Per channel the seqs show
//     lost, duplicated and out-of-order messages. Ends after M messages per
//     subscriber, after S seconds, or on SIGTERM/stdin EOF, and prints one
//     JSON line. ws is a plain WebSocket (one frame per message), ws-meta
//     one with the ws+meta.nchan subprotocol (id and content type before the
//     payload). With --tokens, subscriber i puts line i (mod the lines) of
//     FILE where the path says {t} (a JWT per subscriber). With --last,
//     "current" counts the subscribers whose last message was seq L of
//     their channel (a conflated stream skips seqs, never the last).
//
//   loadgen pub --port P --channels C --messages M [--rate R] [--window W]
//               [--path /pub/bench{c}] [--size B] [--redis 1] [--keys K]
//     Publishes M messages round-robin over C channels on keep-alive
//     connections (W in flight), at R per second or as fast as possible;
//     prints one JSON line (throughput, status counts). With --redis 1, P
//     is a Redis port and each message is `XADD bench{c} * data <payload>`
//     (pipelined, W in flight), for the path through pulse-publisher.
//     With --keys, message seq s carries `Pulse-Key: k<s mod K>`.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <fstream>
#include <string>
#include <vector>

namespace {

int64_t now_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Payload stamps are wall-clock time, the clock of the kernel's receive
// timestamps (SO_TIMESTAMPNS).
int64_t wall_ns()
{
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

struct Args {
    std::map<std::string, std::string> kv;
    bool has(const std::string& k) const { return kv.count(k) != 0; }
    std::string get(const std::string& k, const std::string& d) const
    {
        auto it = kv.find(k);
        return it == kv.end() ? d : it->second;
    }
    long num(const std::string& k, long d) const
    {
        return has(k) ? std::strtol(kv.at(k).c_str(), nullptr, 10) : d;
    }
};

std::string path_for(const std::string& tmpl, long c)
{
    std::string p = tmpl;
    size_t i = p.find("{c}");
    if (i != std::string::npos) {
        p.replace(i, 3, std::to_string(c));
    }
    return p;
}

int connect_to(int port, const char* source)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (source != nullptr) {
        sockaddr_in src{};
        src.sin_family = AF_INET;
        inet_pton(AF_INET, source, &src.sin_addr);
        if (bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) {
            close(fd);
            return -1;
        }
    }
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0
        && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

void send_all(int fd, const std::string& s)
{
    size_t off = 0;
    while (off < s.size()) {
        ssize_t n = send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += static_cast<size_t>(n);
        } else if (n < 0 && errno == EAGAIN) {
            pollfd p{fd, POLLOUT, 0};
            poll(&p, 1, 1000);
        } else {
            return;
        }
    }
}

// ------------------------------------------------------------ histogram

struct Histogram {
    std::vector<int64_t> v;
    void add(int64_t ns) { v.push_back(ns); }
    std::string json()
    {
        if (v.empty()) {
            return "{}";
        }
        std::sort(v.begin(), v.end());
        auto q = [&](double p) {
            size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
            return static_cast<double>(v[i]) / 1e6;
        };
        char buf[256];
        std::snprintf(buf, sizeof(buf),
                      "{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
                      "\"max\":%.3f}",
                      q(0.5), q(0.9), q(0.99), q(0.999),
                      static_cast<double>(v.back()) / 1e6);
        return buf;
    }
};

// ----------------------------------------------------------- subscribers

struct Sub {
    int fd = -1;
    long channel = 0;
    long index = 0;
    std::string in;
    bool head_done = false;
    bool chunked = false;
    long chunk_left = -1;  // -1: reading a size line
    std::string body;      // decoded, not yet parsed
    long last_seq = -1;
    long got = 0;
    std::string etag, last_modified;  // long-poll
    int64_t arrived = 0;  // kernel receive time of the last bytes read
};

struct SubStats {
    long deliveries = 0, lost = 0, gaps = 0, dup = 0, ooo = 0, errors = 0,
         closed = 0;
    long expect = 0, done = 0;  // subscribers that got `expect` messages
    long bytes = 0;  // read once every subscriber was in: the messages'
    Histogram lat;       // publish -> arrival in the subscriber's socket
    Histogram read_lat;  // publish -> read by this process
};

void on_payload(Sub& s, const std::string& p, SubStats& st)
{
    long seq = 0;
    long long ts = 0;
    if (std::sscanf(p.c_str(), "%ld %lld", &seq, &ts) != 2) {
        return;
    }
    st.deliveries++;
    int64_t read_at = wall_ns();
    st.read_lat.add(read_at - ts);
    st.lat.add((s.arrived != 0 ? s.arrived : read_at) - ts);
    if (seq <= s.last_seq) {
        (seq == s.last_seq ? st.dup : st.ooo)++;
        return;
    }
    if (s.last_seq >= 0 && seq > s.last_seq + 1) {
        st.gaps += seq - s.last_seq - 1;
    }
    s.got++;  // distinct, in-order messages
    s.last_seq = seq;
    if (s.got == st.expect) {
        st.done++;
    }
}

// SSE: complete events end with "\n\n"; take the data line.
void parse_sse(Sub& s, SubStats& st)
{
    size_t start = 0;
    while (true) {
        size_t end = s.body.find("\n\n", start);
        if (end == std::string::npos) {
            break;
        }
        size_t d = s.body.find("data: ", start);
        if (d != std::string::npos && d < end) {
            size_t nl = s.body.find('\n', d);
            on_payload(s, s.body.substr(d + 6, nl - d - 6), st);
        }
        start = end + 2;
    }
    s.body.erase(0, start);
}

// WebSocket: server frames (never masked); text/binary payloads are
// messages, with ws+meta.nchan after the "\n\n" of their meta header.
void parse_ws(Sub& s, SubStats& st, bool meta)
{
    s.body += s.in;
    s.in.clear();
    size_t at = 0;
    while (s.body.size() - at >= 2) {
        auto b0 = static_cast<uint8_t>(s.body[at]);
        auto b1 = static_cast<uint8_t>(s.body[at + 1]);
        size_t head = 2;
        uint64_t len = b1 & 0x7F;
        if (len == 126 || len == 127) {
            size_t ext = len == 126 ? 2 : 8;
            if (s.body.size() - at < 2 + ext) {
                break;
            }
            len = 0;
            for (size_t i = 0; i < ext; ++i) {
                len = (len << 8) | static_cast<uint8_t>(s.body[at + 2 + i]);
            }
            head += ext;
        }
        if (s.body.size() - at < head + len) {
            break;
        }
        uint8_t op = b0 & 0x0F;
        if (op == 1 || op == 2) {
            std::string p = s.body.substr(at + head, len);
            if (meta) {
                size_t e = p.find("\n\n");
                p = e == std::string::npos ? "" : p.substr(e + 2);
            }
            on_payload(s, p, st);
        } else if (op == 8) {
            st.closed++;
        }
        at += head + len;
    }
    s.body.erase(0, at);
}

void decode(Sub& s)
{
    if (!s.chunked) {
        s.body += s.in;
        s.in.clear();
        return;
    }
    while (true) {
        if (s.chunk_left < 0) {
            size_t nl = s.in.find("\r\n");
            if (nl == std::string::npos) {
                return;
            }
            s.chunk_left = std::strtol(s.in.c_str(), nullptr, 16);
            s.in.erase(0, nl + 2);
            if (s.chunk_left == 0) {
                s.chunk_left = -1;
                return;
            }
        }
        if (s.in.size() < static_cast<size_t>(s.chunk_left) + 2) {
            return;
        }
        s.body.append(s.in, 0, static_cast<size_t>(s.chunk_left));
        s.in.erase(0, static_cast<size_t>(s.chunk_left) + 2);
        s.chunk_left = -1;
    }
}

std::string header_value(const std::string& head, const char* name)
{
    std::string lower = head;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    std::string key = std::string("\r\n") + name + ":";
    size_t i = lower.find(key);
    if (i == std::string::npos) {
        return "";
    }
    size_t v = i + key.size();
    while (v < head.size() && head[v] == ' ') {
        ++v;
    }
    return head.substr(v, head.find("\r\n", v) - v);
}

int run_sub(const Args& a)
{
    int port = static_cast<int>(a.num("port", 8080));
    long n = a.num("subs", 100), channels = a.num("channels", 1);
    long sources = a.num("sources", 1), expect = a.num("expect", 0);
    long last = a.num("last", -1);
    long seconds = a.num("seconds", 3600);
    std::string transport = a.get("transport", "sse");
    bool longpoll = transport == "longpoll";
    bool ws = transport == "ws" || transport == "ws-meta";
    bool meta = transport == "ws-meta";
    std::string tmpl = a.get("path", "/sub/bench{c}");
    std::vector<std::string> tokens;
    if (a.has("tokens")) {
        std::ifstream f(a.get("tokens", ""));
        for (std::string line; std::getline(f, line);) {
            if (!line.empty()) {
                tokens.push_back(line);
            }
        }
        if (tokens.empty()) {
            std::fprintf(stderr, "loadgen: no tokens in %s\n",
                         a.get("tokens", "").c_str());
            return 1;
        }
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    std::vector<std::unique_ptr<Sub>> subs;
    SubStats st;
    st.expect = expect;

    auto request = [&](Sub& s) {
        std::string path = path_for(tmpl, s.channel);
        if (size_t t = path.find("{t}");
            t != std::string::npos && !tokens.empty()) {
            path.replace(t, 3,
                         tokens[static_cast<size_t>(s.index) % tokens.size()]);
        }
        std::string req = "GET " + path + " HTTP/1.1\r\nHost: bench\r\n";
        if (ws) {
            req += "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
            req += meta ? "Sec-WebSocket-Protocol: ws+meta.nchan\r\n" : "";
        } else if (!longpoll) {
            req += "Accept: text/event-stream\r\n";
        }
        if (longpoll && !s.etag.empty()) {
            req += "If-None-Match: " + s.etag + "\r\n";
            req += "If-Modified-Since: " + s.last_modified + "\r\n";
        }
        req += "\r\n";
        send_all(s.fd, req);
    };
    for (long i = 0; i < n; ++i) {
        auto s = std::make_unique<Sub>();
        s->channel = i % channels;
        s->index = i;
        char src[32];
        std::snprintf(src, sizeof(src), "127.0.0.%ld", 1 + (i % sources));
        s->fd = connect_to(port, sources > 1 ? src : nullptr);
        if (s->fd < 0) {
            std::fprintf(stderr, "loadgen: connect %ld failed: %s\n", i,
                         std::strerror(errno));
            return 1;
        }
        int one = 1;
        setsockopt(s->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
        pollfd p{s->fd, POLLOUT, 0};
        poll(&p, 1, 5000);
        request(*s);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.ptr = s.get();
        epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
        subs.push_back(std::move(s));
    }
    long ready = 0;
    bool announced = false;
    int64_t deadline = now_ns() + seconds * 1000000000LL;
    std::vector<epoll_event> evs(1024);
    char buf[65536];
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    while (!g_stop && now_ns() < deadline) {
        if (!announced && (ready == n || longpoll)) {
            std::printf("ready\n");
            std::fflush(stdout);
            announced = true;
        }
        int k = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 200);
        for (int i = 0; i < k; ++i) {
            Sub& s = *static_cast<Sub*>(evs[static_cast<size_t>(i)].data.ptr);
            while (true) {
                iovec iov{buf, sizeof(buf)};
                msghdr mh{};
                mh.msg_iov = &iov;
                mh.msg_iovlen = 1;
                mh.msg_control = control;
                mh.msg_controllen = sizeof(control);
                ssize_t r = recvmsg(s.fd, &mh, 0);
                if (r > 0) {
                    s.in.append(buf, static_cast<size_t>(r));
                    if (announced) {
                        st.bytes += r;  // framing included, heads not
                    }
                    for (cmsghdr* cm = CMSG_FIRSTHDR(&mh); cm != nullptr;
                         cm = CMSG_NXTHDR(&mh, cm)) {
                        if (cm->cmsg_level == SOL_SOCKET
                            && cm->cmsg_type == SCM_TIMESTAMPNS) {
                            timespec ts{};
                            std::memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
                            s.arrived = int64_t{ts.tv_sec} * 1000000000
                                        + ts.tv_nsec;
                        }
                    }
                    continue;
                }
                if (r == 0) {
                    st.closed++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
                }
                break;
            }
            while (true) {
                if (!s.head_done) {
                    size_t e = s.in.find("\r\n\r\n");
                    if (e == std::string::npos) {
                        break;
                    }
                    std::string head = s.in.substr(0, e + 2);
                    s.in.erase(0, e + 4);
                    s.head_done = true;
                    s.chunked = header_value(head, "transfer-encoding")
                                == "chunked";
                    if (head.compare(9, 3, ws ? "101" : "200") != 0) {
                        if (!longpoll || head.compare(9, 3, "304") != 0) {
                            st.errors++;
                        }
                    }
                    if (!longpoll) {
                        ready++;
                        continue;
                    }
                    // long-poll: one message per response
                    long len = std::strtol(
                        header_value(head, "content-length").c_str(), nullptr,
                        10);
                    if (static_cast<long>(s.in.size()) < len) {
                        s.in.insert(0, head + "\r\n");  // wait for the body
                        s.head_done = false;
                        break;
                    }
                    std::string e2 = header_value(head, "etag");
                    if (!e2.empty()) {
                        s.etag = e2;
                        s.last_modified = header_value(head, "last-modified");
                        on_payload(s, s.in.substr(0, static_cast<size_t>(len)),
                                   st);
                    }
                    s.in.erase(0, static_cast<size_t>(len));
                    s.head_done = false;
                    if (!(expect > 0 && s.got >= expect)) {
                        request(s);
                    }
                    continue;
                }
                if (ws) {
                    parse_ws(s, st, meta);
                    break;
                }
                decode(s);
                parse_sse(s, st);
                break;
            }
        }
        if (expect > 0 && st.done == n) {
            break;
        }
    }
    // Lost: with a known count, what a subscriber never got; otherwise the
    // holes in its sequence.
    for (auto& s : subs) {
        if (expect > 0 && s->got < expect) {
            st.lost += expect - s->got;
        }
        close(s->fd);
    }
    if (expect == 0) {
        st.lost = st.gaps;
    }
    long current = 0;
    for (auto& s : subs) {
        current += last >= 0 && s->last_seq == last ? 1 : 0;
    }
    std::printf("{\"subscribers\":%ld,\"connected\":%ld,\"deliveries\":%ld,"
                "\"lost\":%ld,\"duplicated\":%ld,\"out_of_order\":%ld,"
                "\"errors\":%ld,\"closed\":%ld,\"latency_ms\":%s,"
                "\"read_latency_ms\":%s,\"current\":%ld,\"bytes\":%ld}\n",
                n, ready, st.deliveries, st.lost, st.dup, st.ooo, st.errors,
                st.closed, st.lat.json().c_str(), st.read_lat.json().c_str(),
                current, st.bytes);
    return 0;
}

// ------------------------------------------------------------- publisher

int run_pub(const Args& a)
{
    int port = static_cast<int>(a.num("port", 8080));
    long channels = a.num("channels", 1), messages = a.num("messages", 100);
    long rate = a.num("rate", 0), window = a.num("window", 8);
    long size = a.num("size", 0), keys = a.num("keys", 0);
    std::string tmpl = a.get("path", "/pub/bench{c}");
    struct Conn {
        int fd;
        std::string in;
        int inflight = 0;
    };
    std::vector<Conn> conns;
    for (long i = 0; i < window; ++i) {
        int fd = connect_to(port, nullptr);
        pollfd p{fd, POLLOUT, 0};
        poll(&p, 1, 5000);
        int fl = fcntl(fd, F_GETFL);
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
        conns.push_back(Conn{fd, "", 0});
    }
    std::map<int, long> codes;
    std::vector<long> seq(static_cast<size_t>(channels), 0);
    int64_t start = now_ns();
    long sent = 0, answered = 0;
    std::string pad(static_cast<size_t>(size), 'x');
    char buf[65536];
    bool redis = a.num("redis", 0) != 0;
    auto read_answers = [&](Conn& c, bool block) {
        while (c.inflight > 0) {
            if (redis) {
                // RESP: one line per XADD reply ($N\r\n<id>\r\n or -ERR)
                size_t e1 = c.in.find("\r\n");
                if (e1 != std::string::npos && c.in[0] == '$') {
                    size_t e2 = c.in.find("\r\n", e1 + 2);
                    if (e2 != std::string::npos) {
                        codes[200]++;
                        c.in.erase(0, e2 + 2);
                        c.inflight--;
                        answered++;
                        continue;
                    }
                } else if (e1 != std::string::npos) {
                    codes[500]++;
                    c.in.erase(0, e1 + 2);
                    c.inflight--;
                    answered++;
                    continue;
                }
            }
            size_t e = redis ? std::string::npos : c.in.find("\r\n\r\n");
            if (e != std::string::npos) {
                int code = std::atoi(c.in.c_str() + 9);
                long len = std::strtol(
                    header_value(c.in.substr(0, e + 2), "content-length")
                        .c_str(),
                    nullptr, 10);
                if (c.in.size() >= e + 4 + static_cast<size_t>(len)) {
                    codes[code]++;
                    c.in.erase(0, e + 4 + static_cast<size_t>(len));
                    c.inflight--;
                    answered++;
                    continue;
                }
            }
            if (!block) {
                pollfd p{c.fd, POLLIN, 0};
                if (poll(&p, 1, 0) <= 0) {
                    return;
                }
            }
            ssize_t r = recv(c.fd, buf, sizeof(buf), 0);
            if (r <= 0) {
                codes[-1] += c.inflight;
                c.inflight = 0;
                return;
            }
            c.in.append(buf, static_cast<size_t>(r));
        }
    };
    for (long i = 0; i < messages && !g_stop; ++i) {
        if (rate > 0) {
            int64_t due = start + i * 1000000000LL / rate;
            while (now_ns() < due) {
                for (auto& c : conns) {
                    read_answers(c, false);
                }
                int64_t left = due - now_ns();
                if (left > 200000) {
                    timespec ts{0, left - 100000};
                    nanosleep(&ts, nullptr);
                }
            }
        }
        long ch = i % channels;
        Conn& c = conns[static_cast<size_t>(i % window)];
        if (c.inflight > 0 && rate == 0) {
            read_answers(c, true);
        }
        long n = seq[static_cast<size_t>(ch)]++;
        std::string body =
            std::to_string(n) + " " + std::to_string(wall_ns()) + " " + pad;
        std::string req;
        if (redis) {
            auto bulk = [](const std::string& x) {
                return "$" + std::to_string(x.size()) + "\r\n" + x + "\r\n";
            };
            req = "*5\r\n" + bulk("XADD") + bulk(path_for("bench{c}", ch))
                  + bulk("*") + bulk("data") + bulk(body);
        } else {
            req = "POST " + path_for(tmpl, ch) + " HTTP/1.1\r\nHost: bench\r\n"
                  + (keys > 0 ? "Pulse-Key: k" + std::to_string(n % keys)
                                    + "\r\n"
                              : std::string())
                  + "Content-Length: "
                  + std::to_string(body.size()) + "\r\n\r\n" + body;
        }
        send_all(c.fd, req);
        c.inflight++;
        sent++;
    }
    for (auto& c : conns) {
        read_answers(c, true);
        close(c.fd);
    }
    double secs = static_cast<double>(now_ns() - start) / 1e9;
    std::string codes_json;
    for (auto& [k, v] : codes) {
        codes_json += (codes_json.empty() ? "" : ",") + std::string("\"")
                      + std::to_string(k) + "\":" + std::to_string(v);
    }
    std::printf("{\"sent\":%ld,\"answered\":%ld,\"seconds\":%.4f,"
                "\"per_second\":%.1f,\"status\":{%s}}\n",
                sent, answered, secs, static_cast<double>(answered) / secs,
                codes_json.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: loadgen sub|pub --key value ...\n");
        return 64;
    }
    Args a;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (std::strncmp(argv[i], "--", 2) != 0) {
            std::fprintf(stderr, "loadgen: bad argument %s\n", argv[i]);
            return 64;
        }
        a.kv[argv[i] + 2] = argv[i + 1];
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    std::string mode = argv[1];
    if (mode == "sub") {
        return run_sub(a);
    }
    if (mode == "pub") {
        return run_pub(a);
    }
    std::fprintf(stderr, "loadgen: unknown mode %s\n", mode.c_str());
    return 64;
}
