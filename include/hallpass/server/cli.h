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

    // Commands for the running proxy: "grant", "grants", "revoke" ("" = none: run or a mode).
    std::string command;
    std::string grant_clients;  // --clients kids,10.0.0.5
    std::string grant_domains;  // --domains youtube.com
    std::string grant_for;      // --for 30m
    bool grant_block = false;   // --block: a pause instead of an exception
    std::string grant_note;     // --note TEXT
    std::string revoke_id;
    std::string control_socket;  // --control PATH (default: server.control_socket)
    std::string admin;           // --admin ADDR:PORT: the admin endpoint instead of the socket
    std::string token_file;      // --token-file FILE (default: server.admin_token_file)
};

// Parses argv. Unknown options and missing or bad values are errors naming the option.
Result<CliOptions> parse_cli(int argc, char** argv);

// The --help text.
std::string cli_usage();

}  // namespace hallpass
