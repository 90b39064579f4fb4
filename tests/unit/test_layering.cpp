// The core must build and run without DPDK: no rte_ include anywhere in it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

namespace fs = std::filesystem;

TEST(Layering, CoreHasNoDpdkInclude) {
    const fs::path root{HEARTWIRE_SOURCE_ROOT};
    const std::regex dpdk_include{R"(^\s*#\s*include\s*[<"](rte_|dpdk/)[^>"]*[>"])"};
    std::size_t files = 0;
    for (const char* dir : {"src/core", "include/heartwire", "src/control"}) {
        for (const auto& e : fs::recursive_directory_iterator(root / dir)) {
            if (!e.is_regular_file()) continue;
            ++files;
            std::ifstream in(e.path());
            std::string line;
            for (int n = 1; std::getline(in, line); ++n)
                EXPECT_FALSE(std::regex_search(line, dpdk_include)) << e.path() << ":" << n << ": " << line;
        }
    }
    EXPECT_GT(files, 10u);
}
