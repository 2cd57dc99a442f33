#include "pulse/jwt.h"

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "pulse/acl.h"
#include "pulse/token_cache.h"

namespace pulse::jwt {
namespace {

using nlohmann::json;

constexpr int64_t kNow = 1764633600;  // 2025-12-02
const std::string kSecret = "0123456789abcdef0123456789abcdef-secret";

std::string b64url(std::string_view in)
{
    static const char* kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : in) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(kAlphabet[(acc >> bits) & 63]);
        }
    }
    if (bits > 0) {
        out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
    }
    return out;
}

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// A private key made with OpenSSL, as `openssl genpkey` would.
Pkey generate(const char* type, const char* param = nullptr)
{
    EVP_PKEY* p = nullptr;
    if (std::string(type) == "RSA") {
        p = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048});
    } else if (std::string(type) == "EC") {
        p = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", param);
    } else {
        p = EVP_PKEY_Q_keygen(nullptr, nullptr, type);
    }
    EXPECT_NE(p, nullptr);
    return Pkey(p);
}

std::string public_pem(EVP_PKEY* p)
{
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, p);
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<size_t>(n));
    BIO_free(bio);
    return out;
}

const EVP_MD* md_of(std::string_view alg)
{
    if (alg.substr(2) == "256") {
        return EVP_sha256();
    }
    if (alg.substr(2) == "384") {
        return EVP_sha384();
    }
    if (alg.substr(2) == "512") {
        return EVP_sha512();
    }
    return nullptr;
}

// The JWS signature of `input` with alg, as an issuer computes it.
std::string sign(std::string_view alg, EVP_PKEY* key, std::string_view input,
                 const std::string& secret = kSecret)
{
    const auto* data = reinterpret_cast<const unsigned char*>(input.data());
    if (alg[0] == 'H') {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        HMAC(md_of(alg), secret.data(), static_cast<int>(secret.size()), data,
             input.size(), mac, &len);
        return std::string(reinterpret_cast<char*>(mac), len);
    }
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    const EVP_MD* md = alg == "EdDSA" ? nullptr : md_of(alg);
    EXPECT_EQ(EVP_DigestSignInit(ctx, &pctx, md, nullptr, key), 1);
    if (alg[0] == 'P') {
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    }
    size_t len = 0;
    EVP_DigestSign(ctx, nullptr, &len, data, input.size());
    std::string sig(len, '\0');
    EXPECT_EQ(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()),
                             &len, data, input.size()),
              1);
    sig.resize(len);
    EVP_MD_CTX_free(ctx);
    if (alg[0] == 'E' && alg != "EdDSA") {
        // DER to R || S
        size_t half = alg == "ES256" ? 32 : 48;
        const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
        ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len));
        std::string raw(2 * half, '\0');
        auto* out = reinterpret_cast<unsigned char*>(raw.data());
        BN_bn2binpad(ECDSA_SIG_get0_r(es), out, static_cast<int>(half));
        BN_bn2binpad(ECDSA_SIG_get0_s(es), out + half, static_cast<int>(half));
        ECDSA_SIG_free(es);
        return raw;
    }
    return sig;
}

std::string make_token(const json& header, const json& payload,
                       std::string_view alg, EVP_PKEY* key,
                       const std::string& secret = kSecret)
{
    std::string input = b64url(header.dump()) + "." + b64url(payload.dump());
    return input + "." + b64url(sign(alg, key, input, secret));
}

json claims(int64_t exp_in = 600)
{
    return json{{"sub", "alice"}, {"exp", kNow + exp_in}, {"iat", kNow}};
}

KeySet secret_keys()
{
    KeySet ks;
    EXPECT_TRUE(ks.add(Key::secret(kSecret, "").value()).is_ok());
    return ks;
}

Verdict check(std::string_view token, const KeySet& ks, Policy policy = {},
              int64_t now = kNow)
{
    return verify(token, ks, policy, now);
}

