/* The suite runner on a backend other than cpu, without a GPU: cases with
 * backend = cuda run on the shadow backend (tests/shadow_backend.h, memory
 * the host cannot touch, through the runner's test hook), with comm = mpi
 * (collectives staged through the host) and comm = nccl (a shadow comm
 * that takes the device buffers in place, tests/shadow_comm.h). Against a
 * cpu case of the same model: the same errors at every TP (the reference
 * is the cpu's in both), memory rows in the backend's bytes, no roofline
 * for device memory, no isolated collective reference on the nccl comm.
 *
 * Also (TCase "text"): a prompt_text case runs world rank 0's ids on every
 * rank, and is refused when it was never encoded.
 *
 * Run under mpirun with CK_FORK=no at np 1, 2 and 4 (TP up to the world
 * size). The suite runs once (fixture); the tests then read rank 0's
 * results, so no test issues a collective after an assertion. */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/backend.h"
#include "ryz/comm.h"
#include "ryz/results.h"
#include "ryz/suite.h"
#include "shadow_backend.h"
#include "shadow_comm.h"
#include "testutil.h"

static ryz_comm *g_world; /* MPI_COMM_WORLD */
static int g_rank, g_k;   /* world rank and size */

/* "Device" bytes the shadow backend reports per kind, unlike any the host
 * counters could hold at that moment, so a memory row shows whose they are. */
#define DEVICE_BYTES(kind) ((size_t)((kind) + 1) * 3 * 1048576 + 17)

static void device_mem_usage(void *ctx, ryz_mem_kind kind, size_t *live, size_t *peak) {
    (void)ctx;
    *live = *peak = DEVICE_BYTES(kind);
}

static ryz_backend_iface g_device_iface; /* the shadow's, with device_mem_usage */

/* The runner's backend hook: the shadow backend for backend = cuda. */
static ryz_status device_backend(const ryz_suite_case *c, int threads, ryz_backend *out) {
    if (strcmp(c->backend, "cuda") != 0) return ryz_backend_init_cpu(threads, out);
    shadow_init(out);
    out->iface = &g_device_iface;
    return RYZ_OK;
}

#define CASE_BODY                                                                              \
    "model = synthetic:tiny,heads=8,kv_heads=2,vocab=1003\n"                                   \
    "batch = 2\nprompt = 3 14 15 92 65\nnew_tokens = 6\ntp = %s\n"

/* The suite: the same model on cpu, on the device with mpi and with nccl. */
static void suite_text(char *buf, size_t cap) {
    const char *tps = g_k >= 4 ? "1 2 4" : g_k == 2 ? "1 2" : "1";
    snprintf(buf, cap,
             "[suite]\nname = shadow\nrepeat = 2\nwarmup = 1\n\n"
             "[case host]\n" CASE_BODY "\n"
             "[case device-mpi]\n" CASE_BODY "backend = cuda\n\n"
             "[case device-nccl]\n" CASE_BODY "backend = cuda\ncomm = nccl\n",
             tps, tps, tps);
}

static ryz_suite g_suite;
static ryz_results g_res;
static ryz_status g_st;
static int g_failed;
static long g_device_calls; /* shadow_comm_device_calls of the run, this rank */

/* Runs the suite once on the world, the nccl cases on a shadow comm over
 * a copy of it. */
static void run_suite(void) {
    char text[2048];
    suite_text(text, sizeof text);
    ck_assert_int_eq(ryz_suite_parse(text, "shadow.ini", &g_suite), RYZ_OK);
    g_device_iface = shadow_iface;
    g_device_iface.mem_usage = device_mem_usage;
    ryz_comm *copy = NULL, *nccl = NULL;
    ck_assert_int_eq(ryz_comm_split_first(g_world, g_k, &copy), RYZ_OK);
    ck_assert_int_eq(shadow_comm_wrap(copy, &nccl), RYZ_OK);
    ryz_run_opts o = {.quiet = 1, .nccl = nccl, .backend_init = device_backend};
    ryz_results_init(&g_res);
    shadow_comm_device_calls = 0;
    g_st = ryz_suite_run(&g_suite, g_world, &o, &g_res, &g_failed);
    g_device_calls = shadow_comm_device_calls;
    ryz_comm_free(nccl);
}

