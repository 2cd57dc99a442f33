#include "pulse/jwt.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "pulse/json_depth.h"

namespace pulse::jwt {

namespace {

struct AlgInfo {
    Alg alg;
    std::string_view name;
};
constexpr std::array<AlgInfo, 10> kAlgs = {{
    {Alg::kHS256, "HS256"},
    {Alg::kHS384, "HS384"},
    {Alg::kHS512, "HS512"},
    {Alg::kRS256, "RS256"},
    {Alg::kRS384, "RS384"},
    {Alg::kRS512, "RS512"},
    {Alg::kPS256, "PS256"},
    {Alg::kES256, "ES256"},
    {Alg::kES384, "ES384"},
    {Alg::kEdDSA, "EdDSA"},
}};

const EVP_MD* digest_of(Alg alg)
{
    switch (alg) {
        case Alg::kHS256:
        case Alg::kRS256:
        case Alg::kPS256:
        case Alg::kES256:
            return EVP_sha256();
        case Alg::kHS384:
        case Alg::kRS384:
        case Alg::kES384:
            return EVP_sha384();
        case Alg::kHS512:
        case Alg::kRS512:
            return EVP_sha512();
        case Alg::kEdDSA:
            return nullptr;  // Ed25519 and Ed448 hash internally
    }
    return nullptr;
}

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxFree {
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BnFree {
    void operator()(BIGNUM* p) const { BN_free(p); }
};
struct BioFree {
    void operator()(BIO* p) const { BIO_free(p); }
};
struct PkeyCtxFree {
    void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct ParamBldFree {
    void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
    void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct DecoderFree {
    void operator()(OSSL_DECODER_CTX* p) const { OSSL_DECODER_CTX_free(p); }
};
struct EcdsaSigFree {
    void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

Status invalid(std::string msg)
{
    return Status(Code::kInvalidArgument, std::move(msg));
}

// The kind of an EVP_PKEY public key, or nullopt for what JWS cannot use.
Result<KeyKind> kind_of(EVP_PKEY* pkey)
{
    switch (EVP_PKEY_get_base_id(pkey)) {
        case EVP_PKEY_RSA:
            if (EVP_PKEY_get_bits(pkey) < 2048) {
                return invalid("RSA key shorter than 2048 bits");
            }
            return KeyKind::kRsa;
        case EVP_PKEY_EC: {
            char group[64];
            size_t len = 0;
            if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME,
                                               group, sizeof(group), &len)
                != 1)
            {
                return invalid("EC key without a named curve");
            }
            std::string_view g(group, len);
            if (g == "prime256v1" || g == "P-256") {
                return KeyKind::kEcP256;
            }
            if (g == "secp384r1" || g == "P-384") {
                return KeyKind::kEcP384;
            }
            return invalid("EC curve " + std::string(g)
                           + " is not P-256 or P-384");
        }
        case EVP_PKEY_ED25519:
            return KeyKind::kEd25519;
        case EVP_PKEY_ED448:
            return KeyKind::kEd448;
        default:
            return invalid("not an RSA, EC or Ed25519/Ed448 public key");
    }
}

// The DER ECDSA-Sig-Value of a JWS ES* signature (R || S, RFC 7518 §3.4).
std::string ecdsa_der(std::string_view sig)
{
    size_t half = sig.size() / 2;
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    std::unique_ptr<BIGNUM, BnFree> r(
        BN_bin2bn(p, static_cast<int>(half), nullptr));
    std::unique_ptr<BIGNUM, BnFree> s(
        BN_bin2bn(p + half, static_cast<int>(half), nullptr));
    std::unique_ptr<ECDSA_SIG, EcdsaSigFree> es(ECDSA_SIG_new());
    if (!r || !s || !es || ECDSA_SIG_set0(es.get(), r.get(), s.get()) != 1) {
        return {};
    }
    (void) r.release();  // owned by es now
    (void) s.release();
    int n = i2d_ECDSA_SIG(es.get(), nullptr);
    if (n <= 0) {
        return {};
    }
    std::string der(static_cast<size_t>(n), '\0');
    auto* out = reinterpret_cast<unsigned char*>(der.data());
    i2d_ECDSA_SIG(es.get(), &out);
    return der;
}

bool is_tenant_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

std::optional<std::string> read_file(const std::string& path, std::string* why)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        *why = std::strerror(errno);
        return std::nullopt;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
        *why = "read error";
        return std::nullopt;
    }
    return ss.str();
}

Result<PkeyPtr> pkey_from_params(const char* type, OSSL_PARAM_BLD* bld)
{
    std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* pkey = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1
        || EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY,
                             params.get())
               != 1)
    {
        return invalid(std::string("OpenSSL refused the ") + type
                       + " key's parameters");
    }
    return PkeyPtr(pkey);
}

