// Safe search without decrypting anything: which hosts belong to a search provider, and the
// provider's enforcement name whose addresses serve only its filtered results (Google's
// forcesafesearch.google.com, YouTube's restrict(moderate).youtube.com, strict.bing.com,
// safe.duckduckgo.com). A proxy connects a client's tunnel or request for www.google.de to the
// enforcement name's addresses while the client's bytes (TLS SNI included) pass unchanged; the
// provider's servers there answer for the original name with a valid certificate.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hallpass/base/net_set.h"

namespace hallpass {

enum class SearchProvider : uint8_t { Google, YouTube, Bing, DuckDuckGo };
enum class YouTubeMode : uint8_t { Off, Moderate, Strict };

// The provider a canonical host belongs to, for the hosts that serve search results: Google's
// search pages on every country domain (google.com, www.google.de, www.google.co.uk,
// www.google.com.au, ...), YouTube's sites and the API its apps use, Bing, DuckDuckGo. None for
// anything else (mail.google.com, the enforcement names themselves).
std::optional<SearchProvider> search_provider(std::string_view host);

const char* provider_name(SearchProvider p);  // "google", "youtube", "bing", "duckduckgo"

// One `safe_search:` entry of rules.yaml.
struct SafeSearchSpec {
    int line = 0, col = 0;  // position, for messages
    bool has_clients = false;
    NetSet clients;
    std::vector<std::string> client_labels;
    std::vector<size_t> when;  // schedule indexes; empty = always
    bool google = false;
    YouTubeMode youtube = YouTubeMode::Off;
    bool bing = false;
    bool duckduckgo = false;

    // The enforcement name for `p` under this entry; null when the entry leaves `p` alone.
    const char* enforcement_name(SearchProvider p) const;
};

}  // namespace hallpass
