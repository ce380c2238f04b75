// Names for Transaction kinds (logs, JSON, metrics labels).
#include "hallpass/observe/transaction.h"

namespace hallpass {

const char* kind_name(Transaction::Kind kind) {
    switch (kind) {
        case Transaction::Kind::Relayed:
            return "relayed";
        case Transaction::Kind::Tunnel:
            return "tunnel";
        case Transaction::Kind::Blocked:
            return "blocked";
        case Transaction::Kind::Local:
            return "local";
    }
    return "?";
}

}  // namespace hallpass
