/* The self-launch: `ryz suite` (generate, comm) outside mpirun runs
 * `mpirun -np N ryz ...` as a child and waits for it, so the exit code is
 * ryz's contract (128 + N when interrupted) rather than mpirun's, which
 * exits 1 when signalled and reads as a failed check.
 *
 * Signals. In a terminal's foreground, mpirun stays in ryz's process group
 * so job control (Ctrl-C, Ctrl-Z, `stty tostop`) acts on both; a signal
 * the terminal sent (si_code > 0) has reached mpirun too, and only one
 * sent to ryz alone by kill() is passed on. Elsewhere (CI, scripts,
 * `timeout`, which signals ryz and then its whole group), mpirun gets a
 * process group of its own, and signals reach it from ryz. Once matters:
 * Open MPI takes a second SIGINT or SIGTERM within 5 s as "kill now", and
 * rank 0 then has no time to write its partial results; so a signal
 * within a second of the last one passed on is not passed on again (the
 * rule of core/signal.c: a deliberate repeat still gets through). mpirun
 * signals its ranks only a second after it got a signal, so ryz also
 * tells the ranks on its host itself (launch_tell_ranks).
 * Known limit: a job started in the background of a terminal (`&`) runs
 * mpirun in a group of its own, which `fg` does not move to the
 * foreground; with `stty tostop` it stops at its first output. */
#define _GNU_SOURCE /* PR_SET_PDEATHSIG */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ryz/cli.h"

/* mpirun's pid (0 before it starts and once reaped), whether it has a
 * process group of its own, and the first signal the launcher got (0:
 * none). */
static volatile sig_atomic_t launch_pid, launch_own_group, launch_sig;
/* When a signal was last passed on (CLOCK_MONOTONIC ms, 0: never); only
 * launch_forward touches it, which the stop signals cannot interrupt. */
static long long launch_passed_ms;
/* The signals that stop a run, which the launcher passes on. */
static const int STOP_SIGS[] = {SIGINT, SIGTERM, SIGHUP};
#define N_STOP_SIGS (int)(sizeof STOP_SIGS / sizeof STOP_SIGS[0])

/* Passes SIGINT, SIGTERM or SIGHUP on to mpirun unless it got it too, or
 * got one less than a second ago (see above). Async-signal-safe. */
static void launch_forward(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    int saved = errno;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!launch_sig)
        launch_sig = sig;
    pid_t pid = (pid_t)launch_pid;
    long long ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 + 1; /* never 0 */
    int theirs = !launch_own_group && si->si_code > 0; /* the terminal's: mpirun has it */
    int again = launch_passed_ms && ms - launch_passed_ms < 1000;
    if (pid > 0 && !theirs && !again) {
        launch_passed_ms = ms;
        kill(launch_own_group ? -pid : pid, sig);
    }
    errno = saved;
}

/* Whether this process is in the foreground of a terminal. */
static int launch_in_foreground(void) {
    for (int fd = 0; fd < 3; fd++)
        if (isatty(fd) && tcgetpgrp(fd) == getpgrp())
            return 1;
    return 0;
}

/* The child between fork and exec (async-signal-safe calls only): its own
 * process group unless in the foreground, SIGTERM should ryz die first
 * (SIGKILL leaves ryz no time to pass a signal on), the signal mask ryz
 * had, then mpirun; exec's errno to `fd` (closed by a successful exec). */
static void launch_child(char **args, pid_t parent, const sigset_t *mask, int fd) {
    if (launch_own_group)
        setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    for (int i = 0; i < N_STOP_SIGS; i++) /* a signal before exec is mpirun's, not ours */
        signal(STOP_SIGS[i], SIG_DFL);
    sigprocmask(SIG_SETMASK, mask, NULL);
    if (getppid() == parent)
        execvp(args[0], args);
    int err = errno;
    if (write(fd, &err, sizeof err) < 0)
        err = 0;
    _exit(127);
}

