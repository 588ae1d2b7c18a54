/* A scratch directory per test, under $FERRY_TEST_TMP (or /tmp), removed by
 * the teardown: cmocka group fixtures for the unit tests. */
#ifndef FERRY_TESTS_SCRATCH_H
#define FERRY_TESTS_SCRATCH_H

#include "fsutil.h"

#include <stdio.h>
#include <stdlib.h>

static inline int scratch_setup(void **state, const char *prefix)
{
    const char *base = getenv("FERRY_TEST_TMP");
    if (!base || !*base)
        base = "/tmp";
    if (fs_mkdir_p(base, 0755) < 0)
        return -1;
    char *dir = malloc(4096);
    if (!dir)
        return -1;
    snprintf(dir, 4096, "%s/%s.XXXXXX", base, prefix);
    if (!mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static inline int scratch_teardown(void **state)
{
    char *dir = *state;
    int rc = fs_rm_rf(dir);
    free(dir);
    return rc == 0 ? 0 : -1;
}

#endif
