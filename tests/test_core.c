/* Tests of core (errors, status codes, memory accounting, environment,
 * timers) and of the self communicator with its profiling records. */
#define _POSIX_C_SOURCE 200809L

#include "ryz/comm.h"
#include "ryz/core.h"

#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <threads.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define ENV_VAR "RYZ_TEST_CORE_ENV_INT"

/* Asserts got[0..n) == want[0..n) exactly, naming the first differing element. */
static void assert_floats_equal(const float *got, const float *want, size_t n, const char *what) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == want[i], "%s: element %zu is %.9g, expected %.9g", what, i,
                      (double)got[i], (double)want[i]);
}

/* Fills x[0..n) with distinct values derived from `base`. */
static void fill_pattern(float *x, size_t n, float base) {
    for (size_t i = 0; i < n; i++)
        x[i] = base + 0.25f * (float)i;
}

/* Asserts that ryz_last_error() contains `needle`. */
static void assert_error_has(const char *needle) {
    ck_assert_msg(strstr(ryz_last_error(), needle), "'%s' not in last error '%s'", needle,
                  ryz_last_error());
}

/* ---- errors and status codes ---- */

START_TEST(test_error_message) {
    ryz_error_clear();
    ck_assert_str_eq(ryz_last_error(), "");
    ck_assert_int_eq(ryz_error(RYZ_EIO, "cannot open %s: %d", "x.bin", 7), RYZ_EIO);
    ck_assert_str_eq(ryz_last_error(), "cannot open x.bin: 7");
    ck_assert_int_eq(ryz_error(RYZ_EINVAL, "second"), RYZ_EINVAL);
    ck_assert_str_eq(ryz_last_error(), "second");
    ryz_error_clear();
    ck_assert_str_eq(ryz_last_error(), "");
}
END_TEST

START_TEST(test_error_long_message_truncated) {
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ryz_error(RYZ_EINVAL, "%s", big);
    size_t len = strlen(ryz_last_error());
    ck_assert_uint_gt(len, 100);
    ck_assert_uint_lt(len, sizeof big - 1);
}
END_TEST

/* Thread body: sets its own error and reports what it saw before. */
static int other_thread(void *arg) {
    char *seen = arg;
    strcpy(seen, ryz_last_error());
    ryz_error(RYZ_ECOMM, "from the other thread");
    return 0;
}

START_TEST(test_error_thread_local) {
    char seen[1024] = "unset";
    ryz_error(RYZ_EIO, "main thread");
    thrd_t t;
    ck_assert_int_eq(thrd_create(&t, other_thread, seen), thrd_success);
    ck_assert_int_eq(thrd_join(t, NULL), thrd_success);
    ck_assert_str_eq(seen, "");
    ck_assert_str_eq(ryz_last_error(), "main thread");
}
END_TEST

START_TEST(test_status_names_and_exit_codes) {
    static const struct {
        ryz_status s;
        const char *name;
        int code;
    } table[] = {
        {RYZ_OK, "OK", 0},
        {RYZ_EMISMATCH, "EMISMATCH", 1},
        {RYZ_EINVAL, "EINVAL", 2},
        {RYZ_EIO, "EIO", 2},
        {RYZ_ENOMEM, "ENOMEM", 2},
        {RYZ_ECOMM, "ECOMM", 3},
        {RYZ_ETIMEOUT, "ETIMEOUT", 3},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        ck_assert_str_eq(ryz_status_name(table[i].s), table[i].name);
        ck_assert_msg(ryz_status_exit_code(table[i].s) == table[i].code,
                      "exit code of %s is %d, expected %d", table[i].name,
                      ryz_status_exit_code(table[i].s), table[i].code);
    }
    ck_assert_str_eq(ryz_status_name((ryz_status)99), "EUNKNOWN");
}
END_TEST

START_TEST(test_log_level_roundtrip) {
    ryz_log_set_level(RYZ_LOG_DEBUG);
    ck_assert_int_eq(ryz_log_get_level(), RYZ_LOG_DEBUG);
    ryz_log_set_level(RYZ_LOG_ERROR);
    ck_assert_int_eq(ryz_log_get_level(), RYZ_LOG_ERROR);
    RYZ_DEBUG("suppressed at level error");
}
END_TEST

/* ---- checked multiply ---- */

START_TEST(test_mul_ok) {
    size_t out = 123;
    ck_assert_int_eq(ryz_mul_ok(6, 7, &out), 1);
    ck_assert_uint_eq(out, 42);
    ck_assert_int_eq(ryz_mul_ok(0, SIZE_MAX, &out), 1);
    ck_assert_uint_eq(out, 0);
    ck_assert_int_eq(ryz_mul_ok(SIZE_MAX, 0, &out), 1);
    ck_assert_uint_eq(out, 0);
    ck_assert_int_eq(ryz_mul_ok(SIZE_MAX, 1, &out), 1);
    ck_assert_uint_eq(out, SIZE_MAX);
    ck_assert_int_eq(ryz_mul_ok(SIZE_MAX / 2 + 1, 2, &out), 0);
    ck_assert_int_eq(ryz_mul_ok(2, SIZE_MAX / 2 + 1, &out), 0);
    ck_assert_int_eq(ryz_mul_ok((size_t)1 << 32, (size_t)1 << 32, &out), 0);
    ck_assert_int_eq(ryz_mul_ok((size_t)1 << 31, (size_t)1 << 32, &out), 1);
    ck_assert_uint_eq(out, (size_t)1 << 63);
}
END_TEST

/* ---- memory accounting ---- */

/* Live bytes of every kind, into `out`. */
static void mem_snapshot(size_t out[RYZ_MEM_NKINDS]) {
    for (int k = 0; k < RYZ_MEM_NKINDS; k++)
        out[k] = ryz_mem_bytes((ryz_mem_kind)k);
}

