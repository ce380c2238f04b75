// Implementation of the e2e harness (see harness.h). Test-only code: plain blocking sockets with
// poll() deadlines, one thread per scripted-origin connection, posix_spawn for children.
#include "harness.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <utility>

extern char** environ;

namespace hallpass::e2e {

namespace {

std::string errno_text(std::string_view what) {
    return std::string(what) + ": " + std::strerror(errno);
}

int remaining_ms(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<Ms>(deadline - Clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool is_proxy_variable(std::string_view entry) {
    auto eq = entry.find('=');
    std::string name = lower(entry.substr(0, eq));
    return name == "http_proxy" || name == "https_proxy" || name == "all_proxy" ||
           name == "no_proxy" || name == "ftp_proxy";
}

void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
}

// Parsed framing fields of a head: what a reader needs to find the end of the message.
struct Framing {
    bool chunked = false;
    std::optional<size_t> content_length;
};

Framing framing_of(std::string_view head) {
    Framing f;
    size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos + 2 < head.size()) {
        size_t start = pos + 2;
        size_t end = head.find("\r\n", start);
        if (end == std::string_view::npos) break;
        std::string_view line = head.substr(start, end - start);
        auto colon = line.find(':');
        if (colon != std::string_view::npos) {
            std::string name = lower(trim(line.substr(0, colon)));
            std::string value = lower(trim(line.substr(colon + 1)));
            if (name == "transfer-encoding" && value.find("chunked") != std::string::npos) {
                f.chunked = true;
            } else if (name == "content-length") {
                f.content_length = std::strtoull(value.c_str(), nullptr, 10);
            }
        }
        pos = end;
    }
    return f;
}

// Length of a chunked body at the start of `data` (through the last-chunk and trailers); -1 when
// incomplete, -2 when malformed. Appends the decoded payload to `out` when given.
long chunked_length(std::string_view data, std::string* out) {
    size_t pos = 0;
    std::string payload;
    for (;;) {
        size_t eol = data.find("\r\n", pos);
        if (eol == std::string_view::npos) return -1;
        std::string_view size_line = data.substr(pos, eol - pos);
        size_line = size_line.substr(0, size_line.find(';'));
        size_line = trim(size_line);
        if (size_line.empty() || size_line.size() > 15) return -2;
        size_t size = 0;
        for (char c : size_line) {
            if (!std::isxdigit(static_cast<unsigned char>(c))) return -2;
            int digit = std::isdigit(static_cast<unsigned char>(c))
                            ? c - '0'
                            : std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
            size = size * 16 + static_cast<size_t>(digit);
        }
        pos = eol + 2;
        if (size == 0) {
            // Trailer fields, then the blank line.
            for (;;) {
                size_t tl = data.find("\r\n", pos);
                if (tl == std::string_view::npos) return -1;
                bool blank = tl == pos;
                pos = tl + 2;
                if (blank) {
                    if (out) out->append(payload);
                    return static_cast<long>(pos);
                }
            }
        }
        if (data.size() < pos + size + 2) return -1;
        payload.append(data.substr(pos, size));
        if (data.substr(pos + size, 2) != "\r\n") return -2;
        pos += size + 2;
    }
}

// Length of the complete request at the start of `data`; -1 incomplete, -2 malformed.
long request_length(std::string_view data) {
    size_t head_end = data.find("\r\n\r\n");
    if (head_end == std::string_view::npos) return -1;
    size_t head_len = head_end + 4;
    Framing f = framing_of(data.substr(0, head_len));
    if (f.chunked) {
        long body = chunked_length(data.substr(head_len), nullptr);
        return body < 0 ? body : static_cast<long>(head_len) + body;
    }
    size_t body = f.content_length.value_or(0);
    if (data.size() < head_len + body) return -1;
    return static_cast<long>(head_len + body);
}

sockaddr_in loopback(uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

uint16_t bound_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0)
        throw std::runtime_error(errno_text("getsockname"));
    if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
    return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// Sends all of `data` on a blocking socket; false when the peer stopped taking bytes (error or
// shutdown).
bool send_all_checked(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

// As send_all_checked, for callers that stop quietly when the peer goes away.
void send_all_blocking(int fd, std::string_view data) { (void)send_all_checked(fd, data); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Files and utilities

TempDir::TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/hallpass-e2e-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error(errno_text("mkdtemp " + tmpl));
    path_ = tmpl;
}

TempDir::~TempDir() {
    if (const char* keep = std::getenv("HALLPASS_E2E_KEEP"); keep && *keep == '1') {
        std::fprintf(stderr, "kept %s\n", path_.c_str());
        return;
    }
    std::error_code ec;
    fs::remove_all(path_, ec);
}

void write_file(const fs::path& path, std::string_view content) {
    if (path.has_parent_path()) fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::string out(n, '\0');
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = rng();
        for (size_t k = 0; k < 4 && i + k < n; ++k) out[i + k] = static_cast<char>(v >> (8 * k));
    }
    return out;
}

std::string tiny_png() {
    // 1x1 red pixel, RGB.
    static const unsigned char png[] = {
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
        0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00,
        0x00, 0x90, 0x77, 0x53, 0xde, 0x00, 0x00, 0x00, 0x0c, 0x49, 0x44, 0x41, 0x54, 0x08,
        0xd7, 0x63, 0xf8, 0xcf, 0xc0, 0x00, 0x00, 0x03, 0x01, 0x01, 0x00, 0x18, 0xdd, 0x8d,
        0xb0, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};
    return std::string(reinterpret_cast<const char*>(png), sizeof png);
}

bool contains(std::string_view text, std::string_view needle) {
    return text.find(needle) != std::string_view::npos;
}

size_t count_of(std::string_view text, std::string_view needle) {
    size_t n = 0;
    for (size_t pos = text.find(needle); pos != std::string_view::npos;
         pos = text.find(needle, pos + needle.size()))
        ++n;
    return n;
}

std::vector<std::string> lines_with(std::string_view text, std::string_view needle) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        if (contains(line, needle)) out.emplace_back(line);
        pos = end + 1;
    }
    return out;
}

std::string connection_id(std::string_view log_line) {
    for (size_t at = log_line.find("c="); at != std::string_view::npos;
         at = log_line.find("c=", at + 2)) {
        if (at > 0 && std::isalnum(static_cast<unsigned char>(log_line[at - 1]))) continue;
        size_t end = at + 2;
        while (end < log_line.size() && std::isdigit(static_cast<unsigned char>(log_line[end])))
            ++end;
        if (end > at + 2) return std::string(log_line.substr(at + 2, end - at - 2));
    }
    return {};
}

uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(errno_text("socket"));
    sockaddr_in a = loopback(0);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        throw std::runtime_error(errno_text("bind"));
    }
    uint16_t port = bound_port(fd);
    ::close(fd);
    return port;
}

