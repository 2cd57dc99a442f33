#include "http_response.h"

#include <cctype>
#include <cstdlib>

#include "pulse/text.h"

namespace pulse::publisher {

namespace {

std::string lower(std::string_view s)
{
    std::string out(s);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

using text::trim;

bool digits(std::string_view s, size_t max_len)
{
    if (s.empty() || s.size() > max_len) {
        return false;
    }
    for (char c : s) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    return true;
}

}  // namespace

void HttpResponseParser::reset()
{
    state_ = State::kHead;
    buf_.clear();
    current_ = Response{};
    body_left_ = 0;
    error_.clear();
}

bool HttpResponseParser::fail(std::string why)
{
    error_ = std::move(why);
    return false;
}

// Parses a complete head from buf_, if there is one.
bool HttpResponseParser::head(std::vector<Response>* out, bool* progress)
{
    size_t end = buf_.find("\r\n\r\n");
    if (end == std::string::npos) {
        if (buf_.size() > kMaxHead) {
            return fail("response head over 64 KiB");
        }
        return true;
    }
    *progress = true;
    std::string_view head(buf_.data(), end);
    size_t eol = head.find("\r\n");
    std::string_view status_line = head.substr(0, eol);
    // HTTP/1.x SP 3DIGIT [SP reason]
    if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1."
        || (status_line[7] != '0' && status_line[7] != '1')
        || status_line[8] != ' ' || !digits(status_line.substr(9, 3), 3)
        || (status_line.size() > 12 && status_line[12] != ' '))
    {
        return fail("bad status line: "
                    + std::string(status_line.substr(0, 80)));
    }
    current_ = Response{};
    current_.status = std::atoi(std::string(status_line.substr(9, 3)).c_str());
    bool chunked = false;
    std::optional<size_t> length;
    std::string_view rest = eol == std::string_view::npos
                                ? std::string_view()
                                : head.substr(eol + 2);
    while (!rest.empty()) {
        size_t next = rest.find("\r\n");
        std::string_view line = rest.substr(0, next);
        rest = next == std::string_view::npos ? std::string_view()
                                              : rest.substr(next + 2);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            return fail("bad header line");
        }
        std::string name = lower(trim(line.substr(0, colon)));
        std::string_view value = trim(line.substr(colon + 1));
        if (name == "content-length") {
            if (!digits(value, 12)) {
                return fail("bad Content-Length");
            }
            length = std::strtoull(std::string(value).c_str(), nullptr, 10);
        } else if (name == "transfer-encoding") {
            chunked = lower(value).find("chunked") != std::string::npos;
        } else if (name == "connection") {
            current_.close = lower(value).find("close") != std::string::npos;
        }
    }
    buf_.erase(0, end + 4);
    bool no_body = current_.status == 204 || current_.status == 304
                   || current_.status / 100 == 1;
    if (no_body) {
        out->push_back(current_);
        state_ = State::kHead;
    } else if (chunked) {
        state_ = State::kChunkSize;
    } else if (length) {
        if (*length > kMaxBody) {
            return fail("response body over 1 MiB");
        }
        body_left_ = *length;
        state_ = State::kBody;
    } else {
        // nginx always frames its answers; a body to the end of the
        // connection is not something a pipelined client can read
        return fail("response without a length");
    }
    return true;
}

bool HttpResponseParser::feed(std::string_view bytes,
                              std::vector<Response>* out)
{
    buf_.append(bytes);
    bool progress = true;
    while (progress) {
        progress = false;
        switch (state_) {
            case State::kHead:
                if (buf_.empty()) {
                    return true;
                }
                if (!head(out, &progress)) {
                    return false;
                }
                break;
            case State::kBody: {
                size_t n = std::min(body_left_, buf_.size());
                buf_.erase(0, n);
                body_left_ -= n;
                if (body_left_ == 0) {
                    out->push_back(current_);
                    state_ = State::kHead;
                    progress = true;
                }
                break;
            }
            case State::kChunkSize: {
                size_t eol = buf_.find("\r\n");
                if (eol == std::string::npos) {
                    if (buf_.size() > 64) {
                        return fail("bad chunk size");
                    }
                    return true;
                }
                std::string_view size_text =
                    std::string_view(buf_).substr(0, eol);
                size_text = size_text.substr(0, size_text.find(';'));
                size_text = trim(size_text);
                if (size_text.empty() || size_text.size() > 8) {
                    return fail("bad chunk size");
                }
                size_t size = 0;
                for (char c : size_text) {
                    int v = std::isxdigit(static_cast<unsigned char>(c))
                                ? (std::isdigit(static_cast<unsigned char>(c))
                                       ? c - '0'
                                       : (std::tolower(c) - 'a' + 10))
                                : -1;
                    if (v < 0) {
                        return fail("bad chunk size");
                    }
                    size = size * 16 + static_cast<size_t>(v);
                }
                buf_.erase(0, eol + 2);
                if (size > kMaxBody) {
                    return fail("chunk over 1 MiB");
                }
                body_left_ = size;
                state_ = size == 0 ? State::kTrailer : State::kChunkData;
                progress = true;
                break;
            }
            case State::kChunkData: {
                // the data, then its CRLF
                if (buf_.size() < body_left_ + 2) {
                    return true;
                }
                if (buf_.compare(body_left_, 2, "\r\n") != 0) {
                    return fail("chunk not followed by CRLF");
                }
                buf_.erase(0, body_left_ + 2);
                state_ = State::kChunkSize;
                progress = true;
                break;
            }
            case State::kTrailer: {
                if (buf_.compare(0, 2, "\r\n") == 0) {
                    buf_.erase(0, 2);
                } else {
                    size_t end = buf_.find("\r\n\r\n");
                    if (end == std::string::npos) {
                        if (buf_.size() > kMaxHead) {
                            return fail("trailer over 64 KiB");
                        }
                        return true;
                    }
                    buf_.erase(0, end + 4);
                }
                out->push_back(current_);
                state_ = State::kHead;
                progress = true;
                break;
            }
        }
    }
    return true;
}

}  // namespace pulse::publisher
