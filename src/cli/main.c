/* ryz: tensor-parallel LLM inference, proven correct and measured. */
#include <stdio.h>
#include <string.h>

#include "ryz/cli.h"


static void usage(FILE *f) {
    fprintf(f,
            "usage: ryz <command> [options]\n"
            "\n"
            "commands:\n"
            "  suite FILE        run a suite: baseline vs sharded, compare, report\n"
            "  generate          greedy-decode a prompt (--model --prompt-ids --new-tokens\n"
            "                    [--tp K] [--batch B] [--threads T] [--dump-logits FILE])\n"
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

int main(int argc, char **argv) {
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
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "ryz: error: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