// A JWKS member as a base64url-decoded string, or an error naming it.
Result<std::string> b64_member(const nlohmann::json& k, const char* name)
{
    auto it = k.find(name);
    if (it == k.end() || !it->is_string()) {
        return invalid(std::string("no \"") + name + "\"");
    }
    auto v = base64url_decode(it->get_ref<const std::string&>());
    if (!v || v->empty()) {
        return invalid(std::string("\"") + name + "\" is not base64url");
    }
    return *v;
}

Result<PkeyPtr> jwk_rsa(const nlohmann::json& k)
{
    auto n = b64_member(k, "n");
    auto e = b64_member(k, "e");
    if (!n.is_ok()) {
        return n.status();
    }
    if (!e.is_ok()) {
        return e.status();
    }
    auto bn = [](const std::string& s) {
        return std::unique_ptr<BIGNUM, BnFree>(
            BN_bin2bn(reinterpret_cast<const unsigned char*>(s.data()),
                      static_cast<int>(s.size()), nullptr));
    };
    auto bn_n = bn(n.value());
    auto bn_e = bn(e.value());
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bn_n || !bn_e || !bld
        || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get())
               != 1
        || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get())
               != 1)
    {
        return invalid("cannot build the RSA key");
    }
    return pkey_from_params("RSA", bld.get());
}

Result<PkeyPtr> jwk_ec(const nlohmann::json& k)
{
    auto crv = k.find("crv");
    if (crv == k.end() || !crv->is_string()) {
        return invalid("no \"crv\"");
    }
    const auto& c = crv->get_ref<const std::string&>();
    size_t len = 0;
    const char* group = nullptr;
    if (c == "P-256") {
        len = 32;
        group = "prime256v1";
    } else if (c == "P-384") {
        len = 48;
        group = "secp384r1";
    } else {
        return invalid("curve \"" + c + "\" is not P-256 or P-384");
    }
    auto x = b64_member(k, "x");
    auto y = b64_member(k, "y");
    if (!x.is_ok()) {
        return x.status();
    }
    if (!y.is_ok()) {
        return y.status();
    }
    // RFC 7518 §6.2.1.2 asks for the full length, but some producers
    // (PyJWT before 2.8 among them) drop leading zero bytes: pad them back
    if (x->size() > len || y->size() > len) {
        return invalid("\"x\" or \"y\" is too long for " + c);
    }
    x->insert(0, len - x->size(), '\0');
    y->insert(0, len - y->size(), '\0');
    std::string point = "\x04" + x.value() + y.value();
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bld
        || OSSL_PARAM_BLD_push_utf8_string(bld.get(),
                                           OSSL_PKEY_PARAM_GROUP_NAME, group, 0)
               != 1
        || OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY,
                                            point.data(), point.size())
               != 1)
    {
        return invalid("cannot build the EC key");
    }
    return pkey_from_params("EC", bld.get());
}

Result<PkeyPtr> jwk_okp(const nlohmann::json& k)
{
    auto crv = k.find("crv");
    if (crv == k.end() || !crv->is_string()) {
        return invalid("no \"crv\"");
    }
    const auto& c = crv->get_ref<const std::string&>();
    int type = 0;
    if (c == "Ed25519") {
        type = EVP_PKEY_ED25519;
    } else if (c == "Ed448") {
        type = EVP_PKEY_ED448;
    } else {
        return invalid("OKP curve \"" + c + "\" is not Ed25519 or Ed448");
    }
    auto x = b64_member(k, "x");
    if (!x.is_ok()) {
        return x.status();
    }
    EVP_PKEY* p = EVP_PKEY_new_raw_public_key(
        type, nullptr, reinterpret_cast<const unsigned char*>(x->data()),
        x->size());
    if (p == nullptr) {
        return invalid("\"x\" is not a " + c + " public key");
    }
    return PkeyPtr(p);
}

