/* ryz suite FILE: the main job. */
#include <stdio.h>
#include <string.h>

#include "ryz/cli.h"
#include "ryz/suite.h"

static void suite_usage(FILE *f) {
    fprintf(f, "usage: ryz suite FILE [--quiet]\n"
               "  Runs every case of the suite file: TP=1 baseline, then each TP degree\n"
               "  teacher-forced and greedy, compared position by position. Launches its own\n"
               "  ranks (mpirun) when started outside mpirun. Exit: 0 all pass, 1 a check\n"
               "  failed, 2 bad input, 3 communication failure.\n");
}

static ryz_status suite_parse_args(int argc, char **argv, const char **file, ryz_run_opts *o,
                                   int *help) {
    *file = NULL;
    *help = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) *help = 1;
        else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) o->quiet = 1;
        else if (argv[i][0] == '-')
            return ryz_error(RYZ_EINVAL, "suite: unknown option '%s' (see --help)", argv[i]);
        else if (*file)
            return ryz_error(RYZ_EINVAL, "suite: one FILE expected, got '%s' and '%s'", *file,
                             argv[i]);
        else *file = argv[i];
    }
    if (!*file && !*help) return ryz_error(RYZ_EINVAL, "suite: FILE is required (see --help)");
    return RYZ_OK;
}

int ryz_cmd_suite(int argc, char **argv) {
    const char *file;
    ryz_run_opts opts = {0};
    ryz_suite s = {0};
    int help, code, failed = 0;
    ryz_status st = suite_parse_args(argc, argv, &file, &opts, &help);
    if (st == RYZ_OK && help) {
        suite_usage(stdout);
        return 0;
    }
    if (st == RYZ_OK) st = ryz_suite_load(file, &s);
    if (st == RYZ_OK) st = ryz_suite_validate(&s);
    if (st != RYZ_OK) {
        ryz_suite_free(&s);
        return ryz_cli_fail(st, NULL);
    }
    ryz_comm *world = NULL;
    int np = s.ranks ? s.ranks : ryz_suite_max_tp(&s);
    st = ryz_cli_world(np, argc + 1, argv - 1, &world, &code);
    if (st == RYZ_OK) st = ryz_suite_run(&s, world, &opts, &failed);
    if (st != RYZ_OK) code = ryz_cli_fail(st, world);
    else code = failed ? 1 : 0;
    if (st == RYZ_OK && ryz_comm_rank(world) == 0)
        printf("\nsuite %s: %s (%d failed check%s)\n", s.name, failed ? "FAIL" : "PASS", failed,
               failed == 1 ? "" : "s");
    ryz_cli_world_free(world);
    ryz_suite_free(&s);
    return code;
}
