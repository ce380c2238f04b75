#include "hallpass/rules/safe_search.h"

#include <doctest/doctest.h>

using namespace hallpass;

TEST_CASE("safe_search: search hosts and their providers") {
    for (const char* host : {"google.com", "www.google.com", "www.google.de", "google.fr",
                             "www.google.co.uk", "www.google.com.au", "google.co.jp"}) {
        INFO(host);
        CHECK(search_provider(host) == SearchProvider::Google);
    }
    for (const char* host : {"www.youtube.com", "m.youtube.com", "youtubei.googleapis.com",
                             "youtube.googleapis.com", "www.youtube-nocookie.com", "youtube.com"}) {
        INFO(host);
        CHECK(search_provider(host) == SearchProvider::YouTube);
    }
    CHECK(search_provider("www.bing.com") == SearchProvider::Bing);
    CHECK(search_provider("duckduckgo.com") == SearchProvider::DuckDuckGo);
    for (const char* host : {"mail.google.com", "forcesafesearch.google.com", "google.example.com",
                             "notgoogle.com", "restrict.youtube.com", "safe.duckduckgo.com",
                             "strict.bing.com", "www.google.longtld", "i.ytimg.com"}) {
        INFO(host);
        CHECK_FALSE(search_provider(host));
    }
}

TEST_CASE("safe_search: enforcement names per setting") {
    SafeSearchSpec s;
    CHECK(s.enforcement_name(SearchProvider::Google) == nullptr);
    s.google = true;
    s.bing = true;
    s.duckduckgo = true;
    s.youtube = YouTubeMode::Moderate;
    CHECK(std::string(s.enforcement_name(SearchProvider::Google)) == "forcesafesearch.google.com");
    CHECK(std::string(s.enforcement_name(SearchProvider::YouTube)) ==
          "restrictmoderate.youtube.com");
    CHECK(std::string(s.enforcement_name(SearchProvider::Bing)) == "strict.bing.com");
    CHECK(std::string(s.enforcement_name(SearchProvider::DuckDuckGo)) == "safe.duckduckgo.com");
    s.youtube = YouTubeMode::Strict;
    CHECK(std::string(s.enforcement_name(SearchProvider::YouTube)) == "restrict.youtube.com");
    s.youtube = YouTubeMode::Off;
    CHECK(s.enforcement_name(SearchProvider::YouTube) == nullptr);
}