bool wait_until(const std::function<bool()>& predicate, Ms timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
        if (predicate()) return true;
        std::this_thread::sleep_for(5ms);
    }
    return predicate();
}

std::string hallpass_bin() {
    const char* bin = std::getenv("HALLPASS_BIN");
    if (!bin || !*bin) throw std::runtime_error("HALLPASS_BIN is not set (run through meson test)");
    return bin;
}

bool hallpass_is_sanitized() {
    static const bool sanitized = contains(read_file(hallpass_bin()), "__asan_init");
    return sanitized;
}

fs::path artifacts_dir() {
    const char* dir = std::getenv("HALLPASS_E2E_ARTIFACTS");
    return dir && *dir ? fs::path(dir) : fs::current_path();
}

Ms process_cpu_time(pid_t pid) {
    // Fields 14 and 15 of /proc/PID/stat (utime, stime) in clock ticks; the command name in
    // field 2 may hold spaces, so count from its closing parenthesis.
    std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    auto paren = stat.rfind(')');
    if (paren == std::string::npos) return Ms(-1);
    std::istringstream in(stat.substr(paren + 2));
    std::string field;
    long utime = -1, stime = -1;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) utime = std::atol(field.c_str());
        if (i == 15) stime = std::atol(field.c_str());
    }
    long hz = ::sysconf(_SC_CLK_TCK);
    if (utime < 0 || stime < 0 || hz <= 0) return Ms(-1);
    return Ms((utime + stime) * 1000 / hz);
}

size_t pipes_of(pid_t pid) {
    size_t n = 0;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec))
        if (fs::read_symlink(entry.path(), ec).string().rfind("pipe:", 0) == 0) ++n;
    return n;
}

size_t bytes_in_pipes(pid_t pid) {
    size_t total = 0;
    std::set<std::string> seen;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
        std::string target = fs::read_symlink(entry.path(), ec).string();
        if (target.rfind("pipe:", 0) != 0 || !seen.insert(target).second) continue;
        int fd = ::open(entry.path().c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        int n = 0;
        if (::ioctl(fd, FIONREAD, &n) == 0 && n > 0) total += static_cast<size_t>(n);
        ::close(fd);
    }
    return total;
}

long open_fd_count(pid_t pid) {
    std::error_code ec;
    long n = 0;
    for (fs::directory_iterator it("/proc/" + std::to_string(pid) + "/fd", ec), end;
         !ec && it != end; it.increment(ec))
        ++n;
    return ec ? -1 : n;
}

long raise_fd_limit(long wanted) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return -1;
    rlim_t target = static_cast<rlim_t>(wanted);
    if (lim.rlim_max != RLIM_INFINITY && target > lim.rlim_max) target = lim.rlim_max;
    if (target > lim.rlim_cur) {
        lim.rlim_cur = target;
        ::setrlimit(RLIMIT_NOFILE, &lim);
        ::getrlimit(RLIMIT_NOFILE, &lim);
    }
    return static_cast<long>(lim.rlim_cur);
}

fs::path source_root() {
    if (const char* env = std::getenv("HALLPASS_SOURCE_ROOT"); env && *env) return env;
    // A bare run of a test binary: __FILE__ is relative to the build root, three levels above
    // the binary (build/tests/e2e/).
    fs::path source = __FILE__;
    if (source.is_relative())
        source =
            fs::read_symlink("/proc/self/exe").parent_path().parent_path().parent_path() / source;
    return (source.parent_path() / ".." / "..").lexically_normal();
}

fs::path blocklists_dir() {
    fs::path dir;
    if (const char* env = std::getenv("HALLPASS_BLOCKLISTS"); env && *env)
        dir = env;
    else
        dir = (source_root() / ".." / "shared" / "data" / "blocklists").lexically_normal();
    if (!fs::is_directory(dir))
        throw std::runtime_error("block lists not found at " + dir.string() +
                                 "; set HALLPASS_BLOCKLISTS");
    return dir;
}

// ---------------------------------------------------------------------------------------------
// Process

namespace {

// Live children as kill() targets (pid, or -pid for a group of its own); 0 marks a free entry.
// Lock-free so the crash handler can read it.
constexpr size_t kMaxChildren = 512;
std::atomic<pid_t> g_children[kMaxChildren];

void register_child(pid_t target) {
    for (auto& slot : g_children) {
        pid_t free = 0;
        if (slot.compare_exchange_strong(free, target)) return;
    }
}

void unregister_child(pid_t target) {
    for (auto& slot : g_children) {
        pid_t expected = target;
        if (slot.compare_exchange_strong(expected, 0)) return;
    }
}

constexpr int kCrashSignals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
struct sigaction g_previous[sizeof kCrashSignals / sizeof *kCrashSignals];

volatile sig_atomic_t g_crashing = 0;

extern "C" void kill_children_on_crash(int sig, siginfo_t* info, void* context) {
    if (g_crashing) {  // a handler called below raised again: die now
        ::signal(sig, SIG_DFL);
        ::raise(sig);
        return;
    }
    g_crashing = 1;
    for (auto& slot : g_children) {
        const pid_t target = slot.load();
        if (target != 0) ::kill(target, SIGKILL);  // async-signal-safe
    }
    // Then what was there before: a sanitizer's report, or the default action. (doctest
    // installs its own handler in front of this one for each test case; it reports, puts this
    // one back and raises again.)
    for (size_t i = 0; i < sizeof kCrashSignals / sizeof *kCrashSignals; ++i) {
        if (kCrashSignals[i] != sig) continue;
        const struct sigaction& old = g_previous[i];
        ::sigaction(sig, &old, nullptr);
        if ((old.sa_flags & SA_SIGINFO) != 0 && old.sa_sigaction != nullptr) {
            old.sa_sigaction(sig, info, context);
        } else if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN &&
                   old.sa_handler != nullptr) {
            old.sa_handler(sig);
        }
    }
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

// Before main(), so doctest's per-test-case handler always goes in front of this one.
const bool g_reaper_installed = (install_child_reaper_on_crash(), true);

}  // namespace

void install_child_reaper_on_crash() {
    for (size_t i = 0; i < sizeof kCrashSignals / sizeof *kCrashSignals; ++i) {
        struct sigaction action {};
        action.sa_sigaction = kill_children_on_crash;
        action.sa_flags = SA_SIGINFO;
        sigemptyset(&action.sa_mask);
        struct sigaction old {};
        ::sigaction(kCrashSignals[i], &action, &old);
        if (old.sa_sigaction != kill_children_on_crash) g_previous[i] = old;
    }
}

