/* SIGINT and SIGTERM: the handler only records the signal; the code that
 * can stop cleanly (the comm wrapper on the process that writes results)
 * asks ryz_interrupted() and unwinds with a status. A second signal at
 * least a second after the first restores the default action and re-raises
 * it, so a user can still force a stop that nothing polls for; under
 * mpirun, repeats from the parent are its own kill sequence, not a user's
 * (ryz_signals_parent_escalates). */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ryz/core.h"

static volatile sig_atomic_t interrupt_sig; /* first signal, 0 none */
/* When it came (CLOCK_MONOTONIC ms), whether the parent's repeats are
 * ignored: only the handler reads them, which blocks both stop signals. */
static volatile long long interrupt_ms;
static volatile sig_atomic_t parent_escalates;

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Async-signal-safe: clock_gettime, getppid, signal and raise are on
 * POSIX's list. */
static void on_signal(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    long long ms = now_ms();
    if (!interrupt_sig) {
        interrupt_sig = sig;
        interrupt_ms = ms;
        return;
    }
    if (parent_escalates && si && si->si_code == SI_USER && si->si_pid == getppid())
        return;
    if (ms - interrupt_ms >= 1000) { /* a repeated, deliberate signal */
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

void ryz_signals_install(void) {
    static int installed;
    if (installed)
        return;
    installed = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART | SA_SIGINFO;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void ryz_signals_parent_escalates(void) {
    parent_escalates = 1;
}

int ryz_interrupted(void) {
    return interrupt_sig;
}

void ryz_interrupt_set(int sig) {
    interrupt_sig = sig;
    interrupt_ms = 0;
}
