#pragma once

// JSON Web Tokens (RFC 7519) signed with JWS compact serialisation
// (RFC 7515), verified with OpenSSL's EVP API: no cryptography here but the
// choice of what to call. Keys come from files read at config time
// (docs/auth.md); a token is checked against them, then its registered
// claims against a Policy, then its tenant and channel claims are read.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pulse/status.h"

namespace pulse::jwt {

enum class Alg {
    kHS256,
    kHS384,
    kHS512,
    kRS256,
    kRS384,
    kRS512,
    kPS256,
    kES256,
    kES384,
    kEdDSA,
};

/// The JWS `alg` name; nullopt for anything else, `none` included.
std::optional<Alg> parse_alg(std::string_view name);
std::string_view alg_name(Alg alg);

/// What a key is, which decides the algorithms it verifies: an HMAC secret
/// only HS*, an RSA key only RS* and PS*, a P-256 key only ES256... so a
/// token cannot pick an algorithm its key was not made for (the HS-with-an-
/// RSA-public-key confusion).
enum class KeyKind { kSecret, kRsa, kEcP256, kEcP384, kEd25519, kEd448 };

/// One verification key. Movable, not copyable (it owns an EVP_PKEY).
class Key {
public:
    /// An HMAC secret of at least 32 bytes (RFC 7518 §3.2 asks for the
    /// hash's size; shorter secrets are refused).
    static Result<Key> secret(std::string bytes, std::string kid);
    /// A PEM public key (`-----BEGIN PUBLIC KEY-----`, or an RSA
    /// `BEGIN RSA PUBLIC KEY`); RSA keys under 2048 bits are refused.
    static Result<Key> pem(std::string_view text, std::string kid);

    Key(Key&&) noexcept;
    Key& operator=(Key&&) noexcept;
    Key(const Key&) = delete;
    Key& operator=(const Key&) = delete;
    ~Key();

    KeyKind kind() const { return kind_; }
    const std::string& kid() const { return kid_; }
    /// The JWKS `alg` the key is restricted to, if it named one.
    std::optional<Alg> alg() const { return alg_; }
    bool verifies(Alg alg) const;

    /// True when `signature` is `alg`'s signature of `signed_part` by this
    /// key. Constant-time for secrets.
    bool verify(Alg alg, std::string_view signed_part,
                std::string_view signature) const;

private:
    friend class KeySet;
    struct Pkey;
    Key(KeyKind kind, std::string kid);

    KeyKind kind_;
    std::string kid_;
    std::optional<Alg> alg_;
    std::string secret_;
    std::unique_ptr<Pkey> pkey_;
};

/// The keys of one location. A token with a `kid` is checked against the
/// key of that id only (an unknown `kid` is refused); a token without one
/// against each key that can verify its algorithm, in the order loaded.
class KeySet {
public:
    /// Reads `path`: a JWKS (a JSON object with `keys`), a PEM public key,
    /// or else an HMAC secret (the file's bytes, one trailing newline
    /// dropped). `kid` names a PEM key or a secret; JWKS keys carry theirs.
    /// Fails with a message naming the file and the reason.
    Status load_file(const std::string& path, std::string_view kid);
    /// A JWKS document (RFC 7517): RSA, EC (P-256, P-384), OKP (Ed25519,
    /// Ed448) and oct keys; keys for encryption (`use: enc`) are skipped.
    Status add_jwks(std::string_view json);
    Status add(Key key);

    size_t size() const { return keys_.size(); }
    bool empty() const { return keys_.empty(); }
    const std::vector<Key>& keys() const { return keys_; }
    const Key* find(std::string_view kid) const;

private:
    std::vector<Key> keys_;
};

/// What the location asks of a token beyond its signature.
struct Policy {
    int64_t leeway = 0;          // seconds of clock skew allowed on exp/nbf/iat
    std::string issuer;          // `iss` must equal it, when not empty
    std::string audience;        // `aud` must be or contain it, when not empty
    std::string tenant_claim;    // names the tenant, when not empty
    std::string channels_claim;  // names the ACL, when not empty
    size_t max_token = 8192;     // bytes; longer tokens are refused unread
};

/// The size bound of a token's decoded header.
constexpr size_t kMaxHeaderBytes = 1024;
/// At most this many ACL patterns per direction, each at most
/// kMaxPatternBytes: the cost of a check stays bounded.
constexpr size_t kMaxPatterns = 64;
constexpr size_t kMaxPatternBytes = 256;
/// A tenant is 1 to 64 of [A-Za-z0-9._-]: it becomes the channel group.
constexpr size_t kMaxTenantBytes = 64;

/// Why a token was refused: each maps to 401 but kNoTenant and kBadAcl
/// (the token is genuine but unusable here: 403).
enum class Refusal {
    kNone,
    kMissing,
    kTooLarge,
    kMalformed,
    kAlgorithm,  // none, unknown, or not what the key verifies
    kUnknownKid,
    kBadSignature,
    kExpired,
    kNotYetValid,
    kIssuedInFuture,
    kIssuer,
    kAudience,
    kNoTenant,
    kBadAcl,
};
std::string_view refusal_name(Refusal r);
int refusal_http_status(Refusal r);

struct Claims {
    std::string kid;  // from the header (logged; set even when refused)
    std::string sub;  // set even when refused, if the payload parsed
    std::string tenant;
    std::optional<int64_t> exp;
    bool has_acl = false;                // false: every channel of the tenant
    std::vector<std::string> subscribe;  // ACL patterns (lib/pulse/acl.h)
    std::vector<std::string> publish;
    /// The verified payload as one line of ASCII JSON (non-ASCII escaped):
    /// what pulse_authorize_request passes on in X-Pulse-Claims. Empty
    /// when refused.
    std::string payload;
};

struct Verdict {
    Refusal refusal = Refusal::kNone;
    std::string reason;  // human words for the log; never the token
    Claims claims;
    bool ok() const { return refusal == Refusal::kNone; }
};

/// Verifies `token` at time `now` (Unix seconds).
Verdict verify(std::string_view token, const KeySet& keys, const Policy& policy,
               int64_t now);

/// base64url without padding (RFC 7515 §2), strictly: any other byte, a
/// length of 1 mod 4 or non-zero trailing bits fail.
std::optional<std::string> base64url_decode(std::string_view in);

}  // namespace pulse::jwt