Process::Process(const std::vector<std::string>& argv, SpawnOptions options)
    : argv_(argv), own_group_(options.own_process_group) {
    if (argv.empty()) throw std::invalid_argument("Process: empty argv");
    (void)g_reaper_installed;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, options.stdin_path.c_str(), O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, options.stdout_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_addopen(&actions, 2, options.stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2})
        sigaddset(&defaults, sig);
    sigset_t empty;
    sigemptyset(&empty);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setsigmask(&attr, &empty);
    short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
    if (own_group_) {
        flags |= POSIX_SPAWN_SETPGROUP;
        posix_spawnattr_setpgroup(&attr, 0);
    }
    posix_spawnattr_setflags(&attr, flags);

    std::vector<char*> args;
    for (const auto& a : argv_) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<char*> env;
    for (char** e = environ; *e; ++e)
        if (!is_proxy_variable(*e)) env.push_back(*e);
    env.push_back(nullptr);

    int rc = posix_spawnp(&pid_, argv_[0].c_str(), &actions, &attr, args.data(), env.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        pid_ = -1;
        throw std::runtime_error("posix_spawn " + argv_[0] + ": " + std::strerror(rc));
    }
    register_child(own_group_ ? -pid_ : pid_);
}

Process::~Process() {
    if (pid_ > 0 && !status_) kill_and_wait();
}

void Process::signal(int sig) {
    if (pid_ <= 0 || status_) return;
    ::kill(own_group_ ? -pid_ : pid_, sig);
}

bool Process::try_reap(bool block) {
    if (status_) return true;
    if (own_group_) {
        // Peek first: while the leader is an unreaped zombie its pid cannot be reused, so
        // killing the group cannot hit a stranger. Helpers it left behind die with it.
        siginfo_t info{};
        int rc;
        do {
            rc = waitid(P_PID, static_cast<id_t>(pid_), &info,
                        WEXITED | WNOWAIT | (block ? 0 : WNOHANG));
        } while (rc != 0 && errno == EINTR);
        if (rc != 0 || info.si_pid != pid_) return false;
        ::kill(-pid_, SIGKILL);
    }
    int st = 0;
    pid_t r;
    do {
        r = waitpid(pid_, &st, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r != pid_) return false;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    unregister_child(own_group_ ? -pid_ : pid_);
    return true;
}

bool Process::running() { return !try_reap(false); }

std::optional<int> Process::wait_for(Ms timeout) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
        if (try_reap(false)) return status_;
        if (Clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(2ms);
    }
}

int Process::kill_and_wait() {
    if (status_) return *status_;
    ::kill(own_group_ ? -pid_ : pid_, SIGKILL);
    try_reap(true);
    return status_.value_or(-1);
}

RunResult run(const std::vector<std::string>& argv, Ms timeout, bool own_process_group) {
    TempDir dir;
    SpawnOptions opts;
    opts.stdout_path = dir / "stdout";
    opts.stderr_path = dir / "stderr";
    opts.own_process_group = own_process_group;
    RunResult result;
    auto start = Clock::now();
    {
        Process p(argv, opts);
        auto status = p.wait_for(timeout);
        if (status) {
            result.exit_code = *status;
        } else {
            result.timed_out = true;
            p.kill_and_wait();
        }
    }
    result.elapsed = std::chrono::duration_cast<Ms>(Clock::now() - start);
    result.out = read_file(dir / "stdout");
    result.err = read_file(dir / "stderr");
    return result;
}

RunResult curl(uint16_t proxy_port, const std::vector<std::string>& args, Ms timeout) {
    auto seconds = std::chrono::duration_cast<std::chrono::seconds>(timeout).count();
    std::vector<std::string> argv = {"curl",       "-sS",
                                     "--max-time", std::to_string(std::max<long>(1, seconds - 1)),
                                     "--noproxy",  ""};
    if (proxy_port != 0) {
        argv.push_back("-x");
        argv.push_back("http://127.0.0.1:" + std::to_string(proxy_port));
    }
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, timeout);
}

// ---------------------------------------------------------------------------------------------
// DnsStub

DnsStub::DnsStub(Mode mode) : mode_(mode) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error(errno_text("dns stub socket"));
    sockaddr_in a = loopback(0);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
        throw std::runtime_error(errno_text("dns stub bind"));
    port_ = bound_port(fd_);
    if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
    thread_ = std::thread([this] { serve(); });
}

DnsStub::~DnsStub() {
    if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
    if (thread_.joinable()) thread_.join();
    close_fd(fd_);
    close_fd(wake_[0]);
    close_fd(wake_[1]);
}

std::vector<std::string> DnsStub::names() const {
    std::lock_guard lock(mu_);
    return names_;
}

void DnsStub::serve() {
    unsigned char q[1500];
    for (;;) {
        pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[1].revents) return;
        sockaddr_storage from{};
        socklen_t from_len = sizeof from;
        ssize_t n = ::recvfrom(fd_, q, sizeof q, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
        if (n < 12) continue;
        // Question: labels up to the root label, then QTYPE and QCLASS (RFC 1035 §4.1.2).
        size_t pos = 12;
        std::string name;
        bool ok = true;
        while (pos < static_cast<size_t>(n) && q[pos] != 0) {
            size_t len = q[pos];
            if ((len & 0xc0) != 0 || pos + 1 + len > static_cast<size_t>(n)) {
                ok = false;
                break;
            }
            if (!name.empty()) name += '.';
            name.append(reinterpret_cast<const char*>(q + pos + 1), len);
            pos += 1 + len;
        }
        pos += 1 + 4;
        if (!ok || pos > static_cast<size_t>(n)) continue;
        {
            std::lock_guard lock(mu_);
            names_.push_back(name);
        }
        queries_++;
        if (mode_ == Mode::Silent) continue;
        const bool ok_name = name.rfind("ok", 0) == 0;
        if (mode_ == Mode::OkAnswers && !ok_name) continue;
        const bool type_a = q[pos - 4] == 0 && q[pos - 3] == 1;
        std::string reply(reinterpret_cast<const char*>(q), pos);
        reply[2] = static_cast<char>(0x80 | (q[2] & 0x79));  // QR, same opcode and RD
        // RA, and RCODE=3 NXDOMAIN, or 0 for an "ok" name.
        reply[3] = static_cast<char>(mode_ == Mode::OkAnswers ? 0x80 : 0x80 | 3);
        reply[4] = 0;
        reply[5] = 1;  // QDCOUNT 1; AN/NS/AR 0 (an EDNS OPT record in the query is dropped)
        for (int i = 6; i < 12; ++i) reply[i] = 0;
        if (mode_ == Mode::OkAnswers && type_a) {
            // One answer: a pointer to the question's name, A, IN, TTL 60, 127.0.0.1.
            reply[7] = 1;
            const unsigned char rr[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
            reply.append(reinterpret_cast<const char*>(rr), sizeof rr);
        }
        ::sendto(fd_, reply.data(), reply.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
    }
}

// ---------------------------------------------------------------------------------------------
// ScriptedOrigin

ScriptedOrigin::ScriptedOrigin() : ScriptedOrigin(Options{}) {}

ScriptedOrigin::ScriptedOrigin(Options options) : options_(std::move(options)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error(errno_text("origin socket"));
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = loopback(0);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 128) != 0)
        throw std::runtime_error(errno_text("origin bind/listen"));
    port_ = bound_port(listen_fd_);
    if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
    accept_thread_ = std::thread([this] { accept_loop(); });
}

