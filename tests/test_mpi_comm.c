/* The `ryz comm` harness on the MPI world (1, 2 or 4 ranks): every op's
 * data check passes out of place and in place, the fault hook is caught as
 * #wrong on every rank, sizes split by rank are multiples of 4k, and ranks
 * that disagree on the sweep fail with EINVAL naming both values instead of
 * hanging. Then the suite's in-situ statistics that hold collectives to
 * that harness (ryz_suite_collectives): the cross-rank reduction, its
 * columns, and ranks whose records differ (a warning, not a hang).
 *
 * Run under mpirun with CK_FORK=no. Every rank runs the same tests in the
 * same order; the exit code is the same on every rank (failures of all ranks
 * all-reduced). A test that could hang arms alarm() first, so a regression
 * ends the job instead of blocking it. */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ryz/bench.h"
#include "ryz/comm.h"
#include "ryz/suite.h"
#include "testutil.h"

static ryz_comm *g_world;
static int g_rank, g_k;

#define HANG_LIMIT_S 60 /* a test taking longer has hung */

/* Every op from 4 B to 64 KiB by 4, 3 timed calls, checked. */
static ryz_bench_opts sweep_opts(void) {
    return (ryz_bench_opts){.ops = 0xf,
                            .min_bytes = 4,
                            .max_bytes = 64 << 10,
                            .factor = 4,
                            .iters = 3,
                            .warmup = 1,
                            .check = 1};
}

/* Runs o on the world, expecting `want`; the report is the caller's. */
static void run_world(const ryz_bench_opts *o, ryz_status want, ryz_bench_report *rep) {
    alarm(HANG_LIMIT_S);
    ryz_status st = ryz_bench_run(g_world, o, rep);
    alarm(0);
    ck_assert_msg(st == want, "rank %d/%d: ryz_bench_run returned %s, expected %s: %s", g_rank, g_k,
                  ryz_status_name(st), ryz_status_name(want), ryz_last_error());
}

/* Turns the fault hook off after each test, whatever happened. */
static void hook_off(void) {
    ryz_comm_test_corrupt(0);
}

START_TEST(test_sweep_checks_clean) {
    ryz_bench_opts o = sweep_opts();
    ryz_bench_report rep;
    run_world(&o, RYZ_OK, &rep);
    ck_assert_int_eq(rep.world, g_k);
    ck_assert_str_eq(rep.backend, "mpi");
    ck_assert_int_eq(rep.wrong, 0);
    for (size_t i = 0; i < rep.n_rows; i++) {
        const ryz_bench_row *r = &rep.rows[i];
        int split = r->op == RYZ_OP_ALL_GATHER || r->op == RYZ_OP_REDUCE_SCATTER;
        ck_assert_msg(r->bytes % (4u * (split ? (unsigned)g_k : 1u)) == 0, "%s %llu bytes at k=%d",
                      ryz_comm_op_name(r->op), (unsigned long long)r->bytes, g_k);
        ck_assert_uint_eq(r->count, r->bytes / 4 / (split ? (unsigned)g_k : 1u));
        for (int ip = 0; ip < 2; ip++)
            ck_assert_msg(!r->place[ip].ran || r->place[ip].wrong == 0,
                          "rank %d/%d %s %llu bytes %s: #wrong %lld", g_rank, g_k,
                          ryz_comm_op_name(r->op), (unsigned long long)r->bytes,
                          ip ? "in place" : "out of place", (long long)r->place[ip].wrong);
        ck_assert(r->place[0].time_us > 0 && r->place[0].p50_us > 0);
        ck_assert(r->place[0].busbw_gbs ==
                  r->place[0].algbw_gbs * ryz_comm_busbw_factor(r->op, g_k));
    }
    ryz_bench_report_free(&rep);
}
END_TEST

