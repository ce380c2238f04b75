// The harness itself, without the proxy: nginx (HTTP, HTTPS, echo), the scripted origin, the DNS
// stub and process reaping. When this fails, the other e2e failures are about the machine, not
// about hallpass.
#include "harness.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <string>

using namespace hallpass::e2e;

TEST_CASE("harness: nginx serves static files, echoes bodies and logs connections") {
    TempDir dir;
    Nginx origin(dir);
    origin.put("1k", std::string(1024, 'a'));

    RawClient c(origin.port());
    c.send("GET /1k HTTP/1.1\r\nHost: x\r\n\r\nGET /1k HTTP/1.1\r\nHost: y\r\n\r\n");
    auto r1 = c.read_response();
    auto r2 = c.read_response();
    REQUIRE(r1);
    REQUIRE(r2);
    CHECK(r1->status == 200);
    CHECK(r2->body == std::string(1024, 'a'));

    c.send(
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    auto r3 = c.read_response();
    REQUIRE(r3);
    CHECK(r3->body == "abcde");

    REQUIRE(origin.wait_for_accesses(3));
    auto log = origin.accesses();
    CHECK(log[0].connection == log[2].connection);
    CHECK(log[2].connection_requests == 3);
    CHECK(log[0].request == "GET /1k HTTP/1.1");
    CHECK(log[1].host == "y");
}

TEST_CASE("harness: nginx serves https with a self-signed certificate") {
    TempDir dir;
    NginxOptions opts;
    opts.tls = true;
    Nginx origin(dir, opts);
    origin.put("1k", std::string(1024, 'b'));
    std::string url = "https://site.test:" + std::to_string(origin.tls_port()) + "/1k";
    auto r = curl(0, {"-k", "--resolve",
                      "site.test:" + std::to_string(origin.tls_port()) + ":127.0.0.1", url});
    CHECK(r.exit_code == 0);
    CHECK(r.out == std::string(1024, 'b'));
}

TEST_CASE("harness: scripted origin records requests and follows its mode") {
    SUBCASE("respond") {
        ScriptedOrigin origin;
        RawClient c(origin.port());
        c.send("POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->body == "ok");
        REQUIRE(origin.wait_for_requests(1));
        CHECK(origin.requests()[0] == "POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
    }
    SUBCASE("silent") {
        ScriptedOrigin origin({ScriptedOrigin::Mode::Silent});
        RawClient c(origin.port());
        c.send("GET / HTTP/1.1\r\n\r\n");
        CHECK(origin.wait_for_requests(1));
        CHECK_FALSE(c.read_response(200ms));
        CHECK(c.last_end() == RawClient::End::Timeout);
    }
    SUBCASE("reset mid-response") {
        ScriptedOrigin origin(
            {ScriptedOrigin::Mode::ResetMidResponse,
             "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + std::string(10, 'x')});
        RawClient c(origin.port());
        c.send("GET / HTTP/1.1\r\n\r\n");
        CHECK_FALSE(c.read_response(3s));
        CHECK(c.last_end() == RawClient::End::Reset);
    }
    SUBCASE("close early") {
        ScriptedOrigin origin({ScriptedOrigin::Mode::CloseEarly});
        RawClient c(origin.port());
        c.send("GET / HTTP/1.1\r\n\r\n");
        CHECK(c.wait_closed(3s));
        CHECK(c.buffer().empty());
    }
    SUBCASE("read to eof then reply") {
        ScriptedOrigin origin({ScriptedOrigin::Mode::ReadToEofThenReply, "bye"});
        RawClient c(origin.port());
        c.send("hello");
        c.shutdown_write();
        CHECK(c.read_until_close(3s) == "bye");
        REQUIRE(origin.wait_for_requests(1));
        CHECK(origin.requests()[0] == "hello");
    }
}

TEST_CASE("harness: dns stub answers NXDOMAIN with the query id and question") {
    DnsStub stub;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(stub.port());
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // id 0x1234, RD, one question: nowhere.test A IN
    std::string q("\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00", 12);
    q += std::string("\x07nowhere\x04test\x00\x00\x01\x00\x01", 18);
    sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&a), sizeof a);
    pollfd p = {fd, POLLIN, 0};
    REQUIRE(poll(&p, 1, 2000) == 1);
    char buf[512];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    close(fd);
    REQUIRE(n == static_cast<ssize_t>(q.size()));
    CHECK(static_cast<unsigned char>(buf[0]) == 0x12);
    CHECK(static_cast<unsigned char>(buf[1]) == 0x34);
    CHECK((static_cast<unsigned char>(buf[2]) & 0x80) != 0);
    CHECK((static_cast<unsigned char>(buf[3]) & 0x0f) == 3);
    CHECK(std::string(buf + 12, n - 12) == q.substr(12));
    CHECK(stub.queries() == 1);
    CHECK(stub.names() == std::vector<std::string>{"nowhere.test"});
}

TEST_CASE("harness: processes are reaped and report their status") {
    Process sleeper({"sleep", "30"});
    CHECK(sleeper.running());
    sleeper.signal(SIGTERM);
    CHECK(sleeper.wait_for(2s) == 128 + SIGTERM);

    auto r = run({"sh", "-c", "echo out; echo err >&2; exit 3"});
    CHECK(r.exit_code == 3);
    CHECK(r.out == "out\n");
    CHECK(r.err == "err\n");

    auto slow = run({"sleep", "30"}, 200ms);
    CHECK(slow.timed_out);
    CHECK(slow.elapsed < 5s);

    // A group leader's helpers die with it.
    auto group = run({"sh", "-c", "sleep 30 & sleep 30"}, 200ms, true);
    CHECK(group.timed_out);
}

TEST_CASE("harness: hallpass is started, its port read from the log, and stopped") {
    TempDir dir;
    Hallpass proxy(dir);
    CHECK(proxy.port() != 0);
    CHECK(proxy.rss_kib() > 0);
    CHECK(contains(read_file(proxy.config_path()), "nameservers"));
    CHECK(proxy.stop() == 0);
}

TEST_CASE("harness: the echo server echoes on many connections; a reset-after-head origin resets") {
    EchoServer echo;
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 50; ++i) clients.push_back(std::make_unique<RawClient>(echo.port()));
    for (size_t i = 0; i < clients.size(); ++i) clients[i]->send("hello " + std::to_string(i));
    for (size_t i = 0; i < clients.size(); ++i) {
        std::string want = "hello " + std::to_string(i);
        CHECK(clients[i]->read_n(want.size()) == want);
    }
    CHECK(echo.accepted() == 50);
    clients.clear();
    CHECK(wait_until([&] { return echo.open_connections() == 0; }, 3s));

    ScriptedOrigin origin({ScriptedOrigin::Mode::ResetAfterHead});
    RawClient c(origin.port());
    c.send("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\npartial");
    CHECK(c.wait_closed(3s));
    CHECK(c.last_end() == RawClient::End::Reset);
    REQUIRE(origin.wait_for_requests(1));
    CHECK(origin.requests()[0].rfind("POST /up HTTP/1.1\r\n", 0) == 0);

    ScriptedOrigin stall({ScriptedOrigin::Mode::Stall});
    {
        RawClient gone(stall.port());
        gone.send("GET / HTTP/1.1\r\n\r\n");
        REQUIRE(wait_until([&] { return stall.connections() == 1; }, 3s));
    }
    CHECK(wait_until([&] { return stall.closed_by_peer() == 1; }, 3s));
}

TEST_CASE("harness: a test that crashes takes the processes it started down with it") {
    // A forked copy of this test plays the crashing test: it starts a child through the harness
    // and dies of SIGABRT (as a failed assertion or a sanitizer report would), running no
    // destructors. Without the harness's crash handler the child would outlive it.
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    const pid_t crasher = fork();
    REQUIRE(crasher >= 0);
    if (crasher == 0) {
        close(fds[0]);
        ::signal(SIGABRT, SIG_DFL);  // not doctest's handler: it would report into our output
        install_child_reaper_on_crash();
        Process sleeper({"sleep", "60"});
        const pid_t pid = sleeper.pid();
        if (write(fds[1], &pid, sizeof pid) != sizeof pid) _exit(3);
        ::raise(SIGABRT);
        _exit(4);  // not reached
    }
    close(fds[1]);
    pid_t sleeper = 0;
    const ssize_t got = read(fds[0], &sleeper, sizeof sleeper);
    close(fds[0]);
    int status = 0;
    REQUIRE(waitpid(crasher, &status, 0) == crasher);
    CHECK(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGABRT);
    REQUIRE(got == sizeof sleeper);
    REQUIRE(sleeper > 0);
    // The sleeper was re-parented when the crasher died: killed, it is gone or a zombie (state
    // Z) for whatever reaps orphans here.
    const auto dead = [sleeper] {
        std::ifstream stat("/proc/" + std::to_string(sleeper) + "/stat");
        std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
        const size_t paren = text.rfind(')');
        return !stat || paren == std::string::npos || text.compare(paren + 2, 1, "Z") == 0;
    };
    const bool gone = wait_until(dead, 5s);
    if (!gone) ::kill(sleeper, SIGKILL);
    CHECK(gone);
}