ScriptedOrigin::~ScriptedOrigin() {
    stopping_ = true;
    // The wake pipe is never read: once written, every poll() on it returns at once.
    (void)!::write(wake_[1], "x", 1);
    if (accept_thread_.joinable()) accept_thread_.join();
    {
        std::lock_guard lock(mu_);
        for (int fd : conn_fds_)
            if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : conn_threads_)
        if (t.joinable()) t.join();
    for (int& fd : conn_fds_) close_fd(fd);
    close_fd(listen_fd_);
    close_fd(wake_[0]);
    close_fd(wake_[1]);
}

std::vector<std::string> ScriptedOrigin::requests() const {
    std::lock_guard lock(mu_);
    return requests_;
}

bool ScriptedOrigin::wait_for_requests(size_t n, Ms timeout) const {
    return wait_until([&] { return requests().size() >= n; }, timeout);
}

void ScriptedOrigin::record(std::string request) {
    std::lock_guard lock(mu_);
    requests_.push_back(std::move(request));
}

void ScriptedOrigin::accept_loop() {
    for (;;) {
        pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if (fds[1].revents) return;
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) continue;
        connections_++;
        std::lock_guard lock(mu_);
        size_t slot = conn_fds_.size();
        conn_fds_.push_back(fd);
        conn_threads_.emplace_back([this, fd, slot] {
            serve(fd);
            std::lock_guard inner(mu_);
            // Closed here, under the lock, so the destructor never touches a reused number.
            if (options_.mode == Mode::ResetMidResponse || options_.mode == Mode::ResetAfterHead) {
                linger lg{1, 0};
                ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            }
            ::close(fd);
            conn_fds_[slot] = -1;
        });
    }
}

void ScriptedOrigin::serve(int fd) {
    std::string buf;
    char chunk[65536];
    // Waits for readable data (or the stop signal); false when stopping.
    auto wait_readable = [&] {
        for (;;) {
            pollfd fds[2] = {{fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR) continue;
                return false;
            }
            if (fds[1].revents) return false;
            return true;
        }
    };
    // Reads more bytes into buf; false on EOF, error or stop.
    bool peer_closed = false;
    auto read_more = [&] {
        if (!wait_readable()) return false;
        ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
            if (!peer_closed && !stopping_) closed_by_peer_++;
            peer_closed = true;
            return false;
        }
        buf.append(chunk, static_cast<size_t>(n));
        return true;
    };
    // Reads one complete request into `out`; false when the connection ended first (any
    // partial request is recorded then, so tests see what arrived).
    auto next_request = [&](std::string& out) {
        for (;;) {
            long len = request_length(buf);
            if (len >= 0) {
                out = buf.substr(0, static_cast<size_t>(len));
                buf.erase(0, static_cast<size_t>(len));
                return true;
            }
            if (len == -2 || !read_more()) {
                if (!buf.empty()) record(std::exchange(buf, {}));
                return false;
            }
        }
    };

    std::string request;
    switch (options_.mode) {
        case Mode::Respond:
            while (next_request(request)) {
                record(request);
                send_all_blocking(fd, options_.reply);
                if (options_.close_after_reply) {
                    std::this_thread::sleep_for(options_.pause_after_reply);
                    ::shutdown(fd, SHUT_WR);
                    // Let the peer read and close first, so it sees a clean FIN. Whatever it
                    // still sends is recorded as one more entry (half-close checks).
                    while (read_more()) {
                    }
                    if (!buf.empty()) record(std::exchange(buf, {}));
                    return;
                }
            }
            return;
        case Mode::Silent:
            while (next_request(request)) record(request);
            return;
        case Mode::Stall:
            // Never reads; POLLRDHUP (FIN) and POLLHUP/POLLERR (RST) still say the peer went.
            while (!stopping_) {
                pollfd fds[2] = {{fd, POLLRDHUP, 0}, {wake_[0], POLLIN, 0}};
                if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
                if (fds[1].revents) return;
                if (fds[0].revents) {
                    closed_by_peer_++;
                    return;
                }
            }
            return;
        case Mode::ResetMidResponse:
            if (next_request(request)) {
                record(request);
                if (options_.send_timeout.count() > 0) {
                    const auto us =
                        std::chrono::duration_cast<std::chrono::microseconds>(options_.send_timeout)
                            .count();
                    timeval tv{static_cast<time_t>(us / 1000000),
                               static_cast<suseconds_t>(us % 1000000)};
                    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
                }
                send_all_blocking(fd, options_.reply);
                std::this_thread::sleep_for(options_.pause_after_reply);
            }
            return;
        case Mode::CloseEarly:
            if (next_request(request)) record(request);
            return;
        case Mode::ReadToEofThenReply:
            while (read_more()) {
            }
            record(std::exchange(buf, {}));
            send_all_blocking(fd, options_.reply);
            ::shutdown(fd, SHUT_WR);
            return;
        case Mode::Repeat:
            if (next_request(request)) {
                record(request);
                while (!stopping_) {
                    if (!send_all_checked(fd, options_.reply)) break;
                }
            }
            return;
        case Mode::ResetAfterHead:
            while (!contains(buf, "\r\n\r\n"))
                if (!read_more()) return;
            record(std::exchange(buf, {}));
            return;  // the closing thread sets SO_LINGER 0: an RST, unread body or not
    }
}

// ---------------------------------------------------------------------------------------------
// EchoServer

EchoServer::EchoServer() {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd_ < 0) throw std::runtime_error(errno_text("echo socket"));
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = loopback(0);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 4096) != 0)
        throw std::runtime_error(errno_text("echo bind/listen"));
    port_ = bound_port(listen_fd_);
    if (::pipe2(wake_, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw std::runtime_error(errno_text("epoll_create1"));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_fd_;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
    ev.data.fd = wake_[0];
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_[0], &ev);
    thread_ = std::thread([this] { serve(); });
}

EchoServer::~EchoServer() {
    (void)!::write(wake_[1], "x", 1);
    if (thread_.joinable()) thread_.join();
    close_fd(epoll_fd_);
    close_fd(listen_fd_);
    close_fd(wake_[0]);
    close_fd(wake_[1]);
}

