// FUZZ_CHECK, the fuzz targets' assertion: a broken invariant prints what failed and traps, so
// libFuzzer saves the input as a crash with a stack trace. Unlike assert() it cannot be compiled
// out, whatever the build type.
#pragma once

#include <cstdio>

#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            std::fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, \
                         __LINE__);                                                      \
            __builtin_trap();                                                            \
        }                                                                                \
    } while (0)
