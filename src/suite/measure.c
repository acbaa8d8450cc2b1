/* Machine description, per-rank gathers and collective statistics. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "measure.h"


/* Whether name is one of the comma-separated entries of list. */
static int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, name, n)) return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

/* Distinct hostnames of the world, comma-separated, in rank order. */
static ryz_status world_hosts(ryz_comm *world, char *out, size_t cap) {
    enum { H = 64 };
    float mine[H / sizeof(float)];
    char name[H] = "";
    gethostname(name, H - 1);
    memcpy(mine, name, H);
    int n = ryz_comm_size(world);
    float *all = malloc((size_t)n * H);
    if (!all) return ryz_error(RYZ_ENOMEM, "out of memory gathering hostnames");
    ryz_status st = ryz_comm_all_gather(world, mine, all, H / sizeof(float));
    out[0] = '\0';
    for (int r = 0; st == RYZ_OK && r < n; r++) {
        char h[H + 1] = "";
        memcpy(h, (char *)all + (size_t)r * H, H);
        if (listed(out, h)) continue;
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", len ? "," : "", h);
    }
    free(all);
    return st;
}

ryz_status ryz_measure_machine(ryz_comm *world, const ryz_suite *s, ryz_results_meta *meta) {
    char hosts[1024];
    ryz_status st = world_hosts(world, hosts, sizeof hosts);
    if (st != RYZ_OK) return st;
    return ryz_results_meta_machine(meta, ryz_comm_size(world), s->threads, hosts, "cpu+mpi",
                                    s->name, s->text);
}

ryz_status ryz_measure_ranks(ryz_comm *c, double comm_s, double wall_s, double *out) {
    double mine[RANK_NFIELDS] = {(double)ryz_mem_bytes(RYZ_MEM_WEIGHTS),
                                 (double)ryz_mem_bytes(RYZ_MEM_KV),
                                 (double)ryz_mem_bytes(RYZ_MEM_SCRATCH),
                                 (double)ryz_mem_peak_rss(), comm_s, wall_s};
    /* Doubles travel as pairs of floats (an exact byte copy), so byte
     * counts past 2^24 stay exact. */
    size_t per = RANK_NFIELDS * (sizeof(double) / sizeof(float));
    return ryz_comm_all_gather(c, (const float *)(const void *)mine, (float *)(void *)out, per);
}

static int cmp_record(const void *a, const void *b) {
    const ryz_comm_record *x = a, *y = b;
    if (x->op != y->op) return (x->op > y->op) - (x->op < y->op);
    if (x->bytes != y->bytes) return (x->bytes > y->bytes) - (x->bytes < y->bytes);
    return (x->seconds > y->seconds) - (x->seconds < y->seconds);
}

/* One /collectives row for n records of the same (op, bytes). */
static void collective_row(const ryz_comm_record *recs, size_t n, const char *name, int tp,
                           double *buf, ryz_results *res) {
    for (size_t i = 0; i < n; i++) buf[i] = recs[i].seconds;
    ryz_stats st;
    ryz_stats_compute(buf, n, &st);
    ryz_row_collective row = {.tp = tp, .bytes = recs[0].bytes, .count = n,
                              .p50_us = 1e6 * st.median, .p99_us = 1e6 * st.p99,
                              .mean_us = 1e6 * st.mean};
    snprintf(row.case_name, sizeof row.case_name, "%s", name);
    snprintf(row.op, sizeof row.op, "%s", ryz_comm_op_name(recs[0].op));
    row.algbw_gbs = st.median > 0 ? (double)row.bytes / st.median / 1e9 : 0;
    row.busbw_gbs = row.algbw_gbs * ryz_comm_busbw_factor(recs[0].op, tp);
    ryz_results_add_collective(res, &row);
}

double ryz_measure_collectives(const ryz_comm *c, const char *case_name, int tp,
                               ryz_results *res) {
    size_t n = ryz_comm_record_count(c);
    ryz_comm_record *recs = malloc((n ? n : 1) * sizeof *recs);
    double *buf = malloc((n ? n : 1) * sizeof *buf), seconds = 0;
    for (size_t i = 0; recs && buf && i < n; i++) {
        recs[i] = *ryz_comm_record_at(c, i);
        seconds += recs[i].seconds;
    }
    if (recs && buf) qsort(recs, n, sizeof *recs, cmp_record);
    for (size_t i = 0, j; recs && buf && i < n; i = j) {
        for (j = i; j < n && recs[j].op == recs[i].op && recs[j].bytes == recs[i].bytes; j++) {}
        if (res && recs[i].op != RYZ_OP_BARRIER)
            collective_row(recs + i, j - i, case_name, tp, buf, res);
    }
    free(recs);
    free(buf);
    return seconds;
}