void EchoServer::serve() {
    // fd -> bytes read but not yet written back (the peer is not reading).
    std::map<int, std::string> pending;
    auto drop = [&](int fd) {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
        pending.erase(fd);
        open_--;
    };
    auto flush = [&](int fd) {
        std::string& out = pending[fd];
        while (!out.empty()) {
            ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
            if (n > 0) {
                bytes_ += static_cast<uint64_t>(n);
                out.erase(0, static_cast<size_t>(n));
            } else if (n < 0 && errno == EINTR) {
                continue;
            } else {
                return n < 0 && errno == EAGAIN;
            }
        }
        return true;
    };
    std::vector<epoll_event> events(256);
    std::vector<char> chunk(65536);
    for (;;) {
        int n = ::epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == wake_[0]) {
                for (const auto& [conn, unused] : pending) ::close(conn);
                return;
            }
            if (fd == listen_fd_) {
                for (;;) {
                    int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
                    if (c < 0) break;
                    accepted_++;
                    open_++;
                    pending[c];
                    epoll_event ev{};
                    ev.events = EPOLLIN | EPOLLRDHUP;
                    ev.data.fd = c;
                    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c, &ev);
                }
                continue;
            }
            bool alive = true;
            for (;;) {
                ssize_t got = ::recv(fd, chunk.data(), chunk.size(), 0);
                if (got > 0) {
                    pending[fd].append(chunk.data(), static_cast<size_t>(got));
                    if (pending[fd].size() > (4u << 20)) break;  // the peer is not reading
                    continue;
                }
                if (got < 0 && errno == EINTR) continue;
                if (got < 0 && errno == EAGAIN) break;
                alive = false;  // EOF or reset
                break;
            }
            if (!flush(fd) || !alive) {
                drop(fd);
                continue;
            }
            // Wait for writability only while something is left to send.
            epoll_event ev{};
            ev.events = EPOLLRDHUP | (pending[fd].empty() ? EPOLLIN : EPOLLOUT);
            ev.data.fd = fd;
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Nginx

Nginx::Nginx(const TempDir& dir, NginxOptions options)
    : root_(dir / "nginx"), options_(std::move(options)) {
    fs::create_directories(root_ / "tmp");
    fs::create_directories(docroot() / "slow");
    if (options_.tls) {
        RunResult r = run(
            {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=site.test",
             "-addext", "subjectAltName=DNS:site.test,IP:127.0.0.1", "-days", "1", "-keyout",
             (root_ / "key.pem").string(), "-out", (root_ / "cert.pem").string()},
            30s);
        if (r.exit_code != 0) throw std::runtime_error("openssl req failed: " + r.err);
    }
    for (int attempt = 0; attempt < 5; ++attempt)
        if (start_once()) return;
    throw std::runtime_error("nginx did not start: " + error_log());
}

Nginx::~Nginx() = default;

void Nginx::write_config() {
    const std::string r = root_.string();
    std::string listen = "        listen 127.0.0.1:" + std::to_string(port_) + ";\n";
    if (options_.ipv6) listen += "        listen [::1]:" + std::to_string(port_) + ";\n";
    if (options_.tls) {
        listen += "        listen 127.0.0.1:" + std::to_string(tls_port_) + " ssl;\n";
        listen += "        ssl_certificate " + r + "/cert.pem;\n";
        listen += "        ssl_certificate_key " + r + "/key.pem;\n";
    }
    std::string conf = "daemon off;\nmaster_process off;\nworker_processes 1;\n";
    conf += "pid " + r + "/nginx.pid;\n";
    conf += "error_log " + r + "/error.log info;\n";
    conf += "load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;\n";
    conf += "events { worker_connections 1024; }\n";
    conf += "http {\n";
    conf +=
        "    log_format e2e '$connection $connection_requests $status $body_bytes_sent "
        "$request_length \"$request\" \"$http_host\" \"$http_via\" \"$http_connection\" "
        "\"$scheme\"';\n";
    conf += "    access_log " + r + "/access.log e2e;\n";
    for (const char* t : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"})
        conf += std::string("    ") + t + "_temp_path " + r + "/tmp/" + t + ";\n";
    conf +=
        "    types { text/html html; text/css css; application/javascript js; image/png png; "
        "text/plain txt; }\n"
        "    default_type application/octet-stream;\n"
        "    sendfile on;\n"
        "    keepalive_requests 10000;\n"
        "    keepalive_timeout 60s;\n"
        "    client_max_body_size 64m;\n"
        "    client_body_buffer_size 16m;\n";
    conf += options_.extra_http + "\n";
    conf += "    server {\n" + listen;
    conf += "        server_name _;\n";
    conf += "        root " + docroot().string() + ";\n";
    conf += "        location /echo { echo_read_request_body; echo_request_body; }\n";
    conf += "        location /slow/ { limit_rate 100k; }\n";
    conf += options_.extra_server + "\n";
    conf += "    }\n}\n";
    write_file(root_ / "nginx.conf", conf);
}

bool Nginx::start_once() {
    port_ = free_port();
    tls_port_ = options_.tls ? free_port() : 0;
    write_config();
    SpawnOptions opts;
    opts.stdout_path = root_ / "stdout.log";
    opts.stderr_path = root_ / "stderr.log";
    process_ =
        std::make_unique<Process>(std::vector<std::string>{"/usr/sbin/nginx", "-p", root_.string(),
                                                           "-c", (root_ / "nginx.conf").string(),
                                                           "-e", (root_ / "error.log").string()},
                                  opts);
    bool up = wait_until(
        [&] {
            if (!process_->running()) return true;
            if (RawClient::try_connect(port_, "127.0.0.1", 200ms) != 0) return false;
            return tls_port_ == 0 || RawClient::try_connect(tls_port_, "127.0.0.1", 200ms) == 0;
        },
        10s);
    if (up && process_->running()) return true;
    process_.reset();  // kills it if it is still running
    return false;
}

void Nginx::put(std::string_view name, std::string_view content) const {
    write_file(docroot() / name, content);
}

std::string Nginx::url(std::string_view path, std::string_view host) const {
    return "http://" + std::string(host) + ":" + std::to_string(port_) + std::string(path);
}

std::string Nginx::access_log() const { return read_file(root_ / "access.log"); }
std::string Nginx::error_log() const {
    return read_file(root_ / "error.log") + read_file(root_ / "stderr.log");
}

std::vector<Nginx::Access> Nginx::accesses() const {
    std::vector<Access> out;
    std::istringstream in(access_log());
    std::string line;
    while (std::getline(in, line)) {
        Access a;
        std::istringstream fields(line);
        if (!(fields >> a.connection >> a.connection_requests >> a.status >> a.bytes_sent >>
              a.request_length))
            continue;
        std::vector<std::string> quoted;
        for (size_t pos = line.find('"'); pos != std::string::npos;) {
            size_t end = line.find('"', pos + 1);
            if (end == std::string::npos) break;
            quoted.push_back(line.substr(pos + 1, end - pos - 1));
            pos = line.find('"', end + 1);
        }
        if (quoted.size() >= 4) {
            a.request = quoted[0];
            a.host = quoted[1] == "-" ? "" : quoted[1];
            a.via = quoted[2] == "-" ? "" : quoted[2];
            a.connection_header = quoted[3] == "-" ? "" : quoted[3];
        }
        if (quoted.size() >= 5) a.scheme = quoted[4];
        out.push_back(a);
    }
    return out;
}

bool Nginx::wait_for_accesses(size_t n, Ms timeout) const {
    return wait_until([&] { return accesses().size() >= n; }, timeout);
}

// ---------------------------------------------------------------------------------------------
// Hallpass

namespace {
std::atomic<int> hallpass_instances{0};

// Port from a "listening on 127.0.0.1:PORT" / "listening on [::1]:PORT" line.
std::optional<uint16_t> port_from_line(std::string_view line) {
    auto at = line.find("listening on ");
    if (at == std::string_view::npos) return std::nullopt;
    std::string_view rest = line.substr(at + 13);
    size_t colon;
    if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find("]:");
        if (close == std::string_view::npos) return std::nullopt;
        colon = close + 1;
    } else {
        colon = rest.find(':');
        if (colon == std::string_view::npos) return std::nullopt;
    }
    unsigned long port = 0;
    size_t digits = 0;
    for (size_t i = colon + 1; i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]));
         ++i, ++digits)
        port = port * 10 + static_cast<unsigned long>(rest[i] - '0');
    if (digits == 0 || port == 0 || port > 65535) return std::nullopt;
    return static_cast<uint16_t>(port);
}
}  // namespace

