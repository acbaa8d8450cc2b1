/* Tests of results (src/results): the in-memory tables, the HDF5 file's
 * round trip, schema checks, atomic writing under failure and kill, the
 * writability check and the text printout. Every test works in its own
 * temporary directory. */
#define _POSIX_C_SOURCE 200809L

#include "ryz/results.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define PATH_LEN 512
#define BIG_SAMPLES 200000 /* rows of the table the killed writers write (~22 MB) */

static char tmpdir[256]; /* shorter than PATH_LEN: room for names */

/* ---- helpers ---- */

/* Writes TMPDIR/name into buf. */
static char *in_tmp(char *buf, const char *name) {
    snprintf(buf, PATH_LEN, "%s/%s", tmpdir, name);
    return buf;
}

static void setup(void) {
    test_mkdtemp(tmpdir, sizeof tmpdir, "results");
}

static void teardown(void) {
    test_rm_tree(tmpdir);
}

/* The number of entries of directory `dir` (without . and ..). */
static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* 1 when `path` exists. */
static int exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Asserts that ryz_last_error() contains `needle`. */
static void assert_error_has(const char *needle) {
    ck_assert_msg(strstr(ryz_last_error(), needle), "'%s' not in last error '%s'", needle,
                  ryz_last_error());
}

/* Fills dst[0..size-1) with a repeating pattern starting at `c`: a name of
 * the maximum length a field holds. */
static void max_name(char *dst, size_t size, char c) {
    for (size_t i = 0; i + 1 < size; i++)
        dst[i] = (char)(c + (char)(i % 26));
    dst[size - 1] = '\0';
}

/* Sets every root attribute of r to a distinctive value. */
static void fill_meta(ryz_results *r) {
    ryz_results_meta *m = &r->meta;
    ck_assert_int_eq(ryz_results_set_str(&m->tool_version, "ryz 0.3.1-test"), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&m->git_rev, "abc1234-dirty"), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&m->time_utc, "2024-05-06T07:08:09Z"), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&m->hosts, "node-a,node-b"), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&m->backends, "cpu,cuda"), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&m->device, "NVIDIA H100 80GB HBM3"), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&m->cpu_model, "AMD EPYC 9654 96-Core"), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&m->blas, "OpenBLAS 0.3.21 DYNAMIC_ARCH Zen"), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&m->suite_name, "quick"), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&m->kind, RYZ_KIND_SUITE), RYZ_OK);
    ck_assert_int_eq(
        ryz_results_set_str(&m->suite_text, "[suite]\nname = quick\n\n[case a]\ntp = 1 2\n"),
        RYZ_OK);
    m->world_size = 4;
    m->cores = 192;
    m->threads_per_rank = 48;
    m->oversubscribed = 1;
    m->interrupted = -5;
    m->read_bandwidth_gbs = 412.125;
}

/* Appends `n` distinctive rows to each table of r (n samples too); the
 * first row of each has maximum-length strings. */
static void fill_tables(ryz_results *r, int n, int n_samples) {
    for (int k = 0; k < n; k++) {
        ryz_row_correctness c = {.tp = 1 << k,
                                 .batch = -7 - k,
                                 .positions = INT32_MAX - k,
                                 .max_abs = 1.0 / 3 + k,
                                 .max_rel = 1e-300 * (k + 1),
                                 .min_cos = k ? -0.0 : INFINITY,
                                 .top1_agree = INT32_MIN + k,
                                 .greedy_divergence = -1 + k,
                                 .greedy_class = k % 3,
                                 .pass = k % 2};
        ryz_row_timing t = {0};
        ryz_row_collective l = {0};
        ryz_row_memory m = {0};
        ryz_row_acceptance a = {.tp = 2 + k,
                                .measured = k ? 0.5 * k : INFINITY,
                                .threshold = 1.5 + k,
                                .pass = k % 2,
                                .skipped = k == 2};
        if (k == 0) {
            max_name(c.case_name, sizeof c.case_name, 'A');
            max_name(t.case_name, sizeof t.case_name, 'a');
            max_name(t.phase, sizeof t.phase, 'p');
            max_name(l.case_name, sizeof l.case_name, 'B');
            max_name(l.op, sizeof l.op, 'o');
            max_name(m.case_name, sizeof m.case_name, 'C');
            max_name(a.case_name, sizeof a.case_name, 'D');
            max_name(a.check, sizeof a.check, 'c');
            max_name(a.op, sizeof a.op, '<');
            max_name(a.note, sizeof a.note, 'n');
        } else {
            snprintf(c.case_name, sizeof c.case_name, "corr-%d", k);
            snprintf(t.case_name, sizeof t.case_name, "tim-%d", k);
            snprintf(t.phase, sizeof t.phase, k % 2 ? "prefill" : "decode");
            snprintf(l.case_name, sizeof l.case_name, "comm");
            snprintf(l.op, sizeof l.op, "all_reduce");
            snprintf(m.case_name, sizeof m.case_name, "mem-%d", k);
            snprintf(a.case_name, sizeof a.case_name, "acc-%d", k);
            snprintf(a.check, sizeof a.check, k % 2 ? "speedup" : "allreduce_p99_us");
            snprintf(a.op, sizeof a.op, k % 2 ? ">=" : "<=");
            snprintf(a.note, sizeof a.note, "note %d", k);
        }
        t.tp = 3 + k;
        t.runs = 11 * k;
        t.median_s = 0.1 + k, t.p10_s = 0.01 * k, t.p90_s = DBL_MAX / (k + 1);
        t.tokens_per_s = 1234.5 * k, t.ttft_s = 1e-9 + k, t.speedup = 1.75 + k;
        t.efficiency = 0.875 - k, t.comm_fraction = 0.0625 * k, t.roofline_fraction = -k;
        t.read_bandwidth_gbs = 31.25 + k;
        l.tp = 8 - k;
        l.bytes = UINT64_MAX - (uint64_t)k, l.count = (uint64_t)k << 40;
        l.p50_us = 5.5 + k, l.p99_us = 77.25 * k, l.mean_us = DBL_MIN * k;
        l.algbw_gbs = 12.5 + k, l.busbw_gbs = 21.875 + k;
        l.p50_last_us = 4.25 + k, l.wait_p50_us = 0.5 * k, l.isolated_p50_us = 3.75 + k;
        l.last_over_isolated = l.p50_last_us / l.isolated_p50_us;
        l.streamed_bytes = (9ull << 20) + (uint64_t)k, l.isolated_evict_p50_us = 6.125 + k;
        l.last_over_evict = l.p50_last_us / l.isolated_evict_p50_us;
        m.tp = 2 + k, m.rank = k;
        m.weights = 3ull << 30 | (uint64_t)k, m.kv_cache = 5ull << 20, m.scratch = 4096 + k;
        m.peak_rss = (uint64_t)1 << 63, m.mem_efficiency = 0.96875 - k;
        ck_assert_int_eq(ryz_results_add_correctness(r, &c), RYZ_OK);
        ck_assert_int_eq(ryz_results_add_timing(r, &t), RYZ_OK);
        ck_assert_int_eq(ryz_results_add_collective(r, &l), RYZ_OK);
        ck_assert_int_eq(ryz_results_add_memory(r, &m), RYZ_OK);
        ck_assert_int_eq(ryz_results_add_acceptance(r, &a), RYZ_OK);
    }
    for (int k = 0; k < n_samples; k++) {
        ryz_row_sample s = {.tp = k % 5, .iter = k, .value = 1.0 / (k + 1)};
        if (k == 0)
            max_name(s.case_name, sizeof s.case_name, 'S');
        else
            snprintf(s.case_name, sizeof s.case_name, "s%d", k % 7);
        if (k == 0)
            max_name(s.metric, sizeof s.metric, 'm');
        else
            snprintf(s.metric, sizeof s.metric, "all_reduce_us@%d", k);
        if (ryz_results_add_sample(r, &s) != RYZ_OK)
            ck_abort_msg("%s", ryz_last_error());
    }
}