START_TEST(test_mem_accounting_per_kind) {
    size_t before[RYZ_MEM_NKINDS];
    mem_snapshot(before);
    size_t peak0 = ryz_mem_peak(RYZ_MEM_KV);
    void *w = ryz_mem_alloc(RYZ_MEM_WEIGHTS, 100, 4);
    void *k1 = ryz_mem_alloc(RYZ_MEM_KV, 1000, 8);
    void *k2 = ryz_mem_alloc(RYZ_MEM_KV, 3, 5);
    ck_assert_ptr_nonnull(w);
    ck_assert_ptr_nonnull(k1);
    ck_assert_ptr_nonnull(k2);
    ck_assert_uint_eq(ryz_mem_bytes(RYZ_MEM_WEIGHTS), before[RYZ_MEM_WEIGHTS] + 400);
    ck_assert_uint_eq(ryz_mem_bytes(RYZ_MEM_KV), before[RYZ_MEM_KV] + 8015);
    ck_assert_uint_eq(ryz_mem_bytes(RYZ_MEM_SCRATCH), before[RYZ_MEM_SCRATCH]);
    size_t peak = ryz_mem_peak(RYZ_MEM_KV);
    ck_assert_uint_ge(peak, before[RYZ_MEM_KV] + 8015);
    ck_assert_uint_ge(peak, peak0);
    ryz_mem_free(k1);
    ck_assert_uint_eq(ryz_mem_bytes(RYZ_MEM_KV), before[RYZ_MEM_KV] + 15);
    ck_assert_uint_eq(ryz_mem_peak(RYZ_MEM_KV), peak); /* high-water mark stays */
    ck_assert_uint_ge(ryz_mem_peak(RYZ_MEM_WEIGHTS), ryz_mem_bytes(RYZ_MEM_WEIGHTS));
    ryz_mem_free(k2);
    ryz_mem_free(w);
    ryz_mem_free(NULL);
    size_t after[RYZ_MEM_NKINDS];
    mem_snapshot(after);
    for (int k = 0; k < RYZ_MEM_NKINDS; k++)
        ck_assert_msg(after[k] == before[k], "kind %s: %zu live bytes after free, %zu before",
                      ryz_mem_kind_name((ryz_mem_kind)k), after[k], before[k]);
    /* A new block above the old peak raises it. */
    void *big = ryz_mem_alloc(RYZ_MEM_KV, peak + 64, 1);
    ck_assert_ptr_nonnull(big);
    ck_assert_uint_ge(ryz_mem_peak(RYZ_MEM_KV), before[RYZ_MEM_KV] + peak + 64);
    ryz_mem_free(big);
}
END_TEST

START_TEST(test_mem_alignment_and_zeroed) {
    size_t sizes[] = {1, 3, 63, 64, 65, 1000, 4096 + 7};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        /* Dirty a block of the same size first so reuse would show. */
        unsigned char *d = ryz_mem_alloc(RYZ_MEM_SCRATCH, sizes[i], 1);
        ck_assert_ptr_nonnull(d);
        memset(d, 0xa5, sizes[i]);
        ryz_mem_free(d);
        unsigned char *p = ryz_mem_alloc(RYZ_MEM_SCRATCH, sizes[i], 1);
        ck_assert_ptr_nonnull(p);
        ck_assert_msg((uintptr_t)p % 64 == 0, "block of %zu bytes at %p not 64-byte aligned",
                      sizes[i], (void *)p);
        for (size_t j = 0; j < sizes[i]; j++)
            ck_assert_msg(p[j] == 0, "block of %zu bytes: byte %zu is 0x%02x, expected 0", sizes[i],
                          j, p[j]);
        ryz_mem_free(p);
    }
}
END_TEST

/* Weight blocks from 256 KiB to 4 MiB share slabs of huge pages: carved
 * one after another (the next starts 64 header bytes after the previous
 * one ends), zeroed, counted, and freed in any order; a slab full or freed
 * makes the next block start a new one. */
START_TEST(test_mem_weight_slabs) {
    enum { N = 40 };
    size_t before = ryz_mem_bytes(RYZ_MEM_WEIGHTS), sz = (size_t)1 << 20;
    unsigned char *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = ryz_mem_alloc(RYZ_MEM_WEIGHTS, sz, 1);
        ck_assert_ptr_nonnull(b[i]);
        ck_assert_uint_eq((uintptr_t)b[i] % 64, 0);
        ck_assert(b[i][0] == 0 && b[i][sz - 1] == 0);
        memset(b[i], 0xab, sz);
    }
    ck_assert_uint_eq(ryz_mem_bytes(RYZ_MEM_WEIGHTS), before + N * sz);
#if !defined(__SANITIZE_ADDRESS__) /* under ASan every block is its own */
    int adjacent = 0;
    for (int i = 1; i < N; i++) adjacent += b[i] == b[i - 1] + sz + 64;
    ck_assert_msg(adjacent >= N - 3 && adjacent < N - 1, "%d of %d blocks follow the previous one",
                  adjacent, N - 1); /* 32 MiB slabs hold 31 blocks of 1 MiB + header */
#endif
    for (int i = 0; i < N; i += 2) ryz_mem_free(b[i]);
    for (int i = 1; i < N; i += 2) {
        for (size_t k = 0; k < sz; k += 4096) ck_assert(b[i][k] == 0xab); /* untouched */
        ryz_mem_free(b[i]);
    }
    ck_assert_uint_eq(ryz_mem_bytes(RYZ_MEM_WEIGHTS), before);
    unsigned char *again = ryz_mem_alloc(RYZ_MEM_WEIGHTS, sz, 1); /* a fresh slab */
    ck_assert(again && again[0] == 0 && again[sz - 1] == 0);
    ryz_mem_free(again);
    void *small = ryz_mem_alloc(RYZ_MEM_SCRATCH, sz, 1); /* other kinds: their own blocks */
    ck_assert_ptr_nonnull(small);
    ryz_mem_free(small);
}
END_TEST

START_TEST(test_mem_overflow) {
    size_t before[RYZ_MEM_NKINDS];
    mem_snapshot(before);
    ryz_error_clear();
    ck_assert_ptr_null(ryz_mem_alloc(RYZ_MEM_WEIGHTS, SIZE_MAX / 2 + 1, 2));
    assert_error_has("overflows");
    ryz_error_clear();
    ck_assert_ptr_null(ryz_mem_alloc(RYZ_MEM_KV, SIZE_MAX - 8, 1)); /* no room for the header */
    ck_assert_str_ne(ryz_last_error(), "");
    size_t after[RYZ_MEM_NKINDS];
    mem_snapshot(after);
    for (int k = 0; k < RYZ_MEM_NKINDS; k++)
        ck_assert_uint_eq(after[k], before[k]);
}
END_TEST

START_TEST(test_mem_kind_names) {
    ck_assert_str_eq(ryz_mem_kind_name(RYZ_MEM_WEIGHTS), "weights");
    ck_assert_str_eq(ryz_mem_kind_name(RYZ_MEM_KV), "kv_cache");
    ck_assert_str_eq(ryz_mem_kind_name(RYZ_MEM_SCRATCH), "scratch");
    ck_assert_str_eq(ryz_mem_kind_name(RYZ_MEM_NKINDS), "unknown");
}
END_TEST

START_TEST(test_mem_peak_rss) {
    ck_assert_uint_gt(ryz_mem_peak_rss(), 0);
}
END_TEST

/* After a reset the peak leaves out a freed 64 MiB that it held before
 * (skipped where the kernel cannot reset it, and under ASan, whose
 * quarantine keeps the freed block resident). */
