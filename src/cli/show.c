/* ryz show FILE.h5: the tables of a results file as text. */
#include <stdio.h>
#include <string.h>

#include "ryz/cli.h"
#include "ryz/report.h"
#include "ryz/results.h"

static void show_usage(FILE *f) {
    fprintf(f, "usage: ryz show FILE.h5 [--raw]\n"
               "  Prints the root attributes of a results file, one table per case as\n"
               "  `ryz suite` printed it, then the /collectives and /memory tables.\n"
               "  --raw prints every table (also /correctness, /timing, /samples) in full.\n"
               "  Exit: 0 ok, 2 unreadable or malformed file.\n");
}

/* Parses `ryz show` arguments: the file, --raw, --help. */
static ryz_status show_parse(int argc, char **argv, const char **file, int *raw, int *help) {
    *file = NULL, *raw = 0, *help = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            *help = 1;
        else if (!strcmp(argv[i], "--raw"))
            *raw = 1;
        else if (argv[i][0] == '-')
            return ryz_error(RYZ_EINVAL, "show: unknown option '%s' (see --help)", argv[i]);
        else if (*file)
            return ryz_error(RYZ_EINVAL, "show: one FILE expected, got '%s' and '%s'", *file,
                             argv[i]);
        else
            *file = argv[i];
    }
    if (!*file && !*help)
        return ryz_error(RYZ_EINVAL, "show: FILE.h5 is required (see --help)");
    return RYZ_OK;
}

int ryz_cmd_show(int argc, char **argv) {
    const char *file;
    int raw, help;
    ryz_results res;
    ryz_results_init(&res);
    ryz_status st = show_parse(argc, argv, &file, &raw, &help);
    if (st == RYZ_OK && help) {
        show_usage(stdout);
        return 0;
    }
    if (st == RYZ_OK)
        st = ryz_results_read(file, &res);
    if (st == RYZ_OK) {
        printf("results: %s\n", file);
        st = ryz_report_show(&res, raw, stdout);
    }
    ryz_results_free(&res);
    return st == RYZ_OK ? 0 : ryz_cli_fail(st, NULL);
}