FakeClock::FakeClock(const TempDir& dir, const std::string& start) : file_(dir / "faketime.txt") {
    const char* lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
    if (!fs::exists(lib)) throw std::runtime_error(std::string("libfaketime is missing: ") + lib);
    set(start);
}

void FakeClock::set(const std::string& when) {
    // Whole or not at all: the library reads the file at any moment.
    const fs::path tmp = file_.string() + ".tmp";
    write_file(tmp, "@" + when + "\n");
    fs::rename(tmp, file_);
}

std::vector<std::string> FakeClock::prefix() const {
    const char* inherited = std::getenv("ASAN_OPTIONS");
    const std::string asan_options =
        std::string(inherited && *inherited ? std::string(inherited) + ":" : "") +
        "verify_asan_link_order=0";
    return {"env",
            "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
            "FAKETIME_TIMESTAMP_FILE=" + file_.string(),
            "FAKETIME_NO_CACHE=1",
            "FAKETIME_DONT_FAKE_MONOTONIC=1",
            "TZ=UTC",
            // Under ASan the preloaded library comes before ASan's runtime: allowed, not fatal.
            "ASAN_OPTIONS=" + asan_options};
}

Hallpass::Hallpass(const TempDir& dir, HallpassOptions options) {
    int n = hallpass_instances++;
    std::string stem = "hallpass" + std::to_string(n);
    dns_ = std::make_unique<DnsStub>(options.dns_mode);

    std::string hosts = "127.0.0.1";
    for (const auto& h : options.hosts) hosts += " " + h;
    fs::path hosts_path = dir / (stem + ".hosts");
    write_file(hosts_path, hosts + "\n" + options.extra_hosts + "\n");

    std::string yaml = "server:\n";
    yaml += "  hosts_file: \"" + hosts_path.string() + "\"\n";
    yaml += "  nameservers: [\"127.0.0.1:" + std::to_string(dns_->port()) + "\"]\n";
    std::istringstream extra(options.server_yaml);
    for (std::string line; std::getline(extra, line);)
        if (!trim(line).empty()) yaml += "  " + line + "\n";
    yaml += "  admin: \"" + options.admin + "\"\n";
    if (options.server_yaml.find("control_socket:") == std::string::npos)
        yaml += "  control_socket: \"" + options.control_socket + "\"\n";
    if (options.server_yaml.find("state_dir:") == std::string::npos)
        yaml += "  state_dir: \"" + (dir / (stem + ".state")).string() + "\"\n";
    if (!options.allow_local.empty())
        yaml += "  allow_local_destinations: " + options.allow_local + "\n";
    if (!options.user.empty()) yaml += "  user: " + options.user + "\n";
    server_section_ = yaml;
    config_path_ = dir / (stem + ".yaml");
    write_rules(options.rules_yaml);

    std::vector<std::string> argv = options.command_prefix;
    argv.insert(argv.end(), {hallpass_bin(), "-c", config_path_.string()});
    for (const auto& l : options.listen) {
        argv.push_back("--listen");
        argv.push_back(l);
    }
    argv.push_back("--threads");
    argv.push_back(std::to_string(options.threads));
    argv.push_back("--log-level");
    argv.push_back(options.log_level);
    argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());

    stderr_path_ = dir / (stem + ".stderr");
    SpawnOptions opts;
    opts.stdout_path = dir / (stem + ".stdout");
    opts.stderr_path = stderr_path_;
    process_ = std::make_unique<Process>(argv, opts);

    bool listening = wait_until(
        [&] {
            ports_.clear();
            std::istringstream in(stderr_text());
            for (std::string line; std::getline(in, line);)
                if (auto p = port_from_line(line)) ports_.push_back(*p);
            return ports_.size() >= options.listen.size() || !process_->running();
        },
        10s);
    if (!listening || ports_.size() < options.listen.size()) {
        std::string why =
            process_->running()
                ? "no \"listening on\" line within 10 s"
                : "exited with status " + std::to_string(process_->wait_for(0ms).value_or(-1));
        process_->kill_and_wait();
        throw std::runtime_error("hallpass did not start (" + why + "); stderr:\n" + stderr_text());
    }
    if (options.admin != "off") {
        // Logged right after the "listening on" lines: "admin endpoint on http://ADDR:PORT/ ...".
        const std::string_view marker = "admin endpoint on http://";
        bool found = wait_until(
            [&] {
                for (const std::string& line : lines_with(stderr_text(), marker)) {
                    std::string_view rest =
                        std::string_view(line).substr(line.find(marker) + marker.size());
                    rest = rest.substr(0, rest.find('/'));
                    admin_port_ = static_cast<uint16_t>(
                        std::stoul(std::string(rest.substr(rest.rfind(':') + 1))));
                    return true;
                }
                return !process_->running();
            },
            10s);
        if (!found || admin_port_ == 0) {
            process_->kill_and_wait();
            throw std::runtime_error("hallpass did not log its admin endpoint; stderr:\n" +
                                     stderr_text());
        }
    }
}

Hallpass::~Hallpass() {
    process_->kill_and_wait();
    // A sanitizer build reports some errors (UBSan) without aborting: fail the test on them.
    std::string log = stderr_text();
    for (const char* marker : {"runtime error:", "AddressSanitizer", "LeakSanitizer"}) {
        if (size_t at = log.find(marker); at != std::string::npos) {
            // The report with its stack (UBSan's print_stacktrace), not just its first line.
            size_t from = log.rfind('\n', at);
            from = from == std::string::npos ? 0 : from + 1;
            FAIL_CHECK("hallpass sanitizer report:\n" << log.substr(from, 6000));
            break;
        }
    }
}