START_TEST(test_mem_peak_reset) {
#ifdef __SANITIZE_ADDRESS__
    printf("test_mem_peak_reset: skipped under ASan (freed blocks stay resident)\n");
    return;
#endif
    size_t n = (size_t)64 << 20, before = ryz_mem_peak_rss();
    volatile char *p = malloc(n); /* mmap'd by glibc, so free gives it back */
    ck_assert_ptr_nonnull((void *)p);
    for (size_t i = 0; i < n; i += 4096) p[i] = 1; /* volatile: the pages are touched */
    size_t held = ryz_mem_peak_rss();
    free((void *)p);
    ck_assert_uint_ge(held, before + n / 2);
    if (ryz_mem_peak_reset() != RYZ_OK) {
        printf("test_mem_peak_reset: skipped: %s\n", ryz_last_error());
        return;
    }
    size_t after = ryz_mem_peak_rss();
    ck_assert_msg(after > 0 && after + n / 2 <= held, "peak %zu after reset, %zu held", after,
                  held);
}
END_TEST

/* ryz_open_regular opens a regular file, and refuses a directory, a FIFO
 * (at once: a plain open would wait for a writer) and a missing path. */
START_TEST(test_open_regular) {
    char dir[256], fifo[256], file[300];
    int fd = -1;
    test_mkfifo(dir, fifo, sizeof fifo, "pipe");
    snprintf(file, sizeof file, "%s/plain", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fputs("x", f);
    fclose(f);
    ck_assert_int_eq(ryz_open_regular(file, &fd), RYZ_OK);
    char c = 0;
    ck_assert_int_eq(read(fd, &c, 1), 1); /* blocking again, and readable */
    ck_assert_int_eq(c, 'x');
    close(fd);
    const char *paths[] = {fifo, dir, "/nonexistent/ryz"};
    const char *want[] = {"not a regular file", "is a directory", "cannot open"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(ryz_open_regular(paths[i], &fd), RYZ_EIO);
        ck_assert_int_eq(fd, -1);
        ck_assert_msg(strstr(ryz_last_error(), want[i]) && strstr(ryz_last_error(), paths[i]),
                      "%s", ryz_last_error());
    }
    unlink(file);
    test_rmfifo(dir, fifo);
}
END_TEST

/* The memory available is read (MemAvailable), and a need above it is
 * refused with both figures. */
START_TEST(test_mem_check_available) {
    ck_assert_uint_gt(ryz_mem_available(), 0);
    ck_assert_int_eq(ryz_mem_check_available(1000, "tiny"), RYZ_OK);
    ck_assert_int_eq(setenv("RYZ_TEST_MEM_AVAILABLE", "2000000000", 1), 0);
    ck_assert_int_eq(ryz_mem_check_available(3000000000u, "big"), RYZ_EINVAL);
    ck_assert_msg(strstr(ryz_last_error(), "big: 3.0 GB, more than the 2.0 GB"), "%s",
                  ryz_last_error());
    ck_assert_int_eq(ryz_mem_check_available(2000000000u, "just"), RYZ_OK);
    unsetenv("RYZ_TEST_MEM_AVAILABLE");
}
END_TEST

/* Writes `text` as a /proc/stat stand-in under dir and reads its ticks. */
static ryz_status ticks_of(const char *dir, const char *text, ryz_cpu_ticks *t) {
    char path[300];
    snprintf(path, sizeof path, "%s/stat", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ryz_status st = ryz_cpu_ticks_read(path, t);
    unlink(path);
    return st;
}

/* The "cpu " line's busy and steal ticks (not a per-CPU line's), the
 * share stolen between two readings, and the machine's own file. */
START_TEST(test_cpu_steal) {
    char dir[256];
    test_mkdtemp(dir, sizeof dir, "stat");
    ryz_cpu_ticks a, b;
    const char *two = "cpu0 9 9 9 9 9 9 9 9 0 0\ncpu  100 5 20 900 3 1 2 10 0 0\n";
    ck_assert_int_eq(ticks_of(dir, two, &a), RYZ_OK);
    ck_assert_uint_eq(a.busy, 128); /* user + nice + system + irq + softirq */
    ck_assert_uint_eq(a.steal, 10);
    ck_assert_uint_eq(a.total, 128 + 900 + 3 + 10); /* and idle, iowait */
    ck_assert_int_eq(ticks_of(dir, "cpu  150 5 40 950 3 1 2 40 0 0\n", &b), RYZ_OK);
    ck_assert_double_eq_tol(ryz_cpu_steal_fraction(&a, &b), 30.0 / 100.0, 1e-12);
    ck_assert(isnan(ryz_cpu_steal_fraction(&a, &a))); /* no tick passed */
    ck_assert(isnan(ryz_cpu_steal_fraction(&b, &a)));
    ck_assert(ryz_load_disturbed(0.11, NAN) && ryz_load_disturbed(0, 0.2));
    ck_assert(!ryz_load_disturbed(0.1, 0.1) && !ryz_load_disturbed(NAN, NAN));
    ck_assert_int_eq(ticks_of(dir, "cpu  1 2 3 4 5 6 7\n", &b), RYZ_OK); /* before steal */
    ck_assert_uint_eq(b.steal, 0);
    ck_assert_int_eq(ticks_of(dir, "intr 1 2 3\n", &b), RYZ_EIO);
    ck_assert_msg(strstr(ryz_last_error(), "stat: no \"cpu\" line"), "%s", ryz_last_error());
    rmdir(dir);
    ck_assert_int_eq(ryz_cpu_ticks_read("/nonexistent/stat", &b), RYZ_EIO);
    ck_assert_msg(strstr(ryz_last_error(), "/nonexistent/stat: cannot read"), "%s",
                  ryz_last_error());
    ck_assert_int_eq(ryz_cpu_ticks_read(NULL, &a), RYZ_OK); /* this machine's */
    ck_assert_uint_gt(a.busy, 0);
}
END_TEST

/* A process's utime + stime, after a command name with spaces and ')'. */
START_TEST(test_proc_ticks) {
    char dir[256], path[300];
    test_mkdtemp(dir, sizeof dir, "pstat");
    snprintf(path, sizeof path, "%s/stat", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("4242 (ryz (x) y) R 1 4242 4242 0 -1 4194304 100 0 0 0 1234 56 0 0 20 0 3\n", f);
    fclose(f);
    unsigned long long t = 0;
    ck_assert_int_eq(ryz_proc_ticks_read(path, &t), RYZ_OK);
    ck_assert_uint_eq(t, 1234 + 56);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("4242 (ryz) R 1 2\n", f);
    fclose(f);
    ck_assert_int_eq(ryz_proc_ticks_read(path, &t), RYZ_EIO);
    ck_assert_msg(strstr(ryz_last_error(), "no utime and stime"), "%s", ryz_last_error());
    unlink(path);
    ck_assert_int_eq(ryz_proc_ticks_read(path, &t), RYZ_EIO);
    ck_assert_msg(strstr(ryz_last_error(), "cannot read"), "%s", ryz_last_error());
    rmdir(dir);
    volatile double x = 0;
    for (long i = 0; i < 30000000; i++) x += 1e-9; /* a few ticks of this process's own */
    ck_assert_int_eq(ryz_proc_ticks_read("/proc/self/stat", &t), RYZ_OK);
    ck_assert_uint_gt(t, 0);
}
END_TEST

/* The marks of a load: a spinning child outside the set is "other" load
 * (about one CPU's worth of the host's CPU time) and its ticks are not
 * ours; inside the set they are ours. No mark without a process. */
START_TEST(test_load_marks) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int self = (int)getpid();
    pid_t child = test_spin_start();
    int set[2] = {self, (int)child};
    ryz_load_mark a, b, c, d;
    double steal, other;
    ryz_load_mark_take(&self, 1, &a);
    ryz_load_mark_take(set, 2, &c);
    struct timespec t = {0, 900 * 1000 * 1000}; /* past RYZ_LOAD_MIN_TICKS x 3 on one CPU */
    nanosleep(&t, NULL);
    ryz_load_mark_take(&self, 1, &b);
    ryz_load_mark_take(set, 2, &d);
    test_spin_stop(child);
    ck_assert(a.ok && b.ok && c.ok && d.ok);
    ryz_load_between(&a, &b, &steal, &other);
    ck_assert_msg(other >= 0.5 / (double)cpus && other <= 1, "other %g on %ld CPUs", other, cpus);
    ck_assert_msg(steal >= 0 && steal <= 1, "steal %g", steal);
    ck_assert_msg(d.ours - c.ours >= 5, "the child's 900 ms read %llu ticks", d.ours - c.ours);
    double steal_in, other_in; /* the same moments, the child counted as ours */
    ryz_load_between(&c, &d, &steal_in, &other_in);
    ck_assert_msg(other_in < other, "other %g with the child as ours, %g without", other_in,
                  other);
    ryz_load_between(&b, &a, &steal, &other); /* out of order */
    ck_assert(isnan(steal) && isnan(other));
    ryz_load_between(&a, &a, &steal, &other); /* too short to tell */
    ck_assert(isnan(steal) && isnan(other));
    ryz_load_mark_take(NULL, 0, &a);
    ck_assert_int_eq(a.ok, 0);
    ryz_load_mark_take(&set[1], 1, &a); /* reaped: /proc has no such process */
    ck_assert_int_eq(a.ok, 0);
    ryz_load_between(&a, &b, &steal, &other);
    ck_assert(isnan(steal) && isnan(other));
}
END_TEST

/* ---- environment ---- */

/* Sets ENV_VAR to `v` and returns ryz_env_int's status in [lo, hi]. */
static ryz_status env_with(const char *v, long lo, long hi, long *out) {
    ck_assert_int_eq(setenv(ENV_VAR, v, 1), 0);
    ryz_status st = ryz_env_int(ENV_VAR, -7, lo, hi, out);
    unsetenv(ENV_VAR);
    return st;
}

START_TEST(test_env_int_unset_and_valid) {
    long v = 0;
    unsetenv(ENV_VAR);
    ck_assert_int_eq(ryz_env_int(ENV_VAR, -7, -10, 10, &v), RYZ_OK);
    ck_assert_int_eq(v, -7);
    ck_assert_int_eq(env_with("", -10, 10, &v), RYZ_OK); /* empty counts as unset */
    ck_assert_int_eq(v, -7);
    ck_assert_int_eq(env_with("3", -10, 10, &v), RYZ_OK);
    ck_assert_int_eq(v, 3);
    ck_assert_int_eq(env_with("-10", -10, 10, &v), RYZ_OK);
    ck_assert_int_eq(v, -10);
    ck_assert_int_eq(env_with("10", -10, 10, &v), RYZ_OK);
    ck_assert_int_eq(v, 10);
}
END_TEST

START_TEST(test_env_int_malformed) {
    const char *bad[] = {"abc", "12abc", "1.5", "0x10", "5 ", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long v = 42;
        ryz_error_clear();
        ck_assert_msg(env_with(bad[i], -1000, 1000, &v) == RYZ_EINVAL, "'%s' accepted", bad[i]);
        ck_assert_int_eq(v, 42);
        assert_error_has(ENV_VAR);
        assert_error_has("not an integer");
    }
}
END_TEST

START_TEST(test_env_int_out_of_range) {
    long v = 42;
    ck_assert_int_eq(env_with("11", -10, 10, &v), RYZ_EINVAL);
    assert_error_has(ENV_VAR);
    assert_error_has("out of range [-10, 10]");
    ck_assert_int_eq(env_with("-11", -10, 10, &v), RYZ_EINVAL);
    assert_error_has("-11");
    ck_assert_int_eq(v, 42);
}
END_TEST

/* ---- timers ---- */

START_TEST(test_time_monotonic) {
    double prev = ryz_time_now();
    ck_assert(prev > 0);
    for (int i = 0; i < 10000; i++) {
        double t = ryz_time_now();
        ck_assert_msg(t >= prev, "call %d: clock went back from %.9f to %.9f", i, prev, t);
        prev = t;
    }
    struct timespec ms = {0, 2000000};
    nanosleep(&ms, NULL);
    ck_assert_msg(ryz_time_now() - prev >= 0.0019, "clock did not advance over a 2 ms sleep");
}
END_TEST

/* ---- self communicator ---- */

static ryz_comm *self_comm;

/* Fixture: a fresh self comm per test. */
static void self_setup(void) {
    ck_assert_int_eq(ryz_comm_init_self(&self_comm), RYZ_OK);
}

/* Fixture: frees the self comm. */
static void self_teardown(void) {
    ryz_comm_free(self_comm);
    self_comm = NULL;
}

START_TEST(test_self_identity) {
    ck_assert_int_eq(ryz_comm_rank(self_comm), 0);
    ck_assert_int_eq(ryz_comm_size(self_comm), 1);
    ck_assert_str_eq(ryz_comm_name(self_comm), "self");
    ck_assert_uint_eq(ryz_comm_record_count(self_comm), 0);
}
END_TEST

START_TEST(test_self_collectives_copy) {
    enum { N = 37 };
    float send[N], recv[N], orig[N];
    fill_pattern(send, N, 1.5f);
    memcpy(orig, send, sizeof send);
    memset(recv, 0, sizeof recv);
    ck_assert_int_eq(ryz_comm_all_reduce_sum(self_comm, send, recv, N), RYZ_OK);
    assert_floats_equal(recv, orig, N, "all_reduce out of place");
    ck_assert_int_eq(ryz_comm_all_reduce_sum(self_comm, send, send, N), RYZ_OK);
    assert_floats_equal(send, orig, N, "all_reduce in place");
    memset(recv, 0, sizeof recv);
    ck_assert_int_eq(ryz_comm_all_gather(self_comm, send, recv, N), RYZ_OK);
    assert_floats_equal(recv, orig, N, "all_gather");
    memset(recv, 0, sizeof recv);
    ck_assert_int_eq(ryz_comm_reduce_scatter(self_comm, send, recv, N), RYZ_OK);
    assert_floats_equal(recv, orig, N, "reduce_scatter");
    ck_assert_int_eq(ryz_comm_broadcast(self_comm, send, sizeof send, 0), RYZ_OK);
    assert_floats_equal(send, orig, N, "broadcast");
    ck_assert_int_eq(ryz_comm_barrier(self_comm), RYZ_OK);
    ck_assert_int_eq(ryz_comm_all_reduce_sum(self_comm, send, recv, 0), RYZ_OK);
}
END_TEST

START_TEST(test_self_broadcast_bad_root) {
    char buf[4] = "abc";
    ck_assert_int_eq(ryz_comm_broadcast(self_comm, buf, sizeof buf, 1), RYZ_EINVAL);
    assert_error_has("root 1");
    ck_assert_int_eq(ryz_comm_broadcast(self_comm, buf, sizeof buf, -1), RYZ_EINVAL);
    ck_assert_str_eq(buf, "abc");
    ck_assert_uint_eq(ryz_comm_record_count(self_comm), 0); /* rejected calls not recorded */
}
END_TEST

START_TEST(test_self_records) {
    float a[10] = {0}, b[10];
    ryz_comm_all_reduce_sum(self_comm, a, b, 10);
    ryz_comm_all_gather(self_comm, a, b, 4);
    ryz_comm_reduce_scatter(self_comm, a, b, 3);
    ryz_comm_broadcast(self_comm, a, 7, 0);
    ryz_comm_barrier(self_comm);
    ryz_comm_all_reduce_sum(self_comm, a, a, 2);
    static const struct {
        ryz_comm_op op;
        size_t bytes;
    } want[] = {{RYZ_OP_ALL_REDUCE, 40}, {RYZ_OP_ALL_GATHER, 16}, {RYZ_OP_REDUCE_SCATTER, 12},
                {RYZ_OP_BROADCAST, 7},   {RYZ_OP_BARRIER, 0},     {RYZ_OP_ALL_REDUCE, 8}};
    size_t n = sizeof want / sizeof want[0];
    ck_assert_uint_eq(ryz_comm_record_count(self_comm), n);
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        const ryz_comm_record *r = ryz_comm_record_at(self_comm, i);
        ck_assert_msg(r->op == want[i].op && r->bytes == want[i].bytes,
                      "record %zu: %s %zu bytes, expected %s %zu bytes", i, ryz_comm_op_name(r->op),
                      r->bytes, ryz_comm_op_name(want[i].op), want[i].bytes);
        ck_assert(r->seconds >= 0 && r->seconds < 10);
        total += r->seconds;
    }
    size_t calls = 99, sum_calls = 0;
    double sum = 0;
    for (int op = 0; op < RYZ_OP_COUNT; op++) {
        sum += ryz_comm_op_seconds(self_comm, (ryz_comm_op)op, &calls);
        sum_calls += calls;
    }
    ck_assert_uint_eq(sum_calls, n);
    ck_assert(fabs(sum - total) <= 1e-12);
    ryz_comm_op_seconds(self_comm, RYZ_OP_ALL_REDUCE, &calls);
    ck_assert_uint_eq(calls, 2);
    ryz_comm_op_seconds(self_comm, RYZ_OP_BARRIER, &calls);
    ck_assert_uint_eq(calls, 1);
    ck_assert(ryz_comm_op_seconds(self_comm, RYZ_OP_BROADCAST, NULL) >= 0);
    ryz_comm_records_clear(self_comm);
    ck_assert_uint_eq(ryz_comm_record_count(self_comm), 0);
    ck_assert(ryz_comm_op_seconds(self_comm, RYZ_OP_ALL_REDUCE, &calls) == 0);
    ck_assert_uint_eq(calls, 0);
}
END_TEST

/* A record's streamed bytes: what ryz_streamed_total grew by since the
 * comm's previous record, or since the clear. */
START_TEST(test_self_records_streamed) {
    float a[4] = {0}, b[4];
    ryz_streamed_add(1000); /* before the clear: not any call's */
    ryz_comm_records_clear(self_comm);
    ryz_streamed_add(300);
    ryz_streamed_add(12);
    ryz_comm_all_reduce_sum(self_comm, a, b, 4);
    ryz_comm_barrier(self_comm);
    ryz_streamed_add(7);
    ryz_comm_all_gather(self_comm, a, b, 4);
    const uint64_t want[] = {312, 0, 7};
    ck_assert_uint_eq(ryz_comm_record_count(self_comm), 3);
    for (size_t i = 0; i < 3; i++)
        ck_assert_msg(ryz_comm_record_at(self_comm, i)->streamed == want[i], "record %zu: %llu",
                      i, (unsigned long long)ryz_comm_record_at(self_comm, i)->streamed);
}
END_TEST

/* A record's gap: the time from the end of the comm's previous call to
 * the start of this one, 0 for the comm's first call; a clear keeps it. */
START_TEST(test_self_records_gap) {
    ryz_comm *c = NULL;
    ck_assert_int_eq(ryz_comm_init_self(&c), RYZ_OK);
    float a[4] = {0}, b[4];
    struct timespec ts = {0, 20 * 1000 * 1000};
    ryz_comm_all_reduce_sum(c, a, b, 4);
    nanosleep(&ts, NULL);
    ryz_comm_barrier(c);
    ck_assert(ryz_comm_record_at(c, 0)->gap == 0);
    double slept = ryz_comm_record_at(c, 1)->gap;
    ck_assert_msg(slept >= 0.02, "gap %g s after sleeping 20 ms", slept);
    ryz_comm_records_clear(c);
    nanosleep(&ts, NULL);
    ryz_comm_all_gather(c, a, b, 4);
    slept = ryz_comm_record_at(c, 0)->gap;
    ck_assert_msg(slept >= 0.02, "gap %g s after a clear and 20 ms", slept);
    ryz_comm_free(c);
}
END_TEST

START_TEST(test_self_record_ring_wraps) {
    /* Far more calls than any sane ring; the newest must be kept in order. */
    enum { MANY = 70000, LAST = 5 };
    for (int i = 0; i < MANY; i++)
        ryz_comm_barrier(self_comm);
    char buf[LAST];
    for (int i = 0; i < LAST; i++)
        ryz_comm_broadcast(self_comm, buf, (size_t)i + 1, 0);
    size_t n = ryz_comm_record_count(self_comm);
    ck_assert_uint_gt(n, LAST);
    ck_assert_uint_le(n, MANY + LAST);
    for (int i = 0; i < LAST; i++) {
        const ryz_comm_record *r = ryz_comm_record_at(self_comm, n - LAST + (size_t)i);
        ck_assert_int_eq(r->op, RYZ_OP_BROADCAST);
        ck_assert_uint_eq(r->bytes, (size_t)i + 1);
    }
    ck_assert_int_eq(ryz_comm_record_at(self_comm, 0)->op, RYZ_OP_BARRIER);
    size_t calls;
    ryz_comm_op_seconds(self_comm, RYZ_OP_BARRIER, &calls);
    ck_assert_uint_eq(calls, n - LAST);
}
END_TEST

START_TEST(test_op_names) {
    static const char *names[] = {"all_reduce", "all_gather", "reduce_scatter", "broadcast",
                                  "barrier"};
    for (int op = 0; op < RYZ_OP_COUNT; op++)
        ck_assert_str_eq(ryz_comm_op_name((ryz_comm_op)op), names[op]);
    ck_assert_str_eq(ryz_comm_op_name(RYZ_OP_COUNT), "unknown");
}
END_TEST

START_TEST(test_self_split_first) {
    ryz_comm *sub = (ryz_comm *)1;
    ck_assert_int_eq(ryz_comm_split_first(self_comm, 1, &sub), RYZ_OK);
    ck_assert_ptr_nonnull(sub);
    ck_assert_int_eq(ryz_comm_rank(sub), 0);
    ck_assert_int_eq(ryz_comm_size(sub), 1);
    float x = 3.0f, y = 0.0f;
    ck_assert_int_eq(ryz_comm_all_reduce_sum(sub, &x, &y, 1), RYZ_OK);
    ck_assert(y == 3.0f);
    ck_assert_uint_eq(ryz_comm_record_count(sub), 1);
    ck_assert_uint_eq(ryz_comm_record_count(self_comm), 0); /* own records */
    ryz_comm_free(sub);
    for (int n = -1; n <= 2; n += 3) { /* -1 and 2 */
        sub = (ryz_comm *)1;
        ck_assert_int_eq(ryz_comm_split_first(self_comm, n, &sub), RYZ_EINVAL);
        ck_assert_ptr_null(sub);
        assert_error_has("has 1");
    }
    ck_assert_int_eq(ryz_comm_split_first(self_comm, 0, &sub), RYZ_EINVAL);
    ryz_comm_abort(self_comm, 3); /* the self backend's abort returns */
    ryz_comm_free(NULL);
}
END_TEST

/* A stand-in backend for rank 0 of 2 ranks: collectives do nothing, so
 * only the profiling wrapper is exercised. */
static ryz_status stub_collective(void *ctx, const float *send, float *recv, size_t n) {
    (void)ctx, (void)send, (void)recv, (void)n;
    return RYZ_OK;
}

/* Stub broadcast: does nothing. */
static ryz_status stub_broadcast(void *ctx, void *buf, size_t bytes, int root) {
    (void)ctx, (void)buf, (void)bytes, (void)root;
    return RYZ_OK;
}

/* Stub context free: nothing owned. */
static void stub_free(void *ctx) {
    (void)ctx;
}

START_TEST(test_record_bytes_convention) {
    /* nccl-tests' message sizes: all_reduce and broadcast the buffer,
     * all_gather the output, reduce_scatter the input (comm.h). */
    static const ryz_comm_iface stub = {.name = "stub",
                                        .all_reduce_sum = stub_collective,
                                        .all_gather = stub_collective,
                                        .reduce_scatter = stub_collective,
                                        .broadcast = stub_broadcast,
                                        .free = stub_free};
    ryz_comm *c = NULL;
    ck_assert_int_eq(ryz_comm_create(&stub, NULL, 0, 2, &c), RYZ_OK);
    ck_assert_int_eq(ryz_comm_size(c), 2);
    ck_assert_str_eq(ryz_comm_name(c), "stub");
    float buf[16] = {0};
    ryz_comm_all_reduce_sum(c, buf, buf, 10);
    ryz_comm_all_gather(c, buf, buf, 4);
    ryz_comm_reduce_scatter(c, buf, buf, 3);
    ryz_comm_broadcast(c, buf, 7, 1);
    const size_t want[] = {40, 32, 24, 7};
    ck_assert_uint_eq(ryz_comm_record_count(c), 4);
    for (size_t i = 0; i < 4; i++) {
        const ryz_comm_record *r = ryz_comm_record_at(c, i);
        ck_assert_msg(r->bytes == want[i], "%s recorded %zu bytes, expected %zu",
                      ryz_comm_op_name(r->op), r->bytes, want[i]);
    }
    ryz_comm_free(c);
}
END_TEST

/* Counts the calls; stops the passes at rep 2 when asked to. */
static ryz_status count_call(void *ctx, int rep) {
    int *calls = ctx;
    ++calls[0];
    return calls[1] && rep == 2 ? ryz_error(RYZ_ECOMM, "stop at pass %d", rep) : RYZ_OK;
}

/* The probe's passes: before() ahead of every pass, each pass timed, a
 * failing before() stops them with its status, and the best pass is what
 * ryz_mem_read_bandwidth reports (no timing bound is asserted: the machine
 * is shared). */
START_TEST(test_mem_read_passes) {
    double sec[3] = {0};
    int calls[2] = {0, 0};
    ck_assert_int_eq(ryz_mem_read_passes((size_t)4 << 20, 2, 3, count_call, calls, sec), RYZ_OK);
    ck_assert_int_eq(calls[0], 3);
    for (int r = 0; r < 3; r++) ck_assert_msg(sec[r] > 0, "pass %d took %g s", r, sec[r]);
    int stop[2] = {0, 1}; /* before() failing at pass 2: its status, no third pass */
    ck_assert_int_eq(ryz_mem_read_passes((size_t)4 << 20, 1, 3, count_call, stop, sec), RYZ_ECOMM);
    ck_assert_int_eq(stop[0], 3);
    ck_assert_int_eq(ryz_mem_read_passes(100, 1, 1, NULL, NULL, sec), RYZ_EINVAL);
    ck_assert_msg(strstr(ryz_last_error(), "bytes 100 >= 4096"), "%s", ryz_last_error());
    ck_assert_int_eq(ryz_mem_read_passes((size_t)1 << 20, 65, 1, NULL, NULL, sec), RYZ_EINVAL);
    ck_assert(ryz_mem_read_bandwidth((size_t)4 << 20, 1, 2) > 0);
    ck_assert(ryz_mem_read_bandwidth((size_t)4 << 20, 0, 2) == 0);
}
END_TEST

/* The probe's sum of every pass (src/core/bandwidth.c), kept observable. */
extern volatile uint64_t bandwidth_sink;

/* Every element is read exactly once per pass, whatever the split into
 * threads and into four (skewed, past 1 MiB per thread) streams per
 * thread leaves over: the buffer holds
 * 0, 1, 2, ..., so the passes' sum is reps * n (n - 1) / 2. */
START_TEST(test_mem_read_every_element) {
    const size_t sizes[] = {4096, 4096 + 8, (64 << 10) + 8 * 37, (1 << 20) - 8, (4 << 20) + 8 * 13};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
        for (int threads = 1; threads <= 3; threads++) {
            double sec[2];
            ck_assert_int_eq(ryz_mem_read_passes(sizes[k], threads, 2, NULL, NULL, sec), RYZ_OK);
            uint64_t n = sizes[k] / 8, want = 2 * (n * (n - 1) / 2);
            ck_assert_msg(bandwidth_sink == want, "%zu bytes, %d threads: sum %llu, want %llu",
                          sizes[k], threads, (unsigned long long)bandwidth_sink,
                          (unsigned long long)want);
        }
}
END_TEST

/* One thread's read, as the probe reads its part: every word once, past
 * the four skewed streams' ends too (the buffer holds 0, 1, 2, ...). */
START_TEST(test_mem_read_sum) {
    const size_t sizes[] = {8, 4096 + 8, (1 << 20) + 8 * 37};
    uint64_t *buf = malloc(sizes[2]);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < sizes[2] / 8; i++) buf[i] = i;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint64_t n = sizes[k] / 8;
        ck_assert_uint_eq(ryz_mem_read_sum(buf, sizes[k]), n * (n - 1) / 2);
    }
    free(buf);
}
END_TEST

