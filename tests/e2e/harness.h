// End-to-end test harness: temp dirs, child processes (hallpass, nginx, curl, chromium) that are
// always reaped, and loopback-only helpers (a DNS stub, a scripted origin, an echo server for
// thousands of tunnels, a raw HTTP client, process CPU and descriptor probes).
// Every wait here has a deadline; every child is killed and reaped by a destructor, so a failed
// REQUIRE (which throws) leaves no stray process. Used by every tests/e2e/*_test.cpp.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace hallpass::e2e {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Ms = std::chrono::milliseconds;
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Files and small utilities

// A fresh directory under $TMPDIR (or /tmp), removed with its contents by the destructor
// (kept, and its path printed, when HALLPASS_E2E_KEEP=1: logs for debugging a failure).
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const fs::path& path() const { return path_; }
    fs::path operator/(std::string_view name) const { return path_ / name; }

  private:
    fs::path path_;
};

// Writes `content` to `path` (creating parent directories), replacing the file. Throws on error.
void write_file(const fs::path& path, std::string_view content);
// Whole file as bytes; "" when it does not exist.
std::string read_file(const fs::path& path);
// `n` pseudo-random bytes, the same for the same seed.
std::string random_bytes(size_t n, uint32_t seed = 1);
// A 1x1 PNG image (for the browser test).
std::string tiny_png();

// True when `text` contains `needle`.
bool contains(std::string_view text, std::string_view needle);
// Number of (non-overlapping) occurrences of `needle` in `text`.
size_t count_of(std::string_view text, std::string_view needle);

// Lines of `text` that contain `needle` (log searching).
std::vector<std::string> lines_with(std::string_view text, std::string_view needle);
// The connection id in a hallpass log line ("... c=42 ..." -> "42"); "" when absent.
std::string connection_id(std::string_view log_line);

// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close).
uint16_t free_port();

// Polls `predicate` every few milliseconds until it is true (returns true) or `timeout` passed
// (returns false; the predicate is evaluated one last time at the deadline).
bool wait_until(const std::function<bool()>& predicate, Ms timeout);

// The hallpass binary under test: $HALLPASS_BIN (set by meson). Throws when unset.
std::string hallpass_bin();
// True when that binary was built with AddressSanitizer: its memory use (redzones, quarantine)
// says nothing about hallpass's own, so tests skip their RSS bounds then.
bool hallpass_is_sanitized();
// Where tests may leave artifacts for humans (screenshots): $HALLPASS_E2E_ARTIFACTS or ".".
fs::path artifacts_dir();
// CPU time (user + system) a process has used so far, from /proc/PID/stat; -1 when unknown.
Ms process_cpu_time(pid_t pid);
// Open file descriptors of a process (entries of /proc/PID/fd); -1 when unknown.
long open_fd_count(pid_t pid);
// Pipe descriptors process `pid` holds, and the bytes waiting in its pipes (each pipe counted
// once: opened again through /proc/PID/fd, then FIONREAD). Needs root, as the tests run.
size_t pipes_of(pid_t pid);
size_t bytes_in_pipes(pid_t pid);
// Raises this process's soft RLIMIT_NOFILE towards `wanted` (never above the hard limit) and
// returns the soft limit now in force. Children started afterwards inherit it.
long raise_fd_limit(long wanted);

// The repository: $HALLPASS_SOURCE_ROOT (set by meson), else found from the build tree.
fs::path source_root();
// The real block lists (shared/data/blocklists/ beside the repository): $HALLPASS_BLOCKLISTS
// (set by meson), else <source_root>/../shared/data/blocklists. Throws when it does not exist.
fs::path blocklists_dir();

// ---------------------------------------------------------------------------------------------
// Child processes

// Installs the crash handler described at Process (done before main()); the handlers it
// replaces run after it. Again for tests: a forked child resets SIGABRT to SIG_DFL first, so
// doctest's handler is not chained.
void install_child_reaper_on_crash();

