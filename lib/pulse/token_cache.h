#pragma once

// Verified tokens, per worker: a reconnect storm of one dashboard's
// subscribers does not verify the same RSA or ECDSA signature again. Keyed
// by SHA-256 of the token and its scope (the location's keys and policy),
// bounded (least recently used goes first), and an entry expires when its
// token would be refused for `exp` (or after max_age, whichever is first).

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <string_view>
#include <unordered_map>

#include "pulse/jwt.h"

namespace pulse::jwt {

class TokenCache {
public:
    /// `capacity` 0 disables the cache.
    explicit TokenCache(size_t capacity, int64_t max_age = 300)
        : capacity_(capacity), max_age_(max_age)
    {}

    /// The claims of `token`, verified before in `scope` and still valid at
    /// `now`; nullptr on a miss (an expired entry is dropped).
    std::shared_ptr<const Claims> find(uint64_t scope, std::string_view token,
                                       int64_t now);
    /// Keeps `claims` of a token that verified at `now` with `leeway`.
    void put(uint64_t scope, std::string_view token,
             std::shared_ptr<const Claims> claims, int64_t now, int64_t leeway);

    size_t size() const { return index_.size(); }
    uint64_t hits() const { return hits_; }
    uint64_t misses() const { return misses_; }

private:
    using Digest = std::array<unsigned char, 32>;
    struct DigestHash {
        size_t operator()(const Digest& d) const;
    };
    struct Entry {
        Digest key;
        std::shared_ptr<const Claims> claims;
        int64_t expires;  // refused from this second on
    };
    static Digest digest(uint64_t scope, std::string_view token);

    size_t capacity_;
    int64_t max_age_;
    std::list<Entry> lru_;  // most recent first
    std::unordered_map<Digest, std::list<Entry>::iterator, DigestHash> index_;
    uint64_t hits_ = 0;
    uint64_t misses_ = 0;
};

}  // namespace pulse::jwt