/* Field comparisons for the row loops. They call Check only on failure:
 * a passing ck_assert costs a system call, too slow for 10^6 fields. */
#define EQ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)
#define EQ_INT(a, b, f)                                                                            \
    EQ_CHECK((a)->f == (b)->f, "row %zu %s: %lld, expected %lld", i, #f, (long long)(a)->f,        \
             (long long)(b)->f)
#define EQ_U64(a, b, f)                                                                            \
    EQ_CHECK((a)->f == (b)->f, "row %zu %s: %llu, expected %llu", i, #f,                           \
             (unsigned long long)(a)->f, (unsigned long long)(b)->f)
#define EQ_DBL(a, b, f)                                                                            \
    EQ_CHECK(!memcmp(&(a)->f, &(b)->f, sizeof(double)),                                            \
             "row %zu %s: %.17g, expected %.17g (bitwise)", i, #f, (a)->f, (b)->f)
#define EQ_STR(a, b, f)                                                                            \
    EQ_CHECK(!strcmp((a)->f, (b)->f), "row %zu %s: '%s', expected '%s'", i, #f, (a)->f, (b)->f)

/* Asserts that the root attributes are equal (NULL strings read as ""). */
static void assert_meta_equal(const ryz_results_meta *got, const ryz_results_meta *want) {
    const char *const g[] = {got->tool_version, got->git_rev,    got->time_utc,
                             got->hosts,        got->backends,   got->device,
                             got->cpu_model,    got->suite_name, got->suite_text,
                             got->blas,         got->kind};
    const char *const w[] = {want->tool_version, want->git_rev,    want->time_utc,
                             want->hosts,        want->backends,   want->device,
                             want->cpu_model,    want->suite_name, want->suite_text,
                             want->blas,         want->kind};
    for (size_t k = 0; k < sizeof g / sizeof g[0]; k++) {
        ck_assert_ptr_nonnull(g[k]);
        ck_assert_str_eq(g[k], w[k] ? w[k] : "");
    }
    size_t i = 0;
    EQ_INT(got, want, schema_version);
    EQ_INT(got, want, world_size);
    EQ_INT(got, want, cores);
    EQ_INT(got, want, threads_per_rank);
    EQ_INT(got, want, oversubscribed);
    EQ_INT(got, want, interrupted);
    EQ_DBL(got, want, read_bandwidth_gbs);
}

/* Asserts that every field of every row of every table is equal. */
static void assert_results_equal(const ryz_results *got, const ryz_results *want) {
    assert_meta_equal(&got->meta, &want->meta);
    ck_assert_uint_eq(got->n_correctness, want->n_correctness);
    ck_assert_uint_eq(got->n_timing, want->n_timing);
    ck_assert_uint_eq(got->n_collectives, want->n_collectives);
    ck_assert_uint_eq(got->n_memory, want->n_memory);
    ck_assert_uint_eq(got->n_samples, want->n_samples);
    ck_assert_uint_eq(got->n_acceptance, want->n_acceptance);
    for (size_t i = 0; i < got->n_correctness; i++) {
        const ryz_row_correctness *a = &got->correctness[i], *b = &want->correctness[i];
        EQ_STR(a, b, case_name);
        EQ_INT(a, b, tp);
        EQ_INT(a, b, batch);
        EQ_INT(a, b, positions);
        EQ_DBL(a, b, max_abs);
        EQ_DBL(a, b, max_rel);
        EQ_DBL(a, b, min_cos);
        EQ_INT(a, b, top1_agree);
        EQ_INT(a, b, greedy_divergence);
        EQ_INT(a, b, greedy_class);
        EQ_INT(a, b, pass);
    }
    for (size_t i = 0; i < got->n_timing; i++) {
        const ryz_row_timing *a = &got->timing[i], *b = &want->timing[i];
        EQ_STR(a, b, case_name);
        EQ_INT(a, b, tp);
        EQ_STR(a, b, phase);
        EQ_INT(a, b, runs);
        EQ_DBL(a, b, median_s);
        EQ_DBL(a, b, p10_s);
        EQ_DBL(a, b, p90_s);
        EQ_DBL(a, b, tokens_per_s);
        EQ_DBL(a, b, ttft_s);
        EQ_DBL(a, b, speedup);
        EQ_DBL(a, b, efficiency);
        EQ_DBL(a, b, comm_fraction);
        EQ_DBL(a, b, roofline_fraction);
        EQ_DBL(a, b, read_bandwidth_gbs);
    }
    for (size_t i = 0; i < got->n_collectives; i++) {
        const ryz_row_collective *a = &got->collectives[i], *b = &want->collectives[i];
        EQ_STR(a, b, case_name);
        EQ_INT(a, b, tp);
        EQ_STR(a, b, op);
        EQ_U64(a, b, bytes);
        EQ_U64(a, b, count);
        EQ_DBL(a, b, p50_us);
        EQ_DBL(a, b, p99_us);
        EQ_DBL(a, b, mean_us);
        EQ_DBL(a, b, algbw_gbs);
        EQ_DBL(a, b, busbw_gbs);
        EQ_DBL(a, b, p50_last_us);
        EQ_DBL(a, b, wait_p50_us);
        EQ_DBL(a, b, isolated_p50_us);
        EQ_DBL(a, b, last_over_isolated);
        EQ_U64(a, b, streamed_bytes);
        EQ_DBL(a, b, isolated_evict_p50_us);
        EQ_DBL(a, b, last_over_evict);
    }
    for (size_t i = 0; i < got->n_memory; i++) {
        const ryz_row_memory *a = &got->memory[i], *b = &want->memory[i];
        EQ_STR(a, b, case_name);
        EQ_INT(a, b, tp);
        EQ_INT(a, b, rank);
        EQ_U64(a, b, weights);
        EQ_U64(a, b, kv_cache);
        EQ_U64(a, b, scratch);
        EQ_U64(a, b, peak_rss);
        EQ_DBL(a, b, mem_efficiency);
    }
    for (size_t i = 0; i < got->n_samples; i++) {
        const ryz_row_sample *a = &got->samples[i], *b = &want->samples[i];
        EQ_STR(a, b, case_name);
        EQ_INT(a, b, tp);
        EQ_STR(a, b, metric);
        EQ_INT(a, b, iter);
        EQ_DBL(a, b, value);
    }
    for (size_t i = 0; i < got->n_acceptance; i++) {
        const ryz_row_acceptance *a = &got->acceptance[i], *b = &want->acceptance[i];
        EQ_STR(a, b, case_name);
        EQ_INT(a, b, tp);
        EQ_STR(a, b, check);
        EQ_DBL(a, b, measured);
        EQ_STR(a, b, op);
        EQ_DBL(a, b, threshold);
        EQ_INT(a, b, pass);
        EQ_INT(a, b, skipped);
        EQ_STR(a, b, note);
    }
}

/* Writes `r` to `path`, reads it back and asserts both are equal. */
static void assert_round_trip(const ryz_results *r, const char *path) {
    ryz_results back;
    ck_assert_msg(ryz_results_write(r, path) == RYZ_OK, "write: %s", ryz_last_error());
    ck_assert_msg(ryz_results_read(path, &back) == RYZ_OK, "read: %s", ryz_last_error());
    assert_results_equal(&back, r);
    ryz_results_free(&back);
}

/* Writes a small, fully filled results file to `path`. */
static void write_sample_file(const char *path) {
    ryz_results r;
    ryz_results_init(&r);
    fill_meta(&r);
    fill_tables(&r, 3, 4);
    ck_assert_msg(ryz_results_write(&r, path) == RYZ_OK, "write: %s", ryz_last_error());
    ryz_results_free(&r);
}

/* ---- in-memory tables ---- */

/* One (case, tp)'s memory rows summed up: largest rank with and without
 * scratch, the lowest efficiency; other cases and TP degrees ignored. */
START_TEST(test_memory_summary) {
    ryz_results r;
    ryz_results_init(&r);
    ryz_row_memory rows[] = {
        {.case_name = "a", .tp = 2, .rank = 0, .weights = 100, .kv_cache = 20, .scratch = 5,
         .mem_efficiency = 0.9},
        {.case_name = "a", .tp = 2, .rank = 1, .weights = 90, .kv_cache = 20, .scratch = 50,
         .mem_efficiency = 0.8},
        {.case_name = "a", .tp = 4, .rank = 0, .weights = 1000, .mem_efficiency = 0.1},
        {.case_name = "b", .tp = 2, .rank = 0, .weights = 1000, .mem_efficiency = 0.1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        ck_assert_int_eq(ryz_results_add_memory(&r, &rows[i]), RYZ_OK);
    ryz_memory_summary m;
    ryz_results_memory_of(&r, "a", 2, &m);
    ck_assert_int_eq(m.ranks, 2);
    ck_assert(m.largest_state == 120 && m.largest_total == 160 && m.efficiency == 0.8);
    ryz_results_memory_of(&r, "c", 2, &m);
    ck_assert(m.ranks == 0 && m.largest_state == 0 && isnan(m.efficiency));
    ryz_results_free(&r);
}
END_TEST

START_TEST(test_init_add_free) {
    ryz_results r;
    memset(&r, 0, sizeof r);
    ryz_results_free(&r); /* zeroed struct */
    ryz_results_init(&r);
    ck_assert_int_eq(r.meta.schema_version, RYZ_RESULTS_SCHEMA);
    ck_assert_uint_eq(r.n_samples, 0);
    fill_tables(&r, 2, 1000);
    ck_assert_uint_eq(r.n_correctness, 2);
    ck_assert_uint_eq(r.n_samples, 1000);
    ck_assert_uint_ge(r.cap_samples, 1000);
    ck_assert_uint_lt(r.cap_samples, 2000); /* doubling, not per-row growth or waste */
    for (size_t i = 1; i < r.n_samples; i++) {
        ck_assert_int_eq(r.samples[i].iter, (int)i);
        ck_assert(r.samples[i].value == 1.0 / (double)(i + 1));
    }
    ck_assert_uint_eq(strlen(r.correctness[0].case_name), RYZ_NAME_LEN - 1);
    ck_assert_int_eq(ryz_results_set_str(&r.meta.hosts, "a"), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&r.meta.hosts, "b,c"), RYZ_OK); /* replaces */
    ck_assert_str_eq(r.meta.hosts, "b,c");
    ck_assert_int_eq(ryz_results_set_str(&r.meta.device, NULL), RYZ_OK);
    ck_assert_ptr_null(r.meta.device);
    ryz_results_free(&r);
    ck_assert_ptr_null(r.samples);
    ck_assert_ptr_null(r.meta.hosts);
    ck_assert_uint_eq(r.n_samples + r.cap_samples, 0);
    ryz_results_free(&r); /* twice */
}
END_TEST

/* ---- HDF5 round trip and schema ---- */

START_TEST(test_round_trip_full) {
    char path[PATH_LEN];
    ryz_results r;
    ryz_results_init(&r);
    fill_meta(&r);
    fill_tables(&r, 5, 5000);
    assert_round_trip(&r, in_tmp(path, "full.h5"));
    ck_assert_int_eq(count_entries(tmpdir), 1); /* no temporary left */
    /* Overwriting an existing file replaces it. */
    fill_tables(&r, 1, 1);
    assert_round_trip(&r, path);
    ryz_results_free(&r);
}
END_TEST

START_TEST(test_round_trip_empty_tables) {
    char path[PATH_LEN];
    ryz_results r;
    ryz_results_init(&r); /* every string NULL, every table empty */
    assert_round_trip(&r, in_tmp(path, "empty.h5"));
    fill_meta(&r);
    ryz_row_memory m = {.case_name = "only", .tp = 1, .weights = 42};
    ck_assert_int_eq(ryz_results_add_memory(&r, &m), RYZ_OK);
    assert_round_trip(&r, path); /* one table with a row, five empty */
    ryz_results_free(&r);
}
END_TEST

/* Opens `path` with HDF5 directly, asserting success. */
static hid_t open_h5(const char *path, unsigned flags) {
    hid_t f = H5Fopen(path, flags, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "H5Fopen %s", path);
    return f;
}

START_TEST(test_file_layout) {
    char path[PATH_LEN];
    write_sample_file(in_tmp(path, "layout.h5"));
    hid_t f = open_h5(path, H5F_ACC_RDONLY);
    ck_assert_int_gt(H5Aexists(f, "schema_version"), 0);
    hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
    int32_t v = 0;
    ck_assert_int_ge(H5Aread(a, H5T_NATIVE_INT32, &v), 0);
    ck_assert_int_eq(v, RYZ_RESULTS_SCHEMA);
    H5Aclose(a);
    const char *attrs[] = {
        "tool_version", "git_rev",          "time_utc",       "hosts",       "backends",
        "device",       "cpu_model",        "suite_name",     "suite_text",  "world_size",
        "cores",        "threads_per_rank", "oversubscribed", "interrupted", "read_bandwidth_gbs",
        "blas",         "kind"};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++)
        ck_assert_msg(H5Aexists(f, attrs[i]) > 0, "no attribute %s", attrs[i]);
    const char *dsets[] = {"/correctness", "/timing",  "/collectives",
                           "/memory",      "/samples", "/acceptance"};
    const int members[] = {11, 14, 17, 8, 5, 9}, rows[] = {3, 3, 3, 3, 4, 3};
    for (int i = 0; i < 6; i++) {
        hid_t d = H5Dopen2(f, dsets[i], H5P_DEFAULT);
        ck_assert_msg(d >= 0, "no dataset %s", dsets[i]);
        hid_t t = H5Dget_type(d), s = H5Dget_space(d);
        hsize_t n = 0;
        ck_assert_int_eq(H5Tget_class(t), H5T_COMPOUND);
        ck_assert_int_eq(H5Tget_nmembers(t), members[i]);
        ck_assert_int_ge(H5Tget_member_index(t, "case_name"), 0);
        ck_assert_int_eq(H5Sget_simple_extent_ndims(s), 1);
        H5Sget_simple_extent_dims(s, &n, NULL);
        ck_assert_int_eq((int)n, rows[i]);
        H5Sclose(s), H5Tclose(t), H5Dclose(d);
    }
    H5Fclose(f);
}
END_TEST

/* Sets the schema_version attribute of the file at path. */
static void set_version(const char *path, int32_t v) {
    hid_t f = open_h5(path, H5F_ACC_RDWR);
    hid_t a = H5Aopen(f, "schema_version", H5P_DEFAULT);
    ck_assert_int_ge(H5Awrite(a, H5T_NATIVE_INT32, &v), 0);
    H5Aclose(a), H5Fclose(f);
}

START_TEST(test_schema_version_refused) {
    char path[PATH_LEN], want[96];
    write_sample_file(in_tmp(path, "v3.h5"));
    for (int32_t v = 0; v <= RYZ_RESULTS_SCHEMA + 1; v += RYZ_RESULTS_SCHEMA + 1) {
        set_version(path, v);
        ryz_results back;
        ck_assert_int_eq(ryz_results_read(path, &back), RYZ_EINVAL);
        assert_error_has(path);
        snprintf(want, sizeof want, "schema version %d, this build reads %d to %d", (int)v,
                 RYZ_RESULTS_SCHEMA_OLDEST, RYZ_RESULTS_SCHEMA);
        assert_error_has(want);
        ck_assert_ptr_null(back.correctness); /* nothing half-read is returned */
        ck_assert_ptr_null(back.meta.tool_version);
        ryz_results_free(&back);
    }
}
END_TEST

/* Reads the fixture at path into *r, which must say schema `version`. */
static void read_fixture(const char *path, int32_t version, ryz_results *r) {
    ck_assert_msg(ryz_results_read(path, r) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_int_eq(r->meta.schema_version, version);
}

/* read_fixture of a file before schema 3 with collectives, and checks
 * that the schema 3 columns read as 0, the schema 4 and 5 attributes as
 * NULL, the schema 5 table as empty. */
static void read_old_fixture(const char *path, int32_t version, ryz_results *r) {
    read_fixture(path, version, r);
    ck_assert_ptr_null(r->meta.blas);
    ck_assert_ptr_null(r->meta.kind);
    ck_assert_uint_eq(r->n_acceptance, 0);
    ck_assert_uint_gt(r->n_collectives, 0);
    for (size_t i = 0; i < r->n_collectives; i++) {
        const ryz_row_collective *c = &r->collectives[i];
        ck_assert(c->p50_us > 0 && c->count > 0 && c->streamed_bytes == 0);
        ck_assert(c->isolated_evict_p50_us == 0 && c->last_over_evict == 0);
    }
}

/* tests/data/results-schema1.h5 was written by the schema 1 writer (git
 * f3728c5: `ryz suite suites/scaling-110m.ini` on two ranks, before the
 * schema 2 columns): it reads, with those columns 0. */
START_TEST(test_schema1_file_reads) {
    ryz_results r;
    read_old_fixture("tests/data/results-schema1.h5", 1, &r);
    ck_assert_uint_gt(r.n_timing, 0);
    for (size_t i = 0; i < r.n_timing; i++) {
        ck_assert(r.timing[i].median_s > 0);
        ck_assert(r.timing[i].read_bandwidth_gbs == 0);
    }
    for (size_t i = 0; i < r.n_collectives; i++) {
        const ryz_row_collective *c = &r.collectives[i];
        ck_assert(c->p50_last_us == 0 && c->wait_p50_us == 0);
        ck_assert(c->isolated_p50_us == 0 && c->last_over_isolated == 0);
    }
    ryz_results_free(&r);
}
END_TEST

/* A version 2 file (the suite's, written by the version 2 writer at
 * 5c872d5): its last-arriver and isolated columns read, the schema 3 ones
 * as 0. */
START_TEST(test_schema2_file_reads) {
    ryz_results r;
    read_old_fixture("tests/data/results-schema2.h5", 2, &r);
    for (size_t i = 0; i < r.n_collectives; i++) {
        const ryz_row_collective *c = &r.collectives[i];
        ck_assert(c->p50_last_us > 0 && c->isolated_p50_us > 0 && c->last_over_isolated > 0);
    }
    ryz_results_free(&r);
}
END_TEST

/* What ryz_results_print writes for r (malloc'd). */
static char *printout(const ryz_results *r) {
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    ck_assert_ptr_nonnull(out);
    ryz_results_print(r, out);
    fclose(out);
    return text;
}

/* A version 3 file (`ryz suite suites/quick.ini` on two ranks, written by
 * the version 3 writer at b387dea): its collectives' schema 3 columns
 * read, and the BLAS it ran, which it did not record, reads as NULL. */
START_TEST(test_schema3_file_reads) {
    ryz_results r;
    read_fixture("tests/data/results-schema3.h5", 3, &r);
    ck_assert_ptr_null(r.meta.blas);
    ck_assert_str_eq(r.meta.suite_name, "quick");
    ck_assert_uint_gt(r.n_collectives, 0);
    for (size_t i = 0; i < r.n_collectives; i++)
        ck_assert(r.collectives[i].streamed_bytes > 0 && r.collectives[i].p50_us > 0);
    char *text = printout(&r);
    ck_assert_msg(strstr(text, "\nblas: (not recorded: added in schema 4)\n"), "%s", text);
    free(text);
    ryz_results_free(&r);
}
END_TEST

/* A version 4 file (`ryz suite` of a tiny two-case-TP suite with a failed
 * [acceptance], written by the version 4 writer at 218129e): it reads,
 * with no /acceptance rows (that writer kept none) and no kind, which
 * ryz_results_kind then tells from the suite name; the printout says
 * both were not recorded. */
START_TEST(test_schema4_file_reads) {
    ryz_results r;
    read_fixture("tests/data/results-schema4.h5", 4, &r);
    ck_assert_ptr_nonnull(r.meta.blas);
    ck_assert_ptr_null(r.meta.kind);
    ck_assert_uint_eq(r.n_acceptance, 0);
    ck_assert_uint_gt(r.n_correctness, 0);
    ck_assert_str_eq(ryz_results_kind(&r.meta), RYZ_KIND_SUITE);
    char *text = printout(&r);
    ck_assert_msg(strstr(text, "\nkind: (not recorded: added in schema 5)\n"), "%s", text);
    ck_assert_msg(strstr(text, "\n/acceptance: 0 rows (not recorded: added in schema 5)\n"),
                  "%s", text);
    free(text);
    ryz_results_free(&r);
}
END_TEST

/* A version 5 file (the same suite with min_bandwidth_scaling too,
 * written by the version 5 writer at f349cd2): its /acceptance notes were
 * 255 characters at most, and read whole into the longer field; it has no
 * host-load samples (they came with schema 6). */
START_TEST(test_schema5_file_reads) {
    ryz_results r;
    read_fixture("tests/data/results-schema5.h5", 5, &r);
    ck_assert_str_eq(r.meta.kind, RYZ_KIND_SUITE);
    ck_assert_uint_eq(r.n_acceptance, 6);
    int scaling = 0;
    for (size_t i = 0; i < r.n_acceptance; i++) {
        const ryz_row_acceptance *a = &r.acceptance[i];
        if (strcmp(a->check, "bandwidth_scaling")) continue;
        scaling++;
        ck_assert_msg(!strncmp(a->note, "run by run: ", 12) && strstr(a->note, "host lock-step") &&
                          a->note[strlen(a->note) - 1] == ')', "%s", a->note);
    }
    ck_assert_int_eq(scaling, 1);
    for (size_t i = 0; i < r.n_samples; i++)
        ck_assert_msg(strncmp(r.samples[i].metric, "host_", 5), "%s", r.samples[i].metric);
    ryz_results_free(&r);
}
END_TEST

/* The kind of a file: as recorded; before schema 5, from the names `ryz
 * comm` and `ryz bench` gave their files; a recorded kind wins over the
 * name (a suite named "bench" is a suite). */
START_TEST(test_kind) {
    ryz_results r;
    ryz_results_init(&r);
    ck_assert_str_eq(ryz_results_kind(&r.meta), RYZ_KIND_SUITE);
    /* Before schema 5: the name with the text that command writes; a
     * user's suite of that name stays a suite. */
    const char *names[] = {"comm", "bench", "quick", "bench", "comm"};
    const char *texts[] = {"ryz comm -e 4K -o c.h5",
                           "[case bench]\nmodel = synthetic:tiny\nwork = --prompt-len 8\n",
                           "[case a]\nmodel = synthetic:tiny\n",
                           "[suite]\nname = bench\n[case a]\nmodel = synthetic:tiny\n",
                           "[case a]\nmodel = synthetic:tiny\n"};
    const char *kinds[] = {RYZ_KIND_COMM, RYZ_KIND_BENCH, RYZ_KIND_SUITE, RYZ_KIND_SUITE,
                           RYZ_KIND_SUITE};
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(ryz_results_set_str(&r.meta.suite_name, names[i]), RYZ_OK);
        ck_assert_int_eq(ryz_results_set_str(&r.meta.suite_text, texts[i]), RYZ_OK);
        ck_assert_msg(!strcmp(ryz_results_kind(&r.meta), kinds[i]), "%s / %s: %s", names[i],
                      texts[i], ryz_results_kind(&r.meta));
    }
    ck_assert_int_eq(ryz_results_set_str(&r.meta.suite_name, "bench"), RYZ_OK);
    ck_assert_int_eq(ryz_results_set_str(&r.meta.kind, RYZ_KIND_SUITE), RYZ_OK);
    ck_assert_str_eq(ryz_results_kind(&r.meta), RYZ_KIND_SUITE);
    ryz_results_free(&r);
}
END_TEST

/* A copy of the fixture `src` in TMPDIR/name that claims schema `version`
 * must be refused for lacking that version's first new column. */
static void expect_claim_refused(const char *src, const char *name, int32_t version,
                                 const char *missing) {
    char path[PATH_LEN];
    ryz_results r;
    size_t len = 0;
    char *bytes = test_slurp(src, &len);
    FILE *f = fopen(in_tmp(path, name), "wb");
    ck_assert_ptr_nonnull(bytes);
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, len, f), len);
    fclose(f);
    free(bytes);
    set_version(path, version);
    ck_assert_int_eq(ryz_results_read(path, &r), RYZ_EINVAL);
    assert_error_has(missing);
    ryz_results_free(&r);
}