static void free_suite(void) {
    ryz_results_free(&g_res);
    ryz_suite_free(&g_suite);
}

static const ryz_row_correctness *correctness(const char *name, int tp) {
    for (size_t i = 0; i < g_res.n_correctness; i++)
        if (g_res.correctness[i].tp == tp && !strcmp(g_res.correctness[i].case_name, name))
            return &g_res.correctness[i];
    ck_abort_msg("no correctness row for %s tp %d", name, tp);
    return NULL;
}

/* Every rank: the run passed; the shadow comm got device buffers exactly
 * when the model communicated (TP > 1). */
START_TEST(test_run_passes) {
    ck_assert_msg(g_st == RYZ_OK, "rank %d: %s", g_rank, ryz_last_error());
    ck_assert_int_eq(g_failed, 0);
    if (g_k > 1)
        ck_assert_msg(g_device_calls > 0, "rank %d: no collective on device buffers", g_rank);
    else
        ck_assert_int_eq(g_device_calls, 0);
}
END_TEST

/* The device cases against the cpu reference: at TP=1 bit for bit (the
 * shadow computes what the cpu does), at TP=k exactly the cpu case's
 * error (staged or in place, the same sums). */
START_TEST(test_same_errors_as_cpu) {
    if (g_rank != 0) return;
    ck_assert_uint_eq(g_res.n_correctness, (size_t)3 * g_suite.cases[0].n_tp);
    for (int i = 0; i < g_suite.cases[0].n_tp; i++) {
        int tp = g_suite.cases[0].tp[i];
        const ryz_row_correctness *host = correctness("host", tp);
        const char *dev[2] = {"device-mpi", "device-nccl"};
        for (int d = 0; d < 2; d++) {
            const ryz_row_correctness *c = correctness(dev[d], tp);
            ck_assert_msg(c->pass && c->max_abs == host->max_abs,
                          "%s tp %d: pass %d max_abs %g, cpu %g", dev[d], tp, c->pass,
                          c->max_abs, host->max_abs);
            if (tp == 1) ck_assert_msg(c->max_abs == 0, "%s tp 1: %g", dev[d], c->max_abs);
        }
    }
}
END_TEST

/* Memory rows are the backend's bytes: the shadow's fixed figures for the
 * device cases, the host counters for the cpu case. */
START_TEST(test_memory_is_backend_bytes) {
    if (g_rank != 0) return;
    int device_rows = 0;
    for (size_t i = 0; i < g_res.n_memory; i++) {
        const ryz_row_memory *m = &g_res.memory[i];
        int dev = strcmp(m->case_name, "host") != 0;
        device_rows += dev;
        ck_assert_msg(dev == (m->weights == DEVICE_BYTES(RYZ_MEM_WEIGHTS)),
                      "%s tp %d rank %d: weights %llu", m->case_name, m->tp, m->rank,
                      (unsigned long long)m->weights);
        if (!dev) continue;
        ck_assert_uint_eq(m->kv_cache, DEVICE_BYTES(RYZ_MEM_KV));
        ck_assert_uint_eq(m->scratch, DEVICE_BYTES(RYZ_MEM_SCRATCH));
        ck_assert_msg(m->peak_rss > 0, "peak RSS is the host's");
    }
    int ranks = 0; /* memory rows per case: every rank of every TP */
    for (int i = 0; i < g_suite.cases[0].n_tp; i++) ranks += g_suite.cases[0].tp[i];
    ck_assert_int_eq(device_rows, 2 * ranks);
}
END_TEST

