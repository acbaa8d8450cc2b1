/* The suite's read-bandwidth probe: the denominator of the decode roofline
 * and of the bandwidth-scaling check, taken by a group of ranks at once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "measure.h"

/* Passes per probe, the best counting: one pass of 256 MiB takes about 12 ms
 * here, and with 3 a 2-rank probe could miss the machine's rate by a
 * quarter (31 GB/s where 8 synchronised passes reach 36-43). */
#define PROBE_REPS 8

/* Slices per lock-step probe: 64 of 4-9 MB (110m at TP=2) take 20-45 ms
 * and sample the host's jitter at the rate decode meets it. */
#define LOCKSTEP_SLICES 64

/* The probing group ahead of each pass: before the first, the ranks agree
 * that each has its buffer (a rank that could not allocate one joins that
 * agreement from probe_collect with ok = 0, so none is left waiting);
 * before the others, a barrier, so the passes run together. */
typedef struct {
    ryz_comm *group;
    int agreed;
    int mib;          /* for the message */
    const char *what; /* which probe, for the message */
} probe_sync;

ryz_status ryz_probe_agree_on(ryz_comm *group, int ok, const char *what, ryz_status code,
                              const char *failed) {
    float mine = (float)ok, all = 0;
    int k = ryz_comm_size(group);
    ryz_status st = ryz_comm_all_reduce_sum(group, &mine, &all, 1);
    if (st == RYZ_OK && all < (float)k)
        st = ryz_error(code, "%s: %d of %d ranks %s", what, k - (int)all, k, failed);
    return st;
}

ryz_status ryz_probe_agree(ryz_comm *group, int ok, const char *what, int mib) {
    char failed[48];
    snprintf(failed, sizeof failed, "are out of memory for %d MiB", mib);
    return ryz_probe_agree_on(group, ok, what, RYZ_ENOMEM, failed);
}

static ryz_status probe_agree(probe_sync *p, int ok) {
    p->agreed = 1;
    return ryz_probe_agree(p->group, ok, p->what, p->mib);
}

static ryz_status probe_before(void *v, int rep) {
    probe_sync *p = v;
    return rep == 0 ? probe_agree(p, 1) : ryz_comm_barrier(p->group);
}

/* Every rank of the group reads `reps` slices of `slice` bytes of its own
 * `mib` MiB buffer, the ranks starting each slice together; *all (freed by
 * the caller) gets every rank's seconds per slice, rank by rank (k x reps).
 * A rank without its buffer (or starved) fails every rank's call. */
static ryz_status probe_collect(const char *what, ryz_comm *group, int threads, int mib,
                                size_t slice, int reps, int starved, float **all) {
    probe_sync ps = {group, 0, mib, what};
    int k = ryz_comm_size(group);
    double *sec = calloc((size_t)reps, sizeof *sec);
    float *mine = calloc((size_t)reps, sizeof *mine);
    *all = starved ? NULL : calloc((size_t)k * (size_t)reps, sizeof **all);
    ryz_status st = RYZ_OK;
    if (sec && mine && *all)
        st = ryz_mem_read_slices((size_t)mib << 20, slice, threads, reps, probe_before, &ps, sec);
    if (!ps.agreed) { /* this rank failed before the agreement: tell the others */
        ryz_status a = probe_agree(&ps, 0);
        if (st == RYZ_OK) st = a;
    }
    for (int r = 0; st == RYZ_OK && r < reps; r++) mine[r] = (float)sec[r];
    if (st == RYZ_OK) st = ryz_comm_all_gather(group, mine, *all, (size_t)reps);
    free(sec), free(mine);
    if (st != RYZ_OK) free(*all), *all = NULL;
    return st;
}

ryz_status ryz_probe_group(ryz_comm *group, int threads, int mib, int starved, double *bw) {
    size_t bytes = (size_t)mib << 20;
    int k = ryz_comm_size(group);
    float *all = NULL;
    *bw = 0;
    ryz_status st =
        probe_collect("bandwidth probe", group, threads, mib, bytes, PROBE_REPS, starved, &all);
    for (int r = 0; st == RYZ_OK && r < PROBE_REPS; r++) {
        double slowest = 0;
        for (int i = 0; i < k; i++) slowest = fmax(slowest, all[i * PROBE_REPS + r]);
        if (slowest > 0) *bw = fmax(*bw, (double)k * (double)bytes / slowest);
    }
    free(all);
    return st;
}

ryz_status ryz_probe_lockstep(ryz_comm *group, int threads, int mib, size_t slice, int starved,
                              double *eff) {
    float *all = NULL;
    *eff = 0;
    if (slice > (size_t)mib << 20) slice = (size_t)mib << 20;
    if (slice < 4096) slice = 4096; /* ryz_mem_read_slices' least */
    ryz_status st = probe_collect("lock-step probe", group, threads, mib, slice, LOCKSTEP_SLICES,
                                  starved, &all);
    if (st == RYZ_OK) *eff = ryz_lockstep_efficiency(all, ryz_comm_size(group), LOCKSTEP_SLICES);
    free(all);
    return st;
}