/* Slices: each pass reads the next slice of the buffer, back to the start
 * where the next would not fit whole. The buffer holds 0, 1, 2, ..., so
 * the passes' sum says which elements were read: 5 whole slices of 1024
 * elements fit in 5632 and in 5120 (the fifth ending at the last
 * element), so 7 passes read slices 0-4, then 0 and 1. */
START_TEST(test_mem_read_slices) {
    enum { PER = 1024, REPS = 7 };
    const int order[REPS] = {0, 1, 2, 3, 4, 0, 1}, sizes[] = {5 * PER + 512, 5 * PER};
    for (int k = 0; k < 2; k++)
        for (int threads = 1; threads <= 2; threads++) {
            double sec[REPS] = {0};
            int calls[2] = {0, 0};
            ck_assert_int_eq(ryz_mem_read_slices((size_t)sizes[k] * 8, PER * 8, threads, REPS,
                                                 count_call, calls, sec), RYZ_OK);
            ck_assert_int_eq(calls[0], REPS);
            uint64_t want = 0;
            for (int r = 0; r < REPS; r++) {
                uint64_t first = (uint64_t)order[r] * PER;
                want += PER * first + (uint64_t)PER * (PER - 1) / 2;
                ck_assert_msg(sec[r] > 0, "slice %d took %g s", r, sec[r]);
            }
            ck_assert_msg(bandwidth_sink == want, "%d elements, %d threads: sum %llu, want %llu",
                          sizes[k], threads, (unsigned long long)bandwidth_sink,
                          (unsigned long long)want);
        }
    double sec[1];
    ck_assert_int_eq(ryz_mem_read_slices(8192, 8200, 1, 1, NULL, NULL, sec), RYZ_EINVAL);
    ck_assert_msg(strstr(ryz_last_error(), "slice 8200 in [4096, bytes]"), "%s",
                  ryz_last_error());
    ck_assert_int_eq(ryz_mem_read_slices(8192, 2048, 1, 1, NULL, NULL, sec), RYZ_EINVAL);
}
END_TEST

