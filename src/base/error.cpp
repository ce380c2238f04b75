// Error::to_string(): the one place that decides how a located error is printed, so config
// messages look the same whichever loader produced them (`rules.yaml:14:7: unknown key ...`).
#include "hallpass/base/error.h"

namespace hallpass {

std::string Error::to_string() const {
    std::string out;
    if (!file.empty()) out += file;
    if (line > 0) {
        if (!out.empty()) out += ':';
        out += std::to_string(line);
        if (col > 0) {
            out += ':';
            out += std::to_string(col);
        }
    }
    if (!out.empty()) out += ": ";
    out += message;
    return out;
}

}  // namespace hallpass
