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

std::string format_group_info(const GroupInfo& info, InfoFormat f)
{
    const std::string v[] = {
        std::to_string(info.channels),
        std::to_string(info.subscribers),
        std::to_string(info.messages),
        std::to_string(info.messages_memory),
        "0",
        std::to_string(info.limits.channels),
        std::to_string(info.limits.subscribers),
        std::to_string(info.limits.messages),
        std::to_string(info.limits.messages_memory),
        "0",
    };
    // Each template's parts around its ten numbers, in v's order.
    static const char* const kPlain[] = {
        "channels: ",
        "\r\nsubscribers: ",
        "\r\nmessages: ",
        "\r\nshared memory used by messages: ",
        " bytes\r\ndisk space used by messages: ",
        " bytes\r\nlimits:\r\n  max channels: ",
        "\r\n  max subscribers: ",
        "\r\n  max messages: ",
        "\r\n  max messages shared memory: ",
        "\r\n  max messages disk space: ",
        "\r\n"};
    static const char* const kJson[] = {
        "{\r\n  \"channels\": ",
        ",\r\n  \"subscribers\": ",
        ",\r\n  \"messages\": ",
        ",\r\n  \"messages_memory\": ",
        ",\r\n  \"messages_disk\": ",
        ",\r\n  \"limits\": {\r\n    \"channels\": ",
        ",\r\n    \"subscribers\": ",
        ",\r\n    \"messages\": ",
        ",\r\n    \"messages_memory\": ",
        ",\r\n    \"messages_disk\": ",
        "\r\n  }\r\n}"};
    static const char* const kYaml[] = {"---\r\nchannels: ",
                                        "\r\nsubscribers: ",
                                        "\r\nmessages: ",
                                        "\r\nmessages_memory: ",
                                        "\r\nmessages_disk: ",
                                        "\r\nlimits:\r\n  channels: ",
                                        "\r\n  subscribers: ",
                                        "\r\n  messages: ",
                                        "\r\n  messages_memory: ",
                                        "\r\n  messages_disk: ",
                                        "\r\n\r\n"};
    static constexpr const char* kXmlHead =
        "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\r\n<group>\r\n"
        "  <channels>";
    static const char* const kXml[] = {
        kXmlHead,
        "</channels>\r\n  <subscribers>",
        "</subscribers>\r\n  <messages>",
        "</messages>\r\n  <messages_memory>",
        "</messages_memory>\r\n  <messages_disk>",
        "</messages_disk>\r\n  <limits>\r\n    <channels>",
        "</channels>\r\n    <subscribers>",
        "</subscribers>\r\n    <messages>",
        "</messages>\r\n    <messages_memory>",
        "</messages_memory>\r\n    <messages_disk>",
        "</messages_disk>\r\n  </limits>\r\n</group>"};
    const char* const* parts = kPlain;
    switch (f) {
        case InfoFormat::kJson:
            parts = kJson;
            break;
        case InfoFormat::kYaml:
            parts = kYaml;
            break;
        case InfoFormat::kXml:
            parts = kXml;
            break;
        case InfoFormat::kPlain:
            break;
    }
    std::string out;
    for (size_t i = 0; i < 10; ++i) {
        out += parts[i];
        out += v[i];
    }
    out += parts[10];
    return out;
}

}  // namespace pulse
