// Search hosts and their enforcement names (the names Google, YouTube, Microsoft and DuckDuckGo
// document for networks that enforce safe search by DNS).
#include "hallpass/rules/safe_search.h"

#include <algorithm>
#include <cctype>

namespace hallpass {
namespace {

bool is_country_code(std::string_view label) {
    return label.size() == 2 &&
           std::all_of(label.begin(), label.end(), [](unsigned char c) { return std::islower(c); });
}

// google.TLD with TLD "com", a country code ("de"), or "co."/"com." and a country code
// ("co.uk", "com.au"); the same after "www.".
bool is_google_search(std::string_view host) {
    if (host.starts_with("www.")) host.remove_prefix(4);
    if (!host.starts_with("google.")) return false;
    std::string_view tld = host.substr(7);
    if (tld == "com" || tld == "cat" || is_country_code(tld)) return true;
    for (std::string_view second : {"co.", "com."}) {
        if (tld.starts_with(second) && is_country_code(tld.substr(second.size()))) return true;
    }
    return false;
}

}  // namespace

std::optional<SearchProvider> search_provider(std::string_view host) {
    if (is_google_search(host)) return SearchProvider::Google;
    static constexpr std::string_view kYouTube[] = {"youtube.com",
                                                    "www.youtube.com",
                                                    "m.youtube.com",
                                                    "youtubei.googleapis.com",
                                                    "youtube.googleapis.com",
                                                    "www.youtube-nocookie.com"};
    if (std::find(std::begin(kYouTube), std::end(kYouTube), host) != std::end(kYouTube)) {
        return SearchProvider::YouTube;
    }
    if (host == "bing.com" || host == "www.bing.com") return SearchProvider::Bing;
    if (host == "duckduckgo.com" || host == "www.duckduckgo.com") return SearchProvider::DuckDuckGo;
    return std::nullopt;
}

const char* provider_name(SearchProvider p) {
    switch (p) {
        case SearchProvider::Google:
            return "google";
        case SearchProvider::YouTube:
            return "youtube";
        case SearchProvider::Bing:
            return "bing";
        case SearchProvider::DuckDuckGo:
            return "duckduckgo";
    }
    return "";
}

const char* SafeSearchSpec::enforcement_name(SearchProvider p) const {
    switch (p) {
        case SearchProvider::Google:
            return google ? "forcesafesearch.google.com" : nullptr;
        case SearchProvider::YouTube:
            switch (youtube) {
                case YouTubeMode::Strict:
                    return "restrict.youtube.com";
                case YouTubeMode::Moderate:
                    return "restrictmoderate.youtube.com";
                case YouTubeMode::Off:
                    return nullptr;
            }
            return nullptr;
        case SearchProvider::Bing:
            return bing ? "strict.bing.com" : nullptr;
        case SearchProvider::DuckDuckGo:
            return duckduckgo ? "safe.duckduckgo.com" : nullptr;
    }
    return nullptr;
}

}  // namespace hallpass
