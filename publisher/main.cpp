// pulse-publisher: Redis Pub/Sub and Streams -> publishes on the local
// nginx. This build validates and loads the configuration; the event loop
// is issue 5.

#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "config.h"

namespace {

constexpr int kExitUsage = 64;   // EX_USAGE
constexpr int kExitConfig = 78;  // EX_CONFIG

void usage(FILE* out)
{
    std::fputs(
        "usage: pulse-publisher -c FILE [--check]\n"
        "  -c FILE   YAML configuration (see conf.d/publisher.yaml.example)\n"
        "  --check   validate the configuration and exit\n",
        out);
}

}  // namespace

int main(int argc, char** argv)
{
    std::string path;
    bool check = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (std::strcmp(argv[i], "--check") == 0) {
            check = true;
        } else if (std::strcmp(argv[i], "-h") == 0
                   || std::strcmp(argv[i], "--help") == 0)
        {
            usage(stdout);
            return 0;
        } else {
            std::fprintf(stderr, "publisher: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return kExitUsage;
        }
    }
    if (path.empty()) {
        usage(stderr);
        return kExitUsage;
    }
    try {
        pulse::publisher::Config config = pulse::publisher::Config::load(path);
        if (check) {
            std::printf("publisher: %s: ok (%zu sources)\n", path.c_str(),
                        config.sources.size());
            return 0;
        }
        std::fprintf(stderr,
                     "publisher: the Redis event loop is not built yet; "
                     "use --check\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "publisher: config error: %s\n", e.what());
        return kExitConfig;
    }
}
