/* SIGINT and SIGTERM: the handler only records the signal; the code that
 * can stop cleanly (the comm wrapper on the process that writes results, a
 * lone rank's decode steps, ryz bench) asks ryz_interrupted() or
 * ryz_interrupt_check() and unwinds with a status. A second signal at
 * least a second after the first restores the default action and re-raises
 * it, so a user can still force a stop that nothing polls for; a rank of a
 * self-launched job, told first by ryz, does not take mpirun's own SIGTERM
 * a second later for one (ryz_signals_parent_escalates). */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ryz/core.h"

/* A signal handler may only touch lock-free atomics and sig_atomic_t. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "the handler needs a lock-free long long");

static volatile sig_atomic_t interrupt_sig;     /* first signal, 0 none */
static _Atomic long long interrupt_ms;          /* when it came, CLOCK_MONOTONIC ms */
static volatile sig_atomic_t first_from_parent; /* the parent process sent it */
static volatile sig_atomic_t parent_escalates;  /* ryz_signals_parent_escalates */

/* CLOCK_MONOTONIC in ms (clock_gettime is async-signal-safe). */
static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether the parent process sent the signal with kill() (getppid is
 * async-signal-safe). */
static int from_parent(const siginfo_t *si) {
    return si && si->si_code == SI_USER && si->si_pid == getppid();
}

/* The handler: records the first signal; a later one forces the stop (the
 * default action) when it came a second or more after the first, unless
 * it is the parent's kill sequence (ryz_signals_parent_escalates).
 * Async-signal-safe. */
static void on_signal(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    long long ms = now_ms();
    if (!interrupt_sig) {
        interrupt_sig = sig;
        atomic_store_explicit(&interrupt_ms, ms, memory_order_relaxed);
        first_from_parent = from_parent(si);
        return;
    }
    if (parent_escalates && !first_from_parent && from_parent(si))
        return; /* mpirun's kill sequence after ryz's word: SIGKILL follows */
    if (ms - atomic_load_explicit(&interrupt_ms, memory_order_relaxed) >= 1000) {
        signal(sig, SIG_DFL); /* a repeated, deliberate signal */
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

ryz_status ryz_interrupt_check(void) {
    int sig = interrupt_sig;
    return sig ? ryz_error(RYZ_ECOMM, "interrupted by signal %d", sig) : RYZ_OK;
}

void ryz_interrupt_set(int sig) {
    interrupt_sig = sig;
    atomic_store_explicit(&interrupt_ms, 0, memory_order_relaxed);
    first_from_parent = 0;
}
