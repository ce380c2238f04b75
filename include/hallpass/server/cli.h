// The command line -> CliOptions. Parsing only: main.cpp decides what to run.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "hallpass/base/error.h"
#include "hallpass/base/log.h"

namespace hallpass {

inline constexpr const char* kDefaultConfigPath = "/etc/hallpass/rules.yaml";

struct CliOptions {
    std::string config_path = kDefaultConfigPath;
    bool config_given = false;        // -c was used (then a missing file is an error)
    std::vector<std::string> listen;  // --listen, replaces server.listen when not empty
    std::optional<int> threads;       // --threads, replaces server.threads
    LogLevel log_level = LogLevel::Info;
    bool show_help = false;
    bool show_version = false;
    bool check = false;    // --check: validate, print a summary, exit 0 or 1
    bool explain = false;  // --explain CLIENT_IP TARGET
    bool update_lists = false;  // --update-lists: fetch every list by URL now, exit
    std::string explain_client;
    std::string explain_target;  // URL, or HOST:PORT (a CONNECT)
};

// Parses argv. Unknown options and missing or bad values are errors naming the option.
Result<CliOptions> parse_cli(int argc, char** argv);

// The --help text.
std::string cli_usage();

}  // namespace hallpass
