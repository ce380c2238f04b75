// cli: the command line, and an error naming the option for each bad one.
#include "hallpass/server/cli.h"

#include <doctest/doctest.h>

#include <vector>

using namespace hallpass;

namespace {
Result<CliOptions> cli(std::vector<const char*> args) {
    args.insert(args.begin(), "hallpass");
    return parse_cli(static_cast<int>(args.size()), const_cast<char**>(args.data()));
}
}  // namespace

TEST_CASE("cli: options and their errors") {
    auto o = cli({"-c", "x.yaml", "--listen", "127.0.0.1:0", "--listen=[::1]:0", "--threads", "4",
                  "--log-level", "debug"});
    REQUIRE(o.ok());
    CHECK(o->config_path == "x.yaml");
    CHECK(o->config_given);
    CHECK(o->listen == std::vector<std::string>{"127.0.0.1:0", "[::1]:0"});
    CHECK(o->threads == 4);
    CHECK(o->log_level == LogLevel::Debug);

    CHECK(cli({"--version"})->show_version);
    CHECK(cli({"-h"})->show_help);
    CHECK_FALSE(cli({}).value().config_given);
    CHECK(cli({"--bogus"}).error().message == "unknown option \"--bogus\" (see hallpass --help)");
    CHECK(cli({"--threads", "0"}).error().message.starts_with("--threads"));
    CHECK(cli({"--listen", "nowhere"}).error().message.starts_with("--listen"));
    CHECK(cli({"-c"}).error().message == "option -c needs a FILE");
    CHECK(cli({"--log-level", "loud"}).error().message.starts_with("--log-level"));
}