TEST(Jwt, EveryAlgorithmVerifies)
{
    struct Case {
        const char* alg;
        const char* type;
        const char* param;
    };
    for (const Case& c :
         {Case{"RS256", "RSA", nullptr}, Case{"RS384", "RSA", nullptr},
          Case{"RS512", "RSA", nullptr}, Case{"PS256", "RSA", nullptr},
          Case{"ES256", "EC", "P-256"}, Case{"ES384", "EC", "P-384"},
          Case{"EdDSA", "ED25519", nullptr}, Case{"EdDSA", "ED448", nullptr}})
    {
        Pkey priv = generate(c.type, c.param);
        KeySet ks;
        auto key = Key::pem(public_pem(priv.get()), "k1");
        ASSERT_TRUE(key.is_ok()) << c.alg << ": " << key.status().message();
        ASSERT_TRUE(ks.add(std::move(key.value())).is_ok());
        std::string t = make_token({{"alg", c.alg}, {"kid", "k1"}}, claims(),
                                   c.alg, priv.get());
        Verdict v = check(t, ks);
        EXPECT_TRUE(v.ok()) << c.alg << " " << c.type << ": " << v.reason;
        EXPECT_EQ(v.claims.sub, "alice");
        EXPECT_EQ(v.claims.kid, "k1");
        // one changed character of the signature
        std::string bad = t;
        char& c1 = bad[bad.rfind('.') + 3];
        c1 = c1 == 'A' ? 'B' : 'A';
        EXPECT_EQ(check(bad, ks).refusal, Refusal::kBadSignature) << c.alg;
        // a key of the same kind that did not sign it
        Pkey other = generate(c.type, c.param);
        KeySet wrong;
        wrong.add(Key::pem(public_pem(other.get()), "k1").value());
        EXPECT_EQ(check(t, wrong).refusal, Refusal::kBadSignature) << c.alg;
    }
    for (const char* alg : {"HS256", "HS384", "HS512"}) {
        KeySet ks = secret_keys();
        std::string t = make_token({{"alg", alg}}, claims(), alg, nullptr);
        EXPECT_TRUE(check(t, ks).ok()) << alg;
        std::string other =
            make_token({{"alg", alg}}, claims(), alg, nullptr, kSecret + "x");
        EXPECT_EQ(check(other, ks).refusal, Refusal::kBadSignature) << alg;
    }
}

TEST(Jwt, AlgNoneAndUnknownAlgorithmsAreRefused)
{
    KeySet ks = secret_keys();
    std::string none =
        b64url(R"({"alg":"none"})") + "." + b64url(claims().dump()) + ".";
    EXPECT_EQ(check(none, ks).refusal, Refusal::kAlgorithm);
    for (const char* alg : {"None", "NONE", "HS1", "RS1", "ES512", ""}) {
        std::string t = b64url(json{{"alg", alg}}.dump()) + "."
                        + b64url(claims().dump()) + "." + b64url("sig");
        EXPECT_EQ(check(t, ks).refusal, Refusal::kAlgorithm) << alg;
    }
    std::string t = b64url(R"({"typ":"JWT"})") + "." + b64url(claims().dump())
                    + "." + b64url("sig");
    EXPECT_EQ(check(t, ks).refusal, Refusal::kMalformed);
}

// An HS256 token whose secret is the RSA key's public PEM: a verifier that
// let the token pick the algorithm would accept it.
TEST(Jwt, AlgorithmConfusionIsRefused)
{
    Pkey priv = generate("RSA");
    std::string pem = public_pem(priv.get());
    KeySet ks;
    ks.add(Key::pem(pem, "rsa").value());
    std::string forged = make_token({{"alg", "HS256"}, {"kid", "rsa"}},
                                    claims(), "HS256", nullptr, pem);
    EXPECT_EQ(check(forged, ks).refusal, Refusal::kAlgorithm);
    std::string nokid =
        make_token({{"alg", "HS256"}}, claims(), "HS256", nullptr, pem);
    EXPECT_EQ(check(nokid, ks).refusal, Refusal::kAlgorithm);
    // and an ES256 token against an RSA key, a P-384 key for ES256
    Pkey ec = generate("EC", "P-256");
    std::string es = make_token({{"alg", "ES256"}, {"kid", "rsa"}}, claims(),
                                "ES256", ec.get());
    EXPECT_EQ(check(es, ks).refusal, Refusal::kAlgorithm);
    Pkey p384 = generate("EC", "P-384");
    KeySet ks384;
    ks384.add(Key::pem(public_pem(p384.get()), "").value());
    EXPECT_EQ(check(es, ks384).refusal, Refusal::kUnknownKid);
    std::string es_nokid =
        make_token({{"alg", "ES256"}}, claims(), "ES256", ec.get());
    EXPECT_EQ(check(es_nokid, ks384).refusal, Refusal::kAlgorithm);
}

TEST(Jwt, KidSelectsTheKey)
{
    Pkey a = generate("EC", "P-256");
    Pkey b = generate("EC", "P-256");
    KeySet ks;
    ASSERT_TRUE(ks.add(Key::pem(public_pem(a.get()), "a").value()).is_ok());
    ASSERT_TRUE(ks.add(Key::pem(public_pem(b.get()), "b").value()).is_ok());
    EXPECT_FALSE(ks.add(Key::pem(public_pem(b.get()), "b").value()).is_ok());
    std::string ta = make_token({{"alg", "ES256"}, {"kid", "a"}}, claims(),
                                "ES256", a.get());
    std::string tb = make_token({{"alg", "ES256"}, {"kid", "b"}}, claims(),
                                "ES256", b.get());
    EXPECT_TRUE(check(ta, ks).ok());
    EXPECT_TRUE(check(tb, ks).ok());
    // signed by b, labelled a
    std::string crossed = make_token({{"alg", "ES256"}, {"kid", "a"}}, claims(),
                                     "ES256", b.get());
    EXPECT_EQ(check(crossed, ks).refusal, Refusal::kBadSignature);
    std::string unknown = make_token({{"alg", "ES256"}, {"kid", "c"}}, claims(),
                                     "ES256", a.get());
    Verdict v = check(unknown, ks);
    EXPECT_EQ(v.refusal, Refusal::kUnknownKid);
    EXPECT_EQ(v.claims.kid, "c");  // for the log
    EXPECT_EQ(v.claims.sub, "alice");
    // without a kid: each key that fits is tried
    std::string bare =
        make_token({{"alg", "ES256"}}, claims(), "ES256", b.get());
    EXPECT_TRUE(check(bare, ks).ok());
}

