// libFuzzer target: tokens through pulse::jwt::verify, and ACL patterns
// through pulse::acl::matches. The first byte picks which.
//  - verify: never crashes, whatever the bytes; a token it accepts must
//    carry the HMAC-SHA256 of its first two parts under the one key, as
//    computed here independently (nothing unsigned gets through), and its
//    tenant obeys the tenant rule.
//  - matches: agrees with a plain segment-by-segment reference.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "pulse/acl.h"
#include "pulse/jwt.h"

namespace {

[[noreturn]] void fail()
{
    __builtin_trap();
}

const std::string kSecret = "fuzzing-secret-0123456789abcdef!";

const pulse::jwt::KeySet& keys()
{
    static pulse::jwt::KeySet ks = [] {
        pulse::jwt::KeySet k;
        k.add(pulse::jwt::Key::secret(kSecret, "").value());
        return k;
    }();
    return ks;
}

std::vector<std::string_view> split(std::string_view s)
{
    std::vector<std::string_view> out;
    size_t start = 0;
    while (true) {
        size_t dot = s.find('.', start);
        out.push_back(s.substr(start, dot == std::string_view::npos
                                          ? std::string_view::npos
                                          : dot - start));
        if (dot == std::string_view::npos) {
            return out;
        }
        start = dot + 1;
    }
}

bool reference_match(std::string_view pattern, std::string_view channel)
{
    if (pattern.empty() || channel.empty()) {
        return false;
    }
    auto ps = split(pattern);
    auto cs = split(channel);
    for (size_t i = 0; i < ps.size(); ++i) {
        if (ps[i].empty() || (ps[i] == "**" && i + 1 != ps.size())) {
            return false;
        }
    }
    for (size_t i = 0; i < ps.size(); ++i) {
        if (ps[i] == "**") {
            // the rest of the name, whatever it holds, if not empty
            return cs.size() > i && !(cs.size() == i + 1 && cs[i].empty());
        }
        if (i >= cs.size()) {
            return false;
        }
        if (ps[i] == "*" ? cs[i].empty() : ps[i] != cs[i]) {
            return false;
        }
    }
    return ps.size() == cs.size();
}

void check_token(std::string_view token)
{
    pulse::jwt::Policy policy;
    policy.tenant_claim = "tenant";
    policy.channels_claim = "channels";
    policy.leeway = 60;
    auto v = pulse::jwt::verify(token, keys(), policy, 1764633600);
    if (!v.ok()) {
        return;
    }
    size_t dot2 = token.rfind('.');
    auto sig = pulse::jwt::base64url_decode(token.substr(dot2 + 1));
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
         reinterpret_cast<const unsigned char*>(token.data()), dot2, mac, &len);
    if (!sig || sig->size() != len || CRYPTO_memcmp(sig->data(), mac, len) != 0)
    {
        fail();
    }
    for (char c : v.claims.tenant) {
        if (c == '/' || static_cast<unsigned char>(c) < 0x21) {
            fail();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
    if (data[0] % 2 == 0) {
        check_token(in);
        return 0;
    }
    size_t nul = in.find('\0');
    if (nul == std::string_view::npos) {
        return 0;
    }
    std::string_view pattern = in.substr(0, nul);
    std::string_view channel = in.substr(nul + 1);
    if (pulse::acl::matches(pattern, channel)
        != reference_match(pattern, channel)) {
        fail();
    }
    return 0;
}
