// Lists by URL: one conditional GET (libcurl) of a list, checked before it replaces the kept
// copy in the state directory. Blocking (network, files): called on the list updater's thread or
// by `hallpass --update-lists`, never on an event loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "hallpass/rules/rules_loader.h"

namespace hallpass {

// What is known about a list's kept copy (its .meta file beside it).
struct ListCopy {
    bool exists = false;
    int64_t fetched_unix = 0;  // last successful fetch (200 or 304)
    size_t entries = 0;
    std::string etag;
    std::string last_modified;
};
ListCopy read_list_copy(const ListSpec& list);

struct ListFetch {
    enum class Outcome {
        Updated,      // a good new copy is kept: reload to use it
        NotModified,  // the server says the kept copy is current (304)
        Refused,      // the server answered, but not with a list hallpass accepts (HTML,
                      // binary, empty, or shrunk by more than max_shrink): the last copy stays
        Failed,       // no answer (DNS, connect, TLS, timeout) or an HTTP error status
    };
    Outcome outcome = Outcome::Failed;
    std::string message;  // why (Refused, Failed) or what ("12,345 entries")
    size_t entries = 0;
};
const char* outcome_name(ListFetch::Outcome o);

ListFetch fetch_list(const ListSpec& list);

}  // namespace hallpass