struct SpawnOptions {
    fs::path stdout_path = "/dev/null";
    fs::path stderr_path = "/dev/null";
    fs::path stdin_path = "/dev/null";
    // Put the child in a process group of its own, so kill() also reaches its descendants
    // (chromium forks helpers). Other children stay in the test's group, so meson's timeout
    // kill reaches them even if the test process itself is killed.
    bool own_process_group = false;
};

// A child started with posix_spawn (PATH is searched). Proxy variables (http_proxy, no_proxy,
// ...) are removed from its environment. The destructor SIGKILLs and reaps it if it still runs.
// A test that crashes runs no destructors: a handler for SIGABRT, SIGSEGV, SIGBUS, SIGFPE and
// SIGILL (installed before main(), so doctest's report comes first; the handler it replaced,
// a sanitizer's, runs after it) SIGKILLs every child still registered, then lets the signal
// kill the test as before.
class Process {
  public:
    Process(const std::vector<std::string>& argv, SpawnOptions options = {});
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    // Sends `sig` to the child (or its group when it has its own); no-op once it was reaped.
    void signal(int sig);
    // True while the child has not exited (does not reap).
    bool running();
    // Waits up to `timeout` for the child to exit and reaps it. The result is the exit code, or
    // 128 + signal number when a signal killed it; nullopt when it still runs at the deadline.
    std::optional<int> wait_for(Ms timeout);
    // SIGKILL (whole group when it has one) and reap; returns the status as in wait_for().
    int kill_and_wait();
    // The status once reaped.
    std::optional<int> exit_status() const { return status_; }
    const std::vector<std::string>& argv() const { return argv_; }

  private:
    bool try_reap(bool block);

    std::vector<std::string> argv_;
    pid_t pid_ = -1;
    bool own_group_ = false;
    std::optional<int> status_;
};

struct RunResult {
    int exit_code = -1;  // as Process::wait_for; -1 with timed_out
    bool timed_out = false;
    std::string out;
    std::string err;
    Ms elapsed{0};
};

// Runs `argv` to completion with a hard deadline (killed on timeout), capturing its output.
RunResult run(const std::vector<std::string>& argv, Ms timeout = 20s,
              bool own_process_group = false);

// curl with the usual safety flags (-sS, --max-time, no proxy variables) through the proxy on
// 127.0.0.1:`proxy_port` (0: no proxy) followed by `args`.
RunResult curl(uint16_t proxy_port, const std::vector<std::string>& args, Ms timeout = 20s);

// ---------------------------------------------------------------------------------------------
// DNS stub: answers every query with NXDOMAIN, or (Silent) never answers, or (OkAnswers)
// answers names that start with "ok" (A 127.0.0.1, AAAA none) and never answers the others.

class DnsStub {
  public:
    enum class Mode { NxDomain, Silent, OkAnswers };
    explicit DnsStub(Mode mode = Mode::NxDomain);
    ~DnsStub();
    DnsStub(const DnsStub&) = delete;
    DnsStub& operator=(const DnsStub&) = delete;

    uint16_t port() const { return port_; }
    size_t queries() const { return queries_.load(); }
    // Query names seen so far ("nowhere.test").
    std::vector<std::string> names() const;

  private:
    void serve();