/* A FIFO where a results file should be is refused at once: HDF5 would
 * wait on it for a writer. */
START_TEST(test_read_fifo) {
    char dir[256], fifo[256];
    ryz_results r;
    test_mkfifo(dir, fifo, sizeof fifo, "run.h5");
    ck_assert_int_eq(ryz_results_read(fifo, &r), RYZ_EIO);
    assert_error_has("not a regular file");
    ryz_results_free(&r);
    test_rmfifo(dir, fifo);
}
END_TEST

/* A file that claims schema 2 must have the schema 2 columns, one that
 * claims 3 the schema 3 ones, one that claims 4 the blas attribute, and
 * one that claims 5 the kind attribute and the /acceptance table. */
/* The sample file written as TMPDIR/name without `dataset` is refused,
 * the message holding `needle`. */
static void expect_refused_without(const char *name, const char *dataset, const char *needle) {
    char path[PATH_LEN];
    ryz_results back;
    write_sample_file(in_tmp(path, name));
    hid_t f = open_h5(path, H5F_ACC_RDWR);
    ck_assert_int_ge(H5Ldelete(f, dataset, H5P_DEFAULT), 0);
    H5Fclose(f);
    ck_assert_int_eq(ryz_results_read(path, &back), RYZ_EINVAL);
    assert_error_has(needle);
    ryz_results_free(&back);
}