// The numeric date claim `name`, or an error when present but not a number.
bool numeric_claim(const nlohmann::json& payload, const char* name,
                   std::optional<int64_t>* out)
{
    auto it = payload.find(name);
    if (it == payload.end()) {
        return true;
    }
    if (it->is_number_integer()) {
        *out = it->get<int64_t>();
        return true;
    }
    if (it->is_number_float()) {
        double d = it->get<double>();
        if (!(d > -9.2e18 && d < 9.2e18)) {  // also false for NaN
            return false;
        }
        *out = static_cast<int64_t>(d);
        return true;
    }
    return false;
}

// An ACL direction: an array of pattern strings, each bounded.
bool read_patterns(const nlohmann::json& v, std::vector<std::string>* out,
                   std::string* why)
{
    if (!v.is_array()) {
        *why = "the channel list is not an array";
        return false;
    }
    if (v.size() > kMaxPatterns) {
        *why = "more than 64 channel patterns";
        return false;
    }
    for (const auto& p : v) {
        if (!p.is_string() || p.get_ref<const std::string&>().empty()
            || p.get_ref<const std::string&>().size() > kMaxPatternBytes)
        {
            *why = "a channel pattern is not a string of 1 to 256 bytes";
            return false;
        }
        out->push_back(p.get<std::string>());
    }
    return true;
}

// By reference: a reason built from v's own fields is complete before
// v is moved out.
Verdict refuse(Verdict& v, Refusal r, std::string reason)
{
    v.refusal = r;
    v.reason = std::move(reason);
    return std::move(v);
}

// A JSON object from a decoded token part, bounded in depth.
std::optional<nlohmann::json> parse_object(const std::string& text)
{
    if (!check_json_depth(text, 16).is_ok()) {
        return std::nullopt;
    }
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        return std::nullopt;
    }
    return j;
}

}  // namespace

struct Key::Pkey {
    PkeyPtr p;
};

std::optional<Alg> parse_alg(std::string_view name)
{
    for (const auto& a : kAlgs) {
        if (a.name == name) {
            return a.alg;
        }
    }
    return std::nullopt;
}

std::string_view alg_name(Alg alg)
{
    for (const auto& a : kAlgs) {
        if (a.alg == alg) {
            return a.name;
        }
    }
    return "?";
}

Key::Key(KeyKind kind, std::string kid) : kind_(kind), kid_(std::move(kid)) {}
Key::Key(Key&&) noexcept = default;
Key& Key::operator=(Key&&) noexcept = default;
Key::~Key()
{
    if (!secret_.empty()) {
        OPENSSL_cleanse(secret_.data(), secret_.size());
    }
}

Result<Key> Key::secret(std::string bytes, std::string kid)
{
    if (bytes.size() < 32) {
        return invalid("an HMAC secret must be at least 32 bytes (it has "
                       + std::to_string(bytes.size()) + ")");
    }
    Key k(KeyKind::kSecret, std::move(kid));
    k.secret_ = std::move(bytes);
    return k;
}

Result<Key> Key::pem(std::string_view text, std::string kid)
{
    if (text.find("PRIVATE KEY-----") != std::string_view::npos) {
        return invalid("a private key: give the public half");
    }
    // any public key PEM: SubjectPublicKeyInfo or PKCS#1 `RSA PUBLIC KEY`
    EVP_PKEY* p = nullptr;
    std::unique_ptr<OSSL_DECODER_CTX, DecoderFree> dctx(
        OSSL_DECODER_CTX_new_for_pkey(&p, "PEM", nullptr, nullptr,
                                      EVP_PKEY_PUBLIC_KEY, nullptr, nullptr));
    const auto* data = reinterpret_cast<const unsigned char*>(text.data());
    size_t len = text.size();
    if (!dctx || OSSL_DECODER_from_data(dctx.get(), &data, &len) != 1
        || p == nullptr)
    {
        EVP_PKEY_free(p);
        return invalid("not a PEM public key");
    }
    PkeyPtr owned(p);
    auto kind = kind_of(p);
    if (!kind.is_ok()) {
        return kind.status();
    }
    Key k(kind.value(), std::move(kid));
    k.pkey_ = std::make_unique<Pkey>(Pkey{std::move(owned)});
    return k;
}