START_TEST(test_corruption_counted_on_every_rank) {
    ryz_bench_opts o = sweep_opts();
    o.ops = 1u << RYZ_OP_ALL_REDUCE;
    ryz_bench_report rep;
    ryz_comm_test_corrupt(1); /* every rank corrupts one element of its result */
    run_world(&o, RYZ_OK, &rep);
    ryz_comm_test_corrupt(0);
    for (size_t i = 0; i < rep.n_rows; i++)
        for (int ip = 0; ip < 2; ip++)
            ck_assert_msg(rep.rows[i].place[ip].wrong == g_k,
                          "rank %d/%d all_reduce %llu bytes %s: #wrong %lld, expected %d", g_rank,
                          g_k, (unsigned long long)rep.rows[i].bytes,
                          ip ? "in place" : "out of place", (long long)rep.rows[i].place[ip].wrong,
                          g_k);
    ck_assert_int_eq(rep.wrong, (int64_t)2 * g_k * (int64_t)rep.n_rows);
    ryz_bench_report_free(&rep);
}
END_TEST

/* Rank `who` gets different options; every rank must return EINVAL, and
 * rank 0's message name both values. */
static void expect_disagreement(ryz_bench_opts *mine, int who, const char *needle) {
    ryz_bench_report rep;
    run_world(mine, RYZ_EINVAL, &rep);
    char want[64];
    snprintf(want, sizeof want, "rank %d has ", who);
    ck_assert_msg(strstr(ryz_last_error(), "rank 0 has ") && strstr(ryz_last_error(), want) &&
                      strstr(ryz_last_error(), needle),
                  "rank %d: message '%s'", g_rank, ryz_last_error());
    ryz_bench_report_free(&rep);
}

START_TEST(test_ranks_disagree_on_size) {
    if (g_k < 2) {
        if (g_rank == 0)
            printf("test_ranks_disagree_on_size: skipped at 1 rank\n");
        return;
    }
    ryz_bench_opts o = sweep_opts();
    int who = g_k - 1;
    if (g_rank == who)
        o.size_skew = 4; /* what RYZ_TEST_COMM_SKEW_RANK does */
    expect_disagreement(&o, who, "all_reduce of 8 bytes");
}
END_TEST

START_TEST(test_ranks_disagree_on_sweep) {
    if (g_k < 2)
        return;
    ryz_bench_opts o = sweep_opts();
    if (g_rank == 1)
        o.iters = 4; /* a different -n would pair calls wrongly */
    expect_disagreement(&o, 1, "-n 4");
    o = sweep_opts();
    o.ops = 1u << RYZ_OP_BROADCAST;
    if (g_rank == 1)
        o.max_bytes = 256 << 10; /* one rank has more sizes */
    expect_disagreement(&o, 1, "the end of the sweep");
    o = sweep_opts();
    if (g_rank == 1)
        o.ops = 1u << RYZ_OP_BROADCAST; /* another op */
    expect_disagreement(&o, 1, "broadcast of 4 bytes");
    o = sweep_opts();
    if (g_rank == 1)
        o.evict_bytes = 1 << 20; /* the others take the slowest rank's time */
    expect_disagreement(&o, 1, "-c 1 --evict/--gap)");
    o = sweep_opts();
    o.gap_s = g_rank == 1 ? 0.002 : 0.001; /* each rank idles, but not as long */
    expect_disagreement(&o, 1, "-c 1 --evict/--gap --gap 2000)");
}
END_TEST

/* A rank that cannot set up (here: an eviction over 4G, its own figure)
 * fails, and the others learn it before their first exchange instead of
 * waiting for it there. */
START_TEST(test_evict_setup_fails_on_one_rank) {
    if (g_k < 2)
        return;
    uint64_t mine = g_rank == 1 ? (uint64_t)5 << 30 : 0;
    ryz_bench_opts o = sweep_opts();
    o.evict_each = &mine, o.n_evict_each = 1;
    ryz_bench_report rep;
    run_world(&o, RYZ_EINVAL, &rep);
    ck_assert_msg(strstr(ryz_last_error(), g_rank == 1 ? "an eviction of 5368709120 bytes"
                                                       : "1 other rank(s) could not set up"),
                  "rank %d: %s", g_rank, ryz_last_error());
    ryz_bench_report_free(&rep);
}
END_TEST