START_TEST(test_claimed_schema_needs_its_columns) {
    expect_claim_refused("tests/data/results-schema1.h5", "v1-as-2.h5", 2,
                         "has no member read_bandwidth_gbs");
    expect_claim_refused("tests/data/results-schema2.h5", "v2-as-3.h5", 3,
                         "has no member streamed_bytes");
    expect_claim_refused("tests/data/results-schema3.h5", "v3-as-4.h5", 4,
                         "missing root attribute blas");
    expect_claim_refused("tests/data/results-schema4.h5", "v4-as-5.h5", 5,
                         "missing root attribute kind");
    expect_claim_refused("tests/data/results-schema5.h5", "v5-as-6.h5", 6,
                         "member note of /acceptance is not a string of the expected length");
    expect_refused_without("no-acceptance.h5", "/acceptance", "no dataset /acceptance");
}
END_TEST

START_TEST(test_malformed_files_refused) {
    char path[PATH_LEN];
    ryz_results back;
    expect_refused_without("bad.h5", "/timing", "/timing");

    write_sample_file(in_tmp(path, "bad.h5")); /* /memory replaced by a plain integer dataset */
    hid_t f = open_h5(path, H5F_ACC_RDWR);
    ck_assert_int_ge(H5Ldelete(f, "/memory", H5P_DEFAULT), 0);
    hsize_t n = 2;
    hid_t s = H5Screate_simple(1, &n, NULL);
    hid_t d = H5Dcreate2(f, "/memory", H5T_NATIVE_INT, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    H5Dclose(d), H5Sclose(s), H5Fclose(f);
    ck_assert_int_eq(ryz_results_read(path, &back), RYZ_EINVAL);
    assert_error_has("/memory");
    ryz_results_free(&back);

    FILE *fp = fopen(path, "w"); /* not HDF5 at all */
    fputs("hello\n", fp);
    fclose(fp);
    ck_assert_int_eq(ryz_results_read(path, &back), RYZ_EIO);
    assert_error_has(path);
    ck_assert_int_eq(ryz_results_read(in_tmp(path, "missing.h5"), &back), RYZ_EIO);
    assert_error_has("missing.h5");
    ryz_results_free(&back);
}
END_TEST

/* ---- atomic writing ---- */

START_TEST(test_write_missing_directory) {
    char path[PATH_LEN];
    ryz_results r;
    ryz_results_init(&r);
    fill_tables(&r, 2, 2);
    ck_assert_int_eq(ryz_results_write(&r, in_tmp(path, "nodir/out.h5")), RYZ_EIO);
    assert_error_has(path);
    ck_assert_int_eq(count_entries(tmpdir), 0); /* nothing created */
    ryz_results_free(&r);
}
END_TEST

START_TEST(test_write_rename_fails) {
    /* PATH is a non-empty directory: the temporary is written, the rename
     * fails, and the temporary must be gone afterwards. */
    char path[PATH_LEN], inner[PATH_LEN];
    ryz_results r;
    ryz_results_init(&r);
    fill_tables(&r, 2, 2);
    ck_assert_int_eq(mkdir(in_tmp(path, "out.h5"), 0755), 0);
    FILE *fp = fopen(in_tmp(inner, "out.h5/keep"), "w");
    fclose(fp);
    ck_assert_int_eq(ryz_results_write(&r, path), RYZ_EIO);
    assert_error_has(path);
    ck_assert_int_eq(count_entries(tmpdir), 1); /* only the directory */
    ck_assert(exists(inner));
    ryz_results_free(&r);
}
END_TEST

START_TEST(test_write_fails_mid_write) {
    /* A child whose file size limit is hit while writing (EFBIG, as on a
     * full disk) must return EIO and leave no file at all behind. */
    char path[PATH_LEN];
    ryz_results r;
    ryz_results_init(&r);
    fill_tables(&r, 2, BIG_SAMPLES / 4);
    in_tmp(path, "efbig.h5");
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit lim = {256 * 1024, 256 * 1024};
        signal(SIGXFSZ, SIG_IGN);
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(10);
        ryz_status st = ryz_results_write(&r, path);
        if (st != RYZ_EIO || !strstr(ryz_last_error(), path))
            fprintf(stderr, "child got %s: %s\n", ryz_status_name(st), ryz_last_error());
        _exit(st != RYZ_EIO ? 11 : !strstr(ryz_last_error(), path) ? 12 : 0);
    }
    int ws = 0;
    ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
    ck_assert_msg(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "child status 0x%x", ws);
    ck_assert_int_eq(count_entries(tmpdir), 0);
    ryz_results_free(&r);
}
END_TEST