/* STOP_SIGS as a set. */
static void stop_signals(sigset_t *set) {
    sigemptyset(set);
    for (int i = 0; i < N_STOP_SIGS; i++)
        sigaddset(set, STOP_SIGS[i]);
}

/* Whether a stop signal came before the launch: seen by either handler,
 * or pending while blocked. */
static int stop_signal_came(void) {
    sigset_t pending;
    sigpending(&pending);
    int came = launch_sig || ryz_interrupted();
    for (int i = 0; i < N_STOP_SIGS; i++)
        came = came || sigismember(&pending, STOP_SIGS[i]);
    return came;
}

/* Starts `args` (mpirun) as launch_child; *pid, or -1 when a stop signal
 * came first (launch_sig or ryz_interrupted() set: nothing to stop). The
 * stop signals stay blocked until launch_pid is set, so each reaches
 * mpirun once. EINVAL with exec's reason when it cannot start. */
static ryz_status launch_spawn(char **args, int np, pid_t *pid) {
    int fds[2], err = 0;
    if (pipe2(fds, O_CLOEXEC) != 0)
        return ryz_error(RYZ_EIO, "cannot start mpirun: pipe: %s", strerror(errno));
    sigset_t stop, old;
    stop_signals(&stop);
    launch_own_group = !launch_in_foreground();
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    sigprocmask(SIG_BLOCK, &stop, &old);
    int early = stop_signal_came();
    *pid = early ? -1 : fork();
    int fork_err = errno;
    if (*pid == 0)
        launch_child(args, parent, &old, fds[1]);
    close(fds[1]);
    if (*pid > 0 && launch_own_group)
        setpgid(*pid, *pid); /* as the child does: whichever runs first */
    launch_pid = *pid > 0 ? (sig_atomic_t)*pid : 0;
    sigprocmask(SIG_SETMASK, &old, NULL); /* a pending signal runs launch_forward now */
    if (early) {
        close(fds[0]);
        return RYZ_OK;
    }
    if (*pid < 0)
        err = fork_err;
    else
        while (read(fds[0], &err, sizeof err) < 0 && errno == EINTR)
            err = 0;
    close(fds[0]);
    if (!err)
        return RYZ_OK;
    while (*pid > 0 && waitpid(*pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return ryz_error(RYZ_EINVAL, "cannot start mpirun for %d ranks: %s (install openmpi-bin)", np,
                     strerror(err));
}

/* Installs launch_forward for the stop signals. */
static void launch_catch(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = launch_forward;
    sa.sa_flags = SA_SIGINFO;
    stop_signals(&sa.sa_mask); /* one launch_forward at a time */
    for (int i = 0; i < N_STOP_SIGS; i++)
        sigaction(STOP_SIGS[i], &sa, NULL);
}

/* The parent of process pid from /proc/PID/stat (its 4th field, after
 * the name in parentheses, which may hold either); -1 when unknown. */
static pid_t proc_parent(long pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *name_end = strrchr(buf, ')');
    int ppid;
    return name_end && sscanf(name_end + 1, " %*c %d", &ppid) == 1 ? (pid_t)ppid : -1;
}

/* Whether process pid runs the executable at path exe. */
static int proc_runs(long pid, const char *exe) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%ld/exe", pid);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0) return 0;
    buf[n] = '\0';
    return !strcmp(buf, exe);
}

/* Passes the first stop signal straight to the ranks on this host, the
 * children of mpirun that run ryz's executable exe (SIGHUP, which a rank
 * does not catch, as SIGTERM). mpirun signals them only
 * odls_base_sigkill_timeout (1 s) after it got the signal, and kills them
 * as long after that; told at once, they start to stop a second sooner
 * and a rank 0 on this host has two seconds, not one, to write its
 * partial results; mpirun's signal is then a repeat from their parent,
 * which they ignore (ryz_signals_parent_escalates). Other children (the
 * ssh that starts a remote node's daemon) are left alone. Best effort:
 * without /proc, for a rank not started yet, on another host, or under a
 * wrapper between mpirun and ryz, mpirun's signal is the one that counts. */
static void launch_tell_ranks(pid_t mpirun, int sig, const char *exe) {
    DIR *d = opendir("/proc");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (pid > 0 && !*end && proc_parent(pid) == mpirun && proc_runs(pid, exe))
            kill((pid_t)pid, sig == SIGHUP ? SIGTERM : sig);
    }
    closedir(d);
}

