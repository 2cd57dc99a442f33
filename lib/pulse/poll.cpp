#include "pulse/poll.h"

namespace pulse {

void id_headers(const MultiMsgId& id, bool compound, PollAnswer* a)
{
    std::string text = to_string(id);
    if (compound) {
        a->etag = std::move(text);
        a->last_modified.reset();
        return;
    }
    a->etag = text.substr(text.find(':') + 1);
    a->last_modified = id.time;
}

std::string multipart_poll_body(const MsgPtr& first,
                                const std::vector<MsgPtr>& more,
                                std::string_view boundary)
{
    std::string out;
    auto part = [&](const Msg& m) {
        out.append("--").append(boundary).append("\r\n");
        // as nchan: no Content-Type with an empty body
        if (!m.content_type.empty() && !m.body.empty()) {
            out.append("Content-Type: ").append(m.content_type).append("\r\n");
        }
        out.append("\r\n").append(m.body).append("\r\n");
    };
    part(*first);
    for (const MsgPtr& m : more) {
        part(*m);
    }
    out.append("--").append(boundary).append("--\r\n");
    return out;
}

std::string raw_poll_body(const MsgPtr& first, const std::vector<MsgPtr>& more,
                          std::string_view separator)
{
    std::string out(first->body);
    out.append(separator);
    for (const MsgPtr& m : more) {
        out.append(m->body).append(separator);
    }
    return out;
}

Result<bool> Poll::start(const std::vector<std::string>& keys,
                         std::optional<MultiMsgId> after,
                         const Fanout::JoinOptions& o)
{
    asked_ = std::move(after);
    Fanout::JoinOptions one = o;
    // the oldest newer message of each channel is enough, unless later
    // ones of its key may supersede it
    one.limit = paced() || parts_ != PollParts::kOne ? kMaxPollConflation : 1;
    auto catch_up = sub_.join(fanout_, keys, asked_, one, &gap_);
    if (!catch_up.is_ok()) {
        return catch_up.status();
    }
    if (!catch_up->empty() && parts_ != PollParts::kOne) {
        sub_.leave();
        answer(catch_up.value());
        return false;
    }
    if (!catch_up->empty()) {
        // in id order: the first is the oldest of any channel
        Subscription::CatchUp first = catch_up->front();
        if (paced()) {
            std::vector<pacing::Item> items;
            items.reserve(catch_up->size());
            for (const Subscription::CatchUp& c : catch_up.value()) {
                items.push_back(pacing::Item{c.msg, c.index});
            }
            pacing::Item kept = pacing::conflate(items).front();
            first = Subscription::CatchUp{kept.msg, kept.index};
        }
        sub_.leave();
        answer(first.msg, first.index);
        return false;
    }
    if (interval_) {
        sub_.leave();
        PollAnswer a;
        a.status = 304;
        a.gap = gap_;
        if (asked_) {
            id_headers(*asked_, compound_, &a);
        }
        io_.respond(a);
        return false;
    }
    waiting_ = true;
    return true;
}

void Poll::answer(const MsgPtr& m, size_t index)
{
    answer(std::vector<Subscription::CatchUp>{{m, index}});
}

void Poll::answer(const std::vector<Subscription::CatchUp>& msgs)
{
    waiting_ = false;
    PollAnswer a;
    a.msg = msgs.front().msg;
    a.gap = gap_;
    for (size_t i = 1; i < msgs.size(); ++i) {
        a.more.push_back(msgs[i].msg);
    }
    // the id headers are the last message's
    const MsgPtr& last = msgs.back().msg;
    if (sub_.size() > 1) {
        MultiMsgId id;
        if (asked_) {
            id = *asked_;
        } else {
            id.tags.assign(sub_.size(), -1);
        }
        for (const Subscription::CatchUp& c : msgs) {
            id = advance_multi_id(id, c.index, c.msg->id);
        }
        id_headers(id, compound_, &a);
    } else if (compound_) {
        a.etag = std::string(last->id_text());
    } else {
        // one channel, the usual poll: the tag and the time, no id object
        a.etag = std::to_string(last->id.tag);
        a.last_modified = last->id.time;
    }
    io_.respond(a);
}

void Poll::member_messages(size_t index, const std::vector<MsgPtr>& msgs)
{
    if (!waiting_) {
        return;
    }
    Member& who = sub_.member(index);
    if (parts_ != PollParts::kOne) {
        // what came together goes together
        std::vector<Subscription::CatchUp> taken;
        for (const MsgPtr& m : msgs) {
            if (who.take(m->id) && taken.size() < kMaxPollConflation) {
                taken.push_back(Subscription::CatchUp{m, index});
            }
        }
        if (!taken.empty()) {
            sub_.leave();
            answer(taken);
        }
        return;
    }
    for (const MsgPtr& m : msgs) {
        if (!who.take(m->id)) {
            continue;
        }
        if (!paced()) {
            sub_.leave();
            answer(m, index);
            return;
        }
        if (held_.empty()) {
            io_.pace_in(pace_.every_ms);
        }
        if (held_.size() < kMaxPollConflation) {
            held_.push_back(pacing::Item{m, index});
        }
    }
}

void Poll::on_pace()
{
    if (!waiting_ || held_.empty()) {
        return;
    }
    pacing::Item kept = pacing::conflate(held_).front();
    held_.clear();
    sub_.leave();
    answer(kept.msg, kept.index);
}

void Poll::end(int status)
{
    if (!waiting_) {
        return;
    }
    fanout_.metrics().counters.ended_with(status);
    waiting_ = false;
    sub_.leave();
    PollAnswer a;
    a.status = status;
    io_.respond(a);
}

void Poll::member_end(size_t index, int status)
{
    (void) index;
    end(status);
}

void Poll::member_failure() noexcept
{
    waiting_ = false;
    sub_.leave();
    io_.fail();
}

}  // namespace pulse