/* Checks the directory after a writer of `path` (pid `pid`) was killed:
 * only PATH and PATH.tmp.PID may exist; PATH, if present, must read back
 * complete as `want`. Removes both. Returns 1 when PATH existed. */
static int check_after_kill(const char *path, pid_t pid, const ryz_results *want) {
    char tmp[PATH_LEN + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)pid);
    int n = count_entries(tmpdir), have_final = exists(path), have_tmp = exists(tmp);
    ck_assert_int_eq(n, have_final + have_tmp);
    if (have_final) {
        ryz_results back;
        ck_assert_msg(ryz_results_read(path, &back) == RYZ_OK, "read: %s", ryz_last_error());
        assert_results_equal(&back, want);
        ryz_results_free(&back);
    }
    unlink(path);
    unlink(tmp);
    return have_final;
}

START_TEST(test_killed_writer) {
    /* Writers SIGKILLed after increasing delays (the last one is never
     * killed): the final name either does not exist or is a complete file. */
    const long delays_us[] = {0, 1000, 3000, 10000, 30000, 100000, -1};
    char path[PATH_LEN];
    ryz_results r;
    ryz_results_init(&r);
    fill_meta(&r);
    fill_tables(&r, 3, BIG_SAMPLES);
    in_tmp(path, "killed.h5");
    int complete = 0;
    for (size_t k = 0; k < sizeof delays_us / sizeof delays_us[0]; k++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
            _exit(ryz_results_write(&r, path) == RYZ_OK ? 0 : 1);
        if (delays_us[k] >= 0) {
            struct timespec ts = {0, delays_us[k] * 1000};
            nanosleep(&ts, NULL);
            kill(pid, SIGKILL);
        }
        int ws = 0;
        ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
        if (delays_us[k] < 0)
            ck_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
        complete += check_after_kill(path, pid, &r);
    }
    ck_assert_int_ge(complete, 1); /* at least the unkilled writer finished */
    ryz_results_free(&r);
}
END_TEST

