/* Rank-prefixed logging to stderr; level from RYZ_LOG. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/core.h"

static int log_rank = -1;
static int log_level = -1; /* -1: not yet read from RYZ_LOG */

static const char *level_names[] = {"error", "warn", "info", "debug"};

static int level_from_env(void) {
    const char *v = getenv("RYZ_LOG");
    if (!v) return RYZ_LOG_WARN;
    for (int i = 0; i <= RYZ_LOG_DEBUG; i++)
        if (strcmp(v, level_names[i]) == 0) return i;
    fprintf(stderr, "ryz: RYZ_LOG='%s' not one of error|warn|info|debug; using warn\n", v);
    return RYZ_LOG_WARN;
}

void ryz_log_set_rank(int rank) {
    log_rank = rank;
}

void ryz_log_set_level(ryz_log_level level) {
    log_level = (int)level;
}

ryz_log_level ryz_log_get_level(void) {
    if (log_level < 0) log_level = level_from_env();
    return (ryz_log_level)log_level;
}

void ryz_log(ryz_log_level level, const char *fmt, ...) {
    if ((int)level > (int)ryz_log_get_level()) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (log_rank >= 0)
        fprintf(stderr, "[ryz r%d %s] %s\n", log_rank, level_names[level], msg);
    else
        fprintf(stderr, "[ryz %s] %s\n", level_names[level], msg);
}