/* Lock-step efficiency: each step waits for its slowest rank. */
START_TEST(test_lockstep_efficiency) {
    const float two[] = {1, 1, /* rank 1: */ 1, 3}; /* step 1: mean 2 of 3 */
    ck_assert_double_eq_tol(ryz_lockstep_efficiency(two, 2, 2), 3.0 / 4.0, 1e-12);
    const float even[] = {2, 5, 2, 5, 2, 5};
    ck_assert_double_eq_tol(ryz_lockstep_efficiency(even, 3, 2), 1.0, 1e-12);
    const float one[] = {4, 9};
    ck_assert_double_eq_tol(ryz_lockstep_efficiency(one, 1, 2), 1.0, 1e-12);
    const float none[] = {0, 0};
    ck_assert(ryz_lockstep_efficiency(none, 2, 1) == 0);
}
END_TEST

START_TEST(test_error_wrap) {
    ryz_error(RYZ_EINVAL, "n_heads 4 not divisible by tp 3\nhidden 2 smaller than tp 3");
    ck_assert_int_eq(ryz_error_wrap(RYZ_EINVAL, "case %s", "a"), RYZ_EINVAL);
    ck_assert_str_eq(ryz_last_error(), "case a: n_heads 4 not divisible by tp 3\n"
                                       "case a: hidden 2 smaller than tp 3");
    ryz_error_clear();
    ryz_error_wrap(RYZ_EIO, "only %d", 1);
    ck_assert_str_eq(ryz_last_error(), "only 1");
}
END_TEST

