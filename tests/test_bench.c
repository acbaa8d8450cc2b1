/* Tests of src/bench (the `ryz comm` harness and the cost model) that need
 * no MPI: bandwidth formulas, size parsing and sweeps, the harness on the
 * one-rank comm with the fault hook, the results and JSON it writes, the
 * alpha-beta fit, the decode projection; then the CLI (`ryz comm`, `ryz
 * project`, from RYZ_BIN, default build/ryz), which launches its own ranks.
 * Multi-rank harness tests are in test_mpi_comm.c. */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#include "ryz/bench.h"
#include "ryz/info.h"

static const ryz_comm_op OPS[] = {RYZ_OP_ALL_REDUCE, RYZ_OP_ALL_GATHER, RYZ_OP_REDUCE_SCATTER,
                                  RYZ_OP_BROADCAST};

/* ---- helpers ------------------------------------------------------------ */

/* Fails naming both values unless |got - want| <= tol * max(1, |want|). */
static void assert_near(const char *what, double got, double want, double tol) {
    ck_assert_msg(fabs(got - want) <= tol * fmax(1, fabs(want)),
                  "%s: got %.12g, want %.12g (tol %g)", what, got, want, tol);
}

/* Options of a short check run of every op. */
static ryz_bench_opts small_opts(void) {
    return (ryz_bench_opts){.ops = 0xf,
                            .min_bytes = 4,
                            .max_bytes = 4096,
                            .factor = 4,
                            .iters = 3,
                            .warmup = 1,
                            .check = 1};
}

/* A fresh temporary path with `suffix` (the file is removed again). */
static void temp_name(char *path, size_t cap, const char *suffix) {
    static int seq;
    snprintf(path, cap, "/tmp/ryz_test_bench_%d_%d%s", (int)getpid(), seq++, suffix);
    unlink(path);
}

/* ---- bandwidth and sizes ------------------------------------------------ */

START_TEST(test_busbw_factors) {
    const int ks[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        double k = ks[i];
        assert_near("all_reduce", ryz_comm_busbw_factor(RYZ_OP_ALL_REDUCE, ks[i]), 2 * (k - 1) / k,
                    1e-15);
        assert_near("all_gather", ryz_comm_busbw_factor(RYZ_OP_ALL_GATHER, ks[i]), (k - 1) / k,
                    1e-15);
        assert_near("reduce_scatter", ryz_comm_busbw_factor(RYZ_OP_REDUCE_SCATTER, ks[i]),
                    (k - 1) / k, 1e-15);
        assert_near("broadcast", ryz_comm_busbw_factor(RYZ_OP_BROADCAST, ks[i]), 1, 1e-15);
    }
    assert_near("k=8 all_reduce", ryz_comm_busbw_factor(RYZ_OP_ALL_REDUCE, 8), 1.75, 0);
    assert_near("algbw 1 GB in 1 s", ryz_bench_algbw_gbs(1000000000, 1.0), 1.0, 1e-15);
    assert_near("algbw 8 MiB in 1 ms", ryz_bench_algbw_gbs(8 << 20, 1e-3), 8.388608, 1e-12);
    assert_near("algbw at 0 s", ryz_bench_algbw_gbs(8, 0), 0, 0);
}
END_TEST

START_TEST(test_parse_size) {
    const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {{"8", 8},
                {"0", 0},
                {"4K", 4096},
                {"64k", 65536},
                {"4M", 4 << 20},
                {"1G", 1u << 30},
                {"4G", (uint64_t)4 << 30},
                {"4096M", (uint64_t)4 << 30}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t b = 1;
        ryz_status st = ryz_bench_parse_size("-b", good[i].text, &b);
        ck_assert_msg(st == RYZ_OK, "'%s': %s", good[i].text, ryz_last_error());
        ck_assert_msg(b == good[i].bytes, "'%s' -> %llu", good[i].text, (unsigned long long)b);
    }
    const char *bad[] = {
        "", "-1", "+4", "1.5K", "4KB", "K", "3Q", "5G", "4097M", "99999999999999999999", " 8"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t b = 7;
        ck_assert_msg(ryz_bench_parse_size("-e", bad[i], &b) == RYZ_EINVAL, "'%s' accepted",
                      bad[i]);
        ck_assert_msg(strstr(ryz_last_error(), "-e"), "'%s': message '%s' lacks the option", bad[i],
                      ryz_last_error());
        ck_assert_uint_eq(b, 7);
    }
    ck_assert_int_eq(ryz_bench_parse_size("-b", NULL, &(uint64_t){0}), RYZ_EINVAL);
}
END_TEST