/* The memory rows' peak RSS is the model's: a rank of this tiny model
 * holds tens of MiB, while the suite's start probe reads 256 MiB and the
 * runs' probe 128 MiB per rank, which the peak held before runner.c reset
 * it (ryz_mem_peak_reset) at each model's opening. Skipped where the
 * kernel cannot reset the peak, and under ASan, whose quarantine keeps
 * freed buffers resident. */
START_TEST(test_peak_rss_is_the_models) {
    if (g_rank != 0) return;
#ifdef __SANITIZE_ADDRESS__
    printf("test_peak_rss_is_the_models: skipped under ASan (freed buffers stay resident)\n");
    return;
#endif
    if (ryz_mem_peak_reset() != RYZ_OK) {
        printf("test_peak_rss_is_the_models: skipped: %s\n", ryz_last_error());
        return;
    }
    for (size_t i = 0; i < g_res.n_memory; i++) {
        const ryz_row_memory *m = &g_res.memory[i];
        ck_assert_msg(m->peak_rss > 0 && m->peak_rss < (96u << 20),
                      "%s tp %d rank %d: peak RSS %.1f MiB", m->case_name, m->tp, m->rank,
                      (double)m->peak_rss / 1048576);
    }
}
END_TEST

/* The host bandwidth probe says nothing of device memory: no roofline and
 * no read bandwidth in the device cases' timing rows. */
START_TEST(test_no_host_roofline_on_device) {
    if (g_rank != 0) return;
    for (size_t i = 0; i < g_res.n_timing; i++) {
        const ryz_row_timing *t = &g_res.timing[i];
        int dev = strcmp(t->case_name, "host") != 0;
        ck_assert_msg(dev == (t->read_bandwidth_gbs == 0), "%s tp %d %s: bandwidth %g",
                      t->case_name, t->tp, t->phase, t->read_bandwidth_gbs);
        if (dev) ck_assert(t->roofline_fraction == 0);
    }
}
END_TEST

/* The /samples of metric for timing row t's (case, tp), each asserted in
 * (lo, hi]; up to cap of them into v (NULL: none kept). Returns how many. */
static int row_samples(const ryz_row_timing *t, const char *metric, double lo, double hi,
                       double *v, int cap) {
    int n = 0;
    for (size_t j = 0; j < g_res.n_samples; j++) {
        const ryz_row_sample *s = &g_res.samples[j];
        if (s->tp != t->tp || strcmp(s->case_name, t->case_name) || strcmp(s->metric, metric))
            continue;
        ck_assert_msg(s->value > lo && s->value <= hi, "%s tp %d run %d: %s %g", s->case_name,
                      s->tp, s->iter, metric, s->value);
        if (v && n < cap) v[n] = s->value;
        n++;
    }
    return n;
}

/* Host-memory runs are probed one by one unless the ranks are
 * oversubscribed: one read_bandwidth_gbs sample (the slices read between
 * its decode steps) and one read_bandwidth_before_gbs sample (the probe
 * before it) per timed run, each > 0, and the timing rows' read bandwidth
 * is the median of the first. Device runs have none. */
START_TEST(test_runs_probed) {
    if (g_rank != 0) return;
    int probed = 0;
    for (size_t i = 0; i < g_res.n_timing; i++) {
        const ryz_row_timing *t = &g_res.timing[i];
        double v[64];
        int n = row_samples(t, "read_bandwidth_gbs", 0, INFINITY, v, 64);
        double b[64];
        int before = row_samples(t, "read_bandwidth_before_gbs", 0, INFINITY, b, 64), same = 0;
        for (int j = 0; j < n && j < before && j < 64; j++) same += v[j] == b[j];
        ck_assert_msg(!n || same < n, "%s tp %d: the probes between steps are the probes before",
                      t->case_name, t->tp);
        int host = !strcmp(t->case_name, "host") && !g_res.meta.oversubscribed;
        ck_assert_msg(n == (host ? t->runs : 0) && before == n,
                      "%s tp %d: %d probes between steps, %d before, for %d runs", t->case_name,
                      t->tp, n, before, t->runs);
        if (!n) continue;
        ryz_stats q;
        ryz_stats_compute(v, (size_t)n, &q);
        ck_assert_msg(fabs(q.median - t->read_bandwidth_gbs) <= 1e-9 * q.median,
                      "%s tp %d %s: row %g GB/s, probes' median %g", t->case_name, t->tp,
                      t->phase, t->read_bandwidth_gbs, q.median);
        probed++;
    }
    if (!g_res.meta.oversubscribed) ck_assert_int_gt(probed, 0);
}
END_TEST