/* Runs ryz_log at every level with `level` set, stderr to a temp file, and
 * returns how many lines came out. */
static int log_lines(ryz_log_level level, int rank) {
    fflush(stderr);
    FILE *tmp = tmpfile();
    ck_assert(tmp);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    ryz_log_set_level(level);
    ryz_log_set_rank(rank);
    RYZ_ERROR("e %d", 1);
    RYZ_WARN("w");
    RYZ_INFO("i");
    RYZ_DEBUG("d");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    char line[256];
    int n = 0, prefixed = 1;
    while (fgets(line, sizeof line, tmp)) {
        n++;
        if (rank >= 0 && strncmp(line, "[ryz r", 6) != 0) prefixed = 0;
    }
    fclose(tmp);
    ck_assert_msg(prefixed, "log lines without the rank prefix");
    return n;
}

START_TEST(test_log_levels) {
    ck_assert_int_eq(log_lines(RYZ_LOG_ERROR, 3), 1);
    ck_assert_int_eq(log_lines(RYZ_LOG_WARN, 3), 2);
    ck_assert_int_eq(log_lines(RYZ_LOG_INFO, -1), 3);
    ck_assert_int_eq(log_lines(RYZ_LOG_DEBUG, 0), 4);
    ck_assert_int_eq(ryz_log_get_level(), RYZ_LOG_DEBUG);
    ryz_log_set_level(RYZ_LOG_WARN);
    ryz_log_set_rank(-1);
}
END_TEST

