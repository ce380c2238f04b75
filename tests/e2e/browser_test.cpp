// A real browser through hallpass: headless Chromium loads a page with a stylesheet, a script
// and an image from nginx, over HTTP and over HTTPS via CONNECT. The page's own JavaScript
// writes markers into the DOM only when the sub-resources really loaded (and the CSS applied);
// the test reads them from --dump-dom and checks that hallpass itself saw the requests. The
// host name site.test is known only to hallpass's hosts_file, so Chromium cannot go direct.
#include <doctest/doctest.h>

#include <set>

#include "harness.h"

using namespace hallpass::e2e;

namespace {

const char* const kChromium = "/usr/bin/chromium";

const char* const kIndex = R"html(<!doctype html>
<html><head><title>hallpass e2e</title>
<link rel="stylesheet" href="style.css">
<script>
function mark(what, text) {
  var p = document.createElement('p');
  p.id = what + '-marker';
  p.textContent = text;
  document.getElementById('markers').appendChild(p);
}
</script>
</head><body>
<h1 id="title">hallpass browser test</h1>
<div id="markers"></div>
<img id="pixel" src="pixel.png" onload="mark('img', 'img-' + 'ok ' + this.naturalWidth)">
<script src="app.js"></script>
</body></html>
)html";

// Markers are assembled at run time, so the page source alone never contains them.
const char* const kScript =
    "mark('js', 'js-' + 'ok css=' + getComputedStyle(document.getElementById('title')).color);\n"
    "mark('scheme', 'loaded over ' + location.protocol);\n";
const char* const kStyle =
    "#title { color: rgb(1, 2, 3); }\n"
    "#pixel { width: 48px; height: 48px; }\n";

void fill_site(const Nginx& origin) {
    origin.put("b/index.html", kIndex);
    origin.put("b/app.js", kScript);
    origin.put("b/style.css", kStyle);
    origin.put("b/pixel.png", tiny_png());
}

// Runs headless Chromium through the proxy with `mode` (--dump-dom or --screenshot=...);
// `proxy_flag` replaces --proxy-server=127.0.0.1:PORT (--proxy-pac-url=...).
RunResult chromium(const TempDir& dir, uint16_t proxy_port, const std::vector<std::string>& mode,
                   const std::string& url, const std::string& proxy_flag = "") {
    static int profile = 0;
    fs::path profile_dir = dir / ("chromium-profile-" + std::to_string(profile++));
    fs::create_directories(profile_dir);
    std::vector<std::string> argv = {
        "env",
        "HOME=" + dir.path().string(),
        kChromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--ignore-certificate-errors",
        "--user-data-dir=" + profile_dir.string(),
        proxy_flag.empty() ? "--proxy-server=127.0.0.1:" + std::to_string(proxy_port) : proxy_flag};
    argv.insert(argv.end(), mode.begin(), mode.end());
    argv.push_back(url);
    return run(argv, 60s, /*own_process_group=*/true);
}

void check_markers(const RunResult& r) {
    INFO("chromium stderr (tail): " << r.err.substr(r.err.size() > 2000 ? r.err.size() - 2000 : 0));
    INFO("dom: " << r.out);
    CHECK_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "<p id=\"js-marker\">js-ok css=rgb(1, 2, 3)</p>"));
    CHECK(contains(r.out, "<p id=\"img-marker\">img-ok 1</p>"));
}

void check_scheme(const RunResult& r, std::string_view scheme) {
    CHECK(contains(r.out, "<p id=\"scheme-marker\">loaded over " + std::string(scheme) + ":</p>"));
}

bool is_png(const std::string& bytes) { return bytes.substr(0, 8) == "\x89PNG\r\n\x1a\n"; }

// A page on site.test (HTTP and HTTPS) that hallpass blocks by the rule "no-site".
struct BlockedSite {
    TempDir dir;
    Nginx origin{dir, [] {
                     NginxOptions no;
                     no.tls = true;
                     return no;
                 }()};
    Hallpass proxy{dir, options(origin)};

