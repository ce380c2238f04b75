// JSON string literals from arbitrary bytes: quotes, backslash and control bytes escaped; bytes
// that are not valid UTF-8 become \u00XX (read as Latin-1), so the output is always valid JSON.
// Used by the access log's JSON lines and by /stats.json.
#pragma once

#include <string>
#include <string_view>

namespace hallpass {

// Appends `text` as a JSON string literal, with its quotes.
void append_json_string(std::string& out, std::string_view text);

}  // namespace hallpass