/* ---- stop signals (src/core/signal.c) ------------------------------------ */

/* Sleeps s seconds. */
static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Returns in the last 15 ms of a CLOCK_MONOTONIC second (sleeping to 975
 * ms, then spinning), so that a signal 30 ms later lands in the next whole
 * second. */
static void sleep_to_second_end(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ts.tv_nsec < 975000000L) sleep_s((975000000L - ts.tv_nsec) / 1e9);
    do clock_gettime(CLOCK_MONOTONIC, &ts);
    while (ts.tv_nsec < 985000000L);
}

/* SIGTERM to pid from this process, or (`sibling`) from a child of it,
 * whose parent is not pid's. */
static void send_term(pid_t pid, int sibling) {
    if (!sibling) {
        kill(pid, SIGTERM);
        return;
    }
    pid_t other = fork();
    ck_assert_int_ge(other, 0);
    if (other == 0) _exit(kill(pid, SIGTERM) == 0 ? 0 : 1);
    int st;
    waitpid(other, &st, 0);
}

/* Reads one byte from fd (the child's word), failing the test on EOF. */
static void await_byte(int fd) {
    char c;
    ck_assert_msg(read(fd, &c, 1) == 1, "the child died before it wrote");
}

/* A child with ryz's stop handlers (and mpirun's rule when `escalates`)
 * gets SIGTERM, then a second one gap_s after it noticed the first; each
 * from this process (its parent) or from a sibling (first_sib, then_sib).
 * Returns how the child ended: 0 it went on to exit after the first, else
 * the signal that killed it (-1: anything else). */
