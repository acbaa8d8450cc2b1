/* ryz comm: the collective benchmark (nccl-tests conventions, DESIGN 6). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "ryz/bench.h"
#include "ryz/cli.h"

typedef struct {
    ryz_bench_opts b;
    const char *h5, *json, *backend;
    int np;
} comm_args;

static void comm_usage(FILE *f) {
    fprintf(f, "usage: ryz comm [--op allreduce|allgather|reducescatter|broadcast|all]\n"
               "                [-b MIN] [-e MAX] [-f FACTOR] [-n ITERS] [-w WARMUP] [-c 0|1]\n"
               "                [--backend mpi|shm] [--evict SIZE] [--gap US] [-o FILE.h5]\n"
               "                [-J FILE.json] [--np N]\n"
               "  Times each collective from MIN to MAX bytes (x FACTOR; suffixes K M G are\n"
               "  powers of 1024) like nccl-tests: per size the mean time of -n calls after\n"
               "  -w warm-up calls, algbw, busbw, p50 and p99 of the per-call latency, out of\n"
               "  place and in place. -c 1 checks every output element (#wrong). Sizes count\n"
               "  the whole buffer (all_gather: output, reduce_scatter: input), rounded down\n"
               "  to a multiple of 4 bytes (4 x ranks for all_gather and reduce_scatter);\n"
               "  an op none of whose sizes holds one is skipped with a line, an error when\n"
               "  it is the only op.\n"
               "  Defaults: --op allreduce -b 8 -e 1M -f 2 -n 20 -w 5 -c 1 --np 2.\n"
               "  Outside mpirun it launches --np ranks; under mpirun it uses the world.\n"
               "  --backend shm times ryz's own shared-memory collectives (ranks of one node)\n"
               "  instead of Open MPI's.\n"
               "  --evict SIZE: before each timed call every rank reads SIZE bytes it has not\n"
               "  read lately (untimed), as a model reads its weights between two collectives.\n"
               "  --gap US: before each timed call (after --evict's reads, if any) every rank\n"
               "  stays busy until US microseconds after its previous call ended, as a model\n"
               "  computing between collectives (Open MPI's latency grows with that time).\n"
               "  With either, a call's latency is the fastest rank's (the last to arrive).\n"
               "  Exit: 0 ok, 1 wrong elements, 2 bad input or ranks that disagree, 3 comm\n"
               "  failure. See docs/comm.md.\n");
}

/* One option that takes a value; RYZ_OK when `o` was not one of them. */
static ryz_status comm_option(comm_args *a, const char *o, const char *v, int *used) {
    ryz_bench_opts *b = &a->b;
    *used = 1;
    if (!strcmp(o, "--op"))
        return ryz_bench_parse_ops(v, &b->ops);
    if (!strcmp(o, "-b"))
        return ryz_bench_parse_size(o, v, &b->min_bytes);
    if (!strcmp(o, "-e"))
        return ryz_bench_parse_size(o, v, &b->max_bytes);
    if (!strcmp(o, "--evict"))
        return ryz_bench_parse_size(o, v, &b->evict_bytes);
    if (!strcmp(o, "--gap")) {
        int us = 0;
        ryz_status st = ryz_arg_int(o, v, 0, (long)(RYZ_BENCH_MAX_GAP_S * 1e6), &us);
        b->gap_s = us * 1e-6;
        return st;
    }
    if (!strcmp(o, "-f"))
        return ryz_arg_int(o, v, 2, 1 << 20, &b->factor);
    if (!strcmp(o, "-n"))
        return ryz_arg_int(o, v, 1, RYZ_BENCH_MAX_ITERS, &b->iters);
    if (!strcmp(o, "-w"))
        return ryz_arg_int(o, v, 0, 1 << 20, &b->warmup);
    if (!strcmp(o, "-c"))
        return ryz_arg_int(o, v, 0, 1, &b->check);
    if (!strcmp(o, "--np"))
        return ryz_arg_int(o, v, 1, 4096, &a->np);
    const char **path = !strcmp(o, "-o")          ? &a->h5
                        : !strcmp(o, "-J")        ? &a->json
                        : !strcmp(o, "--backend") ? &a->backend
                                                  : NULL;
    *used = path != NULL;
    if (path && !v)
        return ryz_error(RYZ_EINVAL, "%s needs a value", o);
    if (path)
        *path = v;
    return RYZ_OK;
}

/* The options of argv into *a (defaults for the rest) and *help, with
 * their own checks but not the output files': what the command line asks
 * for. */