    Mode mode_;
    int fd_ = -1;
    int wake_[2] = {-1, -1};
    uint16_t port_ = 0;
    std::atomic<size_t> queries_{0};
    mutable std::mutex mu_;
    std::vector<std::string> names_;
    std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// Scripted origin: a TCP server on 127.0.0.1 with a fixed behaviour per connection.

class ScriptedOrigin {
  public:
    enum class Mode {
        Respond,             // read each request (head + body), record it, send `reply`
        Silent,              // read and record requests, never answer
        Stall,               // accept, never read, never answer (a peer close is counted)
        ResetMidResponse,    // read a request, send `reply` (a partial response), then RST
        CloseEarly,          // read a request, close without answering
        ReadToEofThenReply,  // read until the peer's EOF, record it all, send `reply`, close
        ResetAfterHead,      // read a request head, record it, then RST (body still coming)
        Repeat  // read a request, record it, send `reply` until the peer stops taking it
    };
    struct Options {
        Mode mode = Mode::Respond;
        std::string reply =
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
        // Respond: after the first reply send FIN, read until the peer's EOF, record what came
        // meanwhile (if anything) as one more entry, close.
        bool close_after_reply = false;
        // Respond with close_after_reply, ResetMidResponse: wait this long after the reply
        // before the FIN/RST, so the proxy has surely relayed what was sent.
        Ms pause_after_reply{0};
        // ResetMidResponse: stop sending `reply` once the peer has taken nothing for this long
        // (the proxy stopped reading it), then the pause and the reset. 0: send it all.
        Ms send_timeout{0};
    };
    ScriptedOrigin();
    explicit ScriptedOrigin(Options options);
    ~ScriptedOrigin();
    ScriptedOrigin(const ScriptedOrigin&) = delete;
    ScriptedOrigin& operator=(const ScriptedOrigin&) = delete;

    uint16_t port() const { return port_; }
    size_t connections() const { return connections_.load(); }
    // Connections the peer (hallpass) closed or reset, as opposed to ones we closed.
    size_t closed_by_peer() const { return closed_by_peer_.load(); }
    // Raw bytes of each request received (head and body), in arrival order.
    std::vector<std::string> requests() const;
    // Waits until at least `n` requests were recorded.
    bool wait_for_requests(size_t n, Ms timeout = 5s) const;

  private:
    void accept_loop();
    void serve(int fd);
    void record(std::string request);

    Options options_;
    int listen_fd_ = -1;
    int wake_[2] = {-1, -1};
    uint16_t port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<size_t> connections_{0};
    std::atomic<size_t> closed_by_peer_{0};
    mutable std::mutex mu_;
    std::vector<std::string> requests_;
    std::vector<int> conn_fds_;
    std::vector<std::thread> conn_threads_;
    std::thread accept_thread_;
};

// ---------------------------------------------------------------------------------------------
// Echo server: echoes every byte back on every connection, for thousands of connections at once
// (one epoll thread). The far end of CONNECT tunnels in load and fault tests.

class EchoServer {
  public:
    EchoServer();
    ~EchoServer();
    EchoServer(const EchoServer&) = delete;
    EchoServer& operator=(const EchoServer&) = delete;

    uint16_t port() const { return port_; }
    size_t accepted() const { return accepted_.load(); }
    size_t open_connections() const { return open_.load(); }
    uint64_t bytes_echoed() const { return bytes_.load(); }

  private:
    void serve();

    int listen_fd_ = -1;
    int epoll_fd_ = -1;
    int wake_[2] = {-1, -1};
    uint16_t port_ = 0;
    std::atomic<size_t> accepted_{0};
    std::atomic<size_t> open_{0};
    std::atomic<uint64_t> bytes_{0};
    std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// nginx origin

struct NginxOptions {
    bool tls = false;          // also serve HTTPS (self-signed CN=site.test) on tls_port()
    bool ipv6 = false;         // also listen on [::1] (same ports)
    std::string extra_server;  // directives added to every server block
    std::string extra_http;    // directives added to the http block
};

// One nginx (`daemon off; master_process off;`) on free 127.0.0.1 ports. Everything it writes
// stays in the temp dir. Locations: / static files from docroot(); /echo answers the request
// body (echo module); /slow/ static files at 100 KiB/s.
class Nginx {
  public:
    explicit Nginx(const TempDir& dir, NginxOptions options = {});
    ~Nginx();
    Nginx(const Nginx&) = delete;
    Nginx& operator=(const Nginx&) = delete;

