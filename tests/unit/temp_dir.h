// A temporary directory for a unit test, removed with everything in it when the test ends.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace hallpass::test {

struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& prefix = "hallpass-unit") {
        std::string tmpl = "/tmp/" + prefix + "-XXXXXX";
        path = mkdtemp(tmpl.data());
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

}  // namespace hallpass::test