TEST(Jwt, MalformedTokensAreRefused)
{
    KeySet ks = secret_keys();
    std::string good =
        make_token({{"alg", "HS256"}}, claims(), "HS256", nullptr);
    std::string h = good.substr(0, good.find('.'));
    for (const std::string& t :
         {std::string("abc"), std::string("a.b"), std::string("a.b.c.d"),
          good + ".", "!!!." + good.substr(h.size() + 1),
          h + ".bad*base64." + b64url("x"),
          b64url("[1,2]") + ".e30." + b64url("x"),
          b64url("{\"alg\":") + ".e30." + b64url("x"),
          h + "." + b64url("not json") + "." + b64url("x"),
          h + "." + b64url("[]") + "." + b64url("x"),
          b64url(R"({"alg":"HS256","crit":["b64"]})") + ".e30." + b64url("x"),
          b64url(R"({"alg":"HS256","kid":7})") + ".e30." + b64url("x")})
    {
        Verdict v = check(t, ks);
        EXPECT_EQ(v.refusal, Refusal::kMalformed) << t << ": " << v.reason;
    }
    // nesting: bounded before parsing
    std::string deep(100000, '[');
    std::string t =
        h + "." + b64url("{\"a\":" + deep + "}") + "." + b64url("x");
    Policy roomy;
    roomy.max_token = 1 << 20;
    EXPECT_EQ(check(t, ks, roomy).refusal, Refusal::kMalformed);
    // a non-numeric exp is malformed, not "never expires"
    std::string s =
        make_token({{"alg", "HS256"}}, {{"exp", "tomorrow"}}, "HS256", nullptr);
    EXPECT_EQ(check(s, ks).refusal, Refusal::kMalformed);
    EXPECT_EQ(check("", ks).refusal, Refusal::kMissing);
}

TEST(Jwt, SizeBounds)
{
    KeySet ks = secret_keys();
    json big = claims();
    big["pad"] = std::string(9000, 'x');
    std::string t = make_token({{"alg", "HS256"}}, big, "HS256", nullptr);
    EXPECT_EQ(check(t, ks).refusal, Refusal::kTooLarge);
    Policy roomy;
    roomy.max_token = 16384;
    EXPECT_TRUE(check(t, ks, roomy).ok());
    json header = {{"alg", "HS256"}, {"x", std::string(1100, 'y')}};
    std::string th = make_token(header, claims(), "HS256", nullptr);
    EXPECT_EQ(check(th, ks).refusal, Refusal::kMalformed);
}

TEST(Jwt, TimeClaimsWithLeeway)
{
    KeySet ks = secret_keys();
    auto tok = [](const json& p) {
        return make_token({{"alg", "HS256"}}, p, "HS256", nullptr);
    };
    Policy p;
    EXPECT_EQ(check(tok({{"exp", kNow}}), ks, p).refusal, Refusal::kExpired);
    EXPECT_TRUE(check(tok({{"exp", kNow + 1}}), ks, p).ok());
    EXPECT_EQ(check(tok({{"nbf", kNow + 1}}), ks, p).refusal,
              Refusal::kNotYetValid);
    EXPECT_TRUE(check(tok({{"nbf", kNow}}), ks, p).ok());
    EXPECT_EQ(check(tok({{"iat", kNow + 5}}), ks, p).refusal,
              Refusal::kIssuedInFuture);
    EXPECT_TRUE(check(tok({{"exp", 1.5e9 + kNow}}), ks, p).ok());
    p.leeway = 30;
    EXPECT_TRUE(check(tok({{"exp", kNow - 29}}), ks, p).ok());
    EXPECT_EQ(check(tok({{"exp", kNow - 30}}), ks, p).refusal,
              Refusal::kExpired);
    EXPECT_TRUE(check(tok({{"nbf", kNow + 30}}), ks, p).ok());
    EXPECT_EQ(check(tok({{"nbf", kNow + 31}}), ks, p).refusal,
              Refusal::kNotYetValid);
    EXPECT_TRUE(check(tok({{"iat", kNow + 30}}), ks, p).ok());
    Verdict v = check(tok({{"exp", kNow + 60}}), ks, p);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v.claims.exp, kNow + 60);
}

