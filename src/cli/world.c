/* Process set-up: self-launch under mpirun, MPI world, signals, error
 * reporting and the abort that ends a job whose communication failed. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ryz/cli.h"
#include "ryz/cuda.h"

/* The launcher's mpirun: its process group (its pid; 0 before it starts)
 * and the first signal the launcher got (0: none). */
static volatile sig_atomic_t launch_pgid, launch_sig;

/* Passes SIGINT, SIGTERM or SIGHUP on to mpirun's process group (async-
 * signal-safe), a repeated one too: mpirun takes a second as "stop now". */
static void launch_forward(int sig) {
    if (!launch_sig)
        launch_sig = sig;
    if (launch_pgid > 0)
        kill(-(pid_t)launch_pgid, sig);
}

/* Catches the signals that stop a run, so they reach mpirun once, from
 * here: mpirun runs in a process group of its own, where a terminal's
 * Ctrl-C does not reach it a second time. */
static void launch_catch(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = launch_forward;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++)
        sigaction(sigs[i], &sa, NULL);
}

/* Starts `args` (mpirun) in a process group of its own, which gets
 * SIGTERM should this process die first (SIGKILL leaves no time to pass a
 * signal on); *pid. EINVAL when it cannot start, with exec's reason,
 * which the child sends back through a pipe that closes on exec. */
static ryz_status launch_spawn(char **args, int np, pid_t *pid) {
    int fds[2], err = 0;
    if (pipe(fds) != 0 || fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0)
        return ryz_error(RYZ_EIO, "cannot start mpirun: pipe: %s", strerror(errno));
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    *pid = fork();
    if (*pid == 0) { /* the child: only async-signal-safe calls until exec */
        close(fds[0]);
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == parent)
            execvp(args[0], args);
        err = errno;
        if (write(fds[1], &err, sizeof err) < 0) err = 0;
        _exit(127);
    }
    close(fds[1]);
    if (*pid < 0)
        err = errno;
    else
        while (read(fds[0], &err, sizeof err) < 0 && errno == EINTR) err = 0;
    close(fds[0]);
    if (err) {
        if (*pid > 0) waitpid(*pid, NULL, 0);
        return ryz_error(RYZ_EINVAL, "cannot start mpirun for %d ranks: %s (install openmpi-bin)",
                         np, strerror(err));
    }
    setpgid(*pid, *pid); /* also here: no signal may find it still in ours */
    launch_pgid = (sig_atomic_t)*pid;
    if (launch_sig) /* arrived before mpirun had a group to pass it to */
        kill(-*pid, launch_sig);
    return RYZ_OK;
}

/* Runs this binary as `mpirun -np N ryz ARGS...` and waits for the job:
 * *code is mpirun's exit code (128 + N when it died of signal N), or
 * 128 + N when this process got signal N, which it passed on (mpirun
 * itself exits 1 when signalled, which reads as a failed check). */
static ryz_status relaunch(int np, int argc, char **argv, int *code) {
    char exe[4096];
    ryz_status st = ryz_self_exe(exe, sizeof exe);
    if (st != RYZ_OK) return st;
    char npbuf[16];
    snprintf(npbuf, sizeof npbuf, "%d", np);
    char **args = calloc((size_t)argc + 10, sizeof *args);
    if (!args) return ryz_error(RYZ_ENOMEM, "out of memory launching mpirun");
    int k = 0;
    args[k++] = "mpirun";
    if (geteuid() == 0) args[k++] = "--allow-run-as-root";
    args[k++] = "--oversubscribe";
    args[k++] = "--quiet"; /* our messages say what failed; skip mpirun's banner */
    args[k++] = "--stdin";
    args[k++] = "none"; /* no rank reads it, and mpirun is not in the terminal's group */
    args[k++] = "-np";
    args[k++] = npbuf;
    args[k++] = exe;
    for (int i = 1; i < argc; i++) args[k++] = argv[i]; /* argv[0] is exe */
    launch_catch();
    pid_t pid = -1;
    st = launch_spawn(args, np, &pid);
    free(args);
    int status = 0;
    while (st == RYZ_OK && waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            st = ryz_error(RYZ_EIO, "waiting for mpirun: %s", strerror(errno));
    if (st == RYZ_OK)
        *code = launch_sig              ? 128 + launch_sig
                : WIFEXITED(status)     ? WEXITSTATUS(status)
                                        : 128 + WTERMSIG(status);
    return st;
}

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
            st = relaunch(np, argc, argv, code);
            if (st != RYZ_OK) *code = ryz_status_exit_code(st);
            return st;
        }
        return ryz_comm_init_self(world);
    }
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
