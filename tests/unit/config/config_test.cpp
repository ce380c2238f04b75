#include "hallpass/config/config.h"

#include <doctest/doctest.h>

#include "hallpass/config/yaml_source.h"

using namespace hallpass;

TEST_CASE("config: an empty file gives the defaults") {
    auto cfg = parse_server_config("", "rules.yaml");
    REQUIRE(cfg.ok());
    CHECK(cfg->listen == std::vector<std::string>{"0.0.0.0:12345"});
    CHECK(cfg->connect_ports.ranges == std::vector<std::pair<uint16_t, uint16_t>>{{443, 443}});
    CHECK(cfg->hosts_file == "/etc/hosts");
    CHECK(cfg->threads == 0);
    // Plain HTTP: 80, 443, 8080 and the unprivileged ports; not SMTP, SSH, ...
    for (uint16_t p : {80, 443, 8080, 1025, 3128, 65535}) CHECK(cfg->http_ports.contains(p));
    for (uint16_t p : {22, 25, 110, 143, 465, 587, 1024}) CHECK_FALSE(cfg->http_ports.contains(p));
    CHECK(cfg->allow_local_destinations.empty());
    CHECK(cfg->admin_hosts.empty());
    CHECK(cfg->allowed_clients.size() == 8);
    CHECK(cfg->max_connections_per_client == 512);
    CHECK(cfg->admin == "127.0.0.1:12346");
    CHECK(cfg->admin_max_connections == 64);
    CHECK(cfg->splice);
}

TEST_CASE("config: reads every kind of key") {
    auto cfg = parse_server_config(R"(
server:
  listen: ["127.0.0.1:8080", "[::1]:8081"]
  threads: 3
  head_timeout_ms: 1500
  max_connections: 7
  connect_ports: [443, 8443]
  http_ports: [80, "8000-8100"]
  allow_local_destinations: ["127.0.0.1:8080", "192.168.1.0/24", "[::1]:631"]
  admin_hosts: [Proxy.Lan]
  hosts_file: /tmp/hosts
  nameservers: ["127.0.0.1:5353", "::1", "10.0.0.1"]
  admin: "[::1]:9000"
  admin_max_connections: 8
  splice: off
)",
                                   "rules.yaml");
    INFO((cfg.ok() ? std::string() : cfg.error().to_string()));
    REQUIRE(cfg.ok());
    CHECK(cfg->listen.size() == 2);
    CHECK(cfg->threads == 3);
    CHECK(cfg->head_timeout_ms == 1500);
    CHECK(cfg->max_connections == 7);
    CHECK(cfg->connect_ports.ranges ==
          std::vector<std::pair<uint16_t, uint16_t>>{{443, 443}, {8443, 8443}});
    CHECK(cfg->http_ports.contains(8050));
    CHECK_FALSE(cfg->http_ports.contains(8101));
    CHECK_FALSE(cfg->http_ports.contains(443));
    CHECK(cfg->allow_local_destinations.size() == 3);
    CHECK(cfg->admin_hosts == std::vector<std::string>{"proxy.lan"});
    CHECK(cfg->hosts_file == "/tmp/hosts");
    CHECK(cfg->nameservers.size() == 3);
    CHECK(cfg->admin == "[::1]:9000");
    CHECK(cfg->admin_max_connections == 8);
    CHECK_FALSE(cfg->splice);
    auto off = parse_server_config("server:\n  admin: off\n", "rules.yaml");
    REQUIRE(off.ok());
    CHECK(off->admin == "off");
}