TEST(Jwt, IssuerAndAudience)
{
    KeySet ks = secret_keys();
    auto tok = [](const json& p) {
        return make_token({{"alg", "HS256"}}, p, "HS256", nullptr);
    };
    Policy p;
    p.issuer = "https://auth.example";
    p.audience = "pulse";
    EXPECT_TRUE(
        check(tok({{"iss", "https://auth.example"}, {"aud", "pulse"}}), ks, p)
            .ok());
    EXPECT_TRUE(check(tok({{"iss", "https://auth.example"},
                           {"aud", {"other", "pulse"}}}),
                      ks, p)
                    .ok());
    EXPECT_EQ(
        check(tok({{"iss", "https://evil"}, {"aud", "pulse"}}), ks, p).refusal,
        Refusal::kIssuer);
    EXPECT_EQ(check(tok({{"aud", "pulse"}}), ks, p).refusal, Refusal::kIssuer);
    EXPECT_EQ(check(tok({{"iss", "https://auth.example"}, {"aud", "x"}}), ks, p)
                  .refusal,
              Refusal::kAudience);
    EXPECT_EQ(
        check(tok({{"iss", "https://auth.example"}, {"aud", {1, 2}}}), ks, p)
            .refusal,
        Refusal::kAudience);
}

TEST(Jwt, TenantAndChannelClaims)
{
    KeySet ks = secret_keys();
    auto tok = [](const json& p) {
        return make_token({{"alg", "HS256"}}, p, "HS256", nullptr);
    };
    Policy p;
    p.tenant_claim = "tenant";
    p.channels_claim = "channels";
    Verdict v = check(
        tok({{"tenant", "acme"},
             {"channels",
              {{"subscribe", {"bw", "metrics.*"}}, {"publish", {"jobs.**"}}}}}),
        ks, p);
    ASSERT_TRUE(v.ok()) << v.reason;
    EXPECT_EQ(v.claims.tenant, "acme");
    EXPECT_TRUE(v.claims.has_acl);
    EXPECT_EQ(v.claims.subscribe,
              (std::vector<std::string>{"bw", "metrics.*"}));
    EXPECT_EQ(v.claims.publish, (std::vector<std::string>{"jobs.**"}));
    // an array: subscribe only
    v = check(tok({{"tenant", "acme"}, {"channels", {"bw"}}}), ks, p);
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(v.claims.subscribe, (std::vector<std::string>{"bw"}));
    EXPECT_TRUE(v.claims.publish.empty());
    // no claim: an empty ACL, which allows nothing
    v = check(tok({{"tenant", "acme"}}), ks, p);
    ASSERT_TRUE(v.ok());
    EXPECT_TRUE(v.claims.has_acl);
    EXPECT_TRUE(v.claims.subscribe.empty());
    for (const json& t : {json("a/b"), json(""), json("a b"), json(7),
                          json(std::string(65, 'a')), json("ac\nme")})
    {
        EXPECT_EQ(check(tok({{"tenant", t}}), ks, p).refusal,
                  Refusal::kNoTenant)
            << t;
    }
    EXPECT_EQ(check(tok({{"sub", "x"}}), ks, p).refusal, Refusal::kNoTenant);
    json many = json::array();
    for (int i = 0; i < 65; ++i) {
        many.push_back("c" + std::to_string(i));
    }
    for (const json& acl :
         {json(many), json("bw"), json({{"sub", {"x"}}}), json({1}),
          json({std::string(257, 'c')}), json({{"subscribe", "bw"}})})
    {
        v = check(tok({{"tenant", "acme"}, {"channels", acl}}), ks, p);
        EXPECT_EQ(v.refusal, Refusal::kBadAcl) << acl;
        EXPECT_EQ(refusal_http_status(v.refusal), 403);
    }
    EXPECT_EQ(refusal_http_status(Refusal::kExpired), 401);
}