    uint16_t port() const { return port_; }
    uint16_t tls_port() const { return tls_port_; }
    fs::path docroot() const { return root_ / "docroot"; }
    // Adds a file to the docroot ("1k", "dir/page.html").
    void put(std::string_view name, std::string_view content) const;
    // http://127.0.0.1:PORT + path, and the same for another host name.
    std::string url(std::string_view path, std::string_view host = "127.0.0.1") const;

    // One parsed access-log line.
    struct Access {
        long connection = 0;           // nginx $connection: same number = same TCP connection
        long connection_requests = 0;  // nth request on that connection
        int status = 0;
        long bytes_sent = 0;      // body bytes
        long request_length = 0;  // head + body bytes received
        std::string request;      // "GET /1k HTTP/1.1"
        std::string host;         // Host header
        std::string via;          // Via header
        std::string connection_header;
        std::string scheme;  // "http" or "https"
    };
    std::vector<Access> accesses() const;
    // Waits until at least `n` access lines exist.
    bool wait_for_accesses(size_t n, Ms timeout = 5s) const;
    std::string access_log() const;
    std::string error_log() const;

  private:
    void write_config();
    bool start_once();

    fs::path root_;
    NginxOptions options_;
    uint16_t port_ = 0;
    uint16_t tls_port_ = 0;
    std::unique_ptr<Process> process_;
};

// ---------------------------------------------------------------------------------------------
// hallpass under test

struct HallpassOptions {
    // YAML lines added under `server:` ("max_connections: 2\nhead_timeout_ms: 300"); each line is
    // indented by the harness.
    std::string server_yaml;
    // Top-level YAML written verbatim after the server section: `default:`, `groups:`, `lists:`,
    // `rules:` (a rule file's paths are relative to the config's directory, the temp dir).
    std::string rules_yaml;
    // Names the hosts_file maps to 127.0.0.1. Anything else goes to the DNS stub (NXDOMAIN).
    std::vector<std::string> hosts = {"site.test", "a.test", "b.test", "localhost"};
    // Raw lines appended to the hosts file ("127.0.0.2 multi.test").
    std::string extra_hosts;
    DnsStub::Mode dns_mode = DnsStub::Mode::NxDomain;
    std::vector<std::string> listen = {"127.0.0.1:0"};
    int threads = 2;
    std::string log_level = "debug";
    std::vector<std::string> extra_args;
    // Words run before the hallpass binary, which they must exec in place (so pid() stays
    // hallpass's): {"prlimit", "--nofile=64:64"} starts it with 64 descriptors.
    std::vector<std::string> command_prefix;
    // server.admin: "off" (the default here, so tests never race for the fixed default port),
    // or ADDR:PORT ("127.0.0.1:0": any free port, see Hallpass::admin_port()).
    std::string admin = "off";
    // server.allow_local_destinations: the test origins listen on loopback, which hallpass
    // refuses by default. An empty string writes no key (the product's default: none allowed).
    std::string allow_local = "[\"127.0.0.0/8\", \"::1\"]";
    // server.user: the tests' temp dirs are root's (mode 0700), so hallpass stays root unless a
    // test says otherwise. An empty string writes no key (the product's default: hallpass, or
    // nobody when that account does not exist).
    std::string user = "root";
    // server.control_socket: "off" unless a test needs it (instances must not share the default
    // path). server.state_dir is the temp dir's own unless server_yaml names one.
    std::string control_socket = "off";
};

// A wall clock for the real binary that the test moves (libfaketime, preloaded through `env`,
// which execs): set() writes "@YYYY-MM-DD HH:MM:SS" to a file the library reads on every call,
// and the program's clock jumps there and runs on. Monotonic time is left alone, so timeouts
// and timers keep real time. TZ is UTC, so the times written are the times the program sees.
class FakeClock {
  public:
    explicit FakeClock(const TempDir& dir, const std::string& start);
    void set(const std::string& when);  // "2026-12-07 20:59:57"
    // For HallpassOptions::command_prefix (or before any command).
    std::vector<std::string> prefix() const;

