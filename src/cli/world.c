/* Process set-up: MPI world (or the self-launch, launch.c), signals, error
 * reporting and the abort that ends a job whose communication failed. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ryz/cli.h"
#include "ryz/cuda.h"

ryz_status ryz_cli_world(int np, int argc, char **argv, ryz_comm **world, int *code) {
    *world = NULL;
    *code = 0;
    ryz_status st = ryz_comm_setup(); /* bad RYZ_TIMEOUT or RYZ_FAULT: before any rank starts */
    if (st != RYZ_OK) {
        *code = ryz_status_exit_code(st);
        return st;
    }
    ryz_signals_install();
    if (!ryz_mpi_launched()) {
        if (np > 1) {
            st = ryz_cli_launch(np, argc, argv, code);
            if (st != RYZ_OK) *code = ryz_status_exit_code(st);
            return st;
        }
        return ryz_comm_init_self(world);
    }
    ryz_signals_parent_escalates();
    st = ryz_mpi_init(&argc, &argv);
    if (st == RYZ_OK) st = ryz_comm_init_mpi_world(world);
    if (st == RYZ_OK) ryz_log_set_rank(ryz_comm_rank(*world));
    *code = ryz_status_exit_code(st);
    return st;
}

void ryz_cli_world_free(ryz_comm *world) {
    ryz_comm_free(world);
    ryz_mpi_finalize(); /* nothing to do when MPI was never started */
}

ryz_status ryz_cli_comm_world(const char *comm, ryz_comm **out) {
    *out = NULL;
    if (!strcmp(comm, "mpi")) return RYZ_OK;
    if (strcmp(comm, "nccl") && strcmp(comm, "shm"))
        return ryz_error(RYZ_EINVAL, "comm '%s' unknown (known: mpi, nccl, shm)", comm);
    ryz_status st = ryz_mpi_init(NULL, NULL);
    if (st != RYZ_OK) return st;
    return !strcmp(comm, "nccl") ? ryz_comm_init_nccl_world(out) : ryz_comm_init_shm_world(out);
}

ryz_status ryz_cli_write_interrupted(ryz_results *res, const char *out) {
    res->meta.interrupted = 1;
    ryz_status st = ryz_results_write(res, out);
    if (st == RYZ_OK) fprintf(stderr, "ryz: partial results (marked interrupted): %s\n", out);
    return st;
}

int ryz_cli_fail(ryz_status s, ryz_comm *world) {
    int sig = ryz_interrupted(), comm_err = s == RYZ_ECOMM || s == RYZ_ETIMEOUT;
    if (!world || ryz_comm_rank(world) == 0 || comm_err) {
        const char *msg = ryz_last_error();
        while (*msg) {
            const char *nl = strchr(msg, '\n');
            int len = nl ? (int)(nl - msg) : (int)strlen(msg);
            if (world && ryz_comm_size(world) > 1)
                fprintf(stderr, "ryz: error (rank %d): %.*s\n", ryz_comm_rank(world), len, msg);
            else
                fprintf(stderr, "ryz: error: %.*s\n", len, msg);
            msg += len + (nl ? 1 : 0);
        }
    }
    int code = sig ? 128 + sig : ryz_status_exit_code(s);
    if (world && ryz_comm_size(world) > 1 && (comm_err || sig)) {
        /* The other ranks may be blocked in a collective that will never
         * complete, and MPI_Finalize would wait for them: end the job. */
        fflush(stdout);
        fflush(stderr);
        ryz_comm_abort(world, code);
    }
    return code;
}