std::string write_file(const std::string& name, const std::string& text)
{
    std::string path = testing::TempDir() + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

json jwk_of(EVP_PKEY* p, const std::string& kid)
{
    auto bn_b64 = [&](const char* param) {
        BIGNUM* bn = nullptr;
        EVP_PKEY_get_bn_param(p, param, &bn);
        std::string s(static_cast<size_t>(BN_num_bytes(bn)), '\0');
        BN_bn2bin(bn, reinterpret_cast<unsigned char*>(s.data()));
        BN_free(bn);
        return b64url(s);
    };
    if (EVP_PKEY_get_base_id(p) == EVP_PKEY_RSA) {
        return {{"kty", "RSA"},
                {"kid", kid},
                {"n", bn_b64(OSSL_PKEY_PARAM_RSA_N)},
                {"e", bn_b64(OSSL_PKEY_PARAM_RSA_E)}};
    }
    if (EVP_PKEY_get_base_id(p) == EVP_PKEY_EC) {
        unsigned char pub[200];
        size_t len = 0;
        EVP_PKEY_get_octet_string_param(p, OSSL_PKEY_PARAM_PUB_KEY, pub,
                                        sizeof(pub), &len);
        size_t half = (len - 1) / 2;
        std::string x(reinterpret_cast<char*>(pub) + 1, half);
        std::string y(reinterpret_cast<char*>(pub) + 1 + half, half);
        return {{"kty", "EC"},
                {"kid", kid},
                {"crv", half == 32 ? "P-256" : "P-384"},
                {"x", b64url(x)},
                {"y", b64url(y)}};
    }
    unsigned char raw[64];
    size_t len = sizeof(raw);
    EVP_PKEY_get_raw_public_key(p, raw, &len);
    return {{"kty", "OKP"},
            {"kid", kid},
            {"crv", "Ed25519"},
            {"x", b64url(std::string(reinterpret_cast<char*>(raw), len))}};
}

TEST(Jwt, JwksFileWithEveryKeyType)
{
    Pkey rsa = generate("RSA");
    Pkey ec = generate("EC", "P-256");
    Pkey ec384 = generate("EC", "P-384");
    Pkey ed = generate("ED25519");
    json jwks = {
        {"keys",
         {jwk_of(rsa.get(), "r"),
          jwk_of(ec.get(), "e"),
          jwk_of(ec384.get(), "e384"),
          jwk_of(ed.get(), "d"),
          {{"kty", "oct"}, {"kid", "h"}, {"k", b64url(kSecret)}},
          {{"kty", "RSA"}, {"use", "enc"}, {"n", "AQAB"}, {"e", "AQAB"}}}}};
    jwks["keys"][0]["alg"] = "PS256";
    KeySet ks;
    Status s = ks.load_file(write_file("jwks.json", jwks.dump(2)), "");
    ASSERT_TRUE(s.is_ok()) << s.message();
    EXPECT_EQ(ks.size(), 5U);  // the encryption key is skipped
    EXPECT_TRUE(check(make_token({{"alg", "PS256"}, {"kid", "r"}}, claims(),
                                 "PS256", rsa.get()),
                      ks)
                    .ok());
    // the JWKS restricts "r" to PS256
    EXPECT_EQ(check(make_token({{"alg", "RS256"}, {"kid", "r"}}, claims(),
                               "RS256", rsa.get()),
                    ks)
                  .refusal,
              Refusal::kAlgorithm);
    EXPECT_TRUE(check(make_token({{"alg", "ES256"}, {"kid", "e"}}, claims(),
                                 "ES256", ec.get()),
                      ks)
                    .ok());
    EXPECT_TRUE(check(make_token({{"alg", "ES384"}, {"kid", "e384"}}, claims(),
                                 "ES384", ec384.get()),
                      ks)
                    .ok());
    EXPECT_TRUE(check(make_token({{"alg", "EdDSA"}, {"kid", "d"}}, claims(),
                                 "EdDSA", ed.get()),
                      ks)
                    .ok());
    EXPECT_TRUE(check(make_token({{"alg", "HS512"}, {"kid", "h"}}, claims(),
                                 "HS512", nullptr),
                      ks)
                    .ok());
}

// A JWK whose x lost its leading zero byte (as some producers write it)
// still loads and verifies.
TEST(Jwt, JwkCoordinatesWithoutLeadingZerosArePadded)
{
    Pkey ec;
    json jwk;
    for (int i = 0; i < 5000; ++i) {
        ec = generate("EC", "P-256");
        jwk = jwk_of(ec.get(), "z");
        auto x = base64url_decode(jwk["x"].get<std::string>());
        if ((*x)[0] == '\0') {
            jwk["x"] = b64url(x->substr(1));
            break;
        }
        jwk = json();
    }
    ASSERT_FALSE(jwk.is_null()) << "no key with a leading zero in x";
    KeySet ks;
    Status s = ks.add_jwks(json{{"keys", {jwk}}}.dump());
    ASSERT_TRUE(s.is_ok()) << s.message();
    EXPECT_TRUE(check(make_token({{"alg", "ES256"}, {"kid", "z"}}, claims(),
                                 "ES256", ec.get()),
                      ks)
                    .ok());
    jwk["x"] = b64url(std::string(33, 'x'));
    KeySet too_long;
    EXPECT_NE(too_long.add_jwks(json{{"keys", {jwk}}}.dump())
                  .message()
                  .find("too long"),
              std::string::npos);
}

TEST(Jwt, BadKeyFilesSayWhichAndWhy)
{
    auto fails = [](const std::string& text, const std::string& want,
                    std::string_view kid = "") {
        KeySet ks;
        std::string path = write_file("bad.key", text);
        Status s = ks.load_file(path, kid);
        EXPECT_FALSE(s.is_ok()) << text;
        EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
        EXPECT_NE(s.message().find(want), std::string::npos)
            << s.message() << " lacks " << want;
    };
    fails("short\n", "at least 32 bytes");
    fails("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
          "not a PEM public key");
    fails("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
          "private key");
    fails("{\"keys\": 3}", "no \"keys\" array");
    fails("{\"keys\": []}", "no signature keys");
    fails("{not json", "not a JSON object");
    fails(R"({"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}]})",
          "not P-256 or P-384");
    fails(R"({"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]})", "2048 bits");
    fails(R"({"keys":[{"kty":"oct","k":"c2hvcnQ"}]})", "at least 32 bytes");
    fails(R"({"keys":[{"kty":"oct","k":"*"}]})", "base64url");
    fails(R"({"keys":[{"kty":"XYZ"}]})", "is not RSA, EC, OKP or oct");
    fails(R"({"keys":[{"kty":"oct","alg":"RS256","k":")" + b64url(kSecret)
              + "\"}]}",
          "does not fit");
    fails(R"({"keys":[{"kty":"oct","kid":"a","k":")" + b64url(kSecret)
              + R"("},{"kty":"oct","kid":"a","k":")" + b64url(kSecret)
              + "\"}]}",
          "two keys with kid");
    fails(R"({"keys":[]})", "names its keys' kid", "x");
    KeySet ks;
    Status s = ks.load_file("/nonexistent/key", "");
    EXPECT_NE(s.message().find("No such file"), std::string::npos)
        << s.message();
    // a small RSA key in PEM
    Pkey small(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
    fails(public_pem(small.get()), "2048 bits");
}