bool Key::verifies(Alg alg) const
{
    if (alg_ && *alg_ != alg) {
        return false;
    }
    switch (alg) {
        case Alg::kHS256:
        case Alg::kHS384:
        case Alg::kHS512:
            return kind_ == KeyKind::kSecret;
        case Alg::kRS256:
        case Alg::kRS384:
        case Alg::kRS512:
        case Alg::kPS256:
            return kind_ == KeyKind::kRsa;
        case Alg::kES256:
            return kind_ == KeyKind::kEcP256;
        case Alg::kES384:
            return kind_ == KeyKind::kEcP384;
        case Alg::kEdDSA:
            return kind_ == KeyKind::kEd25519 || kind_ == KeyKind::kEd448;
    }
    return false;
}

bool Key::verify(Alg alg, std::string_view signed_part,
                 std::string_view signature) const
{
    if (!verifies(alg)) {
        return false;
    }
    const EVP_MD* md = digest_of(alg);
    const auto* data =
        reinterpret_cast<const unsigned char*>(signed_part.data());
    if (kind_ == KeyKind::kSecret) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int len = 0;
        if (HMAC(md, secret_.data(), static_cast<int>(secret_.size()), data,
                 signed_part.size(), mac, &len)
            == nullptr)
        {
            return false;
        }
        return signature.size() == len
               && CRYPTO_memcmp(mac, signature.data(), len) == 0;
    }
    std::string der;
    if (alg == Alg::kES256 || alg == Alg::kES384) {
        size_t want = alg == Alg::kES256 ? 64 : 96;
        if (signature.size() != want) {
            return false;
        }
        der = ecdsa_der(signature);
        if (der.empty()) {
            return false;
        }
        signature = der;
    }
    std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    if (!ctx
        || EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, pkey_->p.get())
               != 1)
    {
        return false;
    }
    if (alg == Alg::kPS256
        && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1
            || EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST)
                   != 1))
    {
        return false;
    }
    return EVP_DigestVerify(
               ctx.get(),
               reinterpret_cast<const unsigned char*>(signature.data()),
               signature.size(), data, signed_part.size())
           == 1;
}

Status KeySet::add(Key key)
{
    if (!key.kid().empty() && find(key.kid()) != nullptr) {
        return invalid("two keys with kid \"" + key.kid() + "\"");
    }
    keys_.push_back(std::move(key));
    return Status::ok();
}

const Key* KeySet::find(std::string_view kid) const
{
    for (const auto& k : keys_) {
        if (k.kid() == kid) {
            return &k;
        }
    }
    return nullptr;
}

