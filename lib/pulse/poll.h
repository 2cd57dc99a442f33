#pragma once

// Long-poll and interval-poll (docs/protocol.md §5): answer at once with the
// oldest message newer than the asked id, of any channel of the
// subscription, else wait for one (long-poll) or answer 304
// (interval-poll). The glue (PollIo) writes the answer as a response.

#include <optional>
#include <string>
#include <vector>

#include "pulse/pacing.h"
#include "pulse/subscription.h"

namespace pulse {

/// pulse_longpoll_multipart_response: how a long-poll answers when several
/// messages are there (nchan's off, on, raw).
enum class PollParts {
    kOne,        // the oldest one
    kMultipart,  // all of them, multipart/mixed
    kRaw,        // all of them, each body followed by the raw separator
};

/// What a poll answers.
struct PollAnswer {
    int status = 200;  // 200, 304, or an end_status
    /// 200: the message (its body and content type). Shared: the response
    /// may point into it instead of copying the body.
    MsgPtr msg;
    /// PollParts kMultipart, kRaw: the messages after `msg`, in order; the
    /// id headers are the last one's.
    std::vector<MsgPtr> more;
    /// The id headers to send (200, and 304 when the request named an id):
    /// Etag = `etag`, Last-Modified = `last_modified` (unless compound).
    std::optional<std::string> etag;
    std::optional<int64_t> last_modified;
    /// The request's id was older than a channel's buffer: messages after
    /// it are gone (pulse_gap_signal's Pulse-Gap header).
    bool gap = false;
};

class PollIo {
public:
    /// Answers the request; the poll has left its channels.
    virtual void respond(const PollAnswer& a) = 0;
    /// The answer could not be made (respond threw): end the request with
    /// an error. Must not throw.
    virtual void fail() noexcept = 0;
    /// Pacing: call Poll::on_pace() in `ms` milliseconds.
    virtual void pace_in(uint64_t ms) = 0;

protected:
    ~PollIo() = default;
};

/// The id headers for `id`: Etag carries the tag(s) and Last-Modified the
/// time, or Etag the whole id in compound mode.
void id_headers(const MultiMsgId& id, bool compound, PollAnswer* a);

/// Most buffered messages a paced poll conflates over, and a multipart
/// answer holds.
constexpr uint32_t kMaxPollConflation = 1024;

/// nchan's multipart long-poll body: for each message `--<boundary>\r\n`,
/// `Content-Type: <ct>\r\n` when it has one and a body, `\r\n<body>\r\n`;
/// then `--<boundary>--\r\n`.
std::string multipart_poll_body(const MsgPtr& first,
                                const std::vector<MsgPtr>& more,
                                std::string_view boundary);
/// nchan's raw long-poll body: each body followed by `separator`.
std::string raw_poll_body(const MsgPtr& first, const std::vector<MsgPtr>& more,
                          std::string_view separator);

/// A poll with a pace (docs/pacing.md): it answers with the first message
/// after its id that no later one of the same key supersedes, and a
/// waiting long-poll answers `every_ms` after the first new message, from
/// what came meanwhile. Live: nchan's poll.
class Poll final : public MemberOwner {
public:
    Poll(Fanout& f, PollIo& io, bool interval, bool compound_etag,
         pacing::Pace pace = {}, PollParts parts = PollParts::kOne)
        : fanout_(f),
          io_(io),
          interval_(interval),
          compound_(compound_etag),
          pace_(pace),
          // a paced poll answers with one message by design; an
          // interval-poll as nchan would answer 304 (docs/directives.md)
          parts_(paced() || interval ? PollParts::kOne : parts),
          sub_(this)
    {}
    Poll(const Poll&) = delete;
    Poll& operator=(const Poll&) = delete;
    Poll(Poll&&) = delete;
    Poll& operator=(Poll&&) = delete;
    ~Poll() { sub_.leave(); }

    /// Joins `keys` and answers at once (through PollIo, returns false) or
    /// starts waiting (returns true). A failed join is the Status.
    Result<bool> start(const std::vector<std::string>& keys,
                       std::optional<MultiMsgId> after,
                       const Fanout::JoinOptions& o);
    /// Ends a waiting poll (timeout: 408).
    void end(int status);
    /// Pacing: the timer from PollIo::pace_in fired.
    void on_pace();
    bool waiting() const { return waiting_; }

    void member_messages(size_t index,
                         const std::vector<MsgPtr>& msgs) override;
    void member_end(size_t index, int status) override;
    void member_failure() noexcept override;

private:
    void answer(const MsgPtr& m, size_t index);
    /// One answer: the message, or several (parts_) in order.
    void answer(const std::vector<Subscription::CatchUp>& msgs);
    bool paced() const { return pace_.mode != pacing::Mode::kLive; }

    Fanout& fanout_;
    PollIo& io_;
    bool interval_;
    bool compound_;
    pacing::Pace pace_;
    PollParts parts_;
    std::vector<pacing::Item> held_;  // paced and waiting: what came
    Subscription sub_;
    std::optional<MultiMsgId> asked_;
    bool waiting_ = false;
    bool gap_ = false;
};

}  // namespace pulse
