/* ryz: tensor-parallel LLM inference, proven correct and measured. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ryz/cli.h"
#include "ryz/info.h"


static void usage(FILE *f) {
    fprintf(f,
            "usage: ryz <command> [options]\n"
            "\n"
            "commands:\n"
            "  suite FILE        run a suite: baseline vs sharded, compare, report\n"
            "  generate          greedy-decode a prompt (--model, --prompt-ids or --prompt,\n"
            "                    --new-tokens [--tp K] [--batch B] [--threads T] [--dtype]\n"
            "                    [--backend] [--comm] [--dump-logits FILE])\n"
            "  bench             decode/prefill speed against the memory-bandwidth roofline\n"
            "  show FILE.h5      print the tables of a results file\n"
            "  plot FILE.h5      render PNG and SVG plots with gnuplot [-o DIR]\n"
            "  report FILE.h5    write a Markdown scaling report [-o DIR]\n"
            "  comm              collective benchmark (nccl-tests conventions)\n"
            "  project           project scaling from a fitted alpha-beta cost model\n"
            "  compare A.h5 B.h5 regression check: slowdowns (Mann-Whitney), correctness, memory\n"
            "  shard             write a one-file-per-rank checkpoint (--model --tp --out)\n"
            "  export            write a model as llama2.c or Hugging Face (--model --format --out)\n"
            "  info              backends in this build, library versions, devices\n"
            "  version           print the version\n"
            "\n"
            "`ryz <command> --help` describes a command. Exit codes: 0 ok, 1 a check\n"
            "failed, 2 bad input or usage, 3 communication failure or timeout.\n");
}

/* OpenBLAS chose its kernels when it loaded, before main. Where it took
 * this CPU for a generic one (ryz_blas_core_advice), this runs the binary
 * again (its resolved path, so the process keeps its name) with
 * OPENBLAS_CORETYPE set, and RYZ_BLAS_CORE_WAS for `ryz info`; the ranks
 * it launches inherit both. OPENBLAS_CORETYPE set by the user is left
 * alone. Where the exec cannot run, or the executable is not this one (a
 * wrapper such as valgrind holds /proc/self/exe), OpenBLAS's choice
 * stands. */
static void blas_core_fix(char **argv) {
    char exe[4096];
    const char *core = ryz_blas_core_advice(), *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (!core || ryz_self_exe(exe, sizeof exe) != RYZ_OK) return;
    const char *name = strrchr(exe, '/');
    if (strcmp(name ? name + 1 : exe, base)) return;
    if (!setenv("RYZ_BLAS_CORE_WAS", ryz_blas_core(), 1) &&
        !setenv("OPENBLAS_CORETYPE", core, 1))
        execv(exe, argv);
    unsetenv("OPENBLAS_CORETYPE"), unsetenv("RYZ_BLAS_CORE_WAS");
}

int main(int argc, char **argv) {
    blas_core_fix(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } cmds[] = {{"suite", ryz_cmd_suite},   {"generate", ryz_cmd_generate},
                {"bench", ryz_cmd_bench},   {"show", ryz_cmd_show},
                {"plot", ryz_cmd_plot},     {"report", ryz_cmd_report},
                {"comm", ryz_cmd_comm},     {"project", ryz_cmd_project},
                {"shard", ryz_cmd_shard},   {"export", ryz_cmd_export},
                {"compare", ryz_cmd_compare}, {"info", ryz_cmd_info}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(cmd, cmds[i].name)) return cmds[i].run(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("ryz %s\n", RYZ_VERSION);
        return 0;
    }
    int help = !strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h");
    for (size_t i = 0; help && argc > 2 && i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[2], cmds[i].name)) { /* `ryz help suite`: suite's own help */
            char *sub[] = {argv[2], "--help", NULL};
            return cmds[i].run(2, sub);
        }
    if (help) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "ryz: error: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
