/* report/args.c: the argument shape `ryz plot` and `ryz report` share. */
#include <string.h>

#include "ryz/report.h"

ryz_status ryz_report_parse_args(const char *cmd, int argc, char **argv, const char **file,
                                 const char **dir, int *help) {
    *file = NULL, *dir = NULL, *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            *help = 1;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc)
                return ryz_error(RYZ_EINVAL, "%s: %s needs a directory", cmd, a);
            *dir = argv[++i];
        } else if (a[0] == '-')
            return ryz_error(RYZ_EINVAL, "%s: unknown option '%s' (see --help)", cmd, a);
        else if (*file)
            return ryz_error(RYZ_EINVAL, "%s: one FILE expected, got '%s' and '%s'", cmd, *file, a);
        else
            *file = a;
    }
    if (!*file && !*help)
        return ryz_error(RYZ_EINVAL, "%s: FILE.h5 is required (see --help)", cmd);
    return RYZ_OK;
}