TEST_CASE("config: errors carry file:line:col and a did-you-mean") {
    struct Row {
        const char* yaml;
        const char* expected;
    };
    const Row rows[] = {
        {"server:\n  treads: 2\n",
         "rules.yaml:2:3: unknown key \"treads\" in server (did you mean \"threads\"?)"},
        {"servr:\n  threads: 2\n",
         "rules.yaml:1:1: unknown key \"servr\" in the top level (did you mean \"server\"?)"},
        {"server:\n  threads: lots\n",
         "rules.yaml:2:12: \"threads\" must be a whole number, got \"lots\""},
        {"server:\n  threads: 999\n",
         "rules.yaml:2:12: \"threads\" must be between 0 and 256, got 999"},
        {"server:\n  splice: maybe\n",
         "rules.yaml:2:11: \"splice\" must be true or false, got \"maybe\""},
        {"server:\n  admin_max_connections: 0\n",
         "rules.yaml:2:26: \"admin_max_connections\" must be between 1 and 10000, got 0"},
        {"server:\n  connect_ports: [443, 70000]\n",
         "rules.yaml:2:24: \"connect_ports\" must be between 1 and 65535, got 70000"},
        {"server:\n  listen: [\"1.2.3:80\"]\n",
         "rules.yaml:2:12: bad IPv4 address in \"1.2.3:80\""},
        {"server:\n  listen: [\"127.0.0.1\"]\n",
         "rules.yaml:2:12: bad address \"127.0.0.1\": expected ADDR:PORT (IPv6 as [ADDR]:PORT)"},
        {"server:\n  nameservers: [\"dns.example\"]\n",
         "rules.yaml:2:17: bad nameserver \"dns.example\": expected an IP address, optionally with "
         ":PORT"},
        {"server:\n  hosts_file: [a, b]\n",
         "rules.yaml:2:15: \"hosts_file\" must be a string, not a list"},
        {"server: [1, 2]\n", "rules.yaml:1:9: server must be a map"},
        {"server:\n  threads: 2\n  x: [\n", "rules.yaml:4:1: yaml syntax error"},
        {"- a\n- b\n", "rules.yaml:1:1: the top level must be a map (key: value)"},
        {"server:\n  allowed_clients: [10.0.0.1/8]\n",
         "rules.yaml:2:21: allowed_clients: \"10.0.0.1/8\" has host bits set"},
        {"server:\n  http_ports: 80\n",
         "rules.yaml:2:15: \"http_ports\" must be a list of ports or ranges (443, \"1025-65535\")"},
        {"server:\n  http_ports: [\"90-80\"]\n",
         "rules.yaml:2:16: bad port range \"90-80\" in \"http_ports\": expected FIRST-LAST within "
         "1-65535"},
        {"server:\n  allow_local_destinations: [\"localhost\"]\n",
         "rules.yaml:2:30: allow_local_destinations: \"localhost\" is not an IP address or CIDR "
         "(expected a "
         "CIDR or ADDR:PORT)"},
        {"server:\n  admin_hosts: [\"http://proxy.lan\"]\n",
         "rules.yaml:2:17: admin_hosts takes host names without port or scheme, got "
         "\"http://proxy.lan\""},
        {"server:\n  access_log: {path: a.log, format: xml}\n",
         "rules.yaml:2:37: \"access_log.format\" must be squid or json, got \"xml\""},
        {"server:\n  access_log: {format: json}\n",
         "rules.yaml:2:15: \"access_log\" needs a path: a file, \"-\" for stdout, or off"},
        {"server:\n  access_log: {path: a.log, fromat: json}\n",
         "rules.yaml:2:29: unknown key \"fromat\" in access_log (did you mean \"format\"?)"},
        {"server:\n  access_log: -\n", "rules.yaml:2:15: yaml syntax error"},  // "-" needs quotes
        {"server:\n  access_log: [a.log]\n", "rules.yaml:2:15: \"access_log\" must be off, -, a"},
        {"server:\n  access_log: \"\"\n", "rules.yaml:2:15: \"access_log\" path is empty"},
        {"server:\n  admin: yes-please\n",
         "rules.yaml:2:10: admin: bad address \"yes-please\": expected ADDR:PORT (IPv6 as "
         "[ADDR]:PORT) (or \"off\")"},
        {"server:\n  admin: 127.0.0.1:70000\n",
         "rules.yaml:2:10: admin: bad port in \"127.0.0.1:70000\": expected 0..65535"},
    };
    for (const Row& row : rows) {
        SUBCASE(row.yaml) {
            auto cfg = parse_server_config(row.yaml, "rules.yaml");
            REQUIRE_FALSE(cfg.ok());
            CHECK(cfg.error().to_string().starts_with(row.expected));
        }
    }
}

