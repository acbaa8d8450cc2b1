/* ryz: tensor-parallel LLM inference, proven correct and measured. */
#include <stdio.h>
#include <string.h>

#include "ryz/cli.h"

#ifndef RYZ_VERSION
#define RYZ_VERSION "0.1.0"
#endif

static void usage(FILE *f) {
    fprintf(f,
            "usage: ryz <command> [options]\n"
            "\n"
            "commands:\n"
            "  suite FILE        run a suite: baseline vs sharded, compare, report\n"
            "  generate          greedy-decode a prompt (--model --prompt-ids --new-tokens\n"
            "                    [--tp K] [--batch B] [--threads T] [--dump-logits FILE])\n"
            "  bench             decode/prefill speed against the memory-bandwidth roofline\n"
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
    if (!strcmp(cmd, "suite")) return ryz_cmd_suite(argc - 1, argv + 1);
    if (!strcmp(cmd, "generate")) return ryz_cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return ryz_cmd_bench(argc - 1, argv + 1);
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