/* A rank that cannot allocate the run's buffers (the report's rows and
 * samples among them) fails with ENOMEM, the others learn it before their
 * first exchange, nobody has a row, and the world still works after. */
START_TEST(test_starved_rank_fails_alone) {
    if (g_k < 2)
        return;
    ryz_bench_opts o = sweep_opts();
    o.starve = g_rank == 1;
    ryz_bench_report rep;
    run_world(&o, g_rank == 1 ? RYZ_ENOMEM : RYZ_EINVAL, &rep);
    ck_assert_msg(strstr(ryz_last_error(), g_rank == 1 ? "out of memory for two buffers"
                                                       : "1 other rank(s) could not set up"),
                  "rank %d: %s", g_rank, ryz_last_error());
    ck_assert_uint_eq(rep.n_rows, 0);
    ryz_bench_report_free(&rep);
    o.starve = 0;
    run_world(&o, RYZ_OK, &rep);
    ck_assert_uint_gt(rep.n_rows, 0);
    ryz_bench_report_free(&rep);
}
END_TEST

/* Each rank's own call times of a run's last batch (the in-place one of
 * an all-reduce: after it come only the statistics' all-gather and the end
 * of the sweep), gathered: all (k, iters) floats, as the harness has them. */
static void gather_last_batch(int iters, float *all) {
    size_t n = ryz_comm_record_count(g_world);
    ck_assert_uint_ge(n, (size_t)iters + 2);
    float mine[32];
    size_t first = n - 2 - (size_t)iters;
    for (int i = 0; i < iters; i++)
        mine[i] = (float)(1e6 * ryz_comm_record_at(g_world, first + (size_t)i)->seconds);
    ck_assert_int_eq(ryz_comm_all_gather(g_world, mine, all, (size_t)iters), RYZ_OK);
}

/* An 8-byte all-reduce, iters timed calls after one warm-up, checked. */
static ryz_bench_opts tiny_all_reduce(int iters) {
    return (ryz_bench_opts){.ops = 1u << RYZ_OP_ALL_REDUCE,
                            .min_bytes = 8,
                            .max_bytes = 8,
                            .factor = 2,
                            .iters = iters,
                            .warmup = 1,
                            .check = 1};
}

/* --gap: every timed call of a batch starts at least gap_s after the
 * previous call ended (its record's gap), on every rank. */
START_TEST(test_gap_idles_before_each_call) {
    enum { ITERS = 5 };
    ryz_bench_opts o = tiny_all_reduce(ITERS);
    o.gap_s = 0.003;
    ryz_bench_report rep;
    run_world(&o, RYZ_OK, &rep);
    size_t n = ryz_comm_record_count(g_world), first = n - 2 - ITERS;
    for (size_t i = first; i < first + ITERS; i++) {
        const ryz_comm_record *r = ryz_comm_record_at(g_world, i);
        ck_assert_msg(r->op == RYZ_OP_ALL_REDUCE && r->gap >= 0.003,
                      "rank %d call %zu: %s after %g s", g_rank, i - first, ryz_comm_op_name(r->op),
                      r->gap);
    }
    ryz_bench_report_free(&rep);
}
END_TEST

/* A call's latency is the slowest rank's back to back and the fastest's
 * (the last to arrive) when evicting, whatever each rank reads: here rank
 * 1 reads 1 MiB before each call and the others nothing. */