/* ---- writability check ---- */

START_TEST(test_check_writable) {
    char path[PATH_LEN];
    ck_assert_int_eq(ryz_results_check_writable(in_tmp(path, "out.h5")), RYZ_OK);
    ck_assert_int_eq(count_entries(tmpdir), 0); /* the probe is removed */
    ck_assert_int_eq(ryz_results_check_writable("ryz-check-writable.h5"), RYZ_OK); /* "." */

    ck_assert_int_eq(ryz_results_check_writable(in_tmp(path, "nodir/out.h5")), RYZ_EIO);
    in_tmp(path, "nodir");
    assert_error_has(path);
    assert_error_has("does not exist");

    ck_assert_int_eq(ryz_results_check_writable(tmpdir), RYZ_EIO); /* PATH is a directory */
    assert_error_has("directory");

    FILE *fp = fopen(in_tmp(path, "file"), "w");
    fclose(fp);
    ck_assert_int_eq(ryz_results_check_writable(in_tmp(path, "file/out.h5")), RYZ_EIO);
    assert_error_has("not a directory");

    if (geteuid() != 0) { /* root writes anywhere */
        ck_assert_int_eq(mkdir(in_tmp(path, "ro"), 0555), 0);
        ck_assert_int_eq(ryz_results_check_writable(in_tmp(path, "ro/out.h5")), RYZ_EIO);
        in_tmp(path, "ro");
        assert_error_has(path);
    }
}
END_TEST

