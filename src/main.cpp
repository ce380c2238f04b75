// hallpass: parse the command line, load the config, run the server, map the exit code.
#include <event2/thread.h>
#include <signal.h>

#include <cstdio>
#include <filesystem>

#include "hallpass/cli.h"
#include "hallpass/config.h"
#include "hallpass/log.h"
#include "hallpass/server.h"

using namespace hallpass;

int main(int argc, char** argv) {
    auto opts = parse_cli(argc, argv);
    if (!opts) {
        std::fprintf(stderr, "hallpass: %s\n", opts.error().to_string().c_str());
        return 2;
    }
    if (opts->show_help) {
        std::fputs(cli_usage().c_str(), stdout);
        return 0;
    }
    if (opts->show_version) {
        std::printf("hallpass %s\n", HALLPASS_VERSION);
        return 0;
    }
    set_log_level(opts->log_level);

    ServerConfig cfg;
    if (opts->config_given || std::filesystem::exists(opts->config_path)) {
        auto loaded = load_server_config(opts->config_path);
        if (!loaded) {
            std::fprintf(stderr, "hallpass: %s\n", loaded.error().to_string().c_str());
            return 1;
        }
        cfg = std::move(*loaded);
    } else {
        LOG_INFO("no %s: running with the built-in defaults", opts->config_path.c_str());
    }
    if (!opts->listen.empty()) cfg.listen = opts->listen;
    if (opts->threads) cfg.threads = *opts->threads;

    // Broken client or upstream sockets must surface as errors, not kill the process.
    signal(SIGPIPE, SIG_IGN);
    // Workers are woken from the main thread (drain): libevent needs its locks for that.
    evthread_use_pthreads();

    auto server = Server::create(std::move(cfg));
    if (!server) {
        LOG_ERROR("%s", server.error().to_string().c_str());
        return 1;
    }
    return (*server)->run();
}