START_TEST(test_evict_latency_is_fastest_rank) {
    enum { ITERS = 20 };
    if (g_k < 2)
        return;
    uint64_t mine = g_rank == 1 ? 1 << 20 : 0;
    for (int evict = 0; evict < 2; evict++) {
        ryz_bench_opts o = tiny_all_reduce(ITERS);
        o.evict_each = evict ? &mine : NULL, o.n_evict_each = (size_t)evict;
        ryz_bench_report rep;
        run_world(&o, RYZ_OK, &rep);
        ck_assert_int_eq(rep.wrong, 0);
        float all[4 * ITERS];
        ck_assert_int_le(g_k, 4);
        gather_last_batch(ITERS, all);
        const ryz_bench_result *p = &rep.rows[0].place[1];
        double mean = 0;
        for (int i = 0; i < ITERS; i++) {
            float want = all[i];
            for (int r = 1; r < g_k; r++)
                want = evict ? fminf(want, all[r * ITERS + i]) : fmaxf(want, all[r * ITERS + i]);
            ck_assert_msg(p->samples_us[i] == want, "evict %d call %d: %g us, want %g", evict, i,
                          p->samples_us[i], want);
            mean += want / ITERS;
        }
        if (evict) /* time: the mean of those latencies, not the batch's wall time */
            ck_assert(fabs(p->time_us - mean) <= 1e-6 * mean);
        ryz_bench_report_free(&rep);
    }
}
END_TEST

START_TEST(test_world_keeps_working_after_disagreement) {
    /* the failed runs above left no collective pending */
    ryz_bench_opts o = sweep_opts();
    o.ops = 1u << RYZ_OP_BROADCAST;
    ryz_bench_report rep;
    run_world(&o, RYZ_OK, &rep);
    ck_assert_int_eq(rep.wrong, 0);
    ryz_results res;
    ryz_results_init(&res);
    ck_assert_int_eq(ryz_bench_results(&rep, "test", &res), RYZ_OK);
    ck_assert_int_eq(res.collectives[0].tp, g_k);
    ck_assert_str_eq(res.collectives[0].op, "broadcast");
    ck_assert_int_eq(res.meta.world_size, g_k);
    ryz_results_free(&res);
    ryz_bench_report_free(&rep);
}
END_TEST

/* ---- in situ: ryz_suite_collectives ------------------------------------ */

START_TEST(test_cross_rank_reduction) {
    /* 3 ranks x 4 calls, rank-major; call 2 has the same time everywhere */
    const double secs[] = {5, 1, 7, 2, /* rank 0 */
                           3, 4, 7, 9, /* rank 1 */
                           4, 2, 7, 1};
    const double last[] = {3, 1, 7, 1}, wait[] = {2, 3, 0, 8};
    double got_last[4], got_wait[4];
    ryz_collectives_cross_rank(secs, 3, 4, got_last, got_wait);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(got_last[i] == last[i], "call %d: last %g, want %g", i, got_last[i], last[i]);
        ck_assert_msg(got_wait[i] == wait[i], "call %d: wait %g, want %g", i, got_wait[i], wait[i]);
    }
    ryz_collectives_cross_rank(secs, 1, 4, got_last, got_wait); /* one rank: its own, no wait */
    for (int i = 0; i < 4; i++) ck_assert(got_last[i] == secs[i] && got_wait[i] == 0);
}
END_TEST

enum { AR_CALLS = 30, AG_CALLS = 10, AR_FLOATS = 768, AG_FLOATS = 8 };

/* AR_CALLS all-reduces, each after `read` bytes of reads, then AG_CALLS
 * all-gathers with none. */
static void issue_reads_and_calls(uint64_t read) {
    float *x = calloc((size_t)AR_FLOATS * (size_t)g_k, sizeof(float));
    ck_assert_ptr_nonnull(x);
    alarm(HANG_LIMIT_S);
    for (int i = 0; i < AR_CALLS; i++) {
        ryz_streamed_add(read);
        ck_assert_int_eq(ryz_comm_all_reduce_sum(g_world, x, x, AR_FLOATS), RYZ_OK);
    }
    for (int i = 0; i < AG_CALLS; i++)
        ck_assert_int_eq(ryz_comm_all_gather(g_world, x, x + AG_FLOATS, AG_FLOATS), RYZ_OK);
    alarm(0);
    free(x);
}

/* Clears the world's records, then issues AR_CALLS in-place all-reduces of
 * AR_FLOATS, AG_CALLS all-gathers of AG_FLOATS per rank and one barrier. */
