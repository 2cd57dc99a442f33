#include "pulse/token_cache.h"

#include <cstring>
#include <new>

#include <openssl/evp.h>

namespace pulse::jwt {

size_t TokenCache::DigestHash::operator()(const Digest& d) const
{
    size_t h = 0;
    std::memcpy(&h, d.data(), sizeof(h));  // already uniform
    return h;
}

TokenCache::Digest TokenCache::digest(uint64_t scope, std::string_view token)
{
    // Fetched once: EVP_sha256() in DigestInit makes OpenSSL 3 look the
    // algorithm up again on every call (half the hash's cost). One context,
    // reset by each init: a worker is one thread.
    static EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    static EVP_MD_CTX* const kCtx = EVP_MD_CTX_new();
    Digest d{};
    unsigned int len = 0;
    bool ok = kSha256 != nullptr && kCtx != nullptr
              && EVP_DigestInit_ex2(kCtx, kSha256, nullptr) == 1
              && EVP_DigestUpdate(kCtx, &scope, sizeof(scope)) == 1
              && EVP_DigestUpdate(kCtx, token.data(), token.size()) == 1
              && EVP_DigestFinal_ex(kCtx, d.data(), &len) == 1;
    if (!ok) {
        throw std::bad_alloc();  // OpenSSL fails SHA-256 only without memory
    }
    return d;
}

std::shared_ptr<const Claims> TokenCache::find(uint64_t scope,
                                               std::string_view token,
                                               int64_t now)
{
    if (capacity_ == 0) {
        return nullptr;
    }
    auto it = index_.find(digest(scope, token));
    if (it == index_.end()) {
        misses_++;
        return nullptr;
    }
    if (now >= it->second->expires) {
        lru_.erase(it->second);
        index_.erase(it);
        misses_++;
        return nullptr;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    hits_++;
    return it->second->claims;
}

void TokenCache::put(uint64_t scope, std::string_view token,
                     std::shared_ptr<const Claims> claims, int64_t now,
                     int64_t leeway)
{
    if (capacity_ == 0) {
        return;
    }
    int64_t expires = now + max_age_;
    if (claims->exp && *claims->exp + leeway < expires) {
        expires = *claims->exp + leeway;
    }
    if (expires <= now) {
        return;
    }
    Digest key = digest(scope, token);
    if (auto it = index_.find(key); it != index_.end()) {
        lru_.erase(it->second);
        index_.erase(it);
    }
    while (index_.size() >= capacity_) {
        index_.erase(lru_.back().key);
        lru_.pop_back();
    }
    lru_.push_front(Entry{key, std::move(claims), expires});
    index_.emplace(key, lru_.begin());
}

}  // namespace pulse::jwt
