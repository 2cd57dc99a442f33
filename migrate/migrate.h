#pragma once

// nchan config -> Pulse config (docs/migrating-from-nchan.md,
// "pulse-migrate"). Files go through one Migration in the order nginx
// reads them; the Redis settings they hold become one publisher.yaml.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "nginx_conf.h"
#include "pulse/status.h"

namespace pulse::migrate {

/// Where nchan reached Redis, as the sidecar's YAML spells it.
struct RedisTarget {
    std::string host = "127.0.0.1";
    int port = 6379;
    int db = 0;
    std::string unix_socket;
    std::string username;
    std::string password;
    bool tls = false;
    std::string from;  // "file:line: nchan_redis_url ..." for the YAML
};

class Migration {
public:
    /// The migrated text of one file, `name` as the report names it.
    /// `include` paths met in it are appended to includes().
    Result<std::string> file(const std::string& name, std::string_view text);

    /// The include arguments met so far, in order (globs, as written).
    const std::vector<std::string>& includes() const { return includes_; }

    /// Every change, one line each ("file:line: what"), then the
    /// behaviour differences that apply, then what needs a hand.
    std::vector<std::string> report() const;

    /// Whether the nchan config used Redis (then yaml() is the sidecar's).
    bool uses_redis() const { return uses_redis_; }
    std::string yaml() const;

    /// Problems the result cannot work around (TLS to Redis, a variable
    /// with no Pulse equivalent); the tool exits non-zero when any.
    const std::vector<std::string>& problems() const { return problems_; }

private:
    struct Edit {
        size_t begin;
        size_t end;
        std::string text;
    };
    struct Scope;  // what a block inherits

    void walk(const std::vector<Directive>& ds, std::string_view text,
              Scope& scope, const std::string& parent);
    void directive(const Directive& d, std::string_view text, Scope& scope);
    void rename_prefix(const Word& w, std::string_view text,
                       std::string_view from, std::string_view to,
                       const std::string& value);
    void rename_suffix(const Word& w, std::string_view text,
                       std::string_view from, std::string_view to,
                       const std::string& value);
    void redis_directive(const Directive& d, std::string_view text,
                         Scope& scope);
    void rename_variables(const Directive& d, std::string_view text);
    void comment_out(const Directive& d, std::string_view text,
                     const std::string& why);
    void note(const Directive& d, const std::string& what);
    void add_sidecar_location(const Directive& server, std::string_view text,
                              const Directive& publisher);
    std::string route_to_ingest(const Directive& server, std::string_view text,
                                const Directive& publisher,
                                const std::string& in);
    void tls_problem(const Directive& d);
    bool parse_redis_url(const Directive& d, const std::string& url,
                         RedisTarget& into);

    std::string file_;
    std::vector<Edit> edits_;
    std::vector<std::string> includes_;
    std::vector<std::string> changes_;
    std::vector<std::string> problems_;
    std::map<std::string, std::string> differences_;  // trigger -> line
    std::map<std::string, RedisTarget> upstreams_;
    RedisTarget redis_;
    bool have_redis_target_ = false;
    bool uses_redis_ = false;
    bool sidecar_added_ = false;
    bool ingest_ = false;  // a publisher location routed to the ingest
    std::string namespace_;
    std::string sidecar_listen_;  // the server's listen, for nginx:
    std::vector<std::string> dropped_settings_;
    const Directive* parent_location_ = nullptr;     // the walk's location
    const Directive* publisher_location_ = nullptr;  // published via Redis
};

}  // namespace pulse::migrate