    BlockedSite() { fill_site(origin); }
    std::string https_url() const {
        return "https://site.test:" + std::to_string(origin.tls_port()) + "/b/index.html";
    }
    static HallpassOptions options(const Nginx& origin) {
        HallpassOptions o;
        o.server_yaml = "connect_ports: [443, " + std::to_string(origin.tls_port()) + "]";
        o.rules_yaml =
            "groups:\n  kids: [127.0.0.1]\n"
            "rules:\n  - {name: no-site, action: block, domains: [site.test],\n"
            "     message: \"This game site is not for school days. Ask Mum or Dad.\"}\n";
        return o;
    }
};

}  // namespace

TEST_CASE("browser: headless Chromium renders a page with sub-resources over HTTP") {
    REQUIRE_MESSAGE(fs::exists(kChromium), "chromium is not installed (scripts/test installs it)");
    TempDir dir;
    Nginx origin(dir);
    fill_site(origin);
    Hallpass proxy(dir);
    std::string base = origin.url("/b/", "site.test");

    auto dom = chromium(dir, proxy.port(), {"--dump-dom"}, base + "index.html");
    check_markers(dom);
    check_scheme(dom, "http");

    auto log = proxy.stderr_text();
    for (const char* file : {"index.html", "style.css", "app.js", "pixel.png"})
        CHECK_MESSAGE(!lines_with(log, "GET " + base + file).empty(),
                      "hallpass did not log " << file);

    fs::path shot = artifacts_dir() / "browser_http.png";
    fs::remove(shot);
    auto r =
        chromium(dir, proxy.port(), {"--screenshot=" + shot.string(), "--window-size=1280,800"},
                 base + "index.html");
    CHECK(r.exit_code == 0);
    CHECK(is_png(read_file(shot)));
}

TEST_CASE("browser: headless Chromium renders the same page over HTTPS through CONNECT") {
    REQUIRE_MESSAGE(fs::exists(kChromium), "chromium is not installed (scripts/test installs it)");
    TempDir dir;
    NginxOptions no;
    no.tls = true;
    Nginx origin(dir, no);
    fill_site(origin);
    HallpassOptions opts;
    opts.server_yaml = "connect_ports: [443, " + std::to_string(origin.tls_port()) + "]";
    Hallpass proxy(dir, opts);
    std::string authority = "site.test:" + std::to_string(origin.tls_port());
    std::string base = "https://" + authority + "/b/";

    auto dom = chromium(dir, proxy.port(), {"--dump-dom"}, base + "index.html");
    check_markers(dom);
    check_scheme(dom, "https");

    auto connects = lines_with(proxy.stderr_text(), "CONNECT " + authority);
    CHECK_MESSAGE(!connects.empty(), "hallpass did not log CONNECT " << authority);
    // The requests inside the tunnel reached nginx over TLS.
    std::set<std::string> https_requests;
    for (const auto& a : origin.accesses())
        if (a.scheme == "https") https_requests.insert(a.request);
    for (const char* file : {"index.html", "style.css", "app.js", "pixel.png"})
        CHECK_MESSAGE(https_requests.count(std::string("GET /b/") + file + " HTTP/1.1") == 1,
                      "nginx did not serve " << file << " over https:\n"
                                             << origin.access_log());

    fs::path shot = artifacts_dir() / "browser_https.png";
    fs::remove(shot);
    auto r =
        chromium(dir, proxy.port(), {"--screenshot=" + shot.string(), "--window-size=1280,800"},
                 base + "index.html");
    CHECK(r.exit_code == 0);
    CHECK(is_png(read_file(shot)));
    CHECK(read_file(shot).size() > 1000);
}

