#include "ngx_http_pulse_ipc.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <sys/socket.h>
#include <sys/un.h>

#include "ngx_http_pulse_guard.h"

namespace pulse::ngx {

namespace {

socklen_t bell_address(uint64_t token, uint32_t slot, sockaddr_un* sa)
{
    ngx_memzero(sa, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    // Abstract namespace: leading NUL, no file, gone with the socket.
    int n = std::snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
                          "pulse-%016llx-%u",
                          static_cast<unsigned long long>(token), slot);
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1
                                  + static_cast<size_t>(n));
}

// Fault injection for tests: PULSE_TEST_FAULTS (passed to workers with
// nginx's `env` directive) naming `doorbell` makes open() fail as a bind()
// would, for every slot, or `doorbell:N` for slot N only
// (t/integration/test_worker_start.py). Never set in production.
bool fault_injected(const char* name, uint32_t slot)
{
    const char* faults = std::getenv("PULSE_TEST_FAULTS");
    if (faults == nullptr) {
        return false;
    }
    std::string all(faults);
    std::string one = std::string(name) + ":" + std::to_string(slot);
    for (size_t at = 0; at <= all.size();) {
        size_t end = all.find(',', at);
        std::string item = all.substr(
            at, end == std::string::npos ? std::string::npos : end - at);
        if (item == name || item == one) {
            return true;
        }
        if (end == std::string::npos) {
            break;
        }
        at = end + 1;
    }
    return false;
}

}  // namespace

ngx_int_t Doorbell::open(ngx_cycle_t* cycle, uint64_t token, uint32_t slot,
                         ngx_event_handler_pt handler, void* data)
{
    if (fault_injected("doorbell", slot)) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      PULSE_LOG_PREFIX
                      "doorbell of slot %ui not opened (injected fault)",
                      static_cast<ngx_uint_t>(slot));
        return NGX_ERROR;
    }
    ngx_socket_t fd =
        socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_socket_errno,
                      PULSE_LOG_PREFIX "doorbell socket() failed");
        return NGX_ERROR;
    }
    sockaddr_un sa;
    socklen_t len = bell_address(token, slot, &sa);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), len) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_socket_errno,
                      PULSE_LOG_PREFIX "doorbell bind() of slot %ui failed",
                      static_cast<ngx_uint_t>(slot));
        ::close(fd);
        return NGX_ERROR;
    }
    ngx_connection_t* c = ngx_get_connection(fd, cycle->log);
    if (c == nullptr) {
        ::close(fd);
        return NGX_ERROR;
    }
    c->data = data;
    c->read->handler = handler;
    c->read->log = cycle->log;
    c->write->log = cycle->log;
    // Like nginx's own channel: not a client connection, so shutdown does
    // not report it as a socket left open.
    c->read->channel = 1;
    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) != NGX_OK) {
        ngx_free_connection(c);
        ::close(fd);
        return NGX_ERROR;
    }
    conn_ = c;
    return NGX_OK;
}

void Doorbell::ring(uint64_t token, uint32_t slot)
{
    int fd = conn_ != nullptr ? conn_->fd : sender_;
    if (fd == -1) {
        sender_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        fd = sender_;
        if (fd == -1) {
            return;
        }
    }
    sockaddr_un sa;
    socklen_t len = bell_address(token, slot, &sa);
    char b = 1;
    // EAGAIN: the bell's queue is full, its worker will wake anyway.
    // ECONNREFUSED: the slot's worker is gone; its slot will be reaped.
    (void) sendto(fd, &b, 1, MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&sa),
                  len);
}

void Doorbell::drain()
{
    if (conn_ == nullptr) {
        return;
    }
    char buf[256];
    while (recv(conn_->fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
    }
}

void Doorbell::close()
{
    if (sender_ != -1) {
        ::close(sender_);
        sender_ = -1;
    }
    if (conn_ == nullptr) {
        return;
    }
    ngx_close_connection(conn_);
    conn_ = nullptr;
}

}  // namespace pulse::ngx