/* Waits for mpirun (pid) and reaps it, telling the ranks of ryz's first
 * stop signal (launch_tell_ranks; a signal just before waitid blocks is
 * left to mpirun); launch_pid is cleared while the zombie still holds the
 * pid, so no late signal reaches a reused one. *status as waitpid's. */
static ryz_status launch_wait(pid_t pid, const char *exe, int *status) {
    siginfo_t info;
    int told = 0;
    for (;;) {
        if (launch_sig && !told) {
            told = 1;
            launch_tell_ranks(pid, launch_sig, exe);
        }
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) == 0) break;
        if (errno != EINTR)
            return ryz_error(RYZ_EIO, "waiting for mpirun: %s", strerror(errno));
    }
    sigset_t stop, old;
    stop_signals(&stop);
    sigprocmask(SIG_BLOCK, &stop, &old);
    launch_pid = 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return ryz_error(RYZ_EIO, "reaping mpirun: %s", strerror(errno));
    return RYZ_OK;
}

/* The job's exit code from mpirun's wait status. A rank that died of a
 * signal other than the stop signals (killed, crashed: mpirun exits 128 +
 * N) failed the job in a way ryz's codes call a communication failure (3,
 * DESIGN 4.5), said in a line; a rank stopped by SIGINT or SIGTERM exits
 * 128 + N itself, on purpose, and that code stands. */
static int launch_code(int status) {
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    int sig = code - 128, stop = 0;
    for (int i = 0; i < N_STOP_SIGS; i++) stop |= sig == STOP_SIGS[i];
    if (sig <= 0 || sig >= NSIG || stop) return code;
    if (WIFSIGNALED(status)) /* mpirun itself, not one of its ranks */
        fprintf(stderr, "ryz: error: mpirun died of signal %d (%s), ending the job (ryz's exit "
                "code is 3)\n", sig, strsignal(sig));
    else
        fprintf(stderr, "ryz: error: a rank died of signal %d (%s), so mpirun ended the job "
                "(its exit code %d; ryz's is 3)\n", sig, strsignal(sig), code);
    return 3;
}

ryz_status ryz_cli_launch(int np, int argc, char **argv, int *code) {
    char exe[4096], npbuf[16];
    ryz_status st = ryz_self_exe(exe, sizeof exe);
    if (st != RYZ_OK) return st;
    snprintf(npbuf, sizeof npbuf, "%d", np);
    char **args = calloc((size_t)argc + 10, sizeof *args);
    if (!args) return ryz_error(RYZ_ENOMEM, "out of memory launching mpirun");
    int k = 0;
    args[k++] = "mpirun";
    if (geteuid() == 0) args[k++] = "--allow-run-as-root";
    args[k++] = "--oversubscribe";
    args[k++] = "--quiet"; /* our messages say what failed; skip mpirun's banner */
    args[k++] = "--stdin";
    args[k++] = "none"; /* no rank reads it */
    args[k++] = "-np";
    args[k++] = npbuf;
    args[k++] = exe;
    for (int i = 1; i < argc; i++) args[k++] = argv[i]; /* argv[0] is exe */
    launch_catch();
    pid_t pid = -1;
    st = launch_spawn(args, np, &pid);
    free(args);
    int status = 0, sig = 0;
    if (st == RYZ_OK && pid > 0)
        st = launch_wait(pid, exe, &status);
    sig = launch_sig ? launch_sig : ryz_interrupted();
    if (st == RYZ_OK)
        *code = sig ? 128 + sig : launch_code(status);
    return st;
}