TEST_CASE("browser: Chromium given only the PAC URL browses through hallpass") {
    REQUIRE_MESSAGE(fs::exists(kChromium), "chromium is not installed (scripts/test installs it)");
    TempDir dir;
    Nginx origin(dir);
    fill_site(origin);
    HallpassOptions o;
    // The page's host is a LAN name only hallpass knows; the PAC file sends it to hallpass.
    o.rules_yaml = "pac:\n  direct_domains: [home.arpa]\n";
    Hallpass proxy(dir, o);
    const std::string base = origin.url("/b/", "site.test");
    const std::string pac = "http://127.0.0.1:" + std::to_string(proxy.port()) + "/proxy.pac";
    auto dom =
        chromium(dir, proxy.port(), {"--dump-dom"}, base + "index.html", "--proxy-pac-url=" + pac);
    check_markers(dom);
    const std::string log = proxy.stderr_text();
    CHECK_MESSAGE(!lines_with(log, "GET /proxy.pac").empty(),
                  "Chromium never fetched the PAC file");
    for (const char* file : {"index.html", "style.css", "app.js", "pixel.png"})
        CHECK_MESSAGE(!lines_with(log, "GET " + base + file).empty(),
                      "hallpass did not see " << file);
}

// What a blocked site looks like over plain HTTP: hallpass's block page, with the rule's
// message, naming the rule and the device (its screenshot is left in the artifacts directory).
// (Over HTTPS the browser shows its own error page: hallpass refuses the tunnel without decrypting
// anything.)
TEST_CASE("browser: a blocked page in Chromium is hallpass's block page naming the rule") {
    REQUIRE_MESSAGE(fs::exists(kChromium), "chromium is not installed (scripts/test installs it)");
    BlockedSite site;
    TempDir& dir = site.dir;
    Nginx& origin = site.origin;
    Hallpass& proxy = site.proxy;
    const std::string url = origin.url("/b/index.html", "site.test");
    auto dom = chromium(dir, proxy.port(), {"--dump-dom"}, url);
    CHECK_MESSAGE(contains(dom.out, "no-site"), "no block page naming the rule: " << dom.out);
    // Rendered for the person blocked: the rule's message and the device with its group.
    CHECK(contains(dom.out, "This game site is not for school days. Ask Mum or Dad."));
    CHECK(contains(dom.out, "kids: 127.0.0.1"));
    CHECK_FALSE(contains(dom.out, "hallpass browser test"));
    CHECK(origin.accesses().empty());
    fs::path shot = artifacts_dir() / "blocked_http.png";
    fs::remove(shot);
    auto r = chromium(dir, proxy.port(),
                      {"--screenshot=" + shot.string(), "--window-size=1000,600"}, url);
    CHECK(r.exit_code == 0);
    CHECK(is_png(read_file(shot)));
}

// Over HTTPS the browser shows its own error page: hallpass refused the CONNECT (403) without
// decrypting anything. Headless Chromium alone renders no error page (--dump-dom prints nothing,
// --screenshot writes nothing), so it is driven through chromedriver (Debian's chromium-driver,
// with python3-selenium), which loads chrome-error:// like a visible window does.
TEST_CASE(
    "browser: a blocked HTTPS site in Chromium is its own error page, "
    "ERR_TUNNEL_CONNECTION_FAILED") {
    if (!fs::exists("/usr/bin/chromedriver") ||
        run({"/usr/bin/python3", "-c", "import selenium"}, 20s).exit_code != 0) {
        FAIL("chromium-driver and python3-selenium are needed (scripts/test installs them)");
    }
    BlockedSite site;
    TempDir& dir = site.dir;
    Nginx& origin = site.origin;
    Hallpass& proxy = site.proxy;
    const std::string url = site.https_url();
    const fs::path shot = artifacts_dir() / "blocked_https_chromium.png";
    fs::remove(shot);
    const std::string py =
        "import sys\n"
        "from selenium import webdriver\n"
        "from selenium.webdriver.chrome.service import Service\n"
        "o = webdriver.ChromeOptions()\n"
        "for a in ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',\n"
        "          '--window-size=1000,600', '--proxy-server=127.0.0.1:' + sys.argv[1],\n"
        "          '--user-data-dir=' + sys.argv[4]]:\n"
        "    o.add_argument(a)\n"
        "d = webdriver.Chrome(service=Service('/usr/bin/chromedriver'), options=o)\n"
        "try:\n"
        "    try:\n"
        "        d.get(sys.argv[2])\n"
        "    except Exception as e:\n"
        "        print('navigation:', type(e).__name__)\n"
        "    print('ERROR-CODE' if 'ERR_TUNNEL_CONNECTION_FAILED' in d.page_source else "
        "'NO-CODE')\n"
        "    print('PAGE' if 'hallpass browser test' in d.page_source else 'NO-PAGE')\n"
        "    d.save_screenshot(sys.argv[3])\n"
        "finally:\n"
        "    d.quit()\n";
    auto r = run(
        {"env", "HOME=" + dir.path().string(), "/usr/bin/python3", "-c", py,
         std::to_string(proxy.port()), url, shot.string(), (dir / "chromedriver-profile").string()},
        90s, /*own_process_group=*/true);
    INFO(r.out << r.err.substr(r.err.size() > 2000 ? r.err.size() - 2000 : 0));
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "ERROR-CODE"));
    CHECK(contains(r.out, "NO-PAGE"));
    CHECK(is_png(read_file(shot)));
    CHECK(!lines_with(proxy.stderr_text(), "blocked site.test:").empty());
    CHECK(origin.accesses().empty());
}