Status KeySet::add_jwks(std::string_view json)
{
    if (!check_json_depth(json, 16).is_ok()) {
        return invalid("JWKS nested too deep");
    }
    auto doc = nlohmann::json::parse(json, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
        return invalid("not a JSON object");
    }
    auto keys = doc.find("keys");
    if (keys == doc.end() || !keys->is_array()) {
        return invalid("no \"keys\" array");
    }
    size_t added = 0;
    for (size_t i = 0; i < keys->size(); ++i) {
        const auto& k = (*keys)[i];
        std::string where = "key " + std::to_string(i);
        if (!k.is_object()) {
            return invalid(where + " is not an object");
        }
        auto use = k.find("use");
        if (use != k.end() && *use != "sig") {
            continue;  // an encryption key: not ours
        }
        std::string kid;
        if (auto it = k.find("kid"); it != k.end()) {
            if (!it->is_string()) {
                return invalid(where + ": \"kid\" is not a string");
            }
            kid = it->get<std::string>();
            where += " (kid \"" + kid + "\")";
        }
        std::optional<Alg> alg;
        if (auto it = k.find("alg"); it != k.end()) {
            if (!it->is_string() || !(alg = parse_alg(it->get<std::string>())))
            {
                return invalid(where + ": unsupported \"alg\"");
            }
        }
        auto kty = k.find("kty");
        if (kty == k.end() || !kty->is_string()) {
            return invalid(where + ": no \"kty\"");
        }
        const auto& t = kty->get_ref<const std::string&>();
        std::optional<Key> key;
        if (t == "oct") {
            auto secret = b64_member(k, "k");
            if (!secret.is_ok()) {
                return invalid(where + ": " + secret.status().message());
            }
            auto r = Key::secret(std::move(secret.value()), kid);
            if (!r.is_ok()) {
                return invalid(where + ": " + r.status().message());
            }
            key.emplace(std::move(r.value()));
        } else {
            Result<PkeyPtr> p =
                t == "RSA"  ? jwk_rsa(k)
                : t == "EC" ? jwk_ec(k)
                : t == "OKP"
                    ? jwk_okp(k)
                    : Result<PkeyPtr>(invalid(
                        "\"kty\" \"" + t + "\" is not RSA, EC, OKP or oct"));
            if (!p.is_ok()) {
                return invalid(where + ": " + p.status().message());
            }
            auto kind = kind_of(p.value().get());
            if (!kind.is_ok()) {
                return invalid(where + ": " + kind.status().message());
            }
            Key made(kind.value(), kid);
            made.pkey_ =
                std::make_unique<Key::Pkey>(Key::Pkey{std::move(p.value())});
            key.emplace(std::move(made));
        }
        key->alg_ = alg;
        if (alg && !key->verifies(*alg)) {
            return invalid(where + ": \"alg\" " + std::string(alg_name(*alg))
                           + " does not fit its \"kty\"");
        }
        if (Status s = add(std::move(*key)); !s.is_ok()) {
            return s;
        }
        added++;
    }
    if (added == 0) {
        return invalid("no signature keys in \"keys\"");
    }
    return Status::ok();
}

Status KeySet::load_file(const std::string& path, std::string_view kid)
{
    std::string why;
    auto text = read_file(path, &why);
    auto fail = [&](const std::string& reason) {
        return invalid("pulse_jwt_key \"" + path + "\": " + reason);
    };
    if (!text) {
        return fail(why);
    }
    std::string_view t = *text;
    size_t first = t.find_first_not_of(" \t\r\n");
    if (first != std::string_view::npos && t[first] == '{') {
        if (!kid.empty()) {
            return fail("a JWKS names its keys' kid itself");
        }
        Status s = add_jwks(t);
        return s.is_ok() ? s : fail(s.message());
    }
    Result<Key> key = invalid("");
    if (t.find("-----BEGIN") != std::string_view::npos) {
        key = Key::pem(t, std::string(kid));
    } else {
        // a secret written with `echo`: its one trailing newline is not
        // part of it
        if (!t.empty() && t.back() == '\n') {
            t.remove_suffix(1);
        }
        key = Key::secret(std::string(t), std::string(kid));
    }
    if (!key.is_ok()) {
        return fail(key.status().message());
    }
    Status s = add(std::move(key.value()));
    return s.is_ok() ? s : fail(s.message());
}

std::optional<std::string> base64url_decode(std::string_view in)
{
    if (in.size() % 4 == 1) {
        return std::nullopt;
    }
    auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') {
            return c - 'A';
        }
        if (c >= 'a' && c <= 'z') {
            return c - 'a' + 26;
        }
        if (c >= '0' && c <= '9') {
            return c - '0' + 52;
        }
        if (c == '-') {
            return 62;
        }
        if (c == '_') {
            return 63;
        }
        return -1;
    };
    std::string out;
    out.reserve(in.size() * 3 / 4);
    uint32_t acc = 0;
    int bits = 0;
    for (char c : in) {
        int v = val(c);
        if (v < 0) {
            return std::nullopt;
        }
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) {
        return std::nullopt;  // non-canonical: trailing bits set
    }
    return out;
}

