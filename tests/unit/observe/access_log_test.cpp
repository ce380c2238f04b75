#include "hallpass/observe/access_log.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "temp_dir.h"

using namespace hallpass;
using hallpass::test::TempDir;
namespace fs = std::filesystem;

namespace {

// 2025-11-26T02:17:36.000Z
constexpr int64_t kStart = 1'764'123'456'000;

Transaction relayed() {
    Transaction t;
    t.kind = Transaction::Kind::Relayed;
    t.start_unix_ms = kStart;
    t.elapsed_ms = 789;
    t.dns_ms = 3;
    t.connect_ms = 1;
    t.client = *IpAddr::parse("127.0.0.1");
    t.client_addr = "127.0.0.1:40000";
    t.method = "GET";
    t.url = "http://site.test:8080/1k";
    t.host = "site.test";
    t.port = 8080;
    t.status = 200;
    t.rule = "default";
    t.upstream = "127.0.0.1:8080";
    t.content_type = "text/plain";
    t.bytes_to_client = 1234;
    t.bytes_from_client = 80;
    return t;
}

std::vector<std::string> split(const std::string& line) {
    std::vector<std::string> out;
    std::istringstream in(line);
    for (std::string w; in >> w;) out.push_back(w);
    return out;
}

std::string read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start < text.size()) {
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos) {
            out.push_back(text.substr(start));  // an unterminated line: callers check for it
            break;
        }
        out.push_back(text.substr(start, nl - start));
        start = nl + 1;
    }
    return out;
}

// A small strict JSON reader: enough to prove a line is valid JSON (RFC 8259 grammar, UTF-8
// checked by the caller's escaping) and to pull the top-level members of a flat object.
class Json {
  public:
    // Top-level members: name -> value (strings decoded, other values as written).
    static std::optional<std::map<std::string, std::string>> object(std::string_view text) {
        Json j(text);
        std::map<std::string, std::string> out;
        j.ws();
        if (!j.eat('{')) return std::nullopt;
        j.ws();
        if (j.eat('}')) return j.end() ? std::optional(out) : std::nullopt;
        do {
            j.ws();
            auto key = j.string();
            j.ws();
            if (!key || !j.eat(':')) return std::nullopt;
            j.ws();
            auto value = j.value();
            if (!value) return std::nullopt;
            out[*key] = *value;
            j.ws();
        } while (j.eat(','));
        if (!j.eat('}')) return std::nullopt;
        return j.end() ? std::optional(out) : std::nullopt;
    }

  private:
    explicit Json(std::string_view s) : s_(s) {}
    bool end() {
        ws();
        return i_ == s_.size();
    }
    void ws() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n')) ++i_;
    }
    bool eat(char c) {
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    std::optional<std::string> string() {
        if (!eat('"')) return std::nullopt;
        std::string out;
        while (i_ < s_.size()) {
            auto c = static_cast<unsigned char>(s_[i_++]);
            if (c == '"') return out;
            if (c < 0x20) return std::nullopt;  // raw control characters are not allowed
            if (c != '\\') {
                out += static_cast<char>(c);
                continue;
            }
            if (i_ >= s_.size()) return std::nullopt;
            char e = s_[i_++];
            switch (e) {
                case '"':
                case '\\':
                case '/':
                    out += e;
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'u': {
                    if (i_ + 4 > s_.size()) return std::nullopt;
                    unsigned v = 0;
                    for (int k = 0; k < 4; ++k) {
                        char h = s_[i_++];
                        if (!std::isxdigit(static_cast<unsigned char>(h))) return std::nullopt;
                        v = v * 16 +
                            static_cast<unsigned>(std::stoi(std::string(1, h), nullptr, 16));
                    }
                    if (v < 0x80) {
                        out += static_cast<char>(v);
                    } else if (v < 0x800) {
                        out += static_cast<char>(0xC0 | (v >> 6));
                        out += static_cast<char>(0x80 | (v & 0x3F));
                    } else {
                        out += static_cast<char>(0xE0 | (v >> 12));
                        out += static_cast<char>(0x80 | ((v >> 6) & 0x3F));
                        out += static_cast<char>(0x80 | (v & 0x3F));
                    }
                    break;
                }
                default:
                    return std::nullopt;
            }
        }
        return std::nullopt;
    }
    std::optional<std::string> value() {
        if (i_ < s_.size() && s_[i_] == '"') return string();
        size_t start = i_;
        for (std::string_view word : {"true", "false", "null"}) {
            if (s_.substr(i_, word.size()) == word) {
                i_ += word.size();
                return std::string(word);
            }
        }
        eat('-');
        size_t digits = i_;
        while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
        if (i_ == digits) return std::nullopt;  // nested values are not used by the log
        if (s_[digits] == '0' && i_ - digits > 1) return std::nullopt;
        return std::string(s_.substr(start, i_ - start));
    }

    std::string_view s_;
    size_t i_ = 0;
};

