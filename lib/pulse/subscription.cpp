#include "pulse/subscription.h"

#include <algorithm>

namespace pulse {

Result<std::vector<Subscription::CatchUp>> Subscription::join(
    Fanout& f, const std::vector<std::string>& keys,
    const std::optional<MultiMsgId>& after, Fanout::JoinOptions o, bool* gap)
{
    std::vector<CatchUp> catch_up;
    if (keys.size() > 1) {
        multi_.tags.assign(keys.size(), -1);
    }
    for (size_t i = 0; i < keys.size(); ++i) {
        o.after.reset();
        if (after) {
            o.after = MsgId{after->time, after->tags[i]};
        }
        auto j = f.join(add(i), keys[i], o);
        if (!j.is_ok()) {
            leave();
            first_.reset();
            more_.clear();
            size_ = 0;
            return j.status();
        }
        if (gap != nullptr && j->gap) {
            *gap = true;
        }
        for (MsgPtr& m : j->catch_up) {
            catch_up.push_back(CatchUp{std::move(m), i});
        }
    }
    std::stable_sort(catch_up.begin(), catch_up.end(),
                     [](const CatchUp& a, const CatchUp& b) {
                         return a.msg->id < b.msg->id;
                     });
    return catch_up;
}

Member* Subscription::add(size_t index)
{
    ++size_;
    if (index == 0) {
        first_.emplace(owner_, 0);
        return &*first_;
    }
    more_.push_back(std::make_unique<Member>(owner_, index));
    return more_.back().get();
}

void Subscription::leave()
{
    if (first_) {
        first_->detach();
    }
    for (auto& m : more_) {
        m->detach();
    }
}

ShownId Subscription::show(size_t index, const Msg& m)
{
    if (size_ <= 1) {
        return ShownId{m.id_text(), m.id.time};
    }
    multi_ = advance_multi_id(multi_, index, m.id);
    multi_text_ = to_string(multi_);
    return ShownId{multi_text_, multi_.time};
}

}  // namespace pulse
