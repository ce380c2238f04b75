// doctest's main() for the e2e executables (one per test file); a copy of tests/unit's so the e2e
// suite builds on its own.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
