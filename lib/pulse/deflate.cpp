#include "pulse/deflate.h"

#include <algorithm>

namespace pulse::ws {

namespace {

constexpr unsigned char kTail[4] = {0x00, 0x00, 0xFF, 0xFF};

unsigned char* bytes(std::string_view s)
{
    return reinterpret_cast<unsigned char*>(const_cast<char*>(s.data()));
}

}  // namespace

Result<std::string> deflate_message(std::string_view in,
                                    const DeflateOptions& opt)
{
    z_stream z{};
    // zlib refuses a raw window of 8 bits; 9 is the smallest it makes.
    int bits = opt.window_bits < 9 ? 9 : opt.window_bits;
    if (deflateInit2(&z, opt.level, Z_DEFLATED, -bits, opt.mem_level,
                     opt.strategy)
        != Z_OK)
    {
        return Status(Code::kNoMemory, "deflateInit2 failed");
    }
    std::string out;
    out.resize(deflateBound(&z, static_cast<uLong>(in.size())) + 16);
    z.next_in = bytes(in);
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<unsigned char*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    int rc = deflate(&z, Z_SYNC_FLUSH);
    size_t n = out.size() - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_OK || z.avail_in != 0) {
        return Status(Code::kNoMemory, "deflate failed");
    }
    out.resize(n);
    // Z_SYNC_FLUSH ends with an empty stored block, 00 00 FF FF: dropped
    if (n >= 4
        && out.compare(n - 4, 4, reinterpret_cast<const char*>(kTail), 4) == 0)
    {
        out.resize(n - 4);
    }
    return out;
}

std::string deflate_stored(std::string_view in)
{
    constexpr size_t kMaxStored = 0xFFFF;  // RFC 1951 3.2.4: LEN is 16 bits
    std::string out;
    out.reserve(in.size() + 5 * (in.size() / kMaxStored + 2));
    size_t at = 0;
    do {
        size_t n = std::min(in.size() - at, kMaxStored);
        // BFINAL 0, BTYPE 00, padded to the byte; LEN and NLEN, LSB first
        out += '\0';
        out += static_cast<char>(n & 0xFF);
        out += static_cast<char>(n >> 8);
        out += static_cast<char>(~n & 0xFF);
        out += static_cast<char>((~n >> 8) & 0xFF);
        out.append(in.substr(at, n));
        at += n;
    } while (at < in.size());
    out += '\0';  // the empty stored block a sync flush ends with
    out.append(reinterpret_cast<const char*>(kTail), 4);
    return out;
}

Inflater::~Inflater()
{
    if (ready_) {
        inflateEnd(&z_);
    }
}

Result<std::string> Inflater::inflate(std::string_view in, size_t max_out,
                                      bool reset)
{
    if (!ready_) {
        if (inflateInit2(&z_, -15) != Z_OK) {
            return Status(Code::kNoMemory, "inflateInit2 failed");
        }
        ready_ = true;
    }
    std::string out;
    unsigned char chunk[16384];
    // the message, then the tail the sender removed
    for (std::string_view part :
         {in, std::string_view(reinterpret_cast<const char*>(kTail), 4)})
    {
        z_.next_in = bytes(part);
        z_.avail_in = static_cast<uInt>(part.size());
        do {
            z_.next_out = chunk;
            z_.avail_out = sizeof(chunk);
            int rc = ::inflate(&z_, Z_SYNC_FLUSH);
            if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
                inflateReset(&z_);
                return Status(Code::kInvalidArgument,
                              "Invalid permessage-deflate data");
            }
            size_t n = sizeof(chunk) - z_.avail_out;
            if (out.size() + n > max_out) {
                inflateReset(&z_);
                return Status(Code::kTooLarge, "Inflated message too large");
            }
            out.append(reinterpret_cast<const char*>(chunk), n);
            if (rc == Z_STREAM_END) {
                // a final block: the next message starts a new stream
                inflateReset(&z_);
                if (z_.avail_in > 0 && part.data() == in.data()) {
                    return Status(Code::kInvalidArgument,
                                  "Invalid permessage-deflate data");
                }
                break;
            }
            if (rc == Z_BUF_ERROR && n == 0) {
                break;  // needs more input
            }
        } while (z_.avail_in > 0 || z_.avail_out == 0);
    }
    if (reset) {
        inflateReset(&z_);
    }
    return out;
}

}  // namespace pulse::ws