AccessLog::Options options(const fs::path& file, int workers = 1) {
    AccessLog::Options o;
    o.path = file.string();
    o.workers = workers;
    return o;
}

}  // namespace

TEST_CASE("access_log: squid native line of a relayed request, field by field") {
    std::string line = format_squid(relayed());
    CHECK(line ==
          "1764123456.789    789 127.0.0.1 TCP_MISS/200 1234 GET http://site.test:8080/1k - "
          "HIER_DIRECT/127.0.0.1 text/plain\n");
}

TEST_CASE("access_log: squid code, status, hierarchy and type per kind of transaction") {
    struct Row {
        const char* name;
        Transaction txn;
        const char* expected;  // fields 4.. (code/status bytes method URL user hier type)
    };
    std::vector<Row> rows;
    {
        Transaction t = relayed();
        rows.push_back({"relayed", t,
                        "TCP_MISS/200 1234 GET http://site.test:8080/1k - HIER_DIRECT/127.0.0.1 "
                        "text/plain"});
    }
    {
        Transaction t = relayed();
        t.kind = Transaction::Kind::Blocked;
        t.status = 403;
        t.rule = "block-test";
        t.upstream.clear();
        t.content_type = "text/html; charset=utf-8";
        t.bytes_to_client = 900;
        rows.push_back({"blocked", t,
                        "TCP_DENIED/403 900 GET http://site.test:8080/1k - HIER_NONE/- "
                        "text/html;%20charset=utf-8"});
    }
    {
        Transaction t = relayed();
        t.kind = Transaction::Kind::Tunnel;
        t.method = "CONNECT";
        t.url = "site.test:443";
        t.upstream = "[::1]:443";
        t.content_type.clear();
        t.bytes_to_client = 5000;
        rows.push_back(
            {"tunnel", t, "TCP_TUNNEL/200 5000 CONNECT site.test:443 - HIER_DIRECT/::1 -"});
    }
    {
        Transaction t = relayed();
        t.kind = Transaction::Kind::Local;
        t.status = 502;
        t.upstream.clear();
        t.content_type = "text/html";
        t.error = "connect: connection refused";
        rows.push_back({"allowed, then the upstream failed", t,
                        "TCP_MISS/502 1234 GET http://site.test:8080/1k - HIER_NONE/- text/html"});
    }
    {
        Transaction t = relayed();
        t.kind = Transaction::Kind::Local;
        t.status = 502;
        t.upstream = "127.0.0.1:1";  // tried, refused
        t.connect_ms = -1;
        t.content_type = "text/html";
        rows.push_back({"connect refused: the address tried is no hierarchy", t,
                        "TCP_MISS/502 1234 GET http://site.test:8080/1k - HIER_NONE/- text/html"});
    }
    {
        Transaction t = relayed();
        t.connect_ms = -1;
        t.dns_ms = -1;
        t.upstream_reused = true;
        rows.push_back({"pooled upstream", t,
                        "TCP_MISS/200 1234 GET http://site.test:8080/1k - HIER_DIRECT/127.0.0.1 "
                        "text/plain"});
    }
    {
        Transaction t;
        t.start_unix_ms = kStart;
        t.client = *IpAddr::parse("::1");
        t.method = "-";
        t.status = 400;
        t.bytes_to_client = 200;
        t.content_type = "text/html";
        t.error = "bad request line";
        rows.push_back({"garbage", t, "NONE_NONE/400 200 NONE - - HIER_NONE/- text/html"});
    }
    {
        Transaction t = relayed();
        t.kind = Transaction::Kind::Local;
        t.status = 403;
        t.rule.clear();
        t.upstream.clear();
        t.method = "CONNECT";
        t.url = "site.test:25";
        t.content_type.clear();
        rows.push_back({"403 decided before the rules", t,
                        "TCP_DENIED/403 1234 CONNECT site.test:25 - HIER_NONE/- -"});
    }
    {
        Transaction t = relayed();
        t.status = 0;
        t.bytes_to_client = 0;
        t.content_type.clear();
        t.error = "client closed";
        rows.push_back({"client left before the response", t,
                        "TCP_MISS_ABORTED/000 0 GET http://site.test:8080/1k - "
                        "HIER_DIRECT/127.0.0.1 -"});
    }
    {
        Transaction t = relayed();
        t.error = "upstream reset";
        rows.push_back({"response cut short", t,
                        "TCP_MISS_ABORTED/200 1234 GET http://site.test:8080/1k - "
                        "HIER_DIRECT/127.0.0.1 text/plain"});
    }
    {
        Transaction t;
        t.client = *IpAddr::parse("127.0.0.1");
        t.method = "GET";
        t.status = 0;
        rows.push_back({"nothing known", t, "NONE_NONE_ABORTED/000 0 GET - - HIER_NONE/- -"});
    }
    for (const Row& row : rows) {
        SUBCASE(row.name) {
            std::string line = format_squid(row.txn);
            REQUIRE(line.ends_with('\n'));
            auto fields = split(line);
            REQUIRE(fields.size() == 10);
            std::string rest;
            for (size_t i = 3; i < fields.size(); ++i) rest += (i > 3 ? " " : "") + fields[i];
            CHECK(rest == row.expected);
            CHECK(fields[2] == row.txn.client.to_string());
        }
    }
}