std::string Hallpass::proxy_url() const { return "http://127.0.0.1:" + std::to_string(port()); }

std::string Hallpass::stderr_text() const { return read_file(stderr_path_); }

bool Hallpass::wait_for_log(std::string_view needle, Ms timeout) const {
    return wait_until([&] { return contains(stderr_text(), needle); }, timeout);
}

size_t Hallpass::log_count(std::string_view needle) const {
    return count_of(stderr_text(), needle);
}

bool Hallpass::wait_for_log_count(std::string_view needle, size_t n, Ms timeout) const {
    return wait_until([&] { return log_count(needle) >= n; }, timeout);
}

void Hallpass::write_rules(std::string_view rules_yaml) const {
    std::string yaml = server_section_;
    if (!rules_yaml.empty()) {
        yaml += rules_yaml;
        if (yaml.back() != '\n') yaml += '\n';
    }
    // Written beside and renamed over the config, so a reload never reads half a file.
    fs::path tmp = config_path_;
    tmp += ".new";
    write_file(tmp, yaml);
    fs::rename(tmp, config_path_);
}

void Hallpass::reload() { process_->signal(SIGHUP); }

long Hallpass::rss_kib() const {
    std::ifstream in("/proc/" + std::to_string(process_->pid()) + "/status");
    for (std::string line; std::getline(in, line);)
        if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    return 0;
}

int Hallpass::stop(Ms timeout) {
    process_->signal(SIGTERM);
    if (auto status = process_->wait_for(timeout)) return *status;
    process_->kill_and_wait();
    return -1;
}

// ---------------------------------------------------------------------------------------------
// HTTP responses and the raw client

bool HttpResponse::has(std::string_view name) const { return headers.count(lower(name)) > 0; }

std::string HttpResponse::header(std::string_view name) const {
    auto it = headers.find(lower(name));
    return it == headers.end() ? std::string() : it->second;
}

std::vector<std::string> HttpRequest::values(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [n, v] : fields)
        if (lower(n) == lower(name)) out.push_back(v);
    return out;
}

std::optional<std::string> decode_chunked(std::string_view body) {
    std::string out;
    long len = chunked_length(body, &out);
    if (len < 0) return std::nullopt;
    return out;
}

std::optional<HttpRequest> parse_request(std::string_view raw) {
    long total = request_length(raw);
    if (total < 0) return std::nullopt;
    size_t head_len = raw.find("\r\n\r\n") + 4;
    HttpRequest r;
    size_t eol = raw.find("\r\n");
    r.request_line = std::string(raw.substr(0, eol));
    size_t pos = eol;
    while (pos + 2 < head_len) {
        size_t start = pos + 2;
        size_t end = raw.find("\r\n", start);
        if (end == start) break;
        std::string_view line = raw.substr(start, end - start);
        auto colon = line.find(':');
        if (colon == std::string_view::npos) return std::nullopt;
        r.fields.emplace_back(std::string(line.substr(0, colon)),
                              std::string(trim(line.substr(colon + 1))));
        pos = end;
    }
    Framing f = framing_of(raw.substr(0, head_len));
    std::string_view body = raw.substr(head_len, static_cast<size_t>(total) - head_len);
    if (f.chunked) {
        r.chunked = true;
        auto decoded = decode_chunked(body);
        if (!decoded) return std::nullopt;
        r.body = *decoded;
    } else {
        r.body = std::string(body);
    }
    return r;
}

int parse_status(std::string_view head) {
    if (head.substr(0, 5) != "HTTP/" || head.size() < 12) return 0;
    auto sp = head.find(' ');
    if (sp == std::string_view::npos || sp + 4 > head.size()) return 0;
    int code = 0;
    for (size_t i = sp + 1; i < sp + 4; ++i) {
        if (!std::isdigit(static_cast<unsigned char>(head[i]))) return 0;
        code = code * 10 + (head[i] - '0');
    }
    return code;
}

std::optional<HttpResponse> parse_response_head(std::string_view head) {
    HttpResponse r;
    r.status = parse_status(head);
    if (r.status == 0) return std::nullopt;
    r.head = std::string(head);
    size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos) {
        size_t start = pos + 2;
        size_t end = head.find("\r\n", start);
        if (end == std::string_view::npos || end == start) break;
        std::string_view line = head.substr(start, end - start);
        auto colon = line.find(':');
        if (colon != std::string_view::npos) {
            std::string name(trim(line.substr(0, colon)));
            std::string value(trim(line.substr(colon + 1)));
            r.fields.emplace_back(name, value);
            r.headers[lower(name)] = value;
        }
        pos = end;
    }
    return r;
}

RawClient::RawClient(uint16_t port, std::string host, Ms timeout, int rcvbuf, std::string source) {
    bool v6 = host.find(':') != std::string::npos;
    fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) throw std::runtime_error(errno_text("socket"));
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (!source.empty()) {
        int rc = -1;
        if (v6) {
            sockaddr_in6 a{};
            a.sin6_family = AF_INET6;
            if (::inet_pton(AF_INET6, source.c_str(), &a.sin6_addr) == 1)
                rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        } else {
            sockaddr_in a{};
            a.sin_family = AF_INET;
            if (::inet_pton(AF_INET, source.c_str(), &a.sin_addr) == 1)
                rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        }
        if (rc != 0) {
            close_fd(fd_);
            throw std::runtime_error("cannot bind the client to " + source);
        }
    }
    int rc;
    if (v6) {
        sockaddr_in6 a{};
        a.sin6_family = AF_INET6;
        a.sin6_port = htons(port);
        if (::inet_pton(AF_INET6, host.c_str(), &a.sin6_addr) != 1)
            throw std::runtime_error("bad address " + host);
        rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    } else {
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
            throw std::runtime_error("bad address " + host);
        rc = ::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    }
    if (rc != 0 && errno != EINPROGRESS) {
        int e = errno;
        close_fd(fd_);
        throw std::runtime_error("connect " + host + ":" + std::to_string(port) + ": " +
                                 std::strerror(e));
    }
    if (rc != 0) {
        pollfd p = {fd_, POLLOUT, 0};
        int n;
        do {
            n = ::poll(&p, 1, static_cast<int>(timeout.count()));
        } while (n < 0 && errno == EINTR);
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
        if (n <= 0 || err != 0) {
            close_fd(fd_);
            throw std::runtime_error("connect " + host + ":" + std::to_string(port) + ": " +
                                     (n <= 0 ? "timed out" : std::strerror(err)));
        }
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

RawClient::~RawClient() { close_fd(fd_); }

Blackhole::Blackhole() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = loopback(0);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 0) != 0) {
        close_fd(fd_);
        throw std::runtime_error(errno_text("blackhole bind/listen"));
    }
    port_ = bound_port(fd_);
    // Fill the queue (backlog 0 admits one; a spare for luck). These connects complete.
    for (int i = 0; i < 2; ++i) {
        try {
            fillers_.push_back(std::make_unique<RawClient>(port_, "127.0.0.1", 300ms));
        } catch (const std::exception&) {
        }
    }
}