START_TEST(test_parse_ops) {
    unsigned m;
    ck_assert_int_eq(ryz_bench_parse_ops("allreduce", &m), RYZ_OK);
    ck_assert_uint_eq(m, 1u << RYZ_OP_ALL_REDUCE);
    ck_assert_int_eq(ryz_bench_parse_ops("reducescatter", &m), RYZ_OK);
    ck_assert_uint_eq(m, 1u << RYZ_OP_REDUCE_SCATTER);
    ck_assert_int_eq(ryz_bench_parse_ops("all", &m), RYZ_OK);
    ck_assert_uint_eq(m, 0xfu);
    ck_assert_int_eq(ryz_bench_parse_ops("all_reduce", &m), RYZ_EINVAL);
    ck_assert_msg(strstr(ryz_last_error(), "all_reduce"), "%s", ryz_last_error());
    ck_assert_int_eq(ryz_bench_parse_ops(NULL, &m), RYZ_EINVAL);
}
END_TEST

START_TEST(test_sizes_and_rounding) {
    uint64_t s[64];
    /* the acceptance sweep: 8 .. 4M by 4 stops at 2M, like nccl-tests */
    size_t n = ryz_bench_sizes(RYZ_OP_ALL_REDUCE, 8, 4 << 20, 4, 4, s, 64);
    ck_assert_uint_eq(n, 10);
    ck_assert_uint_eq(s[0], 8);
    ck_assert_uint_eq(s[9], 2 << 20);
    /* split ops: multiples of 4k, sizes below 4k dropped */
    n = ryz_bench_sizes(RYZ_OP_ALL_GATHER, 8, 4 << 20, 4, 4, s, 64);
    ck_assert_uint_eq(n, 9);
    ck_assert_uint_eq(s[0], 32);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(s[i] % 16, 0);
    ck_assert_uint_eq(ryz_bench_round_bytes(RYZ_OP_REDUCE_SCATTER, 100, 3), 96);
    ck_assert_uint_eq(ryz_bench_round_bytes(RYZ_OP_ALL_GATHER, 11, 3), 0);
    ck_assert_uint_eq(ryz_bench_round_bytes(RYZ_OP_ALL_REDUCE, 11, 3), 8);
    ck_assert_uint_eq(ryz_bench_round_bytes(RYZ_OP_BROADCAST, 4, 64), 4);
    /* one size when min == max; the count is returned past cap */
    ck_assert_uint_eq(ryz_bench_sizes(RYZ_OP_BROADCAST, 64, 64, 2, 8, s, 64), 1);
    ck_assert_uint_eq(ryz_bench_sizes(RYZ_OP_BROADCAST, 1, (uint64_t)4 << 30, 2, 1, s, 4), 31);
}
END_TEST

/* ---- the harness on one rank -------------------------------------------- */

/* Runs o on the one-rank comm; fails the test on an error status. */
static void run_self(const ryz_bench_opts *o, ryz_bench_report *rep) {
    ryz_comm *c;
    ck_assert_int_eq(ryz_comm_init_self(&c), RYZ_OK);
    ryz_status st = ryz_bench_run(c, o, rep);
    ck_assert_msg(st == RYZ_OK, "ryz_bench_run: %s", ryz_last_error());
    ryz_comm_free(c);
}

START_TEST(test_harness_self) {
    ryz_bench_opts o = small_opts();
    ryz_bench_report rep;
    run_self(&o, &rep);
    ck_assert_int_eq(rep.world, 1);
    ck_assert_str_eq(rep.backend, "self");
    ck_assert_uint_eq(rep.n_rows, 4 * 6); /* 4, 16, 64, 256, 1024, 4096 per op */
    ck_assert_int_eq(rep.wrong, 0);
    for (size_t i = 0; i < rep.n_rows; i++) {
        const ryz_bench_row *r = &rep.rows[i];
        int in_place = r->op == RYZ_OP_ALL_REDUCE || r->op == RYZ_OP_BROADCAST;
        ck_assert_int_eq(r->place[0].ran, 1);
        ck_assert_int_eq(r->place[1].ran, in_place);
        ck_assert_int_eq(r->place[0].wrong, 0);
        ck_assert_uint_eq(r->place[0].n_samples, 3);
        ck_assert_uint_eq(r->count, r->bytes / 4);
        ck_assert_int_eq(r->root, r->op == RYZ_OP_BROADCAST ? 0 : -1);
        ck_assert_msg(r->place[0].p50_us <= r->place[0].p99_us, "p50 > p99");
    }
    ryz_bench_report_free(&rep);
    ryz_bench_report_free(&rep); /* safe twice */
}
END_TEST