static void issue_model_like_calls(void) {
    ryz_comm_records_clear(g_world);
    issue_reads_and_calls(0);
    alarm(HANG_LIMIT_S);
    ck_assert_int_eq(ryz_comm_barrier(g_world), RYZ_OK);
    alarm(0);
}

/* Runs ryz_suite_collectives on the world (rows on rank 0 only). */
static void insitu(ryz_results *res, double *comm_s) {
    ryz_results_init(res);
    alarm(HANG_LIMIT_S);
    ryz_status st = ryz_suite_collectives(g_world, "t", 1, NULL, g_rank == 0 ? res : NULL, comm_s);
    alarm(0);
    ck_assert_msg(st == RYZ_OK, "rank %d/%d: %s", g_rank, g_k, ryz_last_error());
}

START_TEST(test_insitu_columns) {
    ryz_results res;
    double comm_s = -1;
    issue_model_like_calls();
    insitu(&res, &comm_s);
    ck_assert(comm_s > 0);
    if (g_rank != 0) {
        ck_assert_uint_eq(res.n_collectives, 0);
        return;
    }
    ck_assert_uint_eq(res.n_collectives, 2); /* the barrier has no row */
    const ryz_row_collective *ar = &res.collectives[0], *ag = &res.collectives[1];
    ck_assert_str_eq(ar->op, "all_reduce");
    ck_assert_uint_eq(ar->bytes, 4 * AR_FLOATS);
    ck_assert_uint_eq(ar->count, AR_CALLS);
    ck_assert_str_eq(ag->op, "all_gather");
    ck_assert_uint_eq(ag->bytes, 4u * AG_FLOATS * (unsigned)g_k);
    ck_assert_uint_eq(ag->count, AG_CALLS);
    for (size_t i = 0; i < res.n_collectives; i++) {
        const ryz_row_collective *c = &res.collectives[i];
        ck_assert(c->tp == g_k && c->p50_us > 0 && c->p50_us <= c->p99_us);
        if (g_k == 1) { /* no other rank: the cross-rank columns are not measured */
            ck_assert(c->p50_last_us == 0 && c->wait_p50_us == 0 && c->isolated_p50_us == 0);
            continue;
        }
        /* per call, the fastest rank is at most rank 0: so are their medians */
        ck_assert_msg(c->p50_last_us > 0 && c->p50_last_us <= c->p50_us,
                      "%s: p50_last %g, p50 %g", c->op, c->p50_last_us, c->p50_us);
        ck_assert(c->wait_p50_us >= 0);
        ck_assert(c->isolated_p50_us > 0);
        ck_assert(fabs(c->last_over_isolated - c->p50_last_us / c->isolated_p50_us) <=
                  1e-12 * c->last_over_isolated);
    }
    ryz_results_free(&res);
}
END_TEST

/* The reference after reads also idles as long as the in-situ calls did
 * (up to RYZ_REPLAY_MAX_GAP_S, docs/comm.md): after all-reduces that each
 * followed 6 ms of sleep, the reference's own timed calls (the last batch
 * recorded on the comm) each start at least 6 ms after the one before. */
START_TEST(test_insitu_gap_replayed) {
    enum { CALLS = 8 };
    if (g_k < 2)
        return;
    float *x = calloc((size_t)AR_FLOATS, sizeof(float));
    ck_assert_ptr_nonnull(x);
    struct timespec ts = {0, 6 * 1000 * 1000};
    ryz_comm_records_clear(g_world);
    alarm(HANG_LIMIT_S);
    for (int i = 0; i < CALLS; i++) {
        ryz_streamed_add(64 << 10);
        nanosleep(&ts, NULL);
        ck_assert_int_eq(ryz_comm_all_reduce_sum(g_world, x, x, AR_FLOATS), RYZ_OK);
    }
    alarm(0);
    free(x);
    ryz_results res;
    double comm_s;
    insitu(&res, &comm_s);
    size_t n = ryz_comm_record_count(g_world), gapped = 0;
    for (size_t i = 0; i < n; i++) {
        const ryz_comm_record *r = ryz_comm_record_at(g_world, i);
        gapped += r->op == RYZ_OP_ALL_REDUCE && r->bytes == 4 * AR_FLOATS && r->gap >= 0.006;
    }
    ck_assert_msg(gapped >= 100, "rank %d: %zu of %zu calls after 6 ms", g_rank, gapped, n);
    ryz_results_free(&res);
}
END_TEST

