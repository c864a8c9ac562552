/* check.h - the invariant check shared by the fuzz targets.
 *
 * CHECK() is not assert(): it stays on whatever the build type, and it
 * abort()s, which libFuzzer records as a crash and saves the input of. */
#ifndef FLOODSHARE_FUZZ_CHECK_H
#define FLOODSHARE_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                        \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);   \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

#endif
