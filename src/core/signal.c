/* SIGINT and SIGTERM: the handler only records the signal; the code that
 * can stop cleanly (the comm wrapper on the process that writes results)
 * asks ryz_interrupted() and unwinds with a status. A second signal more
 * than a second after the first restores the default action and re-raises
 * it, so a user can still force a stop that nothing polls for. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>
#include <time.h>

#include "ryz/core.h"

static volatile sig_atomic_t interrupt_sig; /* first signal, 0 none */
static volatile sig_atomic_t interrupt_at;  /* its CLOCK_MONOTONIC second */

/* Async-signal-safe: reads the clock and stores two flags (clock_gettime
 * is on the POSIX list of async-signal-safe functions). */
static void on_signal(int sig) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (!interrupt_sig) {
        interrupt_sig = sig;
        interrupt_at = (sig_atomic_t)ts.tv_sec;
        return;
    }
    if (ts.tv_sec - interrupt_at >= 1) { /* a repeated, deliberate signal */
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
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int ryz_interrupted(void) {
    return interrupt_sig;
}

void ryz_interrupt_set(int sig) {
    interrupt_sig = sig;
    interrupt_at = 0;
}