/* With peers, each probe before a run also reads in lock-step: one
 * lockstep_efficiency sample per timed run of a sharded host case, each
 * in (0, 1]; none at TP=1 (nothing to keep in step) or on the device. */
START_TEST(test_runs_lockstep_probed) {
    if (g_rank != 0) return;
    for (size_t i = 0; i < g_res.n_timing; i++) {
        const ryz_row_timing *t = &g_res.timing[i];
        if (strcmp(t->phase, "decode")) continue;
        int n = row_samples(t, "lockstep_efficiency", 0, 1, NULL, 0);
        int want = !strcmp(t->case_name, "host") && t->tp > 1 && !g_res.meta.oversubscribed;
        ck_assert_msg(n == (want ? t->runs : 0), "%s tp %d: %d lock-step probes for %d runs",
                      t->case_name, t->tp, n, t->runs);
    }
}
END_TEST

/* What the host's neighbours took during each timed run, from rank 0's
 * host: at most one host_steal_fraction and one host_other_load sample per
 * run (none where a run was too short to tell), each a share in [0, 1].
 * This fixture's runs are mostly too short to tell; test_cli's busy-machine
 * tests hold a long run's figures. */
START_TEST(test_runs_host_load) {
    if (g_rank != 0) return;
    for (size_t i = 0; i < g_res.n_timing; i++) {
        const ryz_row_timing *t = &g_res.timing[i];
        if (strcmp(t->phase, "decode")) continue;
        int steal = row_samples(t, "host_steal_fraction", -1e-12, 1, NULL, 0);
        int other = row_samples(t, "host_other_load", -1e-12, 1, NULL, 0);
        ck_assert_msg(steal == other && other <= t->runs, "%s tp %d: %d steal, %d other for %d "
                      "runs", t->case_name, t->tp, steal, other, t->runs);
    }
}
END_TEST

/* Collectives of the TP groups: measured in situ and across ranks on both
 * comms; the isolated reference only where the harness's host buffers are
 * what the model used (mpi), not on the device comm. */
START_TEST(test_collectives_per_comm) {
    if (g_rank != 0 || g_k == 1) return;
    int rows[2] = {0, 0};
    for (size_t i = 0; i < g_res.n_collectives; i++) {
        const ryz_row_collective *c = &g_res.collectives[i];
        if (!strcmp(c->case_name, "host")) continue;
        int nccl = !strcmp(c->case_name, "device-nccl");
        rows[nccl]++;
        ck_assert_msg(c->p50_us > 0 && c->p50_last_us > 0, "%s %s: in situ %g, last %g",
                      c->case_name, c->op, c->p50_us, c->p50_last_us);
        ck_assert_msg(nccl == (c->isolated_p50_us == 0), "%s %s of %llu bytes: isolated %g",
                      c->case_name, c->op, (unsigned long long)c->bytes, c->isolated_p50_us);
    }
    ck_assert_msg(rows[0] > 0 && rows[1] > 0, "collective rows: mpi %d, nccl %d", rows[0],
                  rows[1]);
}
END_TEST

/* The machine attributes name every backend + comm pair of the suite, and
 * the device is not "cpu" once a case runs on cuda. */