  private:
    std::filesystem::path file_;
};

// Starts hallpass -c <temp>/hallpass.yaml --listen ... and waits (10 s) for its "listening on"
// lines. Throws (with its stderr) when it exits or does not listen in time. The destructor
// kills it and fails the running test if its stderr holds a sanitizer report.
class Hallpass {
  public:
    explicit Hallpass(const TempDir& dir, HallpassOptions options = {});
    ~Hallpass();
    Hallpass(const Hallpass&) = delete;
    Hallpass& operator=(const Hallpass&) = delete;

    // First listener's port, and all of them in --listen order.
    uint16_t port() const { return ports_.at(0); }
    const std::vector<uint16_t>& ports() const { return ports_; }
    // The admin listener's port, from its "admin endpoint on http://ADDR:PORT/" line; 0 when
    // the admin endpoint is off.
    uint16_t admin_port() const { return admin_port_; }
    pid_t pid() const { return process_->pid(); }
    Process& process() { return *process_; }
    DnsStub& dns() { return *dns_; }
    fs::path config_path() const { return config_path_; }
    std::string proxy_url() const;  // http://127.0.0.1:PORT

    std::string stderr_text() const;
    // Waits until stderr contains `needle`.
    bool wait_for_log(std::string_view needle, Ms timeout = 5s) const;
    // Occurrences of `needle` in stderr, and a wait until there are at least `n` of them (for a
    // log line that repeats, such as "reload ok" after the second SIGHUP).
    size_t log_count(std::string_view needle) const;
    bool wait_for_log_count(std::string_view needle, size_t n, Ms timeout = 5s) const;

    // Rewrites the config file: the same server section, then `rules_yaml` (see
    // HallpassOptions::rules_yaml). Takes effect on the next reload().
    void write_rules(std::string_view rules_yaml) const;
    // Sends SIGHUP: hallpass reloads the config file on its reload thread.
    void reload();
    // Resident set size from /proc/PID/status (VmRSS), KiB; 0 when unknown.
    long rss_kib() const;
    bool running() { return process_->running(); }
    // SIGTERM and wait (`timeout`); returns the exit status, or -1 after a SIGKILL when it did
    // not exit in time.
    int stop(Ms timeout = 15s);

  private:
    fs::path stderr_path_;
    fs::path config_path_;
    std::string server_section_;  // "server:\n  hosts_file: ...", as written at start-up
    std::vector<uint16_t> ports_;
    uint16_t admin_port_ = 0;
    std::unique_ptr<DnsStub> dns_;
    std::unique_ptr<Process> process_;
};

// ---------------------------------------------------------------------------------------------
// Raw HTTP client

struct HttpResponse {
    int status = 0;
    std::string head;  // status line and fields, up to and including the blank line
    std::string body;  // de-chunked when the response was chunked
    std::map<std::string, std::string> headers;               // lower-case name -> last value
    std::vector<std::pair<std::string, std::string>> fields;  // every field, as received
    bool has(std::string_view name) const;
    std::string header(std::string_view name) const;  // "" when absent
};

// A request as an origin received it (for header-rewriting checks).
struct HttpRequest {
    std::string request_line;                                 // "GET /path HTTP/1.1"
    std::vector<std::pair<std::string, std::string>> fields;  // as received, in order
    std::string body;                                         // de-chunked when chunked
    bool chunked = false;
    // Values of every field named `name` (case-insensitive).
    std::vector<std::string> values(std::string_view name) const;
    bool has(std::string_view name) const { return !values(name).empty(); }
};
// Parses one complete raw request (head and body); nullopt when malformed or incomplete.
std::optional<HttpRequest> parse_request(std::string_view raw);
// Decodes a complete chunked body; nullopt when malformed or incomplete.
std::optional<std::string> decode_chunked(std::string_view body);

// The status code of a response head ("HTTP/1.1 404 Not Found" -> 404); 0 when malformed.
int parse_status(std::string_view head);
// Parses a response head (through the blank line) into status and fields; nullopt if malformed.
std::optional<HttpResponse> parse_response_head(std::string_view head);

// A blocking-with-deadlines TCP client. Bytes read but not yet consumed stay buffered.
class RawClient {
  public:
    enum class End { Ok, Closed, Reset, Timeout };

