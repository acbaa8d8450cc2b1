/* The suite's read-bandwidth probe: the denominator of the decode roofline
 * and of the bandwidth-scaling check, taken by a group of ranks at once. */
#include <math.h>
#include <stdlib.h>

#include "measure.h"

/* Passes per probe, the best counting: one pass of 256 MiB takes about 12 ms
 * here, and with 3 a 2-rank probe could miss the machine's rate by a
 * quarter (31 GB/s where 8 synchronised passes reach 36-43). */
#define PROBE_REPS 8

/* The probing group ahead of each pass: before the first, the ranks agree
 * that each has its buffer (a rank that could not allocate one joins that
 * agreement from ryz_probe_group with ok = 0, so none is left waiting);
 * before the others, a barrier, so the passes run together. */
typedef struct {
    ryz_comm *group;
    int agreed;
    int mib; /* for the message */
} probe_sync;

static ryz_status probe_agree(probe_sync *p, int ok) {
    float mine = (float)ok, all = 0;
    int k = ryz_comm_size(p->group);
    p->agreed = 1;
    ryz_status st = ryz_comm_all_reduce_sum(p->group, &mine, &all, 1);
    if (st == RYZ_OK && all < (float)k)
        st = ryz_error(RYZ_ENOMEM, "bandwidth probe: %d of %d ranks are out of memory for "
                       "%d MiB", k - (int)all, k, p->mib);
    return st;
}

static ryz_status probe_before(void *v, int rep) {
    probe_sync *p = v;
    return rep == 0 ? probe_agree(p, 1) : ryz_comm_barrier(p->group);
}

ryz_status ryz_probe_group(ryz_comm *group, int threads, int mib, int starved, double *bw) {
    probe_sync ps = {group, 0, mib};
    size_t bytes = (size_t)mib << 20;
    int k = ryz_comm_size(group);
    double sec[PROBE_REPS] = {0};
    float mine[PROBE_REPS] = {0};
    float *all = starved ? NULL : calloc((size_t)k * PROBE_REPS, sizeof *all);
    ryz_status st = RYZ_OK;
    *bw = 0;
    if (all) st = ryz_mem_read_passes(bytes, threads, PROBE_REPS, probe_before, &ps, sec);
    if (!ps.agreed) { /* this rank failed before the agreement: tell the others */
        ryz_status a = probe_agree(&ps, 0);
        if (st == RYZ_OK) st = a;
    }
    for (int r = 0; r < PROBE_REPS; r++) mine[r] = (float)sec[r];
    if (st == RYZ_OK) st = ryz_comm_all_gather(group, mine, all, PROBE_REPS);
    for (int r = 0; st == RYZ_OK && r < PROBE_REPS; r++) {
        double slowest = 0;
        for (int i = 0; i < k; i++) slowest = fmax(slowest, all[i * PROBE_REPS + r]);
        if (slowest > 0) *bw = fmax(*bw, (double)k * (double)bytes / slowest);
    }
    free(all);
    return st;
}
