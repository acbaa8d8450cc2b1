/* bench: the collective benchmark behind `ryz comm` (nccl-tests conventions,
 * DESIGN section 6) and the alpha-beta cost model behind `ryz project`.
 * One harness times, checks and prints; each collective is a small table
 * entry in src/bench/collectives.c. */
#ifndef RYZ_BENCH_H
#define RYZ_BENCH_H

#include <stdint.h>
#include <stdio.h>

#include "ryz/comm.h"
#include "ryz/results.h"

#define RYZ_BENCH_MAX_BYTES ((uint64_t)4 << 30) /* largest -e: 1 Gi floats */
#define RYZ_BENCH_MAX_ITERS 10000               /* -n: fits the profiler's ring */
#define RYZ_BENCH_MAX_GAP_S 1.0                 /* --gap */

/* ---- sizes and bandwidth ---------------------------------------------- */

/* Parses "N", "NK", "NM" or "NG" (powers of 1024) into bytes. EINVAL naming
 * `opt` for an empty, negative, fractional or malformed value, an unknown
 * suffix, or more than RYZ_BENCH_MAX_BYTES. */
ryz_status ryz_bench_parse_size(const char *opt, const char *text, uint64_t *out);
/* Parses an --op value (allreduce, allgather, reducescatter, broadcast, all)
 * into a mask of bits (1u << op). EINVAL naming the bad value. */
ryz_status ryz_bench_parse_ops(const char *text, unsigned *mask);
/* Algorithm bandwidth in GB/s (1e9 bytes/s) of `bytes` in `seconds`; 0 when
 * seconds <= 0. */
double ryz_bench_algbw_gbs(uint64_t bytes, double seconds);
/* The size op really moves for a requested size on k ranks, as nccl-tests
 * counts it (all_gather: output, reduce_scatter: input): rounded down to a
 * multiple of 4 bytes, or of 4*k bytes where the buffer is split by rank.
 * 0 means the size is too small for k ranks (the row is skipped). */
uint64_t ryz_bench_round_bytes(ryz_comm_op op, uint64_t bytes, int k);
/* The sweep min, min*factor, ... <= max after rounding for op on k ranks,
 * zero and repeated sizes dropped, written to out (at most cap); returns
 * how many sizes the sweep has (may exceed cap). factor >= 2. */
size_t ryz_bench_sizes(ryz_comm_op op, uint64_t min, uint64_t max, int factor, int k, uint64_t *out,
                       size_t cap);

/* ---- the harness -------------------------------------------------------- */

typedef struct {
    unsigned ops;                  /* bits (1u << op) of the collectives to run */
    uint64_t min_bytes, max_bytes; /* -b, -e */
    int factor, iters, warmup;     /* -f (>= 2), -n, -w (per size) */
    int check;                     /* -c: fill known data, count wrong elements */
    uint64_t evict_bytes;          /* --evict: before each timed call this rank reads
                                      this many bytes it has not read recently (the
                                      model's weights between two collectives), untimed;
                                      a call's latency is then the fastest rank's */
    const uint64_t *evict_each;    /* or, when n_evict_each > 0, timed call i reads
                                      evict_each[i * n_evict_each / iters] bytes: a
                                      model's sequence, replayed evenly (the suite) */
    size_t n_evict_each;
    double gap_s;                  /* --gap: before each timed call this rank also idles
                                      until this long after its previous call ended (a
                                      model computing between collectives); latency is
                                      then the fastest rank's */
    const double *gap_each;        /* or, when non-NULL, call i idles gap_each[i *
                                      n_evict_each / iters] (beside evict_each) */
    uint64_t size_skew;            /* test only: bytes added to every size on this
                                      rank (RYZ_TEST_COMM_SKEW_RANK) */
    int starve;                    /* test only: this rank's buffers for the run
                                      cannot be allocated */
    FILE *out;                     /* rank 0 prints the tables here; NULL: silent */
} ryz_bench_opts;

/* One placement (out-of-place or in-place) of one size. */
typedef struct {
    int ran;                     /* 0: not expressible with ryz_comm ("n/a") */
    double time_us;              /* batch wall time / iters, averaged over ranks;
                                    when evicting, the mean of samples_us */
    double algbw_gbs, busbw_gbs; /* from time_us, as nccl-tests prints them */
    double p50_us, p99_us;       /* of samples_us */
    int64_t wrong;               /* wrong elements over all ranks; -1 unchecked */
    float *samples_us;           /* per iteration: the slowest rank's call, or when
                                    evicting (evict_bytes or evict_each) the
                                    fastest's (in the report's samples block) */
    size_t n_samples;
} ryz_bench_result;

/* One line of a table: one op at one size. */
typedef struct {
    ryz_comm_op op;
    uint64_t bytes;            /* nccl-tests size */
    uint64_t count;            /* the count argument: per rank for all_gather and
                                  reduce_scatter, as nccl-tests prints it */
    int root;                  /* -1, or the broadcast root */
    ryz_bench_result place[2]; /* [0] out-of-place, [1] in-place */
} ryz_bench_row;

/* What a run measured; identical on every rank. */
typedef struct {
    int world;           /* ranks */
    char backend[16];    /* ryz_comm_name of the communicator */
    char *hosts;         /* distinct hostnames, comma-separated (malloc'd) */
    ryz_bench_row *rows; /* malloc'd, cap_rows of them */
    size_t n_rows, cap_rows;
    float *samples;      /* every result's samples_us: iters floats per placement
                            (malloc'd) */
    double avg_busbw_gbs; /* mean busbw over every row and placement run */
    int64_t wrong;        /* total over the run; -1 unchecked */
} ryz_bench_report;

