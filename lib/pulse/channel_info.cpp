#include "pulse/channel_info.h"

#include "pulse/text.h"

namespace pulse {

using text::starts_with;
using text::trim;

InfoFormat info_format_from_accept(std::string_view accept)
{
    size_t start = 0;
    while (start <= accept.size()) {
        size_t comma = accept.find(',', start);
        std::string_view part = trim(accept.substr(
            start, comma == std::string_view::npos ? comma : comma - start));
        std::string_view sub;
        if (starts_with(part, "text/")) {
            sub = part.substr(5);
        } else if (starts_with(part, "application/")) {
            sub = part.substr(12);
        }
        if (starts_with(sub, "plain")) {
            return InfoFormat::kPlain;
        }
        if (starts_with(sub, "json") || starts_with(sub, "x-json")) {
            return InfoFormat::kJson;
        }
        if (starts_with(sub, "yaml") || starts_with(sub, "x-yaml")) {
            return InfoFormat::kYaml;
        }
        if (starts_with(sub, "xml")) {
            return InfoFormat::kXml;
        }
        if (comma == std::string_view::npos) {
            break;
        }
        start = comma + 1;
    }
    return InfoFormat::kPlain;
}

std::string_view info_content_type(InfoFormat f)
{
    switch (f) {
        case InfoFormat::kJson:
            return "text/json";
        case InfoFormat::kXml:
            return "text/xml";
        case InfoFormat::kYaml:
            return "text/yaml";
        case InfoFormat::kPlain:
            break;
    }
    return "text/plain";
}

std::string format_channel_info(const ChannelInfo& info, InfoFormat f)
{
    std::string msgs = std::to_string(info.messages);
    std::string req = std::to_string(info.requested);
    std::string subs = std::to_string(info.subscribers);
    std::string id = to_string(info.last_id);
    std::string out;
    switch (f) {
        case InfoFormat::kPlain:
            out = "queued messages: " + msgs + "\r\nlast requested: " + req
                  + " sec. ago\r\nactive subscribers: " + subs
                  + "\r\nlast message id: " + id;
            break;
        case InfoFormat::kJson:
            out = "{\"messages\": " + msgs + ", \"requested\": " + req
                  + ", \"subscribers\": " + subs + ", \"last_message_id\": \""
                  + id + "\" }";
            break;
        case InfoFormat::kXml:
            out =
                "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\r\n<channel>\r\n"
                "  <messages>"
                + msgs + "</messages>\r\n  <requested>" + req
                + "</requested>\r\n  <subscribers>" + subs
                + "</subscribers>\r\n  <last_message_id>" + id
                + "</last_message_id>\r\n</channel>";
            break;
        case InfoFormat::kYaml:
            out = "---\r\nmessages: " + msgs + "\r\nrequested: " + req
                  + "\r\nsubscribers: " + subs + "\r\nlast_message_id: \"" + id
                  + "\"\r\n\r\n";
            break;
    }
    return out;
}

}  // namespace pulse
