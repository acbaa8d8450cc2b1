/* Small option helpers shared by the commands. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* realpath */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* path as its resolved folder and its name, into buf[PATH_MAX]; path
 * itself where the folder does not resolve (it is then written nowhere). */
static void resolved_name(const char *path, char *buf) {
    char dir[PATH_MAX], real[PATH_MAX];
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
    if (realpath(dir, real) && (size_t)snprintf(buf, PATH_MAX, "%s/%s", real, name) < PATH_MAX)
        return;
    snprintf(buf, PATH_MAX, "%s", path);
}

/* Whether paths a and b name one file (ryz_args_distinct_files). */
static int same_file(const char *a, const char *b) {
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea || eb) return ea && eb && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    char ra[PATH_MAX], rb[PATH_MAX];
    resolved_name(a, ra);
    resolved_name(b, rb);
    return !strcmp(ra, rb);
}

ryz_status ryz_args_distinct_files(int n, int n_in, const char *const *opts,
                                   const char *const *paths) {
    for (int j = n_in; j < n; j++)
        for (int i = 0; paths[j] && i < j; i++) {
            if (!paths[i] || !same_file(paths[i], paths[j])) continue;
            if (i < n_in)
                return ryz_error(RYZ_EINVAL, "%s %s is the input %s %s: writing it would destroy "
                                 "it; give %s another file", opts[j], paths[j], opts[i],
                                 paths[i], opts[j]);
            return ryz_error(RYZ_EINVAL, "%s and %s name the same file (%s); give each its own",
                             opts[i], opts[j], paths[j]);
        }
    return RYZ_OK;
}