/* Frees what a run allocated; safe on a zeroed or freed report. */
void ryz_bench_report_free(ryz_bench_report *r);
/* Runs the sweep of every op in o->ops on c (collective: every rank calls it
 * with the same options). Every buffer of the run is allocated before the
 * first exchange, and the ranks agree that all did, so a rank out of memory
 * fails alone (ENOMEM) while the others return EINVAL instead of waiting
 * for it. Before each size all ranks agree on (op, bytes, iters, warmup,
 * check): a rank that differs makes every rank return EINVAL naming both
 * values, with no collective left pending. Rank 0 prints the
 * nccl-tests-style tables to o->out as rows complete. Wrong elements are
 * not an error here: see out->wrong. *out is owned by the caller. */
ryz_status ryz_bench_run(ryz_comm *c, const ryz_bench_opts *o, ryz_bench_report *out);
/* Bytes past which an eviction's reads push nothing more out of the caches
 * (twice this node's last-level cache): a sensible cap on what a caller
 * asks each call to read. */
uint64_t ryz_bench_evict_enough(void);
/* Fills res: root attributes (tool version, time, hosts, cpu model, world
 * size, `cmdline` as suite_text), one /collectives row per out-of-place
 * row (case "comm", tp = world size, algbw and busbw at p50), and /samples
 * rows of every per-iteration latency ("all_reduce_us@8192"; in-place
 * "all_reduce_ip_us@8192"). ENOMEM on failure. */
ryz_status ryz_bench_results(const ryz_bench_report *r, const char *cmdline, ryz_results *res);
/* Writes the report and res's root attributes and /collectives rows as
 * JSON to path (written to PATH.tmp, then renamed). EIO naming the path. */
ryz_status ryz_bench_write_json(const ryz_bench_report *r, const ryz_results *res,
                                const char *path);

/* ---- the cost model (src/bench/costmodel.c) ------------------------------ */

/* latency_us = alpha_us + beta_us_per_byte * bytes. */
typedef struct {
    double alpha_us, beta_us_per_byte;
    double bw_gbs; /* 1 / beta in GB/s; 0 when beta <= 0 */
    double r2;     /* coefficient of determination (weighted when fitted so) */
    size_t n;      /* points fitted */
} ryz_fit;

/* Least squares fit of y = alpha + beta x over n points, with weights w
 * (NULL: all 1; ryz project uses 1/y^2, i.e. relative error). EINVAL with
 * fewer than two distinct x or a non-positive weight. */
ryz_status ryz_fit_line(const double *x, const double *y, const double *w, size_t n, ryz_fit *out);

/* A link in the ring model: per-step latency and per-link bandwidth. */
typedef struct {
    double alpha_us, bw_gbs;
} ryz_link;

/* Ring steps of op on k ranks: all_reduce 2(k-1), the others k-1. */
double ryz_ring_steps(ryz_comm_op op, int k);
/* Ring time of op on k ranks moving `bytes` (nccl-tests size):
 * steps(k) * alpha + busbw_factor(k) * bytes / bw; 0 at k = 1. */
double ryz_ring_time_us(ryz_comm_op op, const ryz_link *l, int k, double bytes);
/* The link that makes ryz_ring_time_us reproduce fit f of op measured on k
 * ranks: alpha = f.alpha / steps(k), bw = busbw_factor(k) / f.beta. EINVAL
 * when k < 2 (a one-rank fit holds no link) or f.beta <= 0. */
ryz_status ryz_link_from_fit(ryz_comm_op op, const ryz_fit *f, int k, ryz_link *out);

/* What a decode step of a TP model costs, per token at batch 1. */
typedef struct {
    double compute_us;           /* the TP=1 per-token time; divided by k */
    int layers;                  /* two all-reduces each (after wo and w2) */
    int embed_allreduce;         /* 1: count the embedding all-reduce too */
    double allreduce_bytes;      /* batch 1 x dim x 4 */
    int vocab;                   /* LM head all-gather of vocab padded to k, x 4 bytes;
                                    0: no all-gather */
    ryz_link ar_intra, ag_intra; /* links within a node */
    ryz_link ar_inter, ag_inter; /* links used when k > per_node */
    int per_node;                /* devices per node; 0: every k fits one node */
} ryz_decode_model;

typedef struct {
    int tp;
    double compute_us, comm_us, total_us; /* total = compute + comm */
    double speedup, efficiency;           /* compute_us(k=1) / total; speedup / k */
} ryz_projection;

/* Projects a decode step at TP degree k >= 1. At k = 1 total = compute_us. */
void ryz_project_decode(const ryz_decode_model *m, int k, ryz_projection *out);
/* Fits op's p50 latency against bytes over the /collectives rows of case
 * "comm" in res (at the largest tp that has rows of op, written to *tp),
 * weighted by 1/p50^2. EINVAL naming the op when res has fewer than two
 * such sizes. */
ryz_status ryz_fit_collectives(const ryz_results *res, ryz_comm_op op, ryz_fit *out, int *tp);
/* The /timing "decode" row of res at tp (and case `case_name`, NULL: any
 * case); NULL when there is none. */
const ryz_row_timing *ryz_find_decode(const ryz_results *res, const char *case_name, int tp);


#endif
