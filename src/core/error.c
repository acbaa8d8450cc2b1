/* Status codes and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/core.h"

static _Thread_local char last_error[1024];

ryz_status ryz_error(ryz_status s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return s;
}

ryz_status ryz_error_wrap(ryz_status s, const char *fmt, ...) {
    char prefix[256], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t n = 0;
    for (const char *line = old; *line && n + 1 < sizeof last_error;) {
        const char *nl = strchr(line, '\n');
        int len = nl ? (int)(nl - line) : (int)strlen(line);
        n += (size_t)snprintf(last_error + n, sizeof last_error - n, "%s%s: %.*s",
                              n ? "\n" : "", prefix, len, line);
        line += len + (nl ? 1 : 0);
    }
    if (n == 0) snprintf(last_error, sizeof last_error, "%s", prefix);
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