TEST_CASE("access_log: squid time is the end of the transaction, elapsed in ms, padded") {
    Transaction t = relayed();
    t.start_unix_ms = 1'700'000'000'005;
    t.elapsed_ms = 12'345;
    auto fields = split(format_squid(t));
    CHECK(fields[0] == "1700000012.350");
    CHECK(fields[1] == "12345");
    t.elapsed_ms = 0;
    CHECK(format_squid(t).starts_with("1700000000.005      0 "));
    t.elapsed_ms = -3;  // the wall clock stepped back
    CHECK(format_squid(t).starts_with("1700000000.005      0 "));
    auto obj = format_json(t);
    CHECK(obj.find("\"elapsed_ms\":0,") != std::string::npos);
    CHECK(obj.find("\"time_ms\":1700000000005,") != std::string::npos);
}

TEST_CASE("access_log: squid fields never contain spaces or control bytes") {
    Transaction t = relayed();
    t.url = "http://site.test/a b\tc\r\nd\x01\x7f\xc3\xa9%41";
    t.method = "GE T";
    t.content_type = "text/html;\n charset=x";
    std::string line = format_squid(t);
    CHECK(std::count(line.begin(), line.end(), '\n') == 1);
    for (char c : line.substr(0, line.size() - 1)) {
        CHECK(static_cast<unsigned char>(c) >= 0x20);
        CHECK(static_cast<unsigned char>(c) < 0x7f);
    }
    auto fields = split(line);
    REQUIRE(fields.size() == 10);
    CHECK(fields[5] == "GE%20T");
    CHECK(fields[6] == "http://site.test/a%20b%09c%0D%0Ad%01%7F%C3%A9%41");
    CHECK(fields[9] == "text/html;%0A%20charset=x");
}

TEST_CASE("access_log: json line carries every field") {
    Transaction t = relayed();
    t.upstream_reused = true;
    t.dns_cached = true;
    std::string line = format_json(t);
    REQUIRE(line.ends_with("}\n"));
    CHECK(std::count(line.begin(), line.end(), '\n') == 1);
    auto obj = Json::object(line);
    REQUIRE(obj);
    auto& o = *obj;
    CHECK(o["time"] == "2025-11-26T02:17:36.789Z");
    CHECK(o["time_ms"] == "1764123456789");
    CHECK(o["client"] == "127.0.0.1");
    CHECK(o["client_addr"] == "127.0.0.1:40000");
    CHECK(o["method"] == "GET");
    CHECK(o["url"] == "http://site.test:8080/1k");
    CHECK(o["host"] == "site.test");
    CHECK(o["port"] == "8080");
    CHECK(o["status"] == "200");
    CHECK(o["kind"] == "relayed");
    CHECK(o["code"] == "TCP_MISS");
    CHECK(o["rule"] == "default");
    CHECK(o["bytes_in"] == "80");
    CHECK(o["bytes_out"] == "1234");
    CHECK(o["upstream"] == "127.0.0.1:8080");
    CHECK(o["upstream_reused"] == "true");
    CHECK(o["dns_ms"] == "3");
    CHECK(o["dns_cached"] == "true");
    CHECK(o["connect_ms"] == "1");
    CHECK(o["elapsed_ms"] == "789");
    CHECK(o["content_type"] == "text/plain");
    CHECK(o["error"] == "null");
    CHECK(o["safe_search"] == "null");
    CHECK(o.size() == 23);
}