static int child_after_two_signals(int escalates, double gap_s, int first_sib, int then_sib) {
    int ready[2], noticed[2];
    ck_assert_int_eq(pipe(ready), 0);
    ck_assert_int_eq(pipe(noticed), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        ryz_signals_install();
        if (escalates) ryz_signals_parent_escalates();
        char c = 1;
        if (write(ready[1], &c, 1) != 1) _exit(2);
        double t0 = ryz_time_now();
        while (!ryz_interrupted() && ryz_time_now() - t0 < 10) sleep_s(0.001);
        if (write(noticed[1], &c, 1) != 1) _exit(2);
        sleep_s(gap_s + 1.0); /* past the second signal; nanosleep goes on after it */
        _exit(ryz_interrupted() == SIGTERM ? 0 : 3);
    }
    close(ready[1]), close(noticed[1]);
    await_byte(ready[0]);
    if (gap_s < 0.05) sleep_to_second_end();
    send_term(pid, first_sib);
    if (gap_s >= 0.05) await_byte(noticed[0]); /* the gap starts when it noticed */
    sleep_s(gap_s);
    send_term(pid, then_sib);
    close(ready[0]), close(noticed[0]);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status)) return WTERMSIG(status);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* A second signal a second after the first forces the stop; one 30 ms
 * after it does not, even where the two fall in different whole seconds
 * of the clock (the rule once compared whole seconds). */
START_TEST(test_signal_repeat_forces_stop) {
    ck_assert_int_eq(child_after_two_signals(0, 1.2, 0, 0), SIGTERM);
    ck_assert_int_eq(child_after_two_signals(0, 0.03, 0, 0), 0);
}
END_TEST

/* The status a run unwinds with once a stop signal came. */
START_TEST(test_interrupt_check) {
    ck_assert_int_eq(ryz_interrupt_check(), RYZ_OK);
    ryz_interrupt_set(SIGINT);
    ck_assert_int_eq(ryz_interrupt_check(), RYZ_ECOMM);
    ck_assert_str_eq(ryz_last_error(), "interrupted by signal 2");
    ryz_interrupt_set(0);
    ck_assert_int_eq(ryz_interrupt_check(), RYZ_OK);
}
END_TEST

/* Under an MPI launcher: told first by someone else (a self-launching
 * ryz), the parent's repeat a second later is mpirun's kill sequence and
 * does not force the stop; a repeat from anyone else does, and so does the
 * parent's where the parent sent the first too (srun, your own mpirun). */
START_TEST(test_signal_parent_escalates) {
    ck_assert_int_eq(child_after_two_signals(1, 1.2, 1, 0), 0);
    ck_assert_int_eq(child_after_two_signals(1, 1.2, 1, 1), SIGTERM);
    ck_assert_int_eq(child_after_two_signals(1, 1.2, 0, 0), SIGTERM);
}
END_TEST

static Suite *core_suite(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, test_error_message);
    tcase_add_test(tc, test_error_wrap);
    tcase_add_test(tc, test_log_levels);
    tcase_add_test(tc, test_error_long_message_truncated);
    tcase_add_test(tc, test_error_thread_local);
    tcase_add_test(tc, test_status_names_and_exit_codes);
    tcase_add_test(tc, test_log_level_roundtrip);
    tcase_add_test(tc, test_mul_ok);
    suite_add_tcase(s, tc);
    tc = tcase_create("memory");
    tcase_add_test(tc, test_mem_accounting_per_kind);
    tcase_add_test(tc, test_mem_alignment_and_zeroed);
    tcase_add_test(tc, test_mem_overflow);
    tcase_add_test(tc, test_mem_kind_names);
    tcase_add_test(tc, test_mem_peak_rss);
    tcase_add_test(tc, test_mem_peak_reset);
    tcase_add_test(tc, test_cpu_steal);
    tcase_add_test(tc, test_proc_ticks);
    tcase_add_test(tc, test_load_marks);
    tcase_add_test(tc, test_open_regular);
    tcase_add_test(tc, test_mem_check_available);
    tcase_add_test(tc, test_mem_weight_slabs);
    tcase_add_test(tc, test_mem_read_passes);
    tcase_add_test(tc, test_mem_read_slices);
    tcase_add_test(tc, test_mem_read_sum);
    tcase_add_test(tc, test_lockstep_efficiency);
    tcase_add_test(tc, test_mem_read_every_element);
    suite_add_tcase(s, tc);
    tc = tcase_create("env_time");
    tcase_add_test(tc, test_env_int_unset_and_valid);
    tcase_add_test(tc, test_env_int_malformed);
    tcase_add_test(tc, test_env_int_out_of_range);
    tcase_add_test(tc, test_time_monotonic);
    suite_add_tcase(s, tc);
    tc = tcase_create("signals"); /* seconds of sleeps between signals */
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_interrupt_check);
    tcase_add_test(tc, test_signal_repeat_forces_stop);
    tcase_add_test(tc, test_signal_parent_escalates);
    suite_add_tcase(s, tc);
    tc = tcase_create("self_comm");
    tcase_add_checked_fixture(tc, self_setup, self_teardown);
    tcase_add_test(tc, test_self_identity);
    tcase_add_test(tc, test_self_collectives_copy);
    tcase_add_test(tc, test_self_broadcast_bad_root);
    tcase_add_test(tc, test_self_records);
    tcase_add_test(tc, test_self_records_streamed);
    tcase_add_test(tc, test_self_records_gap);
    tcase_add_test(tc, test_self_record_ring_wraps);
    tcase_add_test(tc, test_op_names);
    tcase_add_test(tc, test_self_split_first);
    tcase_add_test(tc, test_record_bytes_convention);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return test_run_suite(core_suite());
}
