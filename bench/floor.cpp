// floor: the least work a push server can do per delivery, as a yardstick.
//
//   floor --port P [--workers N] [--throttle MS]
//
// N processes (default 2, like the benchmark's nginx) share one listening
// socket. GET /sub/<channel> gets an EventSource header (or, with Upgrade:
// websocket, a 101) and joins the channel in its process; POST
// /pub/<channel> sends "data: <body>\n\n" (or a WebSocket text frame, with
// a ws+meta.nchan header when that subprotocol was asked for) with one
// send(2) to every subscriber of the channel in that process, passes
// the body to the other processes (one SEQPACKET write each, which deliver
// it the same way and acknowledge, so that per-channel order holds) and
// answers 201. No ids, no buffer, no history, no
// limits, no HTTP beyond what the load generator sends: nothing a real
// server needs but the sends themselves.
//
// With --throttle MS it is the least a paced server can do: a publish is
// held per channel, the latest per `Pulse-Key` (keyless ones all kept, in
// publish order), and every MS each process writes each channel's held
// messages to all its subscribers with one send(2) each, all channels in
// one pass. That is one write per subscriber per interval and no
// per-subscriber state at all: the bound of the `storm` scenario.
//
// bench/run.py runs it beside Pulse and nchan in the fan-out, latency and
// storm scenarios. Its deliveries per CPU second are the most any server that
// writes one frame per delivery can reach on the machine, so floor/nchan
// bounds the Pulse/nchan ratio there (docs/performance.md).

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <unordered_map>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>

namespace {

enum Wire { kSse, kWs, kWsMeta, kWires };

struct Conn {
    int fd = -1;
    Wire wire = kSse;
    std::string in;
    std::string out;  // what a full socket buffer did not take
    std::string channel;
    size_t index = 0;  // in its channel's list, while subscribed
    bool subscribed = false;
};

struct Process {
    int ep = -1;
    int listen_fd = -1;
    std::vector<int> peers;
    std::vector<char> peer_buf = std::vector<char>(1 << 17);
    std::unordered_map<std::string, std::vector<Conn*>> channels;
    std::string frames[kWires];
    long throttle_ms = 0;
    // --throttle: per channel, the held messages in publish order, (key,
    // body), a newer message of a key replacing the older one
    std::unordered_map<std::string,
                       std::vector<std::pair<std::string, std::string>>>
        held;
    long next_flush_ms = 0;

    static long now_ms()
    {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }

    static void append_frame(std::string& out, Wire w, const std::string& body)
    {
        if (w == kSse) {
            out += "data: ";
            out += body;
            out += "\n\n";
            return;
        }
        std::string payload = w == kWsMeta ? "id: 0:0\ncontent-type: \n\n" : "";
        payload += body;
        out += '\x81';  // FIN, text
        if (payload.size() < 126) {
            out += static_cast<char>(payload.size());
        } else {
            out += '\x7e';  // payloads here stay under 64 KiB
            out += static_cast<char>(payload.size() >> 8);
            out += static_cast<char>(payload.size() & 0xff);
        }
        out += payload;
    }

    void hold(const std::string& channel, const std::string& key,
              const char* body, size_t len)
    {
        auto& list = held[channel];
        if (!key.empty()) {
            for (size_t i = 0; i < list.size(); ++i) {
                if (list[i].first == key) {
                    list.erase(list.begin() + static_cast<long>(i));
                    break;
                }
            }
        }
        list.emplace_back(key, std::string(body, len));
    }

    // Every channel's held messages to its subscribers: one send each.
    void flush()
    {
        for (auto& [channel, list] : held) {
            auto it = channels.find(channel);
            if (list.empty() || it == channels.end()) {
                list.clear();
                continue;
            }
            for (Wire w : {kSse, kWs, kWsMeta}) {
                frames[w].clear();
                for (const auto& kv : list) {
                    append_frame(frames[w], w, kv.second);
                }
            }
            send_all(it->second);
            list.clear();
        }
    }

    int epoll_timeout()
    {
        if (throttle_ms <= 0) {
            return -1;
        }
        long now = now_ms();
        if (now >= next_flush_ms) {
            flush();
            next_flush_ms = now + throttle_ms;
        }
        return static_cast<int>(next_flush_ms - now);
    }

    void watch(int fd, void* ptr, uint32_t events, int op = EPOLL_CTL_ADD)
    {
        epoll_event ev{};
        ev.events = events;
        ev.data.ptr = ptr;
        epoll_ctl(ep, op, fd, &ev);
    }

    void write_out(Conn& c)
    {
        while (!c.out.empty()) {
            ssize_t n = send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
            if (n <= 0) {
                return;
            }
            c.out.erase(0, static_cast<size_t>(n));
        }
        watch(c.fd, &c, EPOLLIN, EPOLL_CTL_MOD);
    }