/* The bytes a rank read before each call (ryz_streamed_add, as the cpu
 * backend's matmuls count them, since its previous collective) become each
 * row's streamed_bytes (p50), and its reference after reading as much; a
 * row with nothing read has the back-to-back reference there too.
 * Broadcasts, then reads, an all-reduce and an all-gather in turn: the
 * reads are the all-reduce's, none the all-gather's. */
START_TEST(test_insitu_streamed) {
    enum { READ = 1 << 20, CALLS = 12 };
    float *x = calloc((size_t)AR_FLOATS * (size_t)g_k, sizeof(float));
    ck_assert_ptr_nonnull(x);
    ryz_comm_records_clear(g_world);
    alarm(HANG_LIMIT_S);
    for (int i = 0; i < CALLS; i++)
        ck_assert_int_eq(ryz_comm_broadcast(g_world, x, 64, 0), RYZ_OK);
    for (int i = 0; i < CALLS; i++) {
        ryz_streamed_add(READ);
        ck_assert_int_eq(ryz_comm_all_reduce_sum(g_world, x, x, AR_FLOATS), RYZ_OK);
        ck_assert_int_eq(ryz_comm_all_gather(g_world, x, x + AG_FLOATS, AG_FLOATS), RYZ_OK);
    }
    alarm(0);
    free(x);
    ryz_results res;
    double comm_s;
    insitu(&res, &comm_s);
    if (g_rank == 0) {
        ck_assert_uint_eq(res.n_collectives, 3);
        const ryz_row_collective *ar = &res.collectives[0], *ag = &res.collectives[1];
        const ryz_row_collective *bc = &res.collectives[2];
        ck_assert_str_eq(bc->op, "broadcast");
        ck_assert_uint_eq(ar->streamed_bytes, READ);
        ck_assert_uint_eq(ag->streamed_bytes, 0);
        ck_assert_uint_eq(bc->streamed_bytes, 0);
        if (g_k > 1) {
            /* a second measurement: equal to the first only if never made */
            ck_assert(ar->isolated_evict_p50_us > 0 &&
                      ar->isolated_evict_p50_us != ar->isolated_p50_us);
            ck_assert(fabs(ar->last_over_evict - ar->p50_last_us / ar->isolated_evict_p50_us) <=
                      1e-12 * ar->last_over_evict);
            ck_assert(ag->isolated_evict_p50_us == ag->isolated_p50_us);
            ck_assert(bc->isolated_evict_p50_us == bc->isolated_p50_us);
        } else {
            ck_assert(ar->isolated_evict_p50_us == 0 && ar->last_over_evict == 0);
        }
    }
    ryz_results_free(&res);
}
END_TEST

/* p50 of a reference row's samples, as ryz_suite_collectives takes it. */
static double row_p50(const struct ryz_ref_row *row) {
    double *tmp = malloc(row->n * sizeof *tmp);
    ck_assert_ptr_nonnull(tmp);
    memcpy(tmp, row->us, row->n * sizeof *tmp);
    ryz_stats s;
    ryz_stats_compute(tmp, row->n, &s);
    free(tmp);
    return s.median;
}

/* Opens ref on the world, which must succeed everywhere, then clears the
 * world's records (as the runner does before its timed runs). */
static void open_ref(ryz_collective_ref *ref) {
    alarm(HANG_LIMIT_S);
    ck_assert_int_eq(ryz_collective_ref_open(g_world, ref), RYZ_OK);
    alarm(0);
    ck_assert(ref->ok && ref->dup);
    ryz_comm_records_clear(g_world);
}