START_TEST(test_harness_detects_corruption) {
    ryz_bench_opts o = small_opts();
    ryz_bench_report rep;
    ryz_comm_test_corrupt(1);
    run_self(&o, &rep);
    ryz_comm_test_corrupt(0);
    for (size_t i = 0; i < rep.n_rows; i++) {
        const ryz_bench_row *r = &rep.rows[i];
        int want = r->op == RYZ_OP_ALL_REDUCE; /* the hook corrupts one all_reduce element */
        ck_assert_msg(r->place[0].wrong == want && (!r->place[1].ran || r->place[1].wrong == want),
                      "%s %llu bytes: #wrong %lld / %lld, expected %d", ryz_comm_op_name(r->op),
                      (unsigned long long)r->bytes, (long long)r->place[0].wrong,
                      (long long)r->place[1].wrong, want);
    }
    ck_assert_int_eq(rep.wrong, 12); /* 6 sizes x 2 placements */
    ryz_bench_report_free(&rep);
    o.check = 0; /* unchecked: N/A, never an error */
    run_self(&o, &rep);
    ck_assert_int_eq(rep.wrong, -1);
    ck_assert_int_eq(rep.rows[0].place[0].wrong, -1);
    ryz_bench_report_free(&rep);
}
END_TEST

START_TEST(test_harness_rejects_bad_options) {
    ryz_comm *c;
    ck_assert_int_eq(ryz_comm_init_self(&c), RYZ_OK);
    ryz_bench_opts bad[4];
    for (int i = 0; i < 4; i++)
        bad[i] = small_opts();
    bad[0].factor = 1;
    bad[1].iters = 0;
    bad[2].min_bytes = 8192;
    bad[3].ops = 0;
    for (int i = 0; i < 4; i++) {
        ryz_bench_report rep;
        ck_assert_int_eq(ryz_bench_run(c, &bad[i], &rep), RYZ_EINVAL);
        ryz_bench_report_free(&rep);
    }
    ryz_comm_free(c);
}
END_TEST