std::string_view refusal_name(Refusal r)
{
    switch (r) {
        case Refusal::kNone:
            return "ok";
        case Refusal::kMissing:
            return "missing";
        case Refusal::kTooLarge:
            return "too_large";
        case Refusal::kMalformed:
            return "malformed";
        case Refusal::kAlgorithm:
            return "algorithm";
        case Refusal::kUnknownKid:
            return "unknown_kid";
        case Refusal::kBadSignature:
            return "bad_signature";
        case Refusal::kExpired:
            return "expired";
        case Refusal::kNotYetValid:
            return "not_yet_valid";
        case Refusal::kIssuedInFuture:
            return "issued_in_future";
        case Refusal::kIssuer:
            return "issuer";
        case Refusal::kAudience:
            return "audience";
        case Refusal::kNoTenant:
            return "no_tenant";
        case Refusal::kBadAcl:
            return "bad_acl";
    }
    return "?";
}

int refusal_http_status(Refusal r)
{
    switch (r) {
        case Refusal::kNone:
            return 200;
        case Refusal::kNoTenant:
        case Refusal::kBadAcl:
            return 403;
        default:
            return 401;
    }
}

Verdict verify(std::string_view token, const KeySet& keys, const Policy& policy,
               int64_t now)
{
    Verdict v;
    if (token.empty()) {
        return refuse(v, Refusal::kMissing, "no token");
    }
    if (token.size() > policy.max_token) {
        return refuse(
            v, Refusal::kTooLarge,
            "token longer than " + std::to_string(policy.max_token) + " bytes");
    }
    size_t dot1 = token.find('.');
    size_t dot2 =
        dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos
        || token.find('.', dot2 + 1) != std::string_view::npos)
    {
        return refuse(v, Refusal::kMalformed, "not three dot-separated parts");
    }
    auto header_text = base64url_decode(token.substr(0, dot1));
    if (!header_text || header_text->size() > kMaxHeaderBytes) {
        return refuse(
            v, Refusal::kMalformed,
            header_text ? "header over 1024 bytes" : "header is not base64url");
    }
    auto header = parse_object(*header_text);
    if (!header) {
        return refuse(v, Refusal::kMalformed, "header is not a JSON object");
    }
    if (auto it = header->find("kid"); it != header->end()) {
        if (!it->is_string() || it->get_ref<const std::string&>().size() > 256)
        {
            return refuse(v, Refusal::kMalformed,
                          "kid is not a string of at most 256 bytes");
        }
        v.claims.kid = it->get<std::string>();
    }
    auto alg_it = header->find("alg");
    if (alg_it == header->end() || !alg_it->is_string()) {
        return refuse(v, Refusal::kMalformed, "no alg");
    }
    auto alg = parse_alg(alg_it->get_ref<const std::string&>());
    if (!alg) {
        return refuse(v, Refusal::kAlgorithm,
                      "alg \"" + alg_it->get<std::string>().substr(0, 16)
                          + "\" is not accepted");
    }
    if (header->contains("crit")) {
        // RFC 7515 §4.1.11: extensions we do not implement must fail
        return refuse(v, Refusal::kMalformed,
                      "crit names extensions Pulse does not implement");
    }
    auto payload_text =
        base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
    auto signature = base64url_decode(token.substr(dot2 + 1));
    if (!payload_text || !signature) {
        return refuse(v, Refusal::kMalformed,
                      "payload or signature is not base64url");
    }
    auto payload = parse_object(*payload_text);
    if (!payload) {
        return refuse(v, Refusal::kMalformed, "payload is not a JSON object");
    }
    if (auto it = payload->find("sub"); it != payload->end() && it->is_string())
    {
        v.claims.sub = it->get<std::string>().substr(0, 256);
    }

    std::string_view signed_part = token.substr(0, dot2);
    bool verified = false;
    if (!v.claims.kid.empty() && keys.find(v.claims.kid) != nullptr) {
        const Key* k = keys.find(v.claims.kid);
        if (!k->verifies(*alg)) {
            return refuse(v, Refusal::kAlgorithm,
                          "alg " + std::string(alg_name(*alg))
                              + " does not fit key \"" + v.claims.kid + "\"");
        }
        verified = k->verify(*alg, signed_part, *signature);
    } else if (!v.claims.kid.empty()) {
        return refuse(v, Refusal::kUnknownKid, "unknown kid");
    } else {
        bool any = false;
        for (const auto& k : keys.keys()) {
            if (k.verifies(*alg)) {
                any = true;
                if (k.verify(*alg, signed_part, *signature)) {
                    verified = true;
                    break;
                }
            }
        }
        if (!any) {
            return refuse(v, Refusal::kAlgorithm,
                          "no key verifies alg " + std::string(alg_name(*alg)));
        }
    }
    if (!verified) {
        return refuse(v, Refusal::kBadSignature, "bad signature");
    }

    std::optional<int64_t> exp;
    std::optional<int64_t> nbf;
    std::optional<int64_t> iat;
    if (!numeric_claim(*payload, "exp", &exp)
        || !numeric_claim(*payload, "nbf", &nbf)
        || !numeric_claim(*payload, "iat", &iat))
    {
        return refuse(v, Refusal::kMalformed,
                      "exp, nbf or iat is not a number");
    }
    if (exp && now >= *exp + policy.leeway) {
        return refuse(v, Refusal::kExpired, "expired");
    }
    if (nbf && now + policy.leeway < *nbf) {
        return refuse(v, Refusal::kNotYetValid, "not valid yet");
    }
    if (iat && now + policy.leeway < *iat) {
        return refuse(v, Refusal::kIssuedInFuture, "issued in the future");
    }
    v.claims.exp = exp;
    if (!policy.issuer.empty()) {
        auto it = payload->find("iss");
        if (it == payload->end() || *it != policy.issuer) {
            return refuse(v, Refusal::kIssuer, "wrong issuer");
        }
    }
    if (!policy.audience.empty()) {
        auto it = payload->find("aud");
        bool match = false;
        if (it != payload->end() && it->is_string()) {
            match = *it == policy.audience;
        } else if (it != payload->end() && it->is_array()) {
            for (const auto& a : *it) {
                match = match || a == policy.audience;
            }
        }
        if (!match) {
            return refuse(v, Refusal::kAudience, "wrong audience");
        }
    }
    if (!policy.tenant_claim.empty()) {
        auto it = payload->find(policy.tenant_claim);
        if (it == payload->end() || !it->is_string()) {
            return refuse(v, Refusal::kNoTenant,
                          "no string claim \"" + policy.tenant_claim + "\"");
        }
        const auto& t = it->get_ref<const std::string&>();
        bool valid = !t.empty() && t.size() <= kMaxTenantBytes;
        for (char c : t) {
            valid = valid && is_tenant_char(c);
        }
        if (!valid) {
            return refuse(v, Refusal::kNoTenant,
                          "the tenant is not 1 to 64 of [A-Za-z0-9._-]");
        }
        v.claims.tenant = t;
    }
    if (!policy.channels_claim.empty()) {
        v.claims.has_acl = true;
        auto it = payload->find(policy.channels_claim);
        std::string why;
        if (it == payload->end()) {
            // no claim: nothing is allowed (an ACL fails closed)
        } else if (it->is_array()) {
            if (!read_patterns(*it, &v.claims.subscribe, &why)) {
                return refuse(v, Refusal::kBadAcl, why);
            }
        } else if (it->is_object()) {
            for (const auto& [name, list] : it->items()) {
                auto* dst = name == "subscribe" ? &v.claims.subscribe
                            : name == "publish" ? &v.claims.publish
                                                : nullptr;
                if (dst == nullptr) {
                    return refuse(v, Refusal::kBadAcl,
                                  "the channel claim has a member other "
                                  "than subscribe and publish");
                }
                if (!read_patterns(list, dst, &why)) {
                    return refuse(v, Refusal::kBadAcl, why);
                }
            }
        } else {
            return refuse(v, Refusal::kBadAcl,
                          "the channel claim is not an array or an object");
        }
    }
    v.claims.payload =
        payload->dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
    return v;
}

}  // namespace pulse::jwt