START_TEST(test_meta_backends) {
    ck_assert_str_eq(g_res.meta.backends, "cpu+mpi,cuda+mpi,cuda+nccl");
    ck_assert_str_ne(g_res.meta.device, "cpu");
}
END_TEST

/* A comm = nccl case without an nccl communicator is refused on every
 * rank before anything runs. */
START_TEST(test_nccl_case_needs_comm) {
    ryz_suite s = {0};
    ck_assert_int_eq(ryz_suite_parse("[case n]\nmodel = synthetic:tiny\nprompt = 1 2\n"
                                     "backend = cuda\ncomm = nccl\n",
                                     "n.ini", &s),
                     RYZ_OK);
    ryz_results res;
    ryz_results_init(&res);
    ryz_run_opts o = {.quiet = 1, .backend_init = device_backend};
    int failed = 0;
    ck_assert_int_eq(ryz_suite_run(&s, g_world, &o, &res, &failed), RYZ_EINVAL);
    ck_assert_msg(strstr(ryz_last_error(), "comm = nccl but the run has no nccl communicator"),
                  "%s", ryz_last_error());
    ryz_results_free(&res);
    ryz_suite_free(&s);
}
END_TEST

/* A prompt_text case runs world rank 0's ids on every rank: the ranks past
 * 0 are handed other ids of the same length, as another tokenizer file on
 * their node would give them, and the case still does exactly what the
 * `prompt = 1 268 276` case beside it does (the fixture tokenizer's
 * "hello world"), at every TP: the same errors, agreement and greedy path.
 * Assertions only after the run (a rank that stopped early would leave the
 * others in a collective). */
START_TEST(test_text_prompt_runs_rank0_ids) {
    const char *tps = g_k >= 4 ? "1 2 4" : g_k == 2 ? "1 2" : "1";
    char dir[256], tok[512], text[2048];
    test_mkdtemp(dir, sizeof dir, "mpi-text");
    snprintf(tok, sizeof tok, "%s/tokenizer.bin", dir);
    test_write_hello_tokenizer(tok);
    snprintf(text, sizeof text,
             "[suite]\nname = text\nrepeat = 1\nwarmup = 0\n"
             "[case ids]\nmodel = synthetic:tiny,vocab=%d\nprompt = 1 268 276\nnew_tokens = 4\n"
             "tp = %s\n"
             "[case text]\nmodel = synthetic:tiny,vocab=%d\nprompt_text = hello world\n"
             "tokenizer = %s\nnew_tokens = 4\ntp = %s\n",
             TEST_HELLO_VOCAB, tps, TEST_HELLO_VOCAB, tok, tps);
    ryz_suite s;
    ryz_status parsed = ryz_suite_parse(text, "text.ini", &s);
    ck_assert_msg(parsed == RYZ_OK && ryz_suite_validate(&s) == RYZ_OK, "%s", ryz_last_error());
    int encoded = s.cases[1].prompt_len;
    if (g_rank > 0)
        s.cases[1].prompt[1] = 5, s.cases[1].prompt[2] = 6;
    ryz_results res;
    ryz_results_init(&res);
    ryz_run_opts o = {.quiet = 1};
    int failed = -1;
    ryz_status st = ryz_suite_run(&s, g_world, &o, &res, &failed);
    test_rm_tree(dir);
    ck_assert_int_eq(encoded, 3);
    ck_assert_msg(st == RYZ_OK && failed == 0, "rank %d: status %d, %d failed: %s", g_rank, st,
                  failed, ryz_last_error());
    for (int i = 0; g_rank == 0 && i < s.cases[0].n_tp; i++) {
        int tp = s.cases[0].tp[i];
        const ryz_row_correctness *a = NULL, *b = NULL;
        for (size_t j = 0; j < res.n_correctness; j++) {
            const ryz_row_correctness *r = &res.correctness[j];
            if (r->tp == tp && !strcmp(r->case_name, "ids"))
                a = r;
            if (r->tp == tp && !strcmp(r->case_name, "text"))
                b = r;
        }
        ck_assert_msg(a && b, "tp %d: no correctness rows", tp);
        ck_assert_msg(a->positions == b->positions && a->max_abs == b->max_abs &&
                          a->min_cos == b->min_cos && a->top1_agree == b->top1_agree &&
                          a->greedy_divergence == b->greedy_divergence && b->pass,
                      "tp %d: text case positions %d max_abs %g top1 %d, ids case %d %g %d", tp,
                      b->positions, b->max_abs, b->top1_agree, a->positions, a->max_abs,
                      a->top1_agree);
    }
    ryz_results_free(&res);
    ryz_suite_free(&s);
}
END_TEST

