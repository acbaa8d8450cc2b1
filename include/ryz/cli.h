/* cli: the `ryz` commands. Each returns a process exit code (0 ok, 1 a check
 * failed, 2 bad input or usage, 3 communication failure or timeout,
 * 128 + N interrupted by signal N); only main() exits, except that a
 * failed multi-rank job ends through MPI_Abort (ryz_cli_fail). */
#ifndef RYZ_CLI_H
#define RYZ_CLI_H

#include "ryz/comm.h"
#include "ryz/results.h"

int ryz_cmd_generate(int argc, char **argv);
int ryz_cmd_suite(int argc, char **argv);
int ryz_cmd_bench(int argc, char **argv);
int ryz_cmd_show(int argc, char **argv);    /* src/cli/show.c */
int ryz_cmd_plot(int argc, char **argv);    /* src/cli/plot.c */
int ryz_cmd_report(int argc, char **argv);  /* src/cli/report.c */
int ryz_cmd_comm(int argc, char **argv);    /* src/cli/comm.c */
int ryz_cmd_project(int argc, char **argv); /* src/cli/project.c */
int ryz_cmd_compare(int argc, char **argv); /* src/cli/compare.c */
int ryz_cmd_info(int argc, char **argv);    /* src/cli/info.c */
int ryz_cmd_shard(int argc, char **argv);   /* src/cli/shard.c */
int ryz_cmd_export(int argc, char **argv);  /* src/cli/export.c */

/* Whether two `ryz comm` command lines, as results files store them, did
 * the same work: RYZ_OK when their parsed options agree (ops, sizes,
 * factor, iterations, warm-up, check, eviction, gap, backend), whatever
 * their order or spelling and with defaults filled in, output files and
 * --np aside (the ranks are the files' world size); else EINVAL naming
 * each option that differs, or the line that does not parse.
 * ryz_regress_opts.same_comm_work, for `ryz compare`. */
ryz_status ryz_cli_comm_same_work(const char *base, const char *cand);

/* Process-level set-up shared by commands that may run on several ranks.
 * Reads the comm settings (RYZ_TIMEOUT, RYZ_CHECK_COLLECTIVES, RYZ_FAULT:
 * EINVAL first when malformed) and installs the SIGINT/SIGTERM handlers.
 * When `np` > 1 and this process was not started by mpirun, runs itself
 * under mpirun with np ranks and waits: then *world is NULL, and *code the
 * job's exit code, which the caller returns (128 + N when this process got
 * signal N and passed it on). Otherwise initialises MPI when launched by
 * mpirun, else a one-rank world, and returns the world communicator in
 * *world. On failure, the status and its exit code in *code. */
ryz_status ryz_cli_world(int np, int argc, char **argv, ryz_comm **world, int *code);
/* Runs this binary as `mpirun -np N ryz ARGS...` (argv[0] is this binary)
 * and waits for the job, passing SIGINT, SIGTERM and SIGHUP on to mpirun
 * once, and the first of them straight to the ranks on this host
 * (src/cli/launch.c says how). *code: 128 + N when this process got
 * signal N (before the launch too), else mpirun's exit code, but 3 where a
 * rank (or mpirun) died of a signal other than SIGINT, SIGTERM or SIGHUP,
 * with a line saying so. EINVAL when mpirun cannot start, EIO, ENOMEM. */
ryz_status ryz_cli_launch(int np, int argc, char **argv, int *code);
/* Frees world and finalises MPI when it was started (by ryz_cli_world or
 * ryz_cli_comm_world); free every communicator built on MPI first. */
void ryz_cli_world_free(ryz_comm *world);
/* The communicator named `comm` over the MPI world, after ryz_cli_world:
 * "nccl" (one GPU per rank; ryz_comm_init_nccl_world) or "shm" (ranks of
 * one node; ryz_comm_init_shm_world); *out NULL for "mpi", whose
 * communicator is the world itself. MPI is started as a singleton when
 * this process is not under mpirun (a one-rank run). Collective over the
 * world; errors as those functions. Free it (ryz_comm_free) before
 * ryz_cli_world_free. */
ryz_status ryz_cli_comm_world(const char *comm, ryz_comm **out);
/* Reports a failed status as one "ryz: error: ..." line per message line on
 * stderr, from rank 0 only unless the error is a communication failure, and
 * returns its exit code (128 + N once signal N arrived). On a world of
 * several ranks, a communication failure or an interruption does not
 * return: the job ends with MPI_Abort and that code, since the other ranks
 * may be blocked in a collective and MPI_Finalize would wait for them. */
int ryz_cli_fail(ryz_status s, ryz_comm *world);
/* After a run stopped by SIGINT/SIGTERM: res (the tables so far) marked
 * interrupted, through the atomic writer to out, and a line on stderr
 * naming it; the writer's status. */
ryz_status ryz_cli_write_interrupted(ryz_results *res, const char *out);

#endif