    void deliver(const std::string& channel, const std::string& key,
                 const char* body, size_t len)
    {
        if (throttle_ms > 0) {
            hold(channel, key, body, len);
            return;
        }
        auto it = channels.find(channel);
        if (it == channels.end()) {
            return;
        }
        std::string b(body, len);
        for (Wire w : {kSse, kWs, kWsMeta}) {
            frames[w].clear();
            append_frame(frames[w], w, b);
        }
        send_all(it->second);
    }

    void send_all(const std::vector<Conn*>& subs)
    {
        for (Conn* c : subs) {
            const std::string& frame = frames[c->wire];
            if (!c->out.empty()) {
                c->out += frame;
                continue;
            }
            ssize_t n = send(c->fd, frame.data(), frame.size(), MSG_NOSIGNAL);
            size_t sent = n > 0 ? static_cast<size_t>(n) : 0;
            if (sent < frame.size()) {
                c->out.assign(frame, sent, std::string::npos);
                watch(c->fd, c, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
            }
        }
    }

    void unsubscribe(Conn& c)
    {
        if (!c.subscribed) {
            return;
        }
        auto& list = channels[c.channel];
        list[c.index] = list.back();
        list[c.index]->index = c.index;
        list.pop_back();
        c.subscribed = false;
    }

    void close_conn(Conn* c)
    {
        unsubscribe(*c);
        close(c->fd);
        delete c;
    }

    // Every complete request in c.in; false when the connection is done.
    bool serve(Conn& c)
    {
        while (true) {
            size_t end = c.in.find("\r\n\r\n");
            if (end == std::string::npos) {
                return true;
            }
            size_t body_at = end + 4;
            size_t len = 0;
            const char* cl = strcasestr(c.in.c_str(), "\r\ncontent-length:");
            if (cl != nullptr && static_cast<size_t>(cl - c.in.c_str()) < end) {
                len = std::strtoul(cl + 17, nullptr, 10);
            }
            if (c.in.size() < body_at + len) {
                return true;
            }
            if (c.in.compare(0, 9, "GET /sub/") == 0) {
                // a query (?throttle=1s) is Pulse's: the floor's pace is
                // its --throttle
                c.channel = c.in.substr(9, c.in.find_first_of(" ?", 9) - 9);
                auto& list = channels[c.channel];
                c.index = list.size();
                list.push_back(&c);
                c.subscribed = true;
                std::string head = c.in.substr(0, end);
                if (strcasestr(head.c_str(), "\r\nupgrade: websocket")
                    == nullptr) {
                    c.out =
                        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                        "Cache-Control: no-cache\r\n\r\n";
                } else {
                    // the load generator does not check the accept key
                    bool meta =
                        strcasestr(head.c_str(), "ws+meta.nchan") != nullptr;
                    c.wire = meta ? kWsMeta : kWs;
                    c.out =
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
                        "websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n";
                    c.out +=
                        meta ? "Sec-WebSocket-Protocol: ws+meta.nchan\r\n\r\n"
                             : "\r\n";
                }
                c.in.clear();
                write_out(c);
                return true;
            }
            if (c.in.compare(0, 10, "POST /pub/") == 0) {
                std::string channel = c.in.substr(10, c.in.find(' ', 10) - 10);
                std::string key;
                const char* k = strcasestr(c.in.c_str(), "\r\npulse-key:");
                if (k != nullptr && static_cast<size_t>(k - c.in.c_str()) < end)
                {
                    k += 13;
                    while (*k == ' ') {
                        ++k;
                    }
                    key.assign(k, std::strcspn(k, "\r"));
                }
                const char* body = c.in.data() + body_at;
                deliver(channel, key, body, len);
                forward(channel, key, body, len);
                c.out += "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
            } else {
                c.out += "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
            }
            c.in.erase(0, body_at + len);
            write_out(c);
        }
    }

    // A packet from a peer: 'M' channel \0 key \0 body, a message to deliver
    // here and acknowledge; 'A', the acknowledgement of one of ours.
    // Returns true for an 'A'.
    bool from_peer(int p)
    {
        ssize_t n = recv(p, peer_buf.data(), peer_buf.size(), MSG_DONTWAIT);
        if (n <= 0) {
            return false;
        }
        if (peer_buf[0] == 'A') {
            return true;
        }
        std::string channel(peer_buf.data() + 1);
        std::string key(peer_buf.data() + channel.size() + 2);
        size_t off = channel.size() + key.size() + 3;
        deliver(channel, key, peer_buf.data() + off,
                static_cast<size_t>(n) - off);
        send(p, "A", 1, MSG_NOSIGNAL);
        return false;
    }

    // Every other process delivers the message before the publish is
    // answered, so that a later publish to the channel, through any
    // process, cannot overtake it (the load generator checks the order).
    // One packet and one acknowledgement per publish and process: cheap
    // next to the sends of a fan-out.
    void forward(const std::string& channel, const std::string& key,
                 const char* body, size_t len)
    {
        std::string packet = "M" + channel + '\0' + key + '\0';
        packet.append(body, len);
        for (int p : peers) {
            send(p, packet.data(), packet.size(), MSG_NOSIGNAL);
        }
        size_t waiting = peers.size();
        std::vector<pollfd> fds;
        for (int p : peers) {
            fds.push_back(pollfd{p, POLLIN, 0});
        }
        while (waiting > 0) {
            // a peer waiting for our acknowledgement is served meanwhile
            poll(fds.data(), fds.size(), -1);
            for (const pollfd& f : fds) {
                if ((f.revents & POLLIN) != 0 && from_peer(f.fd)) {
                    waiting--;
                }
            }
        }
    }

    void run()
    {
        ep = epoll_create1(EPOLL_CLOEXEC);
        watch(listen_fd, nullptr, EPOLLIN | EPOLLEXCLUSIVE);
        for (int& p : peers) {
            watch(p, &p, EPOLLIN);
        }
        std::vector<epoll_event> evs(512);
        std::vector<char> buf(1 << 16);
        while (true) {
            int k = epoll_wait(ep, evs.data(), static_cast<int>(evs.size()),
                               epoll_timeout());
            for (int i = 0; i < k; ++i) {
                void* ptr = evs[static_cast<size_t>(i)].data.ptr;
                if (ptr == nullptr) {
                    int fd;
                    while ((fd = accept4(listen_fd, nullptr, nullptr,
                                         SOCK_NONBLOCK | SOCK_CLOEXEC))
                           >= 0)
                    {
                        int one = 1;
                        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
                                   sizeof(one));
                        auto* c = new Conn;
                        c->fd = fd;
                        watch(fd, c, EPOLLIN);
                    }
                    continue;
                }
                bool is_peer = false;
                for (int& p : peers) {
                    if (ptr == &p) {
                        from_peer(p);  // no acknowledgement is awaited here
                        is_peer = true;
                    }
                }
                if (is_peer) {
                    continue;
                }
                auto* c = static_cast<Conn*>(ptr);
                if ((evs[static_cast<size_t>(i)].events & EPOLLOUT) != 0) {
                    write_out(*c);
                }
                bool open = true;
                while (open) {
                    ssize_t n = recv(c->fd, buf.data(), buf.size(), 0);
                    if (n > 0) {
                        c->in.append(buf.data(), static_cast<size_t>(n));
                    } else {
                        open = n < 0 && errno == EAGAIN;
                        break;
                    }
                }
                if (!open || !serve(*c)) {
                    close_conn(c);
                }
            }
        }
    }
};

}  // namespace

