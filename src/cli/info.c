/* ryz info: the build's backends and library versions, and the machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ryz/cli.h"
#include "ryz/cuda.h"
#include "ryz/info.h"
#include "ryz/results.h"

/* Prints "  key: value", continuation lines of value indented under it. */
static void print_field(const char *key, const char *value) {
    printf("  %-10s ", key);
    for (const char *p = value; *p; p++) {
        putchar(*p);
        if (*p == '\n') printf("  %-10s ", "");
    }
    putchar('\n');
}

int ryz_cmd_info(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: ryz info\n  Backends in this build, library versions, visible devices.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "ryz: error: info takes no arguments (got '%s')\n", argv[1]);
        return 2;
    }
    char buf[2048];
    ryz_results r;
    ryz_results_init(&r);
    printf("ryz %s (git %s)\n", RYZ_VERSION, ryz_git_rev());
    /* Asked of cuda.c itself, so "cuda" and "nccl" appear exactly when
     * their implementations (not stubs) are linked in. */
    print_field("backends", ryz_cuda_built() ? "cpu cuda" : ryz_info_backends());
    print_field("comm", ryz_cuda_built() ? "self mpi shm nccl" : "self mpi shm");
    ryz_info_mpi(buf, sizeof buf);
    print_field("MPI", buf);
    ryz_info_blas(buf, sizeof buf);
    const char *was = getenv("RYZ_BLAS_CORE_WAS"), *asked = getenv("OPENBLAS_CORETYPE");
    if (was && *was && asked && *asked) { /* set by main() when it ran this process again */
        size_t n = strlen(buf);
        snprintf(buf + n, sizeof buf - n, "\ncore %s, asked for by ryz (OPENBLAS_CORETYPE): "
                 "OpenBLAS took this CPU for a %s", ryz_blas_core(), was);
    }
    print_field("BLAS", buf);
    ryz_info_hdf5(buf, sizeof buf);
    print_field("HDF5", buf);
    ryz_info_cuda(buf, sizeof buf);
    print_field("CUDA", buf);
    if (ryz_results_meta_machine(&r.meta, 1, 1, NULL, "", NULL, NULL) == RYZ_OK) {
        snprintf(buf, sizeof buf, "%s, %d cores", r.meta.cpu_model, r.meta.cores);
        print_field("CPU", buf);
    }
    ryz_results_free(&r);
    return 0;
}
