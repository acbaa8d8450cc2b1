/* Small option helpers shared by the commands. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/core.h"
#include "args.h"

ryz_status ryz_arg_int(const char *opt, const char *v, long lo, long hi, int *out) {
    if (!v) return ryz_error(RYZ_EINVAL, "%s needs a value", opt);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end)
        return ryz_error(RYZ_EINVAL, "%s '%s' is not an integer", opt, v);
    if (x < lo || x > hi)
        return ryz_error(RYZ_EINVAL, "%s %ld out of range [%ld, %ld]", opt, x, lo, hi);
    *out = (int)x;
    return RYZ_OK;
}

const char *ryz_arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) return NULL;
    return argv[++*i];
}
