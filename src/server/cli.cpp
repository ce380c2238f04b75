// Command-line parsing: a small table-free loop, since there are few options and each has its
// own value check. Values may follow as the next argument or after '='.
#include "hallpass/server/cli.h"

#include <charconv>
#include <cstring>

#include "hallpass/config/config.h"

namespace hallpass {

std::string cli_usage() {
    return "usage: hallpass [-c FILE] [--listen ADDR:PORT]... [--threads N]\n"
           "                [--log-level debug|info|warn|error] [--version] [--help]\n"
           "       hallpass --check [-c FILE]\n"
           "       hallpass --explain CLIENT_IP URL_OR_HOST:PORT [-c FILE]\n"
           "       hallpass --update-lists [-c FILE]\n"
           "       hallpass grant --clients WHO [--domains NAMES] --for DURATION [--block]\n"
           "                      [--note TEXT] [-c FILE] [--control PATH | --admin ADDR:PORT]\n"
           "       hallpass grants [-c FILE] [--control PATH | --admin ADDR:PORT]\n"
           "       hallpass revoke ID [-c FILE] [--control PATH | --admin ADDR:PORT]\n"
           "\n"
           "hallpass is a filtering HTTP/HTTPS forward proxy.\n"
           "\n"
           "  -c, --config FILE     rules and settings (default " +
           std::string(kDefaultConfigPath) +
           ")\n"
           "      --listen ADDR:PORT\n"
           "                        listen here instead of server.listen; repeatable;\n"
           "                        IPv6 as [ADDR]:PORT; port 0 picks a free port\n"
           "      --threads N       worker threads (default: server.threads, else one per core)\n"
           "      --log-level LEVEL diagnostic log level on stderr (default info)\n"
           "      --check           validate the rules file and its lists, print a summary,\n"
           "                        exit 0 when valid, 1 when not\n"
           "      --explain CLIENT_IP URL_OR_HOST:PORT\n"
           "                        say whether a request from CLIENT_IP to the URL (or a\n"
           "                        CONNECT to HOST:PORT) is allowed, and which rule decides\n"
           "      --update-lists    fetch every list that has a url now, keep the good copies,\n"
           "                        exit 0 when none failed, 1 when one did\n"
           "      --version         print the version and exit\n"
           "\n"
           "Commands for the running proxy (over server.control_socket, or the admin endpoint\n"
           "with --admin and the token of server.admin_token_file or --token-file):\n"
           "  grant                 an exception: --clients (groups, addresses, CIDRs, comma-\n"
           "                        separated) may reach --domains (and their subdomains) for\n"
           "                        --for (30m, 1h30m, 2h; at most 7d) whatever the rules say;\n"
           "                        with --block, a pause: those clients reach nothing (with\n"
           "                        --domains, not those) until it ends; --note is shown to them\n"
           "  grants                list the grants in force\n"
           "  revoke ID             end grant ID now\n"
           "  -h, --help            print this help and exit\n"
           "\n"
           "Signals: TERM/INT stop gracefully; HUP reloads the rules file.\n";
}

Result<CliOptions> parse_cli(int argc, char** argv) {
    CliOptions opts;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        std::string value;
        bool has_inline_value = false;
        if (arg.starts_with("--")) {
            size_t eq = arg.find('=');
            if (eq != std::string::npos) {
                value = arg.substr(eq + 1);
                arg = arg.substr(0, eq);
                has_inline_value = true;
            }
        }
        auto take_value = [&]() -> bool {
            if (has_inline_value) return true;
            if (i + 1 >= argc) return false;
            value = argv[++i];
            return true;
        };
        if (opts.command.empty() && i == 1 &&
            (arg == "grant" || arg == "grants" || arg == "revoke")) {
            opts.command = arg;
            if (arg == "revoke") {
                if (i + 1 >= argc) return Error{"revoke needs a grant ID (see hallpass grants)"};
                opts.revoke_id = argv[++i];
            }
            continue;
        }
        const bool grant_option = arg == "--clients" || arg == "--domains" || arg == "--for" ||
                                  arg == "--block" || arg == "--note";
        if (grant_option && opts.command != "grant") {
            return Error{"option " + arg + " belongs to the grant command"};
        }
        const bool control_option = arg == "--control" || arg == "--admin" || arg == "--token-file";
        if (control_option && opts.command.empty()) {
            return Error{"option " + arg + " belongs to the grant, grants and revoke commands"};
        }
        if (grant_option || control_option) {
            if (arg == "--block") {
                opts.grant_block = true;
                continue;
            }
            if (!take_value()) return Error{"option " + arg + " needs a value"};
            std::string* into = arg == "--clients"   ? &opts.grant_clients
                                : arg == "--domains" ? &opts.grant_domains
                                : arg == "--for"     ? &opts.grant_for
                                : arg == "--note"    ? &opts.grant_note
                                : arg == "--control" ? &opts.control_socket
                                : arg == "--admin"   ? &opts.admin
                                                     : &opts.token_file;
            *into = value;
            continue;
        }
        if (arg == "-h" || arg == "--help") {
            opts.show_help = true;
        } else if (arg == "--version") {
            opts.show_version = true;
        } else if (arg == "--check") {
            opts.check = true;
        } else if (arg == "--update-lists") {
            opts.update_lists = true;
        } else if (arg == "--explain") {
            if (i + 2 >= argc)
                return Error{"option --explain needs CLIENT_IP and URL_OR_HOST:PORT"};
            opts.explain = true;
            opts.explain_client = argv[++i];
            opts.explain_target = argv[++i];
        } else if (arg == "-c" || arg == "--config") {
            if (!take_value()) return Error{"option " + arg + " needs a FILE"};
            opts.config_path = value;
            opts.config_given = true;
        } else if (arg == "--listen") {
            if (!take_value()) return Error{"option --listen needs ADDR:PORT"};
            auto addr = parse_listen_address(value);
            if (!addr) return Error{"--listen: " + addr.error().message};
            opts.listen.push_back(value);
        } else if (arg == "--threads") {
            if (!take_value()) return Error{"option --threads needs a number"};
            int n = 0;
            auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            if (ec != std::errc() || end != value.data() + value.size() || n < 1 || n > 256) {
                return Error{"--threads: expected a number from 1 to 256, got \"" + value + "\""};
            }
            opts.threads = n;
        } else if (arg == "--log-level") {
            if (!take_value()) return Error{"option --log-level needs a level"};
            if (!parse_log_level(value.c_str(), &opts.log_level)) {
                return Error{"--log-level: expected debug, info, warn or error, got \"" + value +
                             "\""};
            }
        } else {
            return Error{"unknown option \"" + arg + "\" (see hallpass --help)"};
        }
    }
    if (opts.command == "grant") {
        if (opts.grant_clients.empty()) return Error{"grant needs --clients"};
        if (opts.grant_for.empty()) return Error{"grant needs --for (30m, 1h, 2h30m)"};
        if (!opts.grant_block && opts.grant_domains.empty()) {
            return Error{"grant needs --domains (or --block, to pause those clients)"};
        }
    }
    return opts;
}

}  // namespace hallpass