TEST_CASE("config: access_log forms") {
    using Format = AccessLogConfig::Format;
    struct Row {
        const char* yaml;
        const char* path;
        Format format;
    };
    const Row rows[] = {
        {"", "", Format::Squid},  // off by default
        {"server:\n  access_log: off\n", "", Format::Squid},
        {"server:\n  access_log: \"-\"\n", "-", Format::Squid},
        {"server:\n  access_log: /var/log/hallpass/access.log\n", "/var/log/hallpass/access.log",
         Format::Squid},
        {"server:\n  access_log: access.log\n", "/etc/hallpass/access.log", Format::Squid},
        {"server:\n  access_log: {path: logs/a.json, format: json}\n", "/etc/hallpass/logs/a.json",
         Format::Json},
        {"server:\n  access_log: {path: \"-\", format: json}\n", "-", Format::Json},
        {"server:\n  access_log: {path: off, format: json}\n", "", Format::Json},
        {"server:\n  access_log: {path: /a.log, format: squid}\n", "/a.log", Format::Squid},
    };
    for (const Row& row : rows) {
        SUBCASE(row.yaml) {
            auto cfg = parse_server_config(row.yaml, "/etc/hallpass/rules.yaml");
            INFO((cfg.ok() ? std::string() : cfg.error().to_string()));
            REQUIRE(cfg.ok());
            CHECK(cfg->access_log.path == row.path);
            CHECK(cfg->access_log.format == row.format);
            CHECK(cfg->access_log.enabled() == (row.path[0] != '\0'));
        }
    }
}

TEST_CASE("config: a missing file is an error naming it") {
    auto cfg = load_server_config("/nonexistent/rules.yaml");
    REQUIRE_FALSE(cfg.ok());
    CHECK(cfg.error().to_string().find("/nonexistent/rules.yaml") != std::string::npos);
}

TEST_CASE("config: listen addresses") {
    CHECK(parse_listen_address("0.0.0.0:12345").ok());
    CHECK(parse_listen_address("[::1]:0").ok());
    CHECK_FALSE(parse_listen_address("[::1]").ok());
    CHECK_FALSE(parse_listen_address("127.0.0.1:65536").ok());
    CHECK_FALSE(parse_listen_address("127.0.0.1:").ok());
    CHECK_FALSE(parse_listen_address("localhost:80").ok());
    auto a = parse_listen_address("[::1]:8080");
    REQUIRE(a.ok());
    CHECK(format_address(reinterpret_cast<const sockaddr*>(&a->addr)) == "[::1]:8080");
}

TEST_CASE("yaml_source: did_you_mean picks close names only") {
    const std::string_view keys[] = {"domains", "hosts", "host_regex"};
    CHECK(did_you_mean("domians", keys) == "domains");
    CHECK(did_you_mean("host", keys) == "hosts");
    CHECK(did_you_mean("colour", keys) == "");
}

TEST_CASE("yaml_source: a repeated key in any map is an error naming both positions") {
    SUBCASE("top level") {
        auto doc = YamlSource::parse("rules: []\nserver: {}\nrules: []\n", "rules.yaml");
        REQUIRE(!doc.ok());
        CHECK(doc.error().to_string() == "rules.yaml:3:1: duplicate key \"rules\" (first at 1:1)");
    }
    SUBCASE("inside a rule in a list") {
        auto doc = YamlSource::parse(
            "rules:\n  - name: a\n    domains: [x.test]\n    domains: [y.test]\n", "rules.yaml");
        REQUIRE(!doc.ok());
        CHECK(doc.error().to_string() ==
              "rules.yaml:4:5: duplicate key \"domains\" (first at 3:5)");
    }
    SUBCASE("server") {
        auto cfg = parse_server_config("server:\n  threads: 1\n  threads: 2\n", "rules.yaml");
        REQUIRE(!cfg.ok());
        CHECK(cfg.error().to_string() ==
              "rules.yaml:3:3: duplicate key \"threads\" (first at 2:3)");
    }
    SUBCASE("distinct keys are fine") {
        CHECK(YamlSource::parse("a: 1\nb: {a: 1}\n", "rules.yaml").ok());
    }
}
