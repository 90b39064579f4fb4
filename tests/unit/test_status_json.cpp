// The status JSON's text (issue 11 item 4): strings from outside (fault details, interface
// names, hook output in notices) go through nlohmann-json, so control characters are
// escaped, invalid UTF-8 becomes U+FFFD and a strict parser reads the whole document back.
// status_json itself needs a running engine; its text and its notices are built by
// dpdk_apps/heartwired/json_text.hpp, which has no DPDK.
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "../dpdk_apps/heartwired/json_text.hpp"

namespace {

using heartwire::app::json;
using heartwire::app::json_text;
using heartwire::app::notices_json;

// \x01, a newline, a tab and quotes; a lone 0xff and a truncated euro sign (e2 82 without
// its last byte); then é and € whole.
const std::string hostile = "disk\x01 \"full\"\n\tat \xff and \xe2\x82 caf\xc3\xa9 5\xe2\x82\xac";
// What a reader gets: every character kept, each invalid sequence one U+FFFD.
const std::string read_back = "disk\x01 \"full\"\n\tat \xef\xbf\xbd and \xef\xbf\xbd caf\xc3\xa9 5\xe2\x82\xac";

bool has_raw_control(const std::string& s) {
    for (const unsigned char ch : s)
        if (ch < 0x20) return true;
    return false;
}

} // namespace

TEST(StatusJson, HostileFaultDetailAndInterfaceNameComeBackEscapedAndAsReplacementCharacters) {
    json o;
    o["role"] = "primary";
    o["fault_detail"] = hostile;
    o["groups"] = json::array({{{"id", 1}, {"interface", "svc\xff" "0"}}});
    std::string text;
    ASSERT_NO_THROW(text = json_text(o)) << "invalid UTF-8 must not make the status request throw";
    EXPECT_FALSE(has_raw_control(text)) << text;
    EXPECT_NE(text.find("disk\\u0001 \\\"full\\\"\\n\\tat "), std::string::npos) << text;

    const auto back = nlohmann::json::parse(text); // strict: raw control bytes or bad UTF-8 throw
    EXPECT_EQ(back["role"], "primary");
    EXPECT_EQ(back["fault_detail"].get<std::string>(), read_back);
    EXPECT_EQ(back["groups"][0]["interface"].get<std::string>(), "svc\xef\xbf\xbd" "0");
    EXPECT_EQ(back["groups"][0]["id"], 1);
}

TEST(StatusJson, NoticeTextWithHookOutputParsesBackWithItsExactWallClock) {
    // Above 2^53: a reader that went through a double would lose it.
    const std::uint64_t wall = 1796214694774856242ull;
    const std::deque<std::string> notes = {std::to_string(wall) + " hook said " + hostile,
                                           "17 switchover done", "42"};
    const std::string text = json_text(json{{"notices", notices_json(notes)}});
    EXPECT_FALSE(has_raw_control(text)) << text;

    const auto back = nlohmann::json::parse(text);
    ASSERT_EQ(back["notices"].size(), 3u);
    EXPECT_TRUE(back["notices"][0]["wall_ns"].is_number_unsigned());
    EXPECT_EQ(back["notices"][0]["wall_ns"].get<std::uint64_t>(), wall);
    EXPECT_EQ(back["notices"][0]["text"].get<std::string>(), "hook said " + read_back);
    EXPECT_EQ(back["notices"][1]["wall_ns"], 17u);
    EXPECT_EQ(back["notices"][1]["text"], "switchover done");
    EXPECT_EQ(back["notices"][2]["wall_ns"], 42u) << "a notice without text still reads";
    EXPECT_EQ(back["notices"][2]["text"], "");
}

TEST(StatusJson, KeysKeepTheirOrderNumbersStayExactAndEmptyListsStayLists) {
    // Readers find the node's own "role" before the groups' ones (tests/e2e json_value).
    json o;
    o["role"] = "monitor";
    o["epoch"] = std::numeric_limits<std::uint64_t>::max();
    o["holds_primary"] = false;
    o["app_inflight"] = std::int64_t{-1};
    o["notices"] = notices_json({});
    o["drops"] = json::object();
    o["groups"] = json::array({{{"role", "primary"}}});
    EXPECT_EQ(json_text(o), "{\"role\":\"monitor\",\"epoch\":18446744073709551615,\"holds_primary\":false,"
                            "\"app_inflight\":-1,\"notices\":[],\"drops\":{},\"groups\":[{\"role\":\"primary\"}]}");
}