    // Connects to host:port (IPv4 or IPv6 literal); throws when it cannot within `timeout`.
    // rcvbuf > 0 sets SO_RCVBUF before connecting (a small window for throttled readers).
    // source, when given, is the local address to bind first ("127.0.0.2": another client IP).
    explicit RawClient(uint16_t port, std::string host = "127.0.0.1", Ms timeout = 5s,
                       int rcvbuf = 0, std::string source = {});
    ~RawClient();
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    // Connects once and closes again: 0 when it connected, else ECONNREFUSED, ETIMEDOUT or EIO.
    static int try_connect(uint16_t port, std::string host = "127.0.0.1", Ms timeout = 2s);

    int fd() const { return fd_; }
    // Sends all of `data` (throws on error or when the peer does not take it within `timeout`).
    void send(std::string_view data, Ms timeout = 5s);
    // Sends as much as the peer takes within `timeout`; returns bytes sent (no throw on EAGAIN).
    size_t send_some(std::string_view data, Ms timeout);
    void shutdown_write();
    // Closes with RST (SO_LINGER 0).
    void reset();

    // Reads until `enough(buffer)` is true, or EOF/RST/timeout. Returns why it stopped.
    End fill(const std::function<bool(const std::string&)>& enough, Ms timeout);
    // Reads until the peer closes (or timeout); returns and consumes everything buffered.
    std::string read_until_close(Ms timeout = 5s);
    // Reads until at least n bytes are buffered; returns and consumes up to n of them.
    std::string read_n(size_t n, Ms timeout = 5s);
    // Reads one response (1xx responses are responses too). head_request: no body follows.
    // nullopt when the connection ended or the deadline passed first (see last_end()).
    std::optional<HttpResponse> read_response(Ms timeout = 5s, bool head_request = false);
    // Reads one response, skipping any 1xx.
    std::optional<HttpResponse> read_final_response(Ms timeout = 5s, bool head_request = false);
    // Waits for EOF or RST (discarding nothing: data stays buffered). True if it came in time.
    bool wait_closed(Ms timeout = 5s);
    // Reads and discards up to `max` bytes, or until EOF/timeout; returns the count.
    size_t drain(size_t max, Ms timeout);

    std::string& buffer() { return buf_; }
    End last_end() const { return last_end_; }
    bool eof() const { return eof_; }

  private:
    int fd_ = -1;
    std::string buf_;
    bool eof_ = false;
    End last_end_ = End::Ok;
};

// A listener whose accept queue is full and never drained: further SYNs are dropped, so a
// connect to it neither succeeds nor fails until the connector gives up. Loopback only.
class Blackhole {
  public:
    Blackhole();
    ~Blackhole();
    Blackhole(const Blackhole&) = delete;
    Blackhole& operator=(const Blackhole&) = delete;
    uint16_t port() const { return port_; }

  private:
    int fd_ = -1;
    uint16_t port_ = 0;
    std::vector<std::unique_ptr<RawClient>> fillers_;
};

// One request "GET http://127.0.0.1:PORT/path HTTP/1.1" with Host, for tests that just need a
// normal proxied exchange.
std::string proxy_get(uint16_t origin_port, std::string_view path,
                      std::string_view host = "127.0.0.1", std::string_view extra_headers = "");

// Sends one normal proxied GET on a fresh connection and returns its status (0 on failure).
// The probe used after every hostile case: "the proxy still serves a normal request".
int probe(uint16_t proxy_port, uint16_t origin_port, std::string_view path = "/1k",
          Ms timeout = 5s);

}  // namespace hallpass::e2e
