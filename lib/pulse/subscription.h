#pragma once

// A subscription to one or several channels (nchan's multiplexing): one
// Member per channel joins it in the fan-out and forwards to the owner
// with its position; the owner shows nchan's multiplexed ids (one time,
// a tag per channel) when it has more than one channel.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pulse/fanout.h"

namespace pulse {

class MemberOwner {
public:
    virtual void member_messages(size_t index,
                                 const std::vector<MsgPtr>& msgs) = 0;
    virtual void member_end(size_t index, int status) = 0;
    virtual void member_failure() noexcept = 0;

protected:
    ~MemberOwner() = default;
};

class Member final : public Subscriber {
public:
    Member(MemberOwner* owner, size_t index) : owner_(owner), index_(index) {}
    Member(const Member&) = delete;
    Member& operator=(const Member&) = delete;
    Member(Member&&) = delete;
    Member& operator=(Member&&) = delete;
    ~Member() override = default;

    void on_messages(const std::vector<MsgPtr>& msgs) override
    {
        owner_->member_messages(index_, msgs);
    }
    void on_end(int status) override { owner_->member_end(index_, status); }
    void on_failure() noexcept override { owner_->member_failure(); }
    size_t index() const { return index_; }

private:
    MemberOwner* owner_;
    size_t index_;
};

/// The members of a subscription to `keys`, joined in order, and the
/// catch-up of all of them in id order.
class Subscription {
public:
    explicit Subscription(MemberOwner* owner) : owner_(owner) {}

    struct CatchUp {
        MsgPtr msg;
        size_t index;  // which channel
    };
    /// Joins every channel (`after`: the resume id, a tag per channel).
    /// On failure nothing stays joined.
    Result<std::vector<CatchUp>> join(Fanout& f,
                                      const std::vector<std::string>& keys,
                                      const std::optional<MultiMsgId>& after,
                                      Fanout::JoinOptions o,
                                      bool* gap = nullptr);
    /// Leaves every channel; idempotent.
    void leave();
    size_t size() const { return size_; }
    bool multiplexed() const { return size_ > 1; }
    Member& member(size_t i) { return i == 0 ? *first_ : *more_[i - 1]; }

    /// The id to show for a message of channel `index`: its own id, or
    /// for a multiplexed subscription the advanced multiplexed id.
    ShownId show(size_t index, const Msg& m);

private:
    Member* add(size_t index);

    MemberOwner* owner_;
    // the first channel's member inline: most subscriptions have one
    std::optional<Member> first_;
    std::vector<std::unique_ptr<Member>> more_;
    size_t size_ = 0;
    MultiMsgId multi_;  // the last multiplexed id shown
    std::string multi_text_;
};

}  // namespace pulse