TEST(Jwt, SecretFileDropsOneTrailingNewline)
{
    KeySet ks;
    ASSERT_TRUE(ks.load_file(write_file("s.key", kSecret + "\n"), "s").is_ok());
    EXPECT_TRUE(check(make_token({{"alg", "HS256"}, {"kid", "s"}}, claims(),
                                 "HS256", nullptr),
                      ks)
                    .ok());
}

TEST(Jwt, Base64url)
{
    EXPECT_EQ(base64url_decode(""), "");
    EXPECT_EQ(base64url_decode("Zg"), "f");
    EXPECT_EQ(base64url_decode("Zm8"), "fo");
    EXPECT_EQ(base64url_decode("Zm9v"), "foo");
    EXPECT_EQ(base64url_decode("-_8"), std::string("\xfb\xff", 2));
    EXPECT_FALSE(base64url_decode("Zm9v="));  // padding
    EXPECT_FALSE(base64url_decode("Z"));      // 1 mod 4
    EXPECT_FALSE(base64url_decode("Zh"));     // trailing bits set
    EXPECT_FALSE(base64url_decode("Zm+v"));   // standard alphabet
    EXPECT_FALSE(base64url_decode("Zm9v\n"));
}

TEST(Acl, Patterns)
{
    using acl::matches;
    EXPECT_TRUE(matches("bw", "bw"));
    EXPECT_FALSE(matches("bw", "BW"));
    EXPECT_FALSE(matches("bw", "bw2"));
    EXPECT_FALSE(matches("bw", "bw.x"));
    EXPECT_TRUE(matches("metrics.*", "metrics.cpu"));
    EXPECT_FALSE(matches("metrics.*", "metrics"));
    EXPECT_FALSE(matches("metrics.*", "metrics."));
    EXPECT_FALSE(matches("metrics.*", "metrics.cpu.0"));
    EXPECT_TRUE(matches("metrics.*.load", "metrics.cpu.load"));
    EXPECT_TRUE(matches("metrics.**", "metrics.cpu"));
    EXPECT_TRUE(matches("metrics.**", "metrics.cpu.0"));
    EXPECT_FALSE(matches("metrics.**", "metrics"));
    EXPECT_FALSE(matches("metrics.**", "metrics."));
    EXPECT_FALSE(matches("metrics.**", "metricsx.cpu"));
    EXPECT_TRUE(matches("**", "anything.at.all"));
    EXPECT_TRUE(matches("*", "one"));
    EXPECT_FALSE(matches("*", "one.two"));
    EXPECT_FALSE(matches("*", ""));
    // `*` is a whole segment, never part of one
    EXPECT_FALSE(matches("metrics*", "metricsx"));
    EXPECT_TRUE(matches("metrics*", "metrics*"));
    for (const char* bad : {"", ".", "a..b", "a.", ".a", "**.a", "a.**.b"}) {
        EXPECT_FALSE(acl::valid_pattern(bad)) << bad;
        EXPECT_FALSE(matches(bad, "a.b")) << bad;
    }
    EXPECT_TRUE(acl::allowed({"x", "metrics.*"}, "metrics.cpu"));
    EXPECT_FALSE(acl::allowed({}, "metrics.cpu"));
    // linear: a long hostile channel name costs one pass
    std::string longname(100000, 'a');
    EXPECT_FALSE(matches("a.*.*.*.*.*.*.b", longname));
}

