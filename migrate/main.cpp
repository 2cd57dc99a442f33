// pulse-migrate: an nchan nginx config to a Pulse one, plus the sidecar's
// publisher.yaml when nchan used Redis (docs/migrating-from-nchan.md).
//
//   pulse-migrate -o DIR nginx.conf
//
// writes DIR/nginx.conf and every file it includes by a relative path (as
// nginx resolves them: from the main file's directory), DIR/publisher.yaml
// when Redis was used, and prints the report: every change, the behaviour
// differences that apply, the problems left.

#include <glob.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <sys/stat.h>

#include "migrate.h"

namespace {

constexpr int kExitProblems = 1;
constexpr int kExitUsage = 64;  // EX_USAGE
constexpr int kExitData = 65;   // EX_DATAERR: a file nginx could not read
constexpr int kExitIo = 74;     // EX_IOERR

void usage(FILE* out)
{
    std::fputs(
        "usage: pulse-migrate -o DIR NGINX_CONF\n"
        "  writes DIR/<NGINX_CONF's name>, the files it includes by a "
        "relative path,\n"
        "  and DIR/publisher.yaml when the config used Redis; prints "
        "what changed\n",
        out);
}

bool read_file(const std::string& path, std::string& out)
{
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        return false;
    }
    std::ostringstream s;
    s << f.rdbuf();
    out = s.str();
    return true;
}

bool make_dirs(const std::string& dir)
{
    std::string at;
    for (size_t i = 0; i <= dir.size(); ++i) {
        if (i == dir.size() || dir[i] == '/') {
            if (!at.empty() && mkdir(at.c_str(), 0755) != 0 && errno != EEXIST)
            {
                return false;
            }
        }
        if (i < dir.size()) {
            at += dir[i];
        }
    }
    return true;
}

bool write_file(const std::string& path, const std::string& text)
{
    size_t slash = path.rfind('/');
    if (slash != std::string::npos && !make_dirs(path.substr(0, slash))) {
        return false;
    }
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
    return static_cast<bool>(f.flush());
}

std::string dir_of(const std::string& path)
{
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

int main(int argc, char** argv)
{
    std::string out_dir;
    std::string conf;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            out_dir = argv[++i];
        } else if (std::strcmp(argv[i], "-h") == 0
                   || std::strcmp(argv[i], "--help") == 0)
        {
            usage(stdout);
            return 0;
        } else if (argv[i][0] != '-' && conf.empty()) {
            conf = argv[i];
        } else {
            std::fprintf(stderr, "pulse-migrate: unknown argument '%s'\n",
                         argv[i]);
            usage(stderr);
            return kExitUsage;
        }
    }
    if (conf.empty() || out_dir.empty()) {
        usage(stderr);
        return kExitUsage;
    }
    const std::string base = dir_of(conf) + "/";
    pulse::migrate::Migration m;
    std::deque<std::string> todo{conf};
    std::set<std::string> seen;
    std::vector<std::string> outside;
    while (!todo.empty()) {
        std::string path = todo.front();
        todo.pop_front();
        if (!seen.insert(path).second) {
            continue;
        }
        std::string text;
        if (!read_file(path, text)) {
            std::fprintf(stderr, "pulse-migrate: %s: %s\n", path.c_str(),
                         std::strerror(errno));
            return kExitIo;
        }
        size_t known = m.includes().size();
        auto migrated = m.file(path, text);
        if (!migrated.is_ok()) {
            std::fprintf(stderr, "pulse-migrate: %s\n",
                         migrated.status().message().c_str());
            return kExitData;
        }
        std::string rel;
        if (path == conf) {
            size_t slash = conf.rfind('/');
            rel = slash == std::string::npos ? conf : conf.substr(slash + 1);
        } else if (path.compare(0, base.size(), base) == 0) {
            rel = path.substr(base.size());
        } else if (migrated.value() != text) {
            outside.push_back(path);
        }
        if (!rel.empty() && !write_file(out_dir + "/" + rel, migrated.value()))
        {
            std::fprintf(stderr, "pulse-migrate: %s/%s: %s\n", out_dir.c_str(),
                         rel.c_str(), std::strerror(errno));
            return kExitIo;
        }
        for (size_t i = known; i < m.includes().size(); ++i) {
            const std::string& inc = m.includes()[i];
            std::string pattern = inc.front() == '/' ? inc : base + inc;
            glob_t g{};
            if (glob(pattern.c_str(), 0, nullptr, &g) == 0) {
                for (size_t k = 0; k < g.gl_pathc; ++k) {
                    todo.emplace_back(g.gl_pathv[k]);
                }
            }
            globfree(&g);
        }
    }
    if (m.uses_redis() && !write_file(out_dir + "/publisher.yaml", m.yaml())) {
        std::fprintf(stderr, "pulse-migrate: %s/publisher.yaml: %s\n",
                     out_dir.c_str(), std::strerror(errno));
        return kExitIo;
    }
    for (const std::string& line : m.report()) {
        std::printf("%s\n", line.c_str());
    }
    for (const std::string& path : outside) {
        std::printf(
            "problem: %s is included by an absolute path and has "
            "nchan directives: run pulse-migrate on it too\n",
            path.c_str());
    }
    return m.problems().empty() && outside.empty() ? 0 : kExitProblems;
}