/* Sampled between "runs": each sample adds RYZ_REF_SAMPLES latencies per
 * (op, bytes) of the calls since the last one, and the reference after
 * reads of every row is then the p50 of its samples. */
START_TEST(test_reference_sampled) {
    enum { RUNS = 3 };
    ryz_collective_ref ref;
    open_ref(&ref);
    for (int run = 0; run < RUNS; run++) {
        issue_reads_and_calls(1 << 20);
        alarm(HANG_LIMIT_S);
        ck_assert_int_eq(ryz_collective_ref_sample(&ref, g_world), RYZ_OK);
        alarm(0);
    }
    ck_assert(ref.ok);
    ck_assert_uint_eq(ref.n_rows, 2); /* all_reduce, all_gather */
    for (size_t i = 0; i < ref.n_rows; i++)
        ck_assert_uint_eq(ref.rows[i].n, RUNS * RYZ_REF_SAMPLES);
    ryz_results res;
    double comm_s;
    ryz_results_init(&res);
    alarm(HANG_LIMIT_S);
    ck_assert_int_eq(ryz_suite_collectives(g_world, "t", 1, &ref, g_rank == 0 ? &res : NULL,
                                           &comm_s), RYZ_OK);
    alarm(0);
    if (g_rank == 0) ck_assert_uint_eq(res.n_collectives, 2);
    for (size_t i = 0; g_rank == 0 && g_k > 1 && i < res.n_collectives; i++) {
        const ryz_row_collective *c = &res.collectives[i];
        const struct ryz_ref_row *r = &ref.rows[0];
        if (strcmp(ryz_comm_op_name(r->op), c->op)) r = &ref.rows[1];
        ck_assert_str_eq(ryz_comm_op_name(r->op), c->op);
        /* the all-reduces followed reads: their samples; the all-gathers
         * none: the back-to-back figure */
        double want = c->streamed_bytes ? row_p50(r) : c->isolated_p50_us;
        ck_assert_msg(c->isolated_evict_p50_us == want, "%s: %g, want %g", c->op,
                      c->isolated_evict_p50_us, want);
    }
    ryz_results_free(&res);
    ryz_collective_ref_close(&ref);
    ryz_collective_ref_close(&ref); /* a second close is harmless */
}
END_TEST

/* A rank that lost samples (out of memory in the last run) is heard: every
 * rank then measures the reference after reads after the runs. */
START_TEST(test_reference_sick_rank) {
    if (g_k < 2)
        return;
    ryz_collective_ref ref;
    open_ref(&ref);
    issue_reads_and_calls(1 << 20);
    alarm(HANG_LIMIT_S);
    ck_assert_int_eq(ryz_collective_ref_sample(&ref, g_world), RYZ_OK);
    ck_assert(ref.ok && ref.n_rows == 2);
    if (g_rank == 1) ref.sick = 1;
    ryz_results res;
    double comm_s;
    ryz_results_init(&res);
    ck_assert_int_eq(ryz_suite_collectives(g_world, "t", 1, &ref, g_rank == 0 ? &res : NULL,
                                           &comm_s), RYZ_OK);
    alarm(0);
    if (g_rank == 0) {
        const ryz_row_collective *c = &res.collectives[0];
        const struct ryz_ref_row *r = &ref.rows[0];
        ck_assert(!strcmp(c->op, "all_reduce") && r->op == RYZ_OP_ALL_REDUCE);
        /* a second measurement: equal to the samples' only if never made */
        ck_assert(c->isolated_evict_p50_us > 0 && c->isolated_evict_p50_us != row_p50(r));
    }
    ryz_results_free(&res);
    ryz_collective_ref_close(&ref);
}
END_TEST

/* Ranks whose calls since the last sample differ stop sampling, alike and
 * without hanging; so do records cleared since. The reference then comes
 * from the pass after the runs. */
