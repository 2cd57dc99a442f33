#include "migrate.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iterator>
#include <optional>

#include "pulse/nchan_directives.h"

namespace pulse::migrate {

namespace {

constexpr std::string_view kNchan = "nchan_";
constexpr std::string_view kSidecarPath = "/pulse-sidecar/";
constexpr std::string_view kIngestPath = "/pulse-ingest/";
/// Where the packaged sidecar's ingest listens (its unit's
/// RuntimeDirectory).
constexpr std::string_view kIngestSocket = "/run/pulse-publisher/ingest.sock";

bool starts_with(std::string_view s, std::string_view p)
{
    return s.substr(0, p.size()) == p;
}

bool ends_with(std::string_view s, std::string_view p)
{
    return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

std::string pulse_name(std::string_view nchan)
{
    return "pulse_" + std::string(nchan.substr(kNchan.size()));
}

// nchan's role directives, aliases included
bool publishes(std::string_view n)
{
    return n == "nchan_publisher" || n == "nchan_publisher_location"
           || n == "nchan_pubsub" || n == "nchan_pubsub_location";
}

bool subscribes(std::string_view n)
{
    return n == "nchan_subscriber" || n == "nchan_subscriber_location"
           || n == "nchan_pubsub" || n == "nchan_pubsub_location";
}

bool is_redis(std::string_view n)
{
    return starts_with(n, "nchan_redis_") || n == "nchan_use_redis";
}

// The $nchan_ variables Pulse has under its own name.
constexpr std::pair<std::string_view, std::string_view> kVariables[] = {
    {"nchan_channel_id", "pulse_channel_id"},
    {"nchan_subscriber_type", "pulse_subscriber_type"},
    {"nchan_message_id", "pulse_message_id"},
};

// What behaves differently, by the directive that brings it in
// (docs/migrating-from-nchan.md, "Deliberate differences").
constexpr std::pair<std::string_view, std::string_view> kDifferences[] = {
    {"subscriber",
     "EventSource over HTTP/1.1 is sent chunked (the decoded body is "
     "nchan's); each multipart stream has its own random boundary; a "
     "malformed message id is 400 \"Message ID invalid\"; a subscriber "
     "more than pulse_subscriber_max_buffered (4 MiB) behind is "
     "disconnected and resumes with its last id"},
    {"nchan_subscribe_existing_channels_only",
     "pulse_subscribe_existing_channels_only answers 404, not 403, for "
     "a channel that does not exist"},
    {"nchan_stub_status",
     "the stub status's last line reads \"pulse version: ...\""},
    {"nchan_eventsource_ping_",
     "the EventSource ping settings inherit one by one (nchan merges "
     "ping_data from the parent's ping_comment)"},
    {"nchan_subscribe_request",
     "pulse_subscribe_request and pulse_unsubscribe_request also fire on "
     "abrupt disconnects and EventSource closes"},
    {"nchan_group_",
     "a group limit of N channels allows N (nchan N - 1), a group at its "
     "channel limit still takes publishes to the channels it has, and a "
     "group DELETE leaves no channel behind"},
    {"nchan_channel_events_channel_id",
     "every subscriber_enqueue event has its subscriber_dequeue, also "
     "when a worker is killed"},
    {"redis",
     "channels live in each nginx: a POST to the publishing location goes "
     "through the sidecar's ingest to a Redis Stream that every node's "
     "sidecar reads (one Redis round trip per publish, answered 202 "
     "\"stored <id>\" once Redis has it); backends may also PUBLISH to "
     "Redis (publisher.yaml)"},
};

std::string yaml_string(std::string_view s)
{
    std::string out = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out + "\"";
}

}  // namespace

struct Migration::Scope {
    bool redis = false;                 // publishes go through Redis
    const Directive* server = nullptr;  // the enclosing server block
};

Result<std::string> Migration::file(const std::string& name,
                                    std::string_view text)
{
    auto parsed = parse(text);
    if (!parsed.is_ok()) {
        return Status(Code::kInvalidArgument,
                      name + ": " + parsed.status().message());
    }
    file_ = name;
    edits_.clear();
    Scope top;
    walk(parsed.value(), text, top, "");
    std::sort(edits_.begin(), edits_.end(),
              [](const Edit& a, const Edit& b) { return a.begin > b.begin; });
    std::string out(text);
    size_t limit = out.size();
    for (const Edit& e : edits_) {
        if (e.end > limit) {
            return Status(Code::kInvalidArgument,
                          name + ": overlapping rewrites (a bug)");
        }
        out.replace(e.begin, e.end - e.begin, e.text);
        limit = e.begin;
    }
    return out;
}

void Migration::walk(const std::vector<Directive>& ds, std::string_view text,
                     Scope& scope, const std::string& parent)
{
    // A block's Redis settings apply to all of it, wherever they stand.
    for (const Directive& d : ds) {
        const std::string& n = d.name();
        if (n == "nchan_redis_pass" || n == "nchan_redis_url") {
            scope.redis = parent != "upstream" || scope.redis;
        } else if (n == "nchan_use_redis" && d.words.size() > 1) {
            scope.redis = d.words[1].value == "on";
        }
    }
    for (const Directive& d : ds) {
        directive(d, text, scope);
    }
}

void Migration::note(const Directive& d, const std::string& what)
{
    changes_.push_back(file_ + ":" + std::to_string(d.line()) + ": " + what);
}

namespace {

// The blanks before `at` on its line, or nullopt when something else is.
std::optional<std::string> indentation(std::string_view text, size_t at)
{
    size_t start = text.rfind('\n', at == 0 ? 0 : at - 1);
    start = start == std::string_view::npos || at == 0 ? 0 : start + 1;
    std::string_view before = text.substr(start, at - start);
    if (before.find_first_not_of(" \t") != std::string_view::npos) {
        return std::nullopt;
    }
    return std::string(before);
}

// Control characters as \xNN, so that `s` stays on one line.
std::string one_line(std::string_view s)
{
    std::string out;
    for (char c : s) {
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) {
            static const char kHex[] = "0123456789abcdef";
            out += "\\x";
            out += kHex[u >> 4];
            out += kHex[u & 0xf];
        } else {
            out += c;
        }
    }
    return out;
}

// A word as written (`raw`) with its prefix `from` made `to`; or, when
// escapes or quotes make the prefix other bytes, `value` quoted.
std::string renamed(std::string_view raw, std::string_view from,
                    std::string_view to, const std::string& value);

// `value` as one double-quoted nginx word.
std::string quoted(std::string_view value)
{
    std::string out = "\"";
    for (char c : value) {
        if (c == '"' || c == '\\') {
            out += '\\';
        }
        out += c;
    }
    return out + '"';
}

std::string renamed(std::string_view raw, std::string_view from,
                    std::string_view to, const std::string& value)
{
    size_t q = !raw.empty() && (raw[0] == '"' || raw[0] == '\'') ? 1 : 0;
    if (!starts_with(raw.substr(q), from)) {
        return quoted(value);
    }
    std::string out(raw);
    out.replace(q, from.size(), to);
    return out;
}

}  // namespace

void Migration::comment_out(const Directive& d, std::string_view text,
                            const std::string& why)
{
    // "# pulse-migrate: <why>", then each line of the directive behind a
    // "# " at its own indentation; whatever shares its first or last line
    // moves to a line of its own.
    auto lead = indentation(text, d.begin);
    std::string indent = lead ? *lead : std::string();
    std::string out = lead ? "" : "\n" + indent;
    // `why` may quote the config (a Redis host), whose words may hold any
    // byte: a line break there would end the comment
    out += "# pulse-migrate: " + one_line(why) + "\n" + indent + "# ";
    std::string_view original = text.substr(d.begin, d.end - d.begin);
    for (size_t i = 0; i < original.size(); ++i) {
        out += original[i];
        if (original[i] == '\n') {
            size_t blanks = original.find_first_not_of(" \t", i + 1);
            if (blanks == std::string_view::npos) {
                blanks = original.size();
            }
            out += original.substr(i + 1, blanks - i - 1);
            out += "# ";
            i = blanks - 1;
        }
    }
    size_t after = text.find_first_not_of(" \t", d.end);
    if (after != std::string_view::npos && text[after] != '\n') {
        out += "\n" + indent;
    }
    edits_.push_back({d.begin, d.end, out});
}

// A word's value is unescaped (nginx's \\ and quotes): an edit made from
// it would change the word's other characters. So the raw text's prefix
// (or suffix) is replaced when it is there as written, and otherwise the
// whole word is written again, quoted, with `value` escaped.
void Migration::rename_prefix(const Word& w, std::string_view text,
                              std::string_view from, std::string_view to,
                              const std::string& value)
{
    edits_.push_back(
        {w.begin, w.end,
         renamed(text.substr(w.begin, w.end - w.begin), from, to, value)});
}

void Migration::rename_suffix(const Word& w, std::string_view text,
                              std::string_view from, std::string_view to,
                              const std::string& value)
{
    std::string_view raw = text.substr(w.begin, w.end - w.begin);
    size_t q = !raw.empty() && (raw.back() == '"' || raw.back() == '\'')
                       && raw.size() > 1 && raw[0] == raw.back()
                   ? 1
                   : 0;
    raw.remove_suffix(q);
    if (ends_with(raw, from)) {
        size_t at = w.begin + raw.size() - from.size();
        edits_.push_back({at, at + from.size(), std::string(to)});
    } else {
        edits_.push_back({w.begin, w.end, quoted(value)});
    }
}

void Migration::rename_variables(const Directive& d, std::string_view text)
{
    for (size_t i = 1; i < d.words.size(); ++i) {
        const Word& w = d.words[i];
        std::string_view raw = text.substr(w.begin, w.end - w.begin);
        for (size_t at = raw.find('$'); at != std::string_view::npos;
             at = raw.find('$', at + 1))
        {
            size_t name_at = at + 1;
            if (name_at < raw.size() && raw[name_at] == '{') {
                ++name_at;
            }
            if (!starts_with(raw.substr(name_at), kNchan)) {
                continue;
            }
            size_t name_end = name_at;
            while (name_end < raw.size()
                   && (std::isalnum(static_cast<unsigned char>(raw[name_end]))
                       || raw[name_end] == '_'))
            {
                ++name_end;
            }
            std::string var(raw.substr(name_at, name_end - name_at));
            // $nchan_channel_id1..4: the multiplexed ids, Pulse has the
            // first one only
            const auto* it =
                std::find_if(std::begin(kVariables), std::end(kVariables),
                             [&](const auto& v) { return v.first == var; });
            if (it == std::end(kVariables)) {
                problems_.push_back(file_ + ":" + std::to_string(w.line)
                                    + ": $" + var
                                    + " has no Pulse equivalent; nginx -t "
                                      "will call it unknown");
                continue;
            }
            std::string to(it->second);
            edits_.push_back({w.begin + name_at, w.begin + name_end, to});
            note(d, "$" + var + " -> $" + to);
        }
    }
}

bool Migration::parse_redis_url(const Directive& d, const std::string& url,
                                RedisTarget& into)
{
    std::string rest = url;
    if (starts_with(rest, "rediss://")) {
        into.tls = true;
        tls_problem(d);
        rest = rest.substr(9);
    } else if (starts_with(rest, "redis://")) {
        rest = rest.substr(8);
    }
    size_t at = rest.rfind('@');
    if (at != std::string::npos) {
        std::string auth = rest.substr(0, at);
        rest = rest.substr(at + 1);
        size_t colon = auth.find(':');
        if (colon == std::string::npos) {
            into.password = auth;
        } else {
            into.username = auth.substr(0, colon);
            into.password = auth.substr(colon + 1);
        }
    }
    size_t slash = rest.find('/');
    if (slash != std::string::npos) {
        std::string db = rest.substr(slash + 1);
        rest = rest.substr(0, slash);
        if (!db.empty()) {
            if (db.find_first_not_of("0123456789") != std::string::npos
                || db.size() > 7) {
                problems_.push_back(file_ + ":" + std::to_string(d.line())
                                    + ": " + url + ": bad database number");
                return false;
            }
            into.db = std::atoi(db.c_str());
        }
    }
    size_t colon = rest.rfind(':');
    if (colon != std::string::npos && rest.find(']') == std::string::npos) {
        std::string port = rest.substr(colon + 1);
        rest = rest.substr(0, colon);
        if (port.empty() || port.size() > 5
            || port.find_first_not_of("0123456789") != std::string::npos
            || std::atoi(port.c_str()) > 65535)
        {
            problems_.push_back(file_ + ":" + std::to_string(d.line()) + ": "
                                + url + ": bad port");
            return false;
        }
        into.port = std::atoi(port.c_str());
    }
    if (!rest.empty()) {
        into.host = rest;
    }
    into.from =
        file_ + ":" + std::to_string(d.line()) + ": " + d.name() + " " + url;
    return true;
}

void Migration::tls_problem(const Directive& d)
{
    problems_.push_back(file_ + ":" + std::to_string(d.line()) + ": " + d.name()
                        + ": the sidecar reaches Redis over TCP or a Unix "
                          "socket, not TLS: keep Redis local or tunnel it");
}

void Migration::redis_directive(const Directive& d, std::string_view text,
                                Scope& scope)
{
    const std::string& n = d.name();
    std::string arg = d.words.size() > 1 ? d.words[1].value : "";
    uses_redis_ = uses_redis_ || scope.redis || n == "nchan_redis_server";
    std::string moved;
    if (n == "nchan_redis_url") {
        if (parse_redis_url(d, arg, redis_)) {
            have_redis_target_ = true;
            moved = "redis: host " + redis_.host + ", port "
                    + std::to_string(redis_.port);
        }
    } else if (n == "nchan_redis_pass") {
        auto it = upstreams_.find(arg);
        if (it == upstreams_.end()) {
            problems_.push_back(file_ + ":" + std::to_string(d.line())
                                + ": nchan_redis_pass " + arg
                                + ": no upstream of that name before it");
        } else {
            redis_ = it->second;
            have_redis_target_ = true;
            moved = "redis: the servers of upstream " + arg;
        }
    } else if (n == "nchan_redis_password") {
        redis_.password = arg;
        moved = "redis.password";
    } else if (n == "nchan_redis_username") {
        redis_.username = arg;
        moved = "redis.username";
    } else if (n == "nchan_redis_namespace") {
        namespace_ = arg;
        moved = "the source's pattern prefix";
    } else if (n == "nchan_use_redis") {
        moved = "the sidecar's source";
    } else if ((starts_with(n, "nchan_redis_ssl")
                || starts_with(n, "nchan_redis_tls"))
               && arg != "off")
    {
        redis_.tls = true;
        tls_problem(d);
    } else {
        dropped_settings_.push_back(n);
    }
    std::string why = moved.empty()
                          ? pulse::nchan_refusal(pulse_name(n))
                          : n + " moved to publisher.yaml (" + moved + ")";
    comment_out(d, text, why);
    note(d, moved.empty() ? "removed " + n : why);
}

void Migration::directive(const Directive& d, std::string_view text,
                          Scope& scope)
{
    const std::string& n = d.name();
    if (n == "include" && d.words.size() > 1) {
        includes_.push_back(d.words[1].value);
    }
    if (n == "load_module" && d.words.size() > 1
        && ends_with(d.words[1].value, "ngx_nchan_module.so"))
    {
        const Word& w = d.words[1];
        constexpr std::string_view kFrom = "ngx_nchan_module.so";
        std::string v = w.value;
        v.replace(v.size() - kFrom.size(), std::string::npos,
                  "ngx_http_pulse_module.so");
        rename_suffix(w, text, kFrom, "ngx_http_pulse_module.so", v);
        note(d, "load_module " + w.value + " -> " + v);
        // nginx refuses a block here, but the migration still carries
        // over what is inside (the output holds no nchan_ directive)
        if (d.block) {
            walk(d.children, text, scope, n);
        }
        return;
    }
    if (n == "upstream" && d.block) {
        bool only_redis = !d.children.empty();
        RedisTarget target;
        bool have = false;
        for (const Directive& c : d.children) {
            only_redis = only_redis && is_redis(c.name());
            if (c.name() == "nchan_redis_server" && c.words.size() > 1 && !have)
            {
                bool replica =
                    c.words.size() > 2 && c.words[2].value == "slave";
                if (!replica) {
                    have = parse_redis_url(c, c.words[1].value, target);
                }
            }
            if (c.name() == "nchan_redis_password" && c.words.size() > 1) {
                target.password = c.words[1].value;
            }
            if (c.name() == "nchan_redis_username" && c.words.size() > 1) {
                target.username = c.words[1].value;
            }
        }
        if (have && d.words.size() > 1) {
            upstreams_[d.words[1].value] = target;
        }
        if (only_redis) {
            uses_redis_ = true;
            for (const Directive& c : d.children) {
                const std::string& cn = c.name();
                if (cn != "nchan_redis_server" && cn != "nchan_redis_password"
                    && cn != "nchan_redis_username")
                {
                    dropped_settings_.push_back(cn);
                }
            }
            comment_out(d, text,
                        "a Redis upstream of nchan's: the sidecar's redis: "
                        "in publisher.yaml");
            note(d,
                 "removed upstream "
                     + (d.words.size() > 1 ? d.words[1].value : std::string())
                     + " (Redis servers: publisher.yaml)");
            return;
        }
    }
    if (starts_with(n, kNchan)) {
        for (const auto& [trigger, line] : kDifferences) {
            if ((trigger == "subscriber" && subscribes(n))
                || starts_with(n, trigger)) {
                differences_.emplace(std::string(trigger), std::string(line));
            }
        }
        if (is_redis(n)) {
            redis_directive(d, text, scope);
            return;
        }
        if (n == "nchan_storage_engine" && d.words.size() > 1
            && d.words[1].value == "redis")
        {
            uses_redis_ = true;
            comment_out(d, text, pulse::nchan_storage_engine_refusal());
            note(d, "removed nchan_storage_engine redis");
            return;
        }
        std::string refusal = pulse::nchan_refusal(pulse_name(n));
        if (!refusal.empty()) {
            comment_out(d, text, refusal);
            note(d, "removed " + n + ": " + refusal);
            return;
        }
        std::string pn = pulse_name(n);
        rename_prefix(d.words[0], text, kNchan, "pulse_", pn);
        note(d, n + " -> " + pn);
        if (publishes(n) && scope.redis && scope.server != nullptr
            && !sidecar_added_) {
            uses_redis_ = true;
            differences_.emplace(
                "redis", std::string(std::end(kDifferences)[-1].second));
            // a server-level publisher: the server's own settings
            publisher_location_ =
                parent_location_ != nullptr ? parent_location_ : scope.server;
        }
    }
    rename_variables(d, text);
    if (d.block) {
        Scope inner = scope;
        if (n == "server") {
            inner.server = &d;
            for (const Directive& c : d.children) {
                if (c.name() == "listen" && c.words.size() > 1
                    && sidecar_listen_.empty()) {
                    sidecar_listen_ = c.words[1].value;
                }
            }
        }
        const Directive* saved = parent_location_;
        if (n == "location") {
            parent_location_ = &d;
        }
        walk(d.children, text, inner, n);
        parent_location_ = saved;
        if (n == "server" && publisher_location_ != nullptr && !sidecar_added_)
        {
            add_sidecar_location(d, text, *publisher_location_);
        }
    }
}

void Migration::add_sidecar_location(const Directive& server,
                                     std::string_view text,
                                     const Directive& publisher)
{
    sidecar_added_ = true;
    // the publishing location's channel settings: a channel takes those of
    // the location that last published to it
    std::vector<std::string> copied;
    for (const Directive& c : publisher.children) {
        const std::string& n = c.name();
        if (starts_with(n, "nchan_message_") || n == "nchan_store_messages"
            || n == "nchan_channel_group" || n == "nchan_channel_timeout")
        {
            if (!pulse::nchan_refusal(pulse_name(n)).empty()) {
                continue;
            }
            const Word& w = c.words[0];
            std::string line = renamed(text.substr(w.begin, w.end - w.begin),
                                       kNchan, "pulse_", pulse_name(n));
            for (size_t i = 1; i < c.words.size(); ++i) {
                line += " ";
                line += text.substr(c.words[i].begin,
                                    c.words[i].end - c.words[i].begin);
            }
            copied.push_back(line + ";");
        }
    }
    std::string in = "    ";
    if (!server.children.empty()) {
        in = indentation(text, server.children.front().begin).value_or(in);
    }
    std::string in2 = in + "    ";
    std::string loc =
        "\n" + in + "# pulse-migrate: pulse-publisher publishes here what\n"
        + in + "# backends PUBLISH to Redis (publisher.yaml), with the\n" + in
        + "# settings of the location that published through Redis (line "
        + std::to_string(publisher.line()) + ").\n" + in + "location ~ ^"
        + std::string(kSidecarPath) + "(.+)$ {\n" + in2 + "allow 127.0.0.1;\n"
        + in2 + "allow ::1;\n" + in2 + "allow unix:;\n" + in2 + "deny all;\n"
        + in2 + "pulse_publisher;\n" + in2 + "pulse_channel_id $1;\n";
    loc += in2 + "pulse_publisher_message_id on;  # the ingest's stream ids\n";
    for (const std::string& c : copied) {
        loc += in2 + c + "\n";
    }
    loc += in + "}\n";
    loc += route_to_ingest(server, text, publisher, in);
    // before the line of the server's `}` when it stands alone there
    size_t at = server.block_close;
    if (indentation(text, at)) {
        at = text.rfind('\n', at) + 1;
    } else {
        loc += "\n";
    }
    edits_.push_back({at, at, loc});
    note(server, "added location ~ ^" + std::string(kSidecarPath)
                     + "(.+)$ for the sidecar");
    publisher_location_ = nullptr;
}

// POST and PUT to the location that published through Redis go to the
// sidecar's ingest, which writes them to a Redis Stream every node reads:
// nchan's publish-on-any-node. Returns the internal location to add.
std::string Migration::route_to_ingest(const Directive& server,
                                       std::string_view text,
                                       const Directive& publisher,
                                       const std::string& in)
{
    if (&publisher == &server) {
        problems_.push_back(
            file_ + ":" + std::to_string(publisher.line())
            + ": a server-level publisher through Redis: route its "
              "publishes to the sidecar's ingest by hand (docs/publisher.md, "
              "Ingest)");
        return "";
    }
    // the channel id it publishes to: its own, or the server's; a
    // publisher channel id wins over the common one
    const Directive* id = nullptr;
    bool split = false;
    for (const Directive* scope : {&publisher, &server}) {
        const Directive* common = nullptr;
        for (const Directive& c : scope->children) {
            const std::string& n = c.name();
            split = split || n == "nchan_channel_id_split_delimiter";
            if (n == "nchan_publisher_channel_id"
                || n == "nchan_pub_channel_id") {
                id = &c;
            } else if (n == "nchan_channel_id"
                       || n == "nchan_pubsub_channel_id") {
                common = &c;
            }
        }
        id = id != nullptr ? id : common;
        if (id != nullptr) {
            break;
        }
    }
    if (id == nullptr || id->words.size() != 2 || split) {
        problems_.push_back(
            file_ + ":" + std::to_string(publisher.line())
            + ": publishes to several channels at once (or to none named): "
              "the sidecar's ingest takes one channel per POST; route them "
              "by hand (docs/publisher.md, Ingest)");
        return "";
    }
    const Word& w = id->words[1];
    std::string expr(text.substr(w.begin, w.end - w.begin));
    std::string in2 = in + "    ";
    std::string inside = in;
    if (!publisher.children.empty()) {
        inside =
            indentation(text, publisher.children.front().begin).value_or(in2);
    }
    size_t open = text.find('{', publisher.words.back().end);
    edits_.push_back(
        {open + 1, open + 1,
         "\n" + inside
             + "# pulse-migrate: a publish goes to every node through "
               "the sidecar's ingest\n"
             + inside + "set $pulse_ingest_channel " + expr + ";\n" + inside
             + "if ($request_method ~ ^(POST|PUT)$) {\n" + inside
             + "    rewrite ^ " + std::string(kIngestPath)
             + "$pulse_ingest_channel last;\n" + inside + "}"});
    note(publisher, "publishes through the sidecar's ingest ("
                        + std::string(kIngestSocket) + ")");
    ingest_ = true;
    std::string loc = "\n" + in;
    loc +=
        "# pulse-migrate: the sidecar's ingest (docs/publisher.md, Ingest)\n";
    loc += in + "location ~ ^" + std::string(kIngestPath) + "(.+)$ {\n";
    loc += in2 + "internal;\n";
    loc += in2 + "proxy_pass http://unix:" + std::string(kIngestSocket)
           + ":/publish/$1;\n";
    loc += in2 + "proxy_http_version 1.1;\n" + in + "}\n";
    return loc;
}

std::string Migration::yaml() const
{
    std::string host = "127.0.0.1";
    std::string port = "80";
    std::string unix_socket;
    std::string listen = sidecar_listen_;
    if (starts_with(listen, "unix:")) {
        unix_socket = listen.substr(5);
    } else if (!listen.empty()) {
        size_t colon = listen.rfind(':');
        bool v6 = listen.front() == '[';
        if (colon != std::string::npos && (!v6 || listen[colon - 1] == ']')) {
            std::string h = listen.substr(0, colon);
            port = listen.substr(colon + 1);
            if (h != "*" && h != "0.0.0.0" && h != "[::]") {
                host = v6 ? h.substr(1, h.size() - 2) : h;
            }
        } else if (listen.find_first_not_of("0123456789") == std::string::npos)
        {
            port = listen;
        }
    }
    std::string y;
    y += "# pulse-publisher configuration, written by pulse-migrate from the\n"
         "# nchan config's Redis settings";
    y += redis_.from.empty() ? ".\n" : " (" + redis_.from + ").\n";
    y += "# Check it with: pulse-publisher -c publisher.yaml --check\n\n";
    y += "nginx:\n";
    if (unix_socket.empty()) {
        y += "  host: " + yaml_string(host) + "\n  port: " + port + "\n";
    } else {
        y += "  unix: " + yaml_string(unix_socket) + "\n";
    }
    y += "  publish_path: "
         + yaml_string(std::string(kSidecarPath) + "{channel}")
         + "\n\nredis:\n";
    if (redis_.unix_socket.empty()) {
        y += "  host: " + yaml_string(redis_.host)
             + "\n  port: " + std::to_string(redis_.port) + "\n";
    } else {
        y += "  unix: " + yaml_string(redis_.unix_socket) + "\n";
    }
    y += "  db: " + std::to_string(redis_.db) + "\n";
    if (!redis_.username.empty()) {
        y += "  username: " + yaml_string(redis_.username) + "\n";
    }
    if (!redis_.password.empty()) {
        y += "  password: " + yaml_string(redis_.password) + "\n";
    }
    std::string prefix = namespace_ + "pulse:";
    if (ingest_) {
        y += "\n# POSTs to any node's publishing location (docs/publisher.md, "
             "Ingest)\ningest:\n  listen: "
             + yaml_string("unix:" + std::string(kIngestSocket))
             + "\n  stream: " + yaml_string(prefix + "ingest") + "\n";
    }
    y += "\nmetrics: 127.0.0.1:9464\n\nsources:\n"
         "  # Backends publish to every node with\n"
         "  #   PUBLISH "
         + prefix
         + "<channel> <message>\n"
           "  - name: nchan-redis\n"
           "    type: pubsub\n"
           "    patterns: ["
         + yaml_string(prefix + "*")
         + "]\n"
           "    target: \"{1}\"\n";
    if (ingest_) {
        y += "  # what the ingest stored, on every node, under its stream id\n"
             "  - name: ingest\n"
             "    type: stream\n"
             "    keys: ["
             + yaml_string(prefix + "ingest")
             + "]\n"
               "    target: \"{pulse_channel}\"\n"
               "    body_field: data\n"
               "    event_field: event\n"
               "    content_type_field: content_type\n"
               "    key: \"{key}\"\n";
    }
    return y;
}

std::vector<std::string> Migration::report() const
{
    std::vector<std::string> out = changes_;
    for (const auto& [trigger, line] : differences_) {
        (void) trigger;
        out.push_back("differs: " + line);
    }
    if (uses_redis_) {
        if (!dropped_settings_.empty()) {
            std::string names;
            for (const std::string& n : dropped_settings_) {
                names += (names.empty() ? "" : ", ") + n;
            }
            out.push_back(
                "dropped (the sidecar reconnects with capped backoff "
                "and needs none of them): "
                + names);
        }
        if (!have_redis_target_) {
            out.push_back(
                "redis: no nchan_redis_url or nchan_redis_server: "
                "publisher.yaml uses 127.0.0.1:6379, nchan's "
                "default");
        }
    }
    for (const std::string& p : problems_) {
        out.push_back("problem: " + p);
    }
    return out;
}

}  // namespace pulse::migrate