static ryz_status comm_parse_args(int argc, char **argv, comm_args *a, int *help) {
    *a = (comm_args){.b = {.ops = 1u << RYZ_OP_ALL_REDUCE,
                           .min_bytes = 8,
                           .max_bytes = 1 << 20,
                           .factor = 2,
                           .iters = 20,
                           .warmup = 5,
                           .check = 1},
                     .backend = "mpi",
                     .np = 2};
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int used;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            *help = 1;
            continue;
        }
        int at = i;
        const char *v = ryz_arg_value(argc, argv, &i);
        ryz_status st = comm_option(a, o, v, &used);
        if (st != RYZ_OK)
            return st;
        if (!used)
            return ryz_error(RYZ_EINVAL, "comm: unknown option '%s' (see --help)", argv[at]);
    }
    if (*help)
        return RYZ_OK;
    if (strcmp(a->backend, "mpi") && strcmp(a->backend, "shm"))
        return ryz_error(RYZ_EINVAL, "comm: --backend '%s' unknown (known: mpi, shm)", a->backend);
    if (a->b.min_bytes > a->b.max_bytes)
        return ryz_error(RYZ_EINVAL, "comm: -b %llu is above -e %llu",
                         (unsigned long long)a->b.min_bytes, (unsigned long long)a->b.max_bytes);
    return RYZ_OK;
}

/* comm_parse_args, then the output files can be written. */
static ryz_status comm_parse(int argc, char **argv, comm_args *a, int *help) {
    ryz_status st = comm_parse_args(argc, argv, a, help);
    if (st != RYZ_OK || *help)
        return st;
    const char *opts[] = {"-o", "-J"}, *paths[] = {a->h5, a->json};
    st = ryz_args_distinct_files(2, 0, opts, paths);
    if (st == RYZ_OK && a->h5) st = ryz_results_check_writable(a->h5);
    if (st == RYZ_OK && a->json)
        st = ryz_results_check_writable(a->json);
    return st;
}

/* The command line, for the results file's suite_text (malloc'd). */
static char *join_args(int argc, char **argv) {
    size_t len = 8;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    strcpy(s, "ryz");
    for (int i = 0; i < argc; i++)
        strcat(strcat(s, " "), argv[i]);
    return s;
}

/* Rank 0: the results file and the JSON twin. */
static ryz_status comm_write(const comm_args *a, const ryz_bench_report *r, int argc, char **argv) {
    ryz_results res;
    ryz_results_init(&res);
    char *cmdline = join_args(argc, argv);
    ryz_status st =
        cmdline ? ryz_bench_results(r, cmdline, &res) : ryz_error(RYZ_ENOMEM, "out of memory");
    if (st == RYZ_OK && a->h5)
        st = ryz_results_write(&res, a->h5);
    if (st == RYZ_OK && a->json)
        st = ryz_bench_write_json(r, &res, a->json);
    if (st == RYZ_OK && a->h5)
        printf("results: %s\n", a->h5);
    if (st == RYZ_OK && a->json)
        printf("json: %s\n", a->json);
    ryz_results_free(&res);
    free(cmdline);
    return st;
}

/* What a stored command line ("ryz comm ...", join_args) asked for, in
 * *a; words is the copy its argv points into (free it). EINVAL when the
 * line is not a `ryz comm` command line or does not parse. */
static ryz_status comm_parse_line(const char *line, comm_args *a, char **words) {
    enum { MAX_WORDS = 256 };
    char *argv[MAX_WORDS], *save = NULL;
    int argc = 0, help = 0;
    *words = strdup(line ? line : "");
    if (!*words)
        return ryz_error(RYZ_ENOMEM, "out of memory");
    for (char *w = strtok_r(*words, " \t\n", &save); w; w = strtok_r(NULL, " \t\n", &save)) {
        if (argc == MAX_WORDS)
            return ryz_error(RYZ_EINVAL, "more than %d words", MAX_WORDS);
        argv[argc++] = w;
    }
    if (argc < 2 || strcmp(argv[0], "ryz") || strcmp(argv[1], "comm"))
        return ryz_error(RYZ_EINVAL, "not a `ryz comm` command line");
    return comm_parse_args(argc - 1, argv + 1, a, &help);
}

/* Appends "NAME X -> Y" to why when the values differ. */
static void note_option(char *why, size_t cap, const char *name, unsigned long long x,
                        unsigned long long y) {
    size_t n = strlen(why);
    if (x != y && n < cap)
        snprintf(why + n, cap - n, "%s%s %llu -> %llu", n ? ", " : "", name, x, y);
}

