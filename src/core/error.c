/* Status codes and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ryz/core.h"

static _Thread_local char last_error[1024];

ryz_status ryz_error(ryz_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

const char *ryz_last_error(void) {
    return last_error;
}

void ryz_error_clear(void) {
    last_error[0] = '\0';
}

const char *ryz_status_name(ryz_status s) {
    static const char *names[] = {"OK", "EINVAL", "EIO", "ECOMM", "ETIMEOUT", "ENOMEM",
                                  "EMISMATCH"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "EUNKNOWN";
}

int ryz_status_exit_code(ryz_status s) {
    switch (s) {
    case RYZ_OK: return 0;
    case RYZ_EMISMATCH: return 1;
    case RYZ_ECOMM:
    case RYZ_ETIMEOUT: return 3;
    default: return 2;
    }
}

void ryz_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "ryz: internal error: assertion '%s' failed at %s:%d\n", expr, file, line);
    abort();
}

int ryz_mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}
