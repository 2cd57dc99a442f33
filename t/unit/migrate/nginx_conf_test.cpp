#include "nginx_conf.h"

#include <gtest/gtest.h>

namespace pulse::migrate {
namespace {

TEST(NginxConf, DirectivesBlocksAndPositions)
{
    std::string text =
        "worker_processes 2;\nhttp {\n  server { listen 80; }\n}\n";
    auto r = parse(text);
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    ASSERT_EQ(r->size(), 2U);
    const Directive& wp = r.value()[0];
    EXPECT_EQ(wp.name(), "worker_processes");
    EXPECT_EQ(wp.words[1].value, "2");
    EXPECT_EQ(text.substr(wp.begin, wp.end - wp.begin), "worker_processes 2;");
    const Directive& http = r.value()[1];
    EXPECT_TRUE(http.block);
    EXPECT_EQ(http.line(), 2);
    ASSERT_EQ(http.children.size(), 1U);
    const Directive& listen = http.children[0].children[0];
    EXPECT_EQ(listen.line(), 3);
    EXPECT_EQ(text.substr(listen.words[1].begin, 2), "80");
    EXPECT_EQ(text[http.block_close], '}');
    EXPECT_EQ(http.end, text.size() - 1);
}

TEST(NginxConf, QuotesHoldSemicolonsBracesAndEscapes)
{
    auto r = parse("a \"x; {y}\" 'it\\'s' \"t\\tab\";");
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    const auto& w = r.value()[0].words;
    ASSERT_EQ(w.size(), 4U);
    EXPECT_EQ(w[1].value, "x; {y}");
    EXPECT_TRUE(w[1].quoted);
    EXPECT_EQ(w[2].value, "it's");
    EXPECT_EQ(w[3].value, "t\tab");
}

TEST(NginxConf, AnIfConditionMayCloseRightAfterAQuote)
{
    auto r = parse("if ($a != \"ok\") { return 403; }");
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    const auto& w = r.value()[0].words;
    ASSERT_EQ(w.size(), 5U);
    EXPECT_EQ(w[3].value, "ok");
    EXPECT_EQ(w[4].value, ")");
    EXPECT_FALSE(parse("a \"b\"};").is_ok());
}

TEST(NginxConf, CommentsOnlyWhereAWordStarts)
{
    auto r = parse("# all of this; {\na b#c; # and this }\n");
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    ASSERT_EQ(r->size(), 1U);
    EXPECT_EQ(r.value()[0].words[1].value, "b#c");
}

TEST(NginxConf, VariablesInBracesStayInTheWord)
{
    auto r = parse("set $x ${nchan_channel_id}abc;location /a{ b; }");
    ASSERT_TRUE(r.is_ok()) << r.status().message();
    EXPECT_EQ(r.value()[0].words[2].value, "${nchan_channel_id}abc");
    // a brace after a word with no $ opens the block
    EXPECT_EQ(r.value()[1].words[1].value, "/a");
    EXPECT_TRUE(r.value()[1].block);
}

TEST(NginxConf, ErrorsNameTheLine)
{
    struct Case {
        const char* text;
        const char* message;
    };
    const Case cases[] = {
        {"a;\nb {\n", "line 3: unexpected end of file, expecting \"}\""},
        {"a;\n}\n", "line 2: unexpected \"}\""},
        {"a b", "line 1: unexpected end of file, expecting \";\" or \"}\""},
        {"a \"b;\n\n", "line 3: unexpected end of file in a quoted word"},
        {"\n;", "line 2: unexpected \";\""},
        {"{ a; }", "line 1: unexpected \"{\""},
        {"a \"b\"c;", "line 1: unexpected \"c\" after a quoted word"},
        {"a b }", "line 1: unexpected \"}\""},
    };
    for (const Case& c : cases) {
        auto r = parse(c.text);
        ASSERT_FALSE(r.is_ok()) << c.text;
        EXPECT_EQ(r.status().message(), c.message) << c.text;
    }
}

TEST(NginxConf, EmptyAndCommentOnlyFilesHaveNoDirectives)
{
    EXPECT_TRUE(parse("").value().empty());
    EXPECT_TRUE(parse("  # nothing\n\n").value().empty());
}

}  // namespace
}  // namespace pulse::migrate