/* The ops of mask as --op spells them ("all_reduce,broadcast") into buf. */
static const char *op_names(unsigned mask, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    for (int op = 0; op < RYZ_OP_COUNT && n < cap; op++)
        if (mask & (1u << op))
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? "," : "", ryz_comm_op_name(op));
    return buf;
}

ryz_status ryz_cli_comm_same_work(const char *base, const char *cand) {
    comm_args a[2];
    char *words[2] = {NULL, NULL}, why[256] = "";
    ryz_status st = RYZ_OK;
    for (int i = 0; i < 2 && st == RYZ_OK; i++)
        if ((st = comm_parse_line(i ? cand : base, &a[i], &words[i])) != RYZ_OK)
            st = ryz_error_wrap(st, "the %s file's command line '%.200s'", i ? "new" : "base",
                                i ? cand : base);
    const ryz_bench_opts *x = &a[0].b, *y = &a[1].b;
    if (st != RYZ_OK)
        goto cleanup;
    if (x->ops != y->ops) {
        char ox[128], oy[128];
        snprintf(why, sizeof why, "--op %s -> %s", op_names(x->ops, ox, sizeof ox),
                 op_names(y->ops, oy, sizeof oy));
    }
    note_option(why, sizeof why, "-b", x->min_bytes, y->min_bytes);
    note_option(why, sizeof why, "-e", x->max_bytes, y->max_bytes);
    note_option(why, sizeof why, "-f", (unsigned)x->factor, (unsigned)y->factor);
    note_option(why, sizeof why, "-n", (unsigned)x->iters, (unsigned)y->iters);
    note_option(why, sizeof why, "-w", (unsigned)x->warmup, (unsigned)y->warmup);
    note_option(why, sizeof why, "-c", (unsigned)x->check, (unsigned)y->check);
    note_option(why, sizeof why, "--evict", x->evict_bytes, y->evict_bytes);
    note_option(why, sizeof why, "--gap (us)", (unsigned long long)(x->gap_s * 1e6 + 0.5),
                (unsigned long long)(y->gap_s * 1e6 + 0.5));
    note_option(why, sizeof why, "--backend shm", !strcmp(a[0].backend, "shm"),
                !strcmp(a[1].backend, "shm")); /* backend points into words */
    if (*why)
        st = ryz_error(RYZ_EINVAL, "different ryz comm options: %s (the runs did not do the "
                       "same work)", why);
cleanup:
    free(words[0]), free(words[1]);
    return st;
}

/* TEST ONLY: RYZ_TEST_COMM_SKEW_RANK=R makes rank R add 4 bytes to every
 * size, so the rank agreement must stop the run. */
static ryz_status test_skew(const ryz_comm *world, ryz_bench_opts *b) {
    long r;
    ryz_status st = ryz_env_int("RYZ_TEST_COMM_SKEW_RANK", -1, -1, 1 << 20, &r);
    if (st == RYZ_OK && r == ryz_comm_rank(world))
        b->size_skew = 4;
    return st;
}

int ryz_cmd_comm(int argc, char **argv) {
    comm_args a;
    int help, code;
    ryz_status st = comm_parse(argc, argv, &a, &help);
    if (st == RYZ_OK && help) {
        comm_usage(stdout);
        return 0;
    }
    if (st != RYZ_OK)
        return ryz_cli_fail(st, NULL);
    ryz_comm *world = NULL;
    ryz_bench_report rep = {0};
    st = ryz_cli_world(a.np, argc + 1, argv - 1, &world, &code);
    if (st == RYZ_OK && !world) /* the job ran under mpirun, launched from here */
        return code;
    if (st != RYZ_OK) {
        code = ryz_cli_fail(st, world);
        ryz_cli_world_free(world);
        return code;
    }
    int lead = ryz_comm_rank(world) == 0;
    ryz_comm *over = NULL; /* --backend shm's communicator over the world */
    a.b.out = stdout;
    st = test_skew(world, &a.b);
    if (st == RYZ_OK)
        st = ryz_cli_comm_world(a.backend, &over);
    if (st == RYZ_OK)
        st = ryz_bench_run(over ? over : world, &a.b, &rep);
    if (st == RYZ_OK && lead)
        st = comm_write(&a, &rep, argc, argv);
    if (st != RYZ_OK)
        code = ryz_cli_fail(st, world);
    else
        code = rep.wrong > 0 ? 1 : 0;
    ryz_bench_report_free(&rep);
    ryz_comm_free(over);
    ryz_cli_world_free(world);
    return code;
}