int main(int argc, char** argv)
{
    int port = 0, workers = 2;
    long throttle = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--port") == 0) {
            port = std::atoi(argv[i + 1]);
        } else if (std::strcmp(argv[i], "--workers") == 0) {
            workers = std::atoi(argv[i + 1]);
        } else if (std::strcmp(argv[i], "--throttle") == 0) {
            throttle = std::atol(argv[i + 1]);
        }
    }
    if (port <= 0 || workers < 1 || workers > 16 || throttle < 0) {
        std::fprintf(stderr,
                     "usage: floor --port P [--workers 1..16] "
                     "[--throttle MS]\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0
        || listen(fd, 8192) != 0)
    {
        std::perror("floor: listen");
        return 1;
    }
    // a SEQPACKET pair between every two processes
    std::vector<std::vector<int>> peers(static_cast<size_t>(workers));
    for (int a = 0; a < workers; ++a) {
        for (int b = a + 1; b < workers; ++b) {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
            {
                std::perror("floor: socketpair");
                return 1;
            }
            peers[static_cast<size_t>(a)].push_back(sv[0]);
            peers[static_cast<size_t>(b)].push_back(sv[1]);
        }
    }
    std::vector<pid_t> kids;
    for (int w = 0; w < workers; ++w) {
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGTERM, SIG_DFL);
            Process p;
            p.listen_fd = fd;
            p.peers = peers[static_cast<size_t>(w)];
            p.throttle_ms = throttle;
            p.run();
            _exit(0);
        }
        kids.push_back(pid);
    }
    signal(SIGTERM, [](int) {});
    pause();
    for (pid_t k : kids) {
        kill(k, SIGTERM);
    }
    while (wait(nullptr) > 0) {
    }
    return 0;
}