TEST_CASE("access_log: a safe-search rewrite is recorded in both formats") {
    Transaction t;
    t.kind = Transaction::Kind::Tunnel;
    t.client = *IpAddr::parse("192.168.1.50");
    t.method = "CONNECT";
    t.url = "www.google.com:443";
    t.host = "www.google.com";
    t.port = 443;
    t.status = 200;
    t.rule = "default";
    t.upstream = "216.239.38.120:443";
    t.connect_ms = 2;
    t.safe_search = "forcesafesearch.google.com";
    const std::string squid = format_squid(t);
    CHECK(squid.find(" HIER_DIRECT/forcesafesearch.google.com ") != std::string::npos);
    const std::string json = format_json(t);
    CHECK(json.find("\"safe_search\":\"forcesafesearch.google.com\"") != std::string::npos);
    CHECK(json.find("\"upstream\":\"216.239.38.120:443\"") != std::string::npos);
}

TEST_CASE("access_log: json unknown values are null") {
    Transaction t;
    t.method = "-";
    t.url = "-";
    t.status = 400;
    t.error = "bad request line";
    auto obj = Json::object(format_json(t));
    REQUIRE(obj);
    auto& o = *obj;
    CHECK(o["method"] == "null");
    CHECK(o["url"] == "null");
    CHECK(o["host"] == "null");
    CHECK(o["rule"] == "null");
    CHECK(o["upstream"] == "null");
    CHECK(o["dns_ms"] == "null");
    CHECK(o["connect_ms"] == "null");
    CHECK(o["content_type"] == "null");
    CHECK(o["kind"] == "local");
    CHECK(o["code"] == "NONE_NONE");
    CHECK(o["error"] == "bad request line");
}

TEST_CASE("access_log: json strings are escaped") {
    struct Row {
        std::string_view in;
        std::string_view out;
    };
    const Row rows[] = {
        {"plain", R"("plain")"},
        {"q\"b\\s/", R"("q\"b\\s/")"},
        {"a\nb\rc\td", R"("a\nb\rc\td")"},
        {std::string_view("\x00\x01\x1f\x7f", 4), R"("\u0000\u0001\u001F\u007F")"},
        {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
         "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
        {"\xff\xfe", R"("\u00FF\u00FE")"},                      // never UTF-8
        {"\xc3", R"("\u00C3")"},                                // truncated sequence
        {"\xc0\xaf", R"("\u00C0\u00AF")"},                      // overlong '/'
        {"\xed\xa0\x80", R"("\u00ED\u00A0\u0080")"},            // a surrogate
        {"\xf4\x90\x80\x80", R"("\u00F4\u0090\u0080\u0080")"},  // above U+10FFFF
        {"a\xe2\x82z", R"("a\u00E2\u0082z")"},                  // cut short by an ASCII byte
    };
    for (const Row& row : rows) {
        std::string out;
        append_json_string(out, row.in);
        CHECK(out == row.out);
    }
    Transaction t = relayed();
    t.url = "http://x.test/\"\\\n\x01\xff";
    t.error = "reset by \"peer\"";
    auto obj = Json::object(format_json(t));
    REQUIRE(obj);
    CHECK((*obj)["url"] == "http://x.test/\"\\\n\x01\xc3\xbf");
    CHECK((*obj)["error"] == "reset by \"peer\"");
}

TEST_CASE("access_log: a bad path fails at open with the reason") {
    auto log = AccessLog::open(options("/nonexistent-dir/access.log"));
    REQUIRE_FALSE(log.ok());
    CHECK(log.error().message ==
          "cannot open the access log \"/nonexistent-dir/access.log\": No such file or directory");
}

TEST_CASE("access_log: stop() writes what is buffered; later lines are counted as dropped") {
    TempDir dir("hallpass-access-log");
    auto o = options(dir.path / "access.log");
    o.flush_interval_ms = 60'000;  // only stop() can write it
    auto log = AccessLog::open(o);
    REQUIRE(log.ok());
    (*log)->record(0, relayed());
    CHECK(read_all(dir.path / "access.log").empty());
    (*log)->stop();
    CHECK(read_all(dir.path / "access.log") == format_squid(relayed()));
    CHECK((*log)->written() == 1);
    (*log)->record(0, relayed());
    CHECK((*log)->dropped() == 1);
    (*log)->stop();  // idempotent
    CHECK(fs::status(dir.path / "access.log").permissions() ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
}

TEST_CASE("access_log: a quiet log is written within the flush interval") {
    TempDir dir("hallpass-access-log");
    auto o = options(dir.path / "access.log");
    o.flush_interval_ms = 50;
    o.format = AccessLogConfig::Format::Json;
    auto log = AccessLog::open(o);
    REQUIRE(log.ok());
    (*log)->record(0, relayed());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (read_all(dir.path / "access.log").empty() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(read_all(dir.path / "access.log") == format_json(relayed()));
}

TEST_CASE("access_log: threads x lines -> exactly that many whole lines") {
    TempDir dir("hallpass-access-log");
    constexpr int kThreads = 4;
    constexpr int kLines = 20'000;
    auto o = options(dir.path / "access.log", kThreads);
    o.flush_bytes = 1000;  // many hand-overs, racing with the writer's sweeps
    o.flush_interval_ms = 1;
    auto log = AccessLog::open(o);
    REQUIRE(log.ok());
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kLines; ++i) {
                char line[96];
                std::snprintf(line, sizeof line, "thread=%d line=%06d %s\n", t, i,
                              "padding-padding-padding-padding");
                (*log)->record_line(t, line);
            }
        });
    }
    for (auto& th : threads) th.join();
    (*log)->stop();
    CHECK((*log)->dropped() == 0);
    CHECK((*log)->written() == kThreads * kLines);
    std::string text = read_all(dir.path / "access.log");
    REQUIRE(text.ends_with('\n'));
    auto lines = lines_of(text);
    CHECK(lines.size() == kThreads * kLines);
    std::set<std::string> unique(lines.begin(), lines.end());
    CHECK(unique.size() == lines.size());
    std::vector<int> next(kThreads, 0);  // one worker's lines stay in order
    int malformed = 0;
    for (const std::string& l : lines) {
        int t = -1, i = -1;
        char pad[64];
        if (std::sscanf(l.c_str(), "thread=%d line=%d %63s", &t, &i, pad) != 3 || t < 0 ||
            t >= kThreads || l.size() != std::string("thread=0 line=000000 ").size() + 31) {
            ++malformed;
            continue;
        }
        CHECK(i == next[t]);
        next[t] = i + 1;
    }
    CHECK(malformed == 0);
}