START_TEST(test_reference_stops_on_disagreement) {
    ryz_collective_ref ref;
    open_ref(&ref);
    issue_reads_and_calls(1 << 20);
    if (g_rank == 0) ryz_comm_records_clear(g_world); /* rank 0 now holds fewer */
    alarm(HANG_LIMIT_S);
    ck_assert_int_eq(ryz_collective_ref_sample(&ref, g_world), RYZ_OK);
    alarm(0);
    ck_assert_msg(ref.ok == (g_k == 1), "rank %d: ok %d", g_rank, ref.ok);
    ryz_collective_ref_close(&ref);
    open_ref(&ref); /* records cleared after a sample */
    issue_reads_and_calls(1 << 20);
    alarm(HANG_LIMIT_S);
    ck_assert_int_eq(ryz_collective_ref_sample(&ref, g_world), RYZ_OK);
    ck_assert(ref.ok == 1 && ref.n_rows == 2);
    ryz_comm_records_clear(g_world);
    ck_assert_int_eq(ryz_collective_ref_sample(&ref, g_world), RYZ_OK);
    alarm(0);
    ck_assert(ref.ok == 0);
    ryz_collective_ref_close(&ref);
}
END_TEST

START_TEST(test_insitu_ranks_disagree) {
    if (g_k < 2)
        return;
    ryz_results res;
    double comm_s;
    issue_model_like_calls();
    if (g_rank == 1)
        ryz_comm_records_clear(g_world); /* rank 1 now holds no records */
    insitu(&res, &comm_s);                /* a warning, no hang, no error */
    if (g_rank == 0) {
        ck_assert_uint_eq(res.n_collectives, 2); /* rank 0's own view is still there */
        for (size_t i = 0; i < res.n_collectives; i++) {
            const ryz_row_collective *c = &res.collectives[i];
            ck_assert(c->p50_us > 0);
            ck_assert(c->p50_last_us == 0 && c->wait_p50_us == 0 && c->isolated_p50_us == 0);
        }
    }
    ryz_results_free(&res);
    issue_model_like_calls(); /* and the world still works */
}
END_TEST

static Suite *comm_suite(void) {
    Suite *s = suite_create("mpi_comm");
    TCase *tc = tcase_create("harness");
    tcase_add_checked_fixture(tc, NULL, hook_off);
    tcase_add_test(tc, test_sweep_checks_clean);
    tcase_add_test(tc, test_corruption_counted_on_every_rank);
    tcase_add_test(tc, test_ranks_disagree_on_size);
    tcase_add_test(tc, test_ranks_disagree_on_sweep);
    tcase_add_test(tc, test_world_keeps_working_after_disagreement);
    tcase_add_test(tc, test_evict_latency_is_fastest_rank);
    tcase_add_test(tc, test_gap_idles_before_each_call);
    tcase_add_test(tc, test_evict_setup_fails_on_one_rank);
    tcase_add_test(tc, test_starved_rank_fails_alone);
    suite_add_tcase(s, tc);
    tc = tcase_create("insitu");
    tcase_set_timeout(tc, HANG_LIMIT_S);
    tcase_add_test(tc, test_cross_rank_reduction);
    tcase_add_test(tc, test_insitu_columns);
    tcase_add_test(tc, test_insitu_streamed);
    tcase_add_test(tc, test_insitu_gap_replayed);
    tcase_add_test(tc, test_reference_sampled);
    tcase_add_test(tc, test_reference_stops_on_disagreement);
    tcase_add_test(tc, test_reference_sick_rank);
    tcase_add_test(tc, test_insitu_ranks_disagree);
    suite_add_tcase(s, tc);
    return s;
}

/* Corruption off before the exit code's own all-reduce. */
static void corrupt_off(void) {
    ryz_comm_test_corrupt(0);
}

int main(int argc, char **argv) {
    if (test_mpi_setup(&argc, &argv, "test_mpi_comm", &g_world)) return EXIT_FAILURE;
    g_rank = ryz_comm_rank(g_world);
    g_k = ryz_comm_size(g_world);
    int code = test_run_mpi_suite(comm_suite(), g_world, "test_mpi_comm", corrupt_off);
    ryz_comm_free(g_world);
    ryz_mpi_finalize();
    return code;
}
