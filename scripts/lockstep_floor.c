/* The host's lock-step floor, without ryz's model or comms: two threads,
 * one per core, do identical work in steps that both start together (a
 * spin barrier, as two TP ranks meet at each collective), and the output
 * says how much of the time they kept busy (ryz_lockstep_efficiency: 1 when
 * neither ever waits). `mem` reads slices of KIB KiB of a private 128 MiB
 * buffer per step (ryz_mem_read_slices, the suite's lock-step probe);
 * `alu` runs ITERS steps of a dependent integer chain, which touches no
 * memory, so what it loses is the cores' time, not the memory bus's.
 * usage: lockstep_floor mem KIB | alu ITERS   (docs/performance.md) */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/core.h"

enum { THREADS = 2, STEPS = 2000, WARMUP = 200 };

static int g_mem;         /* 1: reads; 0: integer chain */
static size_t g_slice;    /* mem: bytes per step */
static long g_iters;      /* alu: chain length per step */
static atomic_int g_arrived[THREADS];
static float g_sec[THREADS][STEPS];
static volatile uint64_t g_sink;

/* Thread t's barrier before step s: both threads have arrived at it. */
static ryz_status step_barrier(void *ctx, int s) {
    int t = *(int *)ctx;
    atomic_fetch_add(&g_arrived[t], 1);
    while (atomic_load(&g_arrived[1 - t]) < s + 1) {
    }
    return RYZ_OK;
}

static void alu_steps(int t) {
    for (int s = 0; s < STEPS; s++) {
        step_barrier(&t, s);
        double t0 = ryz_time_now();
        uint64_t x = (uint64_t)s;
        for (long i = 0; i < g_iters; i++) x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        g_sink = x;
        g_sec[t][s] = (float)(ryz_time_now() - t0);
    }
}

static void *run(void *arg) {
    int t = (int)(intptr_t)arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(t, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set); /* best effort */
    if (!g_mem) {
        alu_steps(t);
        return NULL;
    }
    double sec[STEPS];
    if (ryz_mem_read_slices((size_t)128 << 20, g_slice, 1, STEPS, step_barrier, &t, sec) !=
        RYZ_OK) {
        fprintf(stderr, "thread %d: %s\n", t, ryz_last_error());
        exit(1);
    }
    for (int s = 0; s < STEPS; s++) g_sec[t][s] = (float)sec[s];
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[1], "mem") && strcmp(argv[1], "alu")) || atol(argv[2]) < 1) {
        fprintf(stderr, "usage: %s mem KIB | alu ITERS\n", argv[0]);
        return 2;
    }
    g_mem = !strcmp(argv[1], "mem");
    g_slice = (size_t)atol(argv[2]) << 10, g_iters = atol(argv[2]);
    if (g_mem && (g_slice < 4096 || g_slice > (size_t)128 << 20)) {
        fprintf(stderr, "mem: KIB in [4, 131072]\n");
        return 2;
    }
    pthread_t tid[THREADS];
    for (int t = 0; t < THREADS; t++) pthread_create(&tid[t], NULL, run, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++) pthread_join(tid[t], NULL);
    /* after the warm-up steps, rank by rank as ryz_lockstep_efficiency takes them */
    static float sec[THREADS * (STEPS - WARMUP)];
    double step = 0;
    int late1 = 0;
    for (int s = WARMUP; s < STEPS; s++) {
        for (int t = 0; t < THREADS; t++) sec[t * (STEPS - WARMUP) + s - WARMUP] = g_sec[t][s];
        step += g_sec[0][s] > g_sec[1][s] ? g_sec[0][s] : g_sec[1][s];
        late1 += g_sec[1][s] > g_sec[0][s];
    }
    int n = STEPS - WARMUP;
    printf("%s %-8s step %7.1f us (the slower thread's mean)  lock-step efficiency %.3f  "
           "thread 1 the slower in %2.0f%% of steps\n",
           argv[1], argv[2], 1e6 * step / n, ryz_lockstep_efficiency(sec, THREADS, n),
           100.0 * late1 / n);
    return 0;
}