TEST_CASE("access_log: reopen after a rename writes later lines into the new file") {
    TempDir dir("hallpass-access-log");
    auto o = options(dir.path / "access.log");
    o.flush_interval_ms = 60'000;
    auto log = AccessLog::open(o);
    REQUIRE(log.ok());
    (*log)->record_line(0, "before-1\n");
    (*log)->record_line(0, "before-2\n");
    fs::rename(dir.path / "access.log", dir.path / "access.log.1");
    (*log)->reopen();
    (*log)->record_line(0, "after-1\n");
    (*log)->stop();
    CHECK(read_all(dir.path / "access.log.1") == "before-1\nbefore-2\n");
    CHECK(read_all(dir.path / "access.log") == "after-1\n");
}

TEST_CASE("access_log: reopen that cannot open keeps the old file") {
    TempDir dir("hallpass-access-log");
    fs::create_directory(dir.path / "logs");
    auto o = options(dir.path / "logs" / "access.log");
    auto log = AccessLog::open(o);
    REQUIRE(log.ok());
    fs::rename(dir.path / "logs", dir.path / "old-logs");  // the path now leads nowhere
    (*log)->record_line(0, "one\n");
    (*log)->reopen();
    (*log)->record_line(0, "two\n");
    (*log)->stop();
    CHECK(read_all(dir.path / "old-logs" / "access.log") == "one\ntwo\n");
    CHECK((*log)->dropped() == 0);
}

TEST_CASE("access_log: a full disk drops lines, counts them and does not crash") {
    if (!fs::exists("/dev/full")) {
        MESSAGE("no /dev/full: skipped");
        return;
    }
    auto o = options("/dev/full");
    auto log = AccessLog::open(o);
    REQUIRE(log.ok());
    for (int i = 0; i < 10; ++i) (*log)->record(0, relayed());
    (*log)->reopen();
    for (int i = 0; i < 5; ++i) (*log)->record(0, relayed());
    (*log)->stop();
    CHECK((*log)->dropped() == 15);
    CHECK((*log)->written() == 0);
}