/* ---- printing ---- */

START_TEST(test_print) {
    ryz_results r;
    ryz_results_init(&r);
    fill_meta(&r);
    fill_tables(&r, 3, 5);
    char *text = printout(&r);
    const char *want[] = {"schema_version: 6",
                          "kind: suite",
                          "/acceptance: 3 rows",
                          "allreduce_p99_us",
                          "blas: OpenBLAS 0.3.21 DYNAMIC_ARCH Zen",
                          "tool_version: ryz 0.3.1-test",
                          "    [case a]",
                          "/correctness: 3 rows",
                          "/timing: 3 rows",
                          "/collectives: 3 rows",
                          "/memory: 3 rows",
                          "/samples: 5 rows",
                          "corr-2",
                          "all_reduce_us@4",
                          "(5.0 MiB)",
                          "mem_efficiency"};
    test_assert_all_in(text, want, sizeof want / sizeof want[0]);
    free(text);
    ryz_results_free(&r);
}
END_TEST

/* An acceptance note of the longest a row holds prints whole, and
 * survives the file round trip whole. */
START_TEST(test_long_note_whole) {
    char path[PATH_LEN];
    ryz_results r, back;
    ryz_results_init(&r);
    fill_meta(&r);
    fill_tables(&r, 1, 1);
    ryz_row_acceptance *a = &r.acceptance[0];
    memset(a->note, 'n', sizeof a->note - 2);
    a->note[sizeof a->note - 2] = 'Z'; /* the last character */
    a->note[sizeof a->note - 1] = '\0';
    char *text = printout(&r);
    ck_assert_msg(strstr(text, "nnnnZ"), "the note was cut:\n%s", text);
    free(text);
    ck_assert_int_eq(ryz_results_write(&r, in_tmp(path, "long-note.h5")), RYZ_OK);
    ck_assert_msg(ryz_results_read(path, &back) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_uint_eq(strlen(back.acceptance[0].note), RYZ_NOTE_LEN - 1);
    ryz_results_free(&back);
    ryz_results_free(&r);
}
END_TEST

static Suite *results_suite(void) {
    Suite *s = suite_create("results");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_init_add_free);
    tcase_add_test(tc, test_read_fifo);
    tcase_add_test(tc, test_memory_summary);
    tcase_add_test(tc, test_round_trip_full);
    tcase_add_test(tc, test_round_trip_empty_tables);
    tcase_add_test(tc, test_file_layout);
    tcase_add_test(tc, test_schema_version_refused);
    tcase_add_test(tc, test_schema1_file_reads);
    tcase_add_test(tc, test_claimed_schema_needs_its_columns);
    tcase_add_test(tc, test_schema2_file_reads);
    tcase_add_test(tc, test_schema3_file_reads);
    tcase_add_test(tc, test_schema4_file_reads);
    tcase_add_test(tc, test_schema5_file_reads);
    tcase_add_test(tc, test_long_note_whole);
    tcase_add_test(tc, test_kind);
    tcase_add_test(tc, test_malformed_files_refused);
    tcase_add_test(tc, test_write_missing_directory);
    tcase_add_test(tc, test_write_rename_fails);
    tcase_add_test(tc, test_write_fails_mid_write);
    tcase_add_test(tc, test_killed_writer);
    tcase_add_test(tc, test_check_writable);
    tcase_add_test(tc, test_print);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return test_run_suite(results_suite());
}