Blackhole::~Blackhole() { close_fd(fd_); }

int RawClient::try_connect(uint16_t port, std::string host, Ms timeout) {
    try {
        RawClient c(port, std::move(host), timeout);
        return 0;
    } catch (const std::runtime_error& e) {
        std::string what = e.what();
        if (contains(what, "refused")) return ECONNREFUSED;
        if (contains(what, "timed out")) return ETIMEDOUT;
        return EIO;
    }
}

size_t RawClient::send_some(std::string_view data, Ms timeout) {
    auto deadline = Clock::now() + timeout;
    size_t sent = 0;
    while (sent < data.size()) {
        ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n > 0) {
            sent += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) break;
        pollfd p = {fd_, POLLOUT, 0};
        int left = remaining_ms(deadline);
        if (left == 0 || ::poll(&p, 1, left) <= 0) break;
    }
    return sent;
}

void RawClient::send(std::string_view data, Ms timeout) {
    size_t sent = send_some(data, timeout);
    if (sent != data.size())
        throw std::runtime_error("send: only " + std::to_string(sent) + " of " +
                                 std::to_string(data.size()) + " bytes taken");
}

void RawClient::shutdown_write() { ::shutdown(fd_, SHUT_WR); }

void RawClient::reset() {
    linger lg{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close_fd(fd_);
}

RawClient::End RawClient::fill(const std::function<bool(const std::string&)>& enough, Ms timeout) {
    auto deadline = Clock::now() + timeout;
    char chunk[65536];
    for (;;) {
        if (enough(buf_)) return last_end_ = End::Ok;
        if (eof_) return last_end_;
        ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n > 0) {
            buf_.append(chunk, static_cast<size_t>(n));
            continue;
        }
        if (n == 0) {
            eof_ = true;
            return last_end_ = End::Closed;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) {
            eof_ = true;
            return last_end_ = End::Reset;
        }
        pollfd p = {fd_, POLLIN, 0};
        int left = remaining_ms(deadline);
        if (left == 0 || ::poll(&p, 1, left) == 0) {
            if (enough(buf_)) return last_end_ = End::Ok;
            return last_end_ = End::Timeout;
        }
    }
}

std::string RawClient::read_until_close(Ms timeout) {
    fill([](const std::string&) { return false; }, timeout);
    return std::exchange(buf_, {});
}

std::string RawClient::read_n(size_t n, Ms timeout) {
    fill([n](const std::string& b) { return b.size() >= n; }, timeout);
    std::string out = buf_.substr(0, std::min(n, buf_.size()));
    buf_.erase(0, out.size());
    return out;
}

std::optional<HttpResponse> RawClient::read_response(Ms timeout, bool head_request) {
    auto deadline = Clock::now() + timeout;
    auto left = [&] { return Ms(remaining_ms(deadline)); };
    if (fill([](const std::string& b) { return contains(b, "\r\n\r\n"); }, left()) != End::Ok)
        return std::nullopt;
    size_t head_len = buf_.find("\r\n\r\n") + 4;
    auto response = parse_response_head(std::string_view(buf_).substr(0, head_len));
    if (!response) return std::nullopt;
    int s = response->status;
    bool no_body = head_request || (s >= 100 && s < 200) || s == 204 || s == 304;
    Framing f = framing_of(response->head);
    if (no_body) {
        buf_.erase(0, head_len);
        return response;
    }
    if (f.chunked) {
        long body_len = -1;
        auto done = [&](const std::string& b) {
            body_len = chunked_length(std::string_view(b).substr(head_len), nullptr);
            return body_len != -1;
        };
        if (fill(done, left()) != End::Ok || body_len < 0) return std::nullopt;
        chunked_length(std::string_view(buf_).substr(head_len), &response->body);
        buf_.erase(0, head_len + static_cast<size_t>(body_len));
        return response;
    }
    if (f.content_length) {
        size_t total = head_len + *f.content_length;
        if (fill([&](const std::string& b) { return b.size() >= total; }, left()) != End::Ok)
            return std::nullopt;
        response->body = buf_.substr(head_len, *f.content_length);
        buf_.erase(0, total);
        return response;
    }
    // Delimited by the end of the connection (RFC 9112 §6.3, last rule).
    End end = fill([](const std::string&) { return false; }, left());
    if (end != End::Closed) return std::nullopt;
    response->body = buf_.substr(head_len);
    buf_.clear();
    return response;
}

std::optional<HttpResponse> RawClient::read_final_response(Ms timeout, bool head_request) {
    auto deadline = Clock::now() + timeout;
    for (;;) {
        auto r = read_response(Ms(remaining_ms(deadline)), head_request);
        if (!r || r->status >= 200 || r->status < 100) return r;
    }
}

bool RawClient::wait_closed(Ms timeout) {
    End end = fill([](const std::string&) { return false; }, timeout);
    return end == End::Closed || end == End::Reset;
}

size_t RawClient::drain(size_t max, Ms timeout) {
    auto deadline = Clock::now() + timeout;
    size_t total = std::min(max, buf_.size());
    buf_.erase(0, total);
    std::vector<char> chunk(256 * 1024);
    while (total < max && !eof_) {
        ssize_t n = ::recv(fd_, chunk.data(), std::min(chunk.size(), max - total), 0);
        if (n > 0) {
            total += static_cast<size_t>(n);
            continue;
        }
        if (n == 0) {
            eof_ = true;
            last_end_ = End::Closed;
            break;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) {
            eof_ = true;
            last_end_ = End::Reset;
            break;
        }
        pollfd p = {fd_, POLLIN, 0};
        int left = remaining_ms(deadline);
        if (left == 0 || ::poll(&p, 1, left) == 0) {
            last_end_ = End::Timeout;
            break;
        }
    }
    return total;
}

std::string proxy_get(uint16_t origin_port, std::string_view path, std::string_view host,
                      std::string_view extra_headers) {
    std::string authority = std::string(host) + ":" + std::to_string(origin_port);
    return "GET http://" + authority + std::string(path) + " HTTP/1.1\r\nHost: " + authority +
           "\r\n" + std::string(extra_headers) + "\r\n";
}

int probe(uint16_t proxy_port, uint16_t origin_port, std::string_view path, Ms timeout) {
    try {
        RawClient c(proxy_port);
        c.send(proxy_get(origin_port, path));
        auto r = c.read_final_response(timeout);
        return r ? r->status : 0;
    } catch (const std::exception&) {
        return 0;
    }
}

}  // namespace hallpass::e2e