/* A prompt_text case that was never validated has no ids to run, nor a
 * suite with repeat past RYZ_SUITE_MAX_REPEAT a place for its samples:
 * both refused on every rank before anything runs. */
START_TEST(test_text_prompt_needs_validate) {
    ryz_suite s = {0};
    ck_assert_int_eq(ryz_suite_parse("[case t]\nmodel = synthetic:tiny\nprompt_text = hi\n"
                                     "tokenizer = t.bin\n",
                                     "t.ini", &s),
                     RYZ_OK);
    ryz_results res;
    ryz_results_init(&res);
    ryz_run_opts o = {.quiet = 1};
    int failed = 0;
    ck_assert_int_eq(ryz_suite_run(&s, g_world, &o, &res, &failed), RYZ_EINVAL);
    ck_assert_msg(strstr(ryz_last_error(), "case t: prompt_text not encoded"), "%s",
                  ryz_last_error());
    ryz_results_free(&res);
    ryz_suite_free(&s);
    /* nor a repeat past the samples kept, which validation would refuse */
    ck_assert_int_eq(ryz_suite_parse("[suite]\nrepeat = 65\n[case r]\nmodel = synthetic:tiny\n"
                                     "prompt = 1 2\n",
                                     "r.ini", &s),
                     RYZ_OK);
    ryz_results_init(&res);
    ck_assert_int_eq(ryz_suite_run(&s, g_world, &o, &res, &failed), RYZ_EINVAL);
    ck_assert_msg(strstr(ryz_last_error(), "repeat 65 above the 64 timed runs"), "%s",
                  ryz_last_error());
    ryz_results_free(&res);
    ryz_suite_free(&s);
}
END_TEST

static Suite *runner_suite(void) {
    Suite *s = suite_create("suite_runner_device");
    TCase *tc = tcase_create("shadow");
    tcase_set_timeout(tc, 240);
    tcase_add_unchecked_fixture(tc, run_suite, free_suite);
    tcase_add_test(tc, test_run_passes);
    tcase_add_test(tc, test_same_errors_as_cpu);
    tcase_add_test(tc, test_memory_is_backend_bytes);
    tcase_add_test(tc, test_peak_rss_is_the_models);
    tcase_add_test(tc, test_no_host_roofline_on_device);
    tcase_add_test(tc, test_runs_probed);
    tcase_add_test(tc, test_runs_lockstep_probed);
    tcase_add_test(tc, test_runs_host_load);
    tcase_add_test(tc, test_collectives_per_comm);
    tcase_add_test(tc, test_meta_backends);
    tcase_add_test(tc, test_nccl_case_needs_comm);
    suite_add_tcase(s, tc);
    tc = tcase_create("text");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, test_text_prompt_runs_rank0_ids);
    tcase_add_test(tc, test_text_prompt_needs_validate);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    if (test_mpi_setup(&argc, &argv, "test_mpi_suite", &g_world)) return EXIT_FAILURE;
    g_rank = ryz_comm_rank(g_world);
    g_k = ryz_comm_size(g_world);
    int code = test_run_mpi_suite(runner_suite(), g_world, "test_mpi_suite", NULL);
    ryz_comm_free(g_world);
    ryz_mpi_finalize();
    return code;
}