TEST(Acl, WildcardsAndCoverage)
{
    using acl::covers;
    EXPECT_TRUE(acl::is_wildcard("metrics.*"));
    EXPECT_TRUE(acl::is_wildcard("*.load"));
    EXPECT_TRUE(acl::is_wildcard("metrics.**"));
    EXPECT_FALSE(acl::is_wildcard("metrics"));
    EXPECT_FALSE(acl::is_wildcard("metrics*"));  // a literal segment
    EXPECT_FALSE(acl::is_wildcard("a.b*c.d"));
    EXPECT_TRUE(covers("metrics.*", "metrics.*"));
    EXPECT_TRUE(covers("metrics.*", "metrics.cpu"));
    EXPECT_TRUE(covers("*.*", "metrics.*"));
    EXPECT_TRUE(covers("metrics.**", "metrics.*"));
    EXPECT_TRUE(covers("metrics.**", "metrics.**"));
    EXPECT_TRUE(covers("metrics.**", "metrics.*.load"));
    EXPECT_TRUE(covers("**", "*"));
    EXPECT_TRUE(covers("**", "a.**"));
    EXPECT_FALSE(covers("metrics.cpu", "metrics.*"));  // narrower
    EXPECT_FALSE(covers("metrics.*", "metrics.**"));   // deeper
    EXPECT_FALSE(covers("metrics.*", "*.cpu"));        // another prefix
    EXPECT_FALSE(covers("metrics.*", "metrics.*.x"));  // longer
    EXPECT_FALSE(covers("metrics.*.x", "metrics.*"));  // shorter
    EXPECT_FALSE(covers("metrics.**", "metrics"));     // ** is one or more
    EXPECT_FALSE(covers("metrics", "metrics.**"));
    EXPECT_FALSE(covers("other.*", "metrics.*"));
    for (const char* bad : {"", "a..b", "**.a", "."}) {
        EXPECT_FALSE(covers("**", bad)) << bad;
        EXPECT_FALSE(covers(bad, "a.*")) << bad;
    }
    // coverage agrees with matching: what the inner matches, the outer does
    for (const char* ch : {"metrics.cpu", "metrics.mem", "metrics.cpu.load"}) {
        if (acl::matches("metrics.*", ch)) {
            EXPECT_TRUE(acl::matches("metrics.**", ch)) << ch;
        }
    }

    acl::Grant open;
    EXPECT_TRUE(open.may_watch("anything.*"));
    EXPECT_FALSE(open.may_watch("a..*"));
    auto a = std::make_shared<Claims>();
    a->tenant = "acme";
    a->has_acl = true;
    a->subscribe = {"bw", "metrics.**"};
    acl::Grant g{a};
    EXPECT_TRUE(g.may_watch("metrics.*"));
    EXPECT_TRUE(g.may_watch("metrics.cpu.*"));
    EXPECT_FALSE(g.may_watch("*"));
    EXPECT_FALSE(g.may_watch("**"));
    EXPECT_FALSE(g.may_watch("bw.*"));
    auto t = std::make_shared<Claims>(*a);
    t->has_acl = false;  // the whole tenant: every pattern, in its group
    EXPECT_TRUE(acl::Grant{t}.may_watch("**"));
}

TEST(Acl, GrantAndGroup)
{
    acl::Grant open;
    EXPECT_FALSE(open.authenticated());
    EXPECT_TRUE(open.may(acl::Direction::kPublish, "anything"));
    EXPECT_EQ(open.group("g"), "g");
    auto c = std::make_shared<Claims>();
    c->tenant = "acme";
    acl::Grant tenant_only{c};
    EXPECT_TRUE(tenant_only.may(acl::Direction::kPublish, "bw"));
    EXPECT_EQ(tenant_only.group(""), "acme");
    EXPECT_EQ(tenant_only.group("dash"), "dash:acme");
    auto a = std::make_shared<Claims>(*c);
    a->has_acl = true;
    a->subscribe = {"bw", "metrics.*"};
    a->publish = {"jobs.**"};
    acl::Grant g{a};
    EXPECT_TRUE(g.may(acl::Direction::kSubscribe, "metrics.cpu"));
    EXPECT_FALSE(g.may(acl::Direction::kPublish, "metrics.cpu"));
    EXPECT_TRUE(g.may(acl::Direction::kPublish, "jobs.1.progress"));
    EXPECT_FALSE(g.may(acl::Direction::kSubscribe, "jobs.1"));
    a->subscribe.clear();
    EXPECT_FALSE(g.may(acl::Direction::kSubscribe, "bw"));  // fails closed
}