// The same in Firefox (Debian's firefox-esr, driven over Marionette by libfirefox-marionette-perl),
// configured only with hallpass's PAC URL: Firefox fetches /proxy.pac, asks hallpass for the
// tunnel, and shows its own "proxy server is refusing connections" page.
TEST_CASE(
    "browser: a blocked HTTPS site in Firefox, configured by the PAC file, is its own error page") {
    if (!fs::exists("/usr/bin/firefox-esr") ||
        run({"perl", "-MFirefox::Marionette", "-e", "1"}, 20s).exit_code != 0) {
        FAIL("firefox-esr and libfirefox-marionette-perl are needed (scripts/test installs them)");
    }
    BlockedSite site;
    TempDir& dir = site.dir;
    Nginx& origin = site.origin;
    Hallpass& proxy = site.proxy;
    const std::string url = site.https_url();
    const std::string pac = "http://127.0.0.1:" + std::to_string(proxy.port()) + "/proxy.pac";
    const fs::path shot = artifacts_dir() / "blocked_https_firefox.png";
    fs::remove(shot);
    const std::string pl =
        "use strict; use warnings; use URI; use Firefox::Marionette; use "
        "Firefox::Marionette::Proxy;\n"
        "my ($pac, $url, $shot) = @ARGV;\n"
        "my $f = Firefox::Marionette->new(width => 1000, height => 600, capabilities =>\n"
        "  Firefox::Marionette::Capabilities->new(proxy =>\n"
        "    Firefox::Marionette::Proxy->new(pac => URI->new($pac))));\n"
        "my $error = '';\n"
        "eval { $f->go($url); 1 } or $error = \"$@\";\n"
        "print(($error =~ /about:neterror\\?e=(\\w+)/) ? \"NETERROR $1\\n\" : \"LOADED\\n\");\n"
        "open my $fh, '>', $shot or die; binmode $fh; print $fh $f->selfie(raw => 1); close $fh;\n"
        "$f->quit;\n";
    auto r = run({"env", "HOME=" + dir.path().string(), "perl", "-e", pl, pac, url, shot.string()},
                 120s, /*own_process_group=*/true);
    INFO(r.out << r.err.substr(r.err.size() > 2000 ? r.err.size() - 2000 : 0));
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "NETERROR proxyConnectFailure"));
    CHECK(is_png(read_file(shot)));
    const std::string log = proxy.stderr_text();
    CHECK_MESSAGE(!lines_with(log, "GET /proxy.pac").empty(), "Firefox never fetched the PAC file");
    CHECK(!lines_with(log, "blocked site.test:").empty());
    CHECK(origin.accesses().empty());
}