START_TEST(test_results_and_json) {
    ryz_bench_opts o = small_opts();
    ryz_bench_report rep;
    run_self(&o, &rep);
    ryz_results res;
    ryz_results_init(&res);
    ck_assert_int_eq(ryz_bench_results(&rep, "ryz comm --op all", &res), RYZ_OK);
    ck_assert_uint_eq(res.n_collectives, rep.n_rows);
    ck_assert_uint_eq(res.n_samples, 3 * (rep.n_rows + 12)); /* + in-place of 2 ops x 6 */
    ck_assert_str_eq(res.collectives[0].case_name, "comm");
    ck_assert_str_eq(res.meta.kind, RYZ_KIND_COMM); /* what `ryz compare` judges it by */
    ck_assert_str_eq(res.collectives[0].op, "all_reduce");
    ck_assert_int_eq(res.collectives[0].tp, 1);
    ck_assert_str_eq(res.samples[0].metric, "all_reduce_us@4");
    ck_assert_str_eq(res.samples[3].metric, "all_reduce_ip_us@4");
    ck_assert_str_eq(res.meta.suite_name, "comm");
    ck_assert_str_eq(res.meta.suite_text, "ryz comm --op all");
    ck_assert_int_eq(res.meta.world_size, 1);
    ck_assert_msg(res.meta.blas && !strncmp(res.meta.blas, "OpenBLAS ", 9), "blas '%s'",
                  res.meta.blas ? res.meta.blas : "(null)");
    ck_assert_str_eq(res.meta.device, "cpu");
    {   /* an nccl run's device is the GPUs it timed, as `ryz info` lists them */
        ryz_bench_report nccl = rep;
        ryz_results gpu;
        char want[1024];
        snprintf(nccl.backend, sizeof nccl.backend, "nccl");
        ryz_results_init(&gpu);
        ck_assert_int_eq(ryz_bench_results(&nccl, "ryz comm --backend nccl", &gpu), RYZ_OK);
        ryz_info_cuda_line(want, sizeof want);
        ck_assert_str_eq(gpu.meta.device, want);
        ryz_results_free(&gpu);
    }
    char h5[64], js[64];
    temp_name(h5, sizeof h5, ".h5");
    temp_name(js, sizeof js, ".json");
    ck_assert_msg(ryz_results_write(&res, h5) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_msg(ryz_bench_write_json(&rep, &res, js) == RYZ_OK, "%s", ryz_last_error());
    ryz_results back;
    ck_assert_msg(ryz_results_read(h5, &back) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_uint_eq(back.n_collectives, res.n_collectives);
    ck_assert_uint_eq(back.n_samples, res.n_samples);
    ck_assert_str_eq(back.meta.blas, res.meta.blas);
    char *text = test_slurp(js, NULL);
    ck_assert_msg(text[0] == '{' && strstr(text, "\"collectives\": [") &&
                      strstr(text, "\"blas\": \"OpenBLAS ") &&
                      strstr(text, "\"rows\": [") && strstr(text, "\"in_place\": null") &&
                      strstr(text, "\"op\": \"broadcast\""),
                  "json:\n%.400s", text);
    free(text);
    unlink(h5), unlink(js);
    ryz_results_free(&back);
    ryz_results_free(&res);
    ryz_bench_report_free(&rep);
    ck_assert_int_eq(ryz_bench_write_json(&rep, &res, "/nonexistent/dir/x.json"), RYZ_EIO);
}
END_TEST

/* ---- the cost model ----------------------------------------------------- */

START_TEST(test_fit_exact) {
    double x[8], y[8], w[8];
    for (int i = 0; i < 8; i++) {
        x[i] = 8.0 * pow(4, i);      /* 8 B .. 128 KiB */
        y[i] = 12.5 + 2.5e-3 * x[i]; /* alpha 12.5 us, 0.4 GB/s */
        w[i] = 1 / (y[i] * y[i]);
    }
    ryz_fit f;
    for (int weighted = 0; weighted < 2; weighted++) {
        ck_assert_int_eq(ryz_fit_line(x, y, weighted ? w : NULL, 8, &f), RYZ_OK);
        assert_near("alpha", f.alpha_us, 12.5, 1e-9);
        assert_near("beta", f.beta_us_per_byte, 2.5e-3, 1e-9);
        assert_near("bw", f.bw_gbs, 0.4, 1e-9);
        assert_near("r2", f.r2, 1, 1e-12);
        ck_assert_uint_eq(f.n, 8);
    }
}
END_TEST

START_TEST(test_fit_noisy) {
    /* +-3% multiplicative noise from a fixed LCG: alpha and beta within 5%
     * (weighted, on relative error), R^2 close to 1 */
    enum { N = 40 };
    double x[N], y[N], w[N];
    uint32_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        double u = (double)(s >> 8) / (1 << 24) * 2 - 1;
        x[i] = 8.0 * pow(2, i % 20);
        y[i] = (3.0 + 1e-3 * x[i]) * (1 + 0.03 * u);
        w[i] = 1 / (y[i] * y[i]);
    }
    ryz_fit f;
    ck_assert_int_eq(ryz_fit_line(x, y, w, N, &f), RYZ_OK);
    assert_near("alpha", f.alpha_us, 3.0, 0.05);
    assert_near("beta * 1e3", 1e3 * f.beta_us_per_byte, 1.0, 0.05);
    ck_assert_msg(f.r2 > 0.99, "R^2 %g", f.r2);
    ck_assert_int_eq(ryz_fit_line(x, y, NULL, N, &f), RYZ_OK);
    assert_near("unweighted beta * 1e3", 1e3 * f.beta_us_per_byte, 1.0, 0.05);
    ck_assert_msg(f.r2 > 0.99, "unweighted R^2 %g", f.r2);
}
END_TEST

START_TEST(test_fit_rejects_degenerate) {
    double x[3] = {8, 8, 8}, y[3] = {1, 2, 3}, w[3] = {1, 0, 1};
    ryz_fit f;
    ck_assert_int_eq(ryz_fit_line(x, y, NULL, 3, &f), RYZ_EINVAL); /* one distinct size */
    ck_assert_int_eq(ryz_fit_line(x, y, NULL, 1, &f), RYZ_EINVAL);
    x[1] = 16;
    ck_assert_int_eq(ryz_fit_line(x, y, w, 3, &f), RYZ_EINVAL); /* zero weight */
}
END_TEST

START_TEST(test_link_reproduces_fit) {
    ryz_fit f = {.alpha_us = 20, .beta_us_per_byte = 1e-3};
    for (int i = 0; i < 4; i++) {
        ryz_link l;
        ck_assert_int_eq(ryz_link_from_fit(OPS[i], &f, 4, &l), RYZ_OK);
        assert_near("time at the measured k", ryz_ring_time_us(OPS[i], &l, 4, 65536), 20 + 65.536,
                    1e-12);
        ck_assert(ryz_ring_time_us(OPS[i], &l, 1, 65536) == 0);
    }
    ryz_link l;
    ck_assert_int_eq(ryz_link_from_fit(RYZ_OP_ALL_REDUCE, &f, 4, &l), RYZ_OK);
    assert_near("alpha per step", l.alpha_us, 20.0 / 6, 1e-12);
    assert_near("link bw", l.bw_gbs, 1.5, 1e-12); /* 2(k-1)/k / beta = 1.5 B/ns */
    /* ring at k = 8: 14 alpha + 1.75 bytes / bw */
    assert_near("k=8", ryz_ring_time_us(RYZ_OP_ALL_REDUCE, &l, 8, 3000),
                14 * 20.0 / 6 + 1.75 * 3000 / 1500, 1e-12);
    ck_assert_int_eq(ryz_link_from_fit(RYZ_OP_ALL_REDUCE, &f, 1, &l), RYZ_EINVAL);
    f.beta_us_per_byte = -1;
    ck_assert_int_eq(ryz_link_from_fit(RYZ_OP_ALL_REDUCE, &f, 2, &l), RYZ_EINVAL);
}
END_TEST

/* A results file's worth of tables: a `ryz comm` all_reduce sweep at 4
 * ranks on the exact line alpha 10 us, 1 GB/s, plus suite decode rows at
 * tp 1 (250 tokens/s) and 2. */
static void fake_results(ryz_results *res) {
    ryz_results_init(res);
    for (int i = 0; i < 6; i++) {
        ryz_row_collective c = {.case_name = "comm",
                                .tp = 4,
                                .op = "all_reduce",
                                .bytes = (uint64_t)64 << (2 * i),
                                .count = 20};
        c.p50_us = 10 + 1e-3 * (double)c.bytes;
        ck_assert_int_eq(ryz_results_add_collective(res, &c), RYZ_OK);
    }
    ryz_row_collective other = {
        .case_name = "case15m", .tp = 2, .op = "all_reduce", .bytes = 1024, .p50_us = 999};
    ck_assert_int_eq(ryz_results_add_collective(res, &other), RYZ_OK);
    ryz_row_timing t1 = {.case_name = "case15m", .tp = 1, .phase = "decode", .tokens_per_s = 250};
    ryz_row_timing t2 = {.case_name = "case15m", .tp = 2, .phase = "decode", .tokens_per_s = 400};
    ck_assert_int_eq(ryz_results_add_timing(res, &t1), RYZ_OK);
    ck_assert_int_eq(ryz_results_add_timing(res, &t2), RYZ_OK);
}

START_TEST(test_fit_from_results) {
    ryz_results res;
    fake_results(&res);
    ryz_fit f;
    int tp;
    ck_assert_int_eq(ryz_fit_collectives(&res, RYZ_OP_ALL_REDUCE, &f, &tp), RYZ_OK);
    ck_assert_int_eq(tp, 4);
    ck_assert_uint_eq(f.n, 6); /* the suite's row is not part of the sweep */
    assert_near("alpha", f.alpha_us, 10, 1e-9);
    assert_near("bw", f.bw_gbs, 1, 1e-9);
    ck_assert_int_eq(ryz_fit_collectives(&res, RYZ_OP_ALL_GATHER, &f, &tp), RYZ_EINVAL);
    ck_assert_ptr_nonnull(ryz_find_decode(&res, NULL, 1));
    ck_assert_ptr_null(ryz_find_decode(&res, "nope", 1));
    ck_assert_ptr_null(ryz_find_decode(&res, NULL, 8));
    ryz_results_free(&res);
}
END_TEST

START_TEST(test_projection_at_one_rank_is_measured) {
    ryz_results res;
    fake_results(&res);
    const ryz_row_timing *t1 = ryz_find_decode(&res, NULL, 1);
    ryz_decode_model m = {.compute_us = 1e6 / t1->tokens_per_s,
                          .layers = 12,
                          .embed_allreduce = 1,
                          .allreduce_bytes = 3072,
                          .vocab = 32000,
                          .ar_intra = {2, 1},
                          .ag_intra = {2, 1}};
    ryz_projection p;
    ryz_project_decode(&m, 1, &p);
    assert_near("k=1 total = measured", p.total_us, 4000, 0);
    ck_assert(p.comm_us == 0);
    assert_near("k=1 speedup", p.speedup, 1, 0);
    /* k = 2: 25 all-reduces (2 alpha + 3072 B at 1 GB/s) + one all-gather of
     * 32000 x 4 B: (alpha + 64000 B / 1 GB/s) */
    ryz_project_decode(&m, 2, &p);
    double ar = 2 * 2 + 1.0 * 3072 / 1e3, ag = 2 + 0.5 * 128000 / 1e3;
    assert_near("k=2 comm", p.comm_us, 25 * ar + ag, 1e-12);
    assert_near("k=2 efficiency", p.efficiency, 4000 / (2000 + 25 * ar + ag) / 2, 1e-12);
    /* above per_node the inter-node link takes over */
    m.per_node = 2;
    m.ar_inter = m.ag_inter = (ryz_link){100, 0.1};
    ryz_projection q;
    ryz_project_decode(&m, 2, &q);
    assert_near("k=2 still intra", q.comm_us, p.comm_us, 0);
    ryz_project_decode(&m, 4, &q);
    assert_near("k=4 inter", q.comm_us,
                25 * (6 * 100 + 1.5 * 3072 / 100) + (3 * 100 + 0.75 * 128000 / 100), 1e-12);
    ryz_results_free(&res);
}
END_TEST

/* ---- the CLI ------------------------------------------------------------ */

START_TEST(test_cli_corrupt_exits_1) {
    const char *runs[] = {"comm --np 1 -b 8 -e 64 -n 2 -w 0 -c 1",
                          "comm --np 2 -b 8 -e 64 -n 2 -w 0 -c 1",
                          "comm --np 2 --backend shm --op all -b 8 -e 1M -f 32 -n 2 -w 0 -c 1"};
    for (int i = 0; i < 3; i++) {
        test_run r = test_run_ryz("RYZ_TEST_CORRUPT=1", runs[i]);
        ck_assert_msg(r.code == 1, "%s: exit %d\n%s%s", runs[i], r.code, r.out, r.err);
        ck_assert_msg(strstr(r.out, "# Wrong elements       : ") && strstr(r.out, "FAILED"),
                      "%s:\n%s", runs[i], r.out);
        test_run_free(&r);
        r = test_run_ryz(NULL, runs[i]);
        ck_assert_msg(r.code == 0, "%s without the hook: exit %d\n%s", runs[i], r.code, r.err);
        ck_assert_msg(strstr(r.out, ": 0 OK"), "%s:\n%s", runs[i], r.out);
        ck_assert_msg(i < 2 || strstr(r.out, "backend shm, 2 ranks"), "%s:\n%s", runs[i], r.out);
        test_run_free(&r);
    }
}
END_TEST

/* --evict and --gap: the header says so and the data still checks out. */
START_TEST(test_cli_evict) {
    const char *runs[] = {"comm --np 2 -b 8 -e 64 -n 3 -w 1 --evict 1M",
                          "comm --np 2 --backend shm -b 8 -e 64 -n 3 -w 1 --evict 1M",
                          "comm --np 2 -b 8 -e 64 -n 3 -w 1 --gap 2000"};
    const char *says[] = {"# Evicting: each rank reads 1048576 bytes",
                          "# Evicting: each rank reads 1048576 bytes",
                          "# Idling: each rank stays busy until 2000 us after its previous call"};
    for (int i = 0; i < 3; i++) {
        test_run r = test_run_ryz(NULL, runs[i]);
        ck_assert_msg(r.code == 0, "%s: exit %d\n%s", runs[i], r.code, r.err);
        ck_assert_msg(strstr(r.out, says[i]) && strstr(r.out, ": 0 OK"), "%s:\n%s", runs[i],
                      r.out);
        test_run_free(&r);
    }
}
END_TEST

/* Sizes that hold no whole buffer: the only op asked for is an error
 * (nothing would be measured), one of several is skipped and said so. */
START_TEST(test_cli_no_size) {
    test_run r = test_run_ryz(NULL, "comm --np 2 -b 1 -e 3 -n 2");
    ck_assert_msg(r.code == 2 && strstr(r.err, "comm: no size from -b 1 to -e 3 holds a whole "
                                               "all_reduce buffer (4 bytes on 2 ranks); raise -e"),
                  "exit %d\n%s", r.code, r.err);
    test_run_free(&r);
    r = test_run_ryz(NULL, "comm --np 2 --op all -b 4 -e 4 -n 2 -w 0");
    ck_assert_msg(r.code == 0 && strstr(r.out, "# no size from -b 4 to -e 4 holds a whole "
                                               "all_gather buffer (8 bytes on 2 ranks): skipped") &&
                      strstr(r.out, ": 0 OK"),
                  "exit %d\n%s%s", r.code, r.out, r.err);
    test_run_free(&r);
}
END_TEST

START_TEST(test_cli_ranks_disagree) {
    test_run r = test_run_ryz("RYZ_TEST_COMM_SKEW_RANK=1", "comm --np 2 --op all -b 8 -e 1K -n 2");
    ck_assert_msg(r.code == 2, "exit %d (124: hung)\n%s", r.code, r.err);
    ck_assert_msg(strstr(r.err, "rank 0 has all_reduce of 8 bytes") &&
                      strstr(r.err, "rank 1 has all_reduce of 12 bytes"),
                  "stderr:\n%s", r.err);
    test_run_free(&r);
}
END_TEST

START_TEST(test_cli_usage_errors) {
    const char *bad[] = {"comm -b 3Q",
                         "comm --op alltoall",
                         "comm -f 1",
                         "comm -b 1M -e 1K",
                         "comm --backend nccl",
                         "comm --frobnicate",
                         "comm -n 0",
                         "comm --evict 5G",
                         "comm --evict lots",
                         "comm --gap -1",
                         "comm --gap 1000001",
                         "comm --gap 1.5ms",
                         "project",
                         "project --results /nonexistent.h5",
                         "project --results x.h5 --tp 2,x",
                         "project --results x.h5 --inter-node-bw 10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        test_run r = test_run_ryz(NULL, bad[i]);
        ck_assert_msg(r.code == 2, "ryz %s: exit %d\n%s", bad[i], r.code, r.err);
        ck_assert_msg(!strncmp(r.err, "ryz: error", 10), "ryz %s: stderr %s", bad[i], r.err);
        test_run_free(&r);
    }
    test_run r = test_run_ryz(NULL, "comm --help");
    ck_assert_msg(r.code == 0 && strstr(r.out, "usage: ryz comm"), "%s", r.out);
    test_run_free(&r);
    r = test_run_ryz(NULL, "project --help");
    ck_assert_msg(r.code == 0 && strstr(r.out, "usage: ryz project"), "%s", r.out);
    test_run_free(&r);
    /* a results file with no `ryz comm` sweep: the error, and nothing on stdout */
    r = test_run_ryz(NULL, "project --results tests/data/results-schema3.h5");
    ck_assert_msg(r.code == 2 && strstr(r.err, "no all_reduce sweep") && !*r.out,
                  "exit %d\nstdout: %s\nstderr: %s", r.code, r.out, r.err);
    test_run_free(&r);
}
END_TEST

/* `ryz comm -o -J` at 2 ranks, then `ryz project` on its file with a
 * --compute-s and on a file that also has suite decode rows. */
START_TEST(test_cli_comm_then_project) {
    char h5[64], js[64], out[64], args[512];
    temp_name(h5, sizeof h5, ".h5");
    temp_name(js, sizeof js, ".json");
    temp_name(out, sizeof out, ".h5");
    snprintf(args, sizeof args, "comm --np 2 --op all -b 64 -e 64K -f 4 -n 5 -w 1 -o %s -J %s", h5,
             js);
    test_run r = test_run_ryz(NULL, args);
    ck_assert_msg(r.code == 0, "exit %d\n%s", r.code, r.err);
    ck_assert_msg(strstr(r.out, "# all_reduce") && strstr(r.out, "# broadcast") &&
                      strstr(r.out, "# Avg bus bandwidth    : "),
                  "%s", r.out);
    test_run_free(&r);
    ryz_results res;
    ck_assert_msg(ryz_results_read(h5, &res) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_int_eq(res.meta.world_size, 2);
    ck_assert_int_eq(res.collectives[0].tp, 2);
    ryz_results_free(&res);
    snprintf(args, sizeof args, "project --results %s --tp 1,2,4,64 --compute-s 0.004 -o %s", h5,
             out);
    r = test_run_ryz(NULL, args);
    ck_assert_msg(r.code == 0, "exit %d\n%s", r.code, r.err);
    ck_assert_msg(strstr(r.out, "alpha") && strstr(r.out, "R^2") && strstr(r.out, "assumptions") &&
                      strstr(r.out, "\n    1      4000.00         0.00        4000.00"),
                  "%s", r.out);
    test_run_free(&r);
    ck_assert_msg(ryz_results_read(out, &res) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_uint_eq(res.n_timing, 4);
    ck_assert_str_eq(res.timing[0].phase, "decode_proj");
    ck_assert_uint_gt(res.n_collectives, 0); /* the original tables are kept */
    ryz_results_free(&res);
    unlink(h5), unlink(js), unlink(out);
}
END_TEST

/* A file whose suite rows give compute at tp 1: the projection at tp 1 is
 * the measured time, printed in both columns. */
START_TEST(test_cli_project_measured) {
    char h5[64], args[256];
    temp_name(h5, sizeof h5, ".h5");
    ryz_results res;
    fake_results(&res);
    ck_assert_int_eq(ryz_results_write(&res, h5), RYZ_OK);
    ryz_results_free(&res);
    snprintf(args, sizeof args, "project --results %s --tp 1,2", h5);
    test_run r = test_run_ryz(NULL, args);
    ck_assert_msg(r.code == 0, "exit %d\n%s", r.code, r.err);
    ck_assert_msg(strstr(r.out, "\n    1      4000.00         0.00        4000.00      1.00      "
                                "100.0%       4000.00"),
                  "%s", r.out);
    ck_assert_msg(strstr(r.out, "2500.00"), "tp 2 measured missing:\n%s", r.out);
    test_run_free(&r);
    /* a case the file lacks is an error, not the roofline in its place */
    snprintf(args, sizeof args, "project --results %s --tp 1,2 --case nope", h5);
    r = test_run_ryz(NULL, args);
    ck_assert_msg(r.code == 2 && strstr(r.err, "--case 'nope'") && !*r.out, "exit %d\n%s%s",
                  r.code, r.out, r.err);
    test_run_free(&r);
    unlink(h5);
}
END_TEST

static Suite *bench_suite(void) {
    Suite *s = suite_create("bench");
    TCase *unit = tcase_create("unit");
    tcase_add_test(unit, test_busbw_factors);
    tcase_add_test(unit, test_parse_size);
    tcase_add_test(unit, test_parse_ops);
    tcase_add_test(unit, test_sizes_and_rounding);
    tcase_add_test(unit, test_harness_self);
    tcase_add_test(unit, test_harness_detects_corruption);
    tcase_add_test(unit, test_harness_rejects_bad_options);
    tcase_add_test(unit, test_results_and_json);
    tcase_add_test(unit, test_fit_exact);
    tcase_add_test(unit, test_fit_noisy);
    tcase_add_test(unit, test_fit_rejects_degenerate);
    tcase_add_test(unit, test_link_reproduces_fit);
    tcase_add_test(unit, test_fit_from_results);
    tcase_add_test(unit, test_projection_at_one_rank_is_measured);
    suite_add_tcase(s, unit);
    TCase *cli = tcase_create("cli");
    tcase_set_timeout(cli, 300);
    tcase_add_test(cli, test_cli_corrupt_exits_1);
    tcase_add_test(cli, test_cli_evict);
    tcase_add_test(cli, test_cli_no_size);
    tcase_add_test(cli, test_cli_ranks_disagree);
    tcase_add_test(cli, test_cli_usage_errors);
    tcase_add_test(cli, test_cli_comm_then_project);
    tcase_add_test(cli, test_cli_project_measured);
    suite_add_tcase(s, cli);
    return s;
}

int main(void) {
    return test_run_suite(bench_suite());
}