TEST(Acl, AuditLineIsStableAndEscaped)
{
    Claims c;
    c.tenant = "acme";
    c.sub = "al\"ice\n";
    c.kid = "k1";
    EXPECT_EQ(acl::audit_line("deny", 403, &c, "bw", "127.0.0.1",
                              "channel outside the ACL"),
              "pulse audit: decision=deny status=403 tenant=\"acme\" "
              "sub=\"al\\\"ice\\x0a\" kid=\"k1\" channel=\"bw\" "
              "client=\"127.0.0.1\" reason=\"channel outside the ACL\"");
    EXPECT_EQ(acl::audit_line("deny", 401, nullptr, "", "::1", "expired"),
              "pulse audit: decision=deny status=401 tenant=\"\" sub=\"\" "
              "kid=\"\" channel=\"\" client=\"::1\" reason=\"expired\"");
    std::string line =
        acl::audit_line("allow", 200, nullptr, std::string(1000, 'c'), "", "");
    EXPECT_NE(line.find(std::string(256, 'c') + "...\""), std::string::npos);
    EXPECT_EQ(line.find(std::string(257, 'c')), std::string::npos);
}

TEST(TokenCache, HitExpiryAndBound)
{
    TokenCache cache(2);
    auto claims_exp = [](int64_t exp) {
        auto c = std::make_shared<Claims>();
        c->exp = exp;
        c->sub = "s" + std::to_string(exp);
        return std::shared_ptr<const Claims>(c);
    };
    EXPECT_EQ(cache.find(1, "t1", kNow), nullptr);
    cache.put(1, "t1", claims_exp(kNow + 100), kNow, 0);
    auto hit = cache.find(1, "t1", kNow + 99);
    ASSERT_NE(hit, nullptr);
    EXPECT_EQ(hit->sub, "s" + std::to_string(kNow + 100));
    EXPECT_EQ(cache.find(2, "t1", kNow), nullptr);  // another scope
    EXPECT_EQ(cache.find(1, "t1x", kNow), nullptr);
    // expiry at exp (+ leeway)
    EXPECT_EQ(cache.find(1, "t1", kNow + 100), nullptr);
    EXPECT_EQ(cache.size(), 0U);
    cache.put(1, "t2", claims_exp(kNow + 100), kNow, 10);
    EXPECT_NE(cache.find(1, "t2", kNow + 109), nullptr);
    EXPECT_EQ(cache.find(1, "t2", kNow + 110), nullptr);
    // max_age bounds a token without exp, or with a far one
    TokenCache aged(4, 300);
    auto forever = std::make_shared<const Claims>();
    aged.put(1, "t", forever, kNow, 0);
    EXPECT_NE(aged.find(1, "t", kNow + 299), nullptr);
    EXPECT_EQ(aged.find(1, "t", kNow + 300), nullptr);
    // the bound: least recently used goes first
    cache.put(1, "a", claims_exp(kNow + 100), kNow, 0);
    cache.put(1, "b", claims_exp(kNow + 100), kNow, 0);
    EXPECT_NE(cache.find(1, "a", kNow), nullptr);  // a is now the newest
    cache.put(1, "c", claims_exp(kNow + 100), kNow, 0);
    EXPECT_EQ(cache.size(), 2U);
    EXPECT_EQ(cache.find(1, "b", kNow), nullptr);
    EXPECT_NE(cache.find(1, "a", kNow), nullptr);
    EXPECT_NE(cache.find(1, "c", kNow), nullptr);
    // already expired tokens are not kept; capacity 0 keeps nothing
    cache.put(1, "old", claims_exp(kNow), kNow, 0);
    EXPECT_EQ(cache.find(1, "old", kNow), nullptr);
    TokenCache off(0);
    off.put(1, "t", forever, kNow, 0);
    EXPECT_EQ(off.find(1, "t", kNow), nullptr);
    EXPECT_GT(cache.hits(), 0U);
    EXPECT_GT(cache.misses(), 0U);
}

}  // namespace
}  // namespace pulse::jwt

namespace pulse::jwt {
namespace {

TEST(Jwt, PayloadIsOneAsciiLine)
{
    KeySet ks = secret_keys();
    json p = claims();
    p["name"] = "Zoë\nline";
    std::string t = make_token({{"alg", "HS256"}}, p, "HS256", nullptr);
    Verdict v = check(t, ks);
    ASSERT_TRUE(v.ok()) << v.reason;
    EXPECT_EQ(v.claims.payload.find('\n'), std::string::npos);
    for (char c : v.claims.payload) {
        EXPECT_LT(static_cast<unsigned char>(c), 0x80);
    }
    EXPECT_EQ(json::parse(v.claims.payload), p);
    // a refusal keeps nothing of the payload
    Verdict bad = check(t + "x", ks);
    EXPECT_FALSE(bad.ok());
    EXPECT_TRUE(bad.claims.payload.empty());
}

}  // namespace
}  // namespace pulse::jwt
