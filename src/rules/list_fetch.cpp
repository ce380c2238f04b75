// libcurl's easy interface, one handle per fetch. The body is kept in memory (bounded), checked
// (not HTML, not binary, entries parsed as the loader will, no collapse), then written beside
// the old copy and renamed over it, so a reload never sees half a file.
#include "hallpass/rules/list_fetch.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>

#include "hallpass/rules/domain_list.h"

#ifndef HALLPASS_VERSION
#define HALLPASS_VERSION "dev"
#endif

namespace hallpass {
namespace {

constexpr size_t kMaxListBytes = 256u << 20;

std::string meta_path(const ListSpec& list) { return list.cache_path + ".meta"; }

struct Response {
    std::string body;
    std::string etag;
    std::string last_modified;
    std::string content_type;
    bool too_big = false;
};

size_t on_body(char* data, size_t size, size_t n, void* arg) {
    auto* r = static_cast<Response*>(arg);
    const size_t len = size * n;
    if (r->body.size() + len > kMaxListBytes) {
        r->too_big = true;
        return 0;  // aborts the transfer
    }
    r->body.append(data, len);
    return len;
}

size_t on_header(char* data, size_t size, size_t n, void* arg) {
    auto* r = static_cast<Response*>(arg);
    std::string_view line(data, size * n);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
        // A new status line (a redirect's or a 100's answer came first): start over.
        if (line.starts_with("HTTP/")) *r = Response{std::move(r->body), {}, {}, {}, false};
        return size * n;
    }
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
        value.remove_prefix(1);
    while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' '))
        value.remove_suffix(1);
    if (name == "etag") r->etag = value;
    if (name == "last-modified") r->last_modified = value;
    if (name == "content-type") r->content_type = value;
    return size * n;
}

bool write_atomically(const std::string& path, const std::string& data, std::string* error) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
        out.flush();
        if (!out) {
            *error = "cannot write " + tmp;
            return false;
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        *error = "cannot rename " + tmp + " to " + path;
        std::remove(tmp.c_str());
        return false;
    }
    return true;
}

void write_meta(const ListSpec& list, const ListCopy& copy) {
    std::ostringstream m;
    m << "fetched: " << copy.fetched_unix << "\n"
      << "entries: " << copy.entries << "\n"
      << "etag: " << copy.etag << "\n"
      << "last-modified: " << copy.last_modified << "\n";
    std::string error;
    (void)write_atomically(meta_path(list), m.str(), &error);
}

ListFormat format_of(const std::string& f) {
    auto parsed = parse_list_format(f);
    return parsed ? *parsed : ListFormat::Auto;
}

void init_curl_once() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

const char* outcome_name(ListFetch::Outcome o) {
    switch (o) {
        case ListFetch::Outcome::Updated:
            return "updated";
        case ListFetch::Outcome::NotModified:
            return "not modified";
        case ListFetch::Outcome::Refused:
            return "refused";
        case ListFetch::Outcome::Failed:
            return "failed";
    }
    return "?";
}

ListCopy read_list_copy(const ListSpec& list) {
    ListCopy copy;
    copy.exists = std::filesystem::is_regular_file(list.cache_path);
    std::ifstream in(meta_path(list));
    std::string line;
    while (std::getline(in, line)) {
        const size_t colon = line.find(": ");
        if (colon == std::string::npos) continue;
        const std::string key = line.substr(0, colon), value = line.substr(colon + 2);
        if (key == "fetched") copy.fetched_unix = std::atoll(value.c_str());
        if (key == "entries") copy.entries = static_cast<size_t>(std::atoll(value.c_str()));
        if (key == "etag") copy.etag = value;
        if (key == "last-modified") copy.last_modified = value;
    }
    if (!copy.exists) copy = ListCopy{};
    return copy;
}

ListFetch fetch_list(const ListSpec& list) {
    init_curl_once();
    ListFetch out;
    const ListCopy copy = read_list_copy(list);
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
    if (!curl) {
        out.message = "cannot start libcurl";
        return out;
    }
    Response r;
    char errbuf[CURL_ERROR_SIZE] = {};
    CURL* h = curl.get();
    curl_easy_setopt(h, CURLOPT_URL, list.url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, static_cast<long>(list.timeout_s));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, static_cast<long>(std::min(list.timeout_s, 15)));
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");  // whatever libcurl can decode
    curl_easy_setopt(h, CURLOPT_USERAGENT, "hallpass/" HALLPASS_VERSION " (list updater)");
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    if (!list.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, list.ca_file.c_str());
    struct curl_slist* headers = nullptr;
    if (copy.exists && !copy.etag.empty()) {
        headers = curl_slist_append(headers, ("If-None-Match: " + copy.etag).c_str());
    }
    if (copy.exists && !copy.last_modified.empty()) {
        headers = curl_slist_append(headers, ("If-Modified-Since: " + copy.last_modified).c_str());
    }
    if (headers) curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    const CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        out.message = r.too_big ? "larger than 256 MiB"
                                : (errbuf[0] ? std::string(errbuf) : curl_easy_strerror(rc));
        return out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    if (status == 304 && copy.exists) {
        ListCopy kept = copy;
        kept.fetched_unix = now;
        write_meta(list, kept);
        out.outcome = ListFetch::Outcome::NotModified;
        out.entries = copy.entries;
        out.message = "not modified";
        return out;
    }
    if (status != 200) {
        out.message = "HTTP " + std::to_string(status);
        return out;
    }
    // Checked as a list before it can replace one.
    out.outcome = ListFetch::Outcome::Refused;
    const size_t first = r.body.find_first_not_of(" \t\r\n\xef\xbb\xbf");
    std::string type = r.content_type;
    std::transform(type.begin(), type.end(), type.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (type.starts_with("text/html") || (first != std::string::npos && r.body[first] == '<')) {
        out.message = "an HTML page, not a list";
        return out;
    }
    if (r.body.find('\0') != std::string::npos) {
        out.message = "binary data, not a list";
        return out;
    }
    const ListStats stats =
        parse_domain_list(r.body, format_of(list.format), [](std::string_view, uint32_t) {});
    if (stats.entries == 0) {
        out.message = "no entries";
        return out;
    }
    if (copy.exists && copy.entries > 0 &&
        stats.entries * 100 < copy.entries * static_cast<size_t>(100 - list.max_shrink_pct)) {
        out.message = "shrank from " + std::to_string(copy.entries) + " to " +
                      std::to_string(stats.entries) + " entries (more than max_shrink " +
                      std::to_string(list.max_shrink_pct) + "%)";
        return out;
    }
    std::string error;
    if (!write_atomically(list.cache_path, r.body, &error)) {
        out.outcome = ListFetch::Outcome::Failed;
        out.message = error;
        return out;
    }
    ListCopy fresh;
    fresh.exists = true;
    fresh.fetched_unix = now;
    fresh.entries = stats.entries;
    fresh.etag = r.etag;
    fresh.last_modified = r.last_modified;
    write_meta(list, fresh);
    out.outcome = ListFetch::Outcome::Updated;
    out.entries = stats.entries;
    out.message = std::to_string(stats.entries) + " entries";
    return out;
}

}  // namespace hallpass
