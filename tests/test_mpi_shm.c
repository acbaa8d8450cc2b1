/* The shared-memory comm backend (src/comm/shm.c) on 1, 2 or 4 ranks:
 * every op checked element by element by `ryz comm`'s harness from 4 bytes
 * to several slots (256 KiB each) out of place and in place; all-reduce
 * results identical to the bit on every rank (the sum in rank order) and
 * equal to Open MPI's within rounding; sub-communicators of the first n
 * ranks (a broadcast from their last rank); and the wrapper's numbering
 * and records of shm calls. (tests/fault.sh hangs and kills a rank inside
 * shm collectives.)
 *
 * Run under mpirun with CK_FORK=no. Every rank runs the same tests in the
 * same order; a test that could hang arms alarm() first. */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ryz/bench.h"
#include "ryz/comm.h"
#include "testutil.h"

static ryz_comm *g_world, *g_shm;
static int g_rank, g_k;

#define HANG_LIMIT_S 60

/* Checks every row of a harness run on g_shm: no wrong element. */
static void sweep(uint64_t min_bytes, uint64_t max_bytes, int factor) {
    ryz_bench_opts o = {.ops = 0xf,
                        .min_bytes = min_bytes,
                        .max_bytes = max_bytes,
                        .factor = factor,
                        .iters = 2,
                        .warmup = 1,
                        .check = 1};
    ryz_bench_report rep;
    alarm(HANG_LIMIT_S);
    ryz_status st = ryz_bench_run(g_shm, &o, &rep);
    alarm(0);
    ck_assert_msg(st == RYZ_OK, "rank %d/%d: %s", g_rank, g_k, ryz_last_error());
    ck_assert_str_eq(rep.backend, "shm");
    ck_assert_int_eq(rep.wrong, 0);
    for (size_t i = 0; i < rep.n_rows; i++)
        for (int ip = 0; ip < 2; ip++)
            ck_assert_msg(!rep.rows[i].place[ip].ran || rep.rows[i].place[ip].wrong == 0,
                          "%s %llu bytes: #wrong %lld", ryz_comm_op_name(rep.rows[i].op),
                          (unsigned long long)rep.rows[i].bytes,
                          (long long)rep.rows[i].place[ip].wrong);
    ryz_bench_report_free(&rep);
}

START_TEST(test_ops_checked_small) {
    sweep(4, 64 << 10, 8);
}
END_TEST

/* Past one slot: several rounds, the last one partial; at 4 MiB even an
 * all_gather's per-rank part (1 MiB at 4 ranks) takes several. */
START_TEST(test_ops_checked_several_slots) {
    sweep((256 << 10) - 64, (4 << 20) + 48, 4);
}
END_TEST

/* Rank r's element i: values whose float sum depends on the order. */
static float value_of(int r, size_t i) {
    uint32_t h = (uint32_t)(r * 2654435761u) ^ (uint32_t)(i * 40503u + 17u);
    h ^= h >> 13, h *= 0x5bd1e995u, h ^= h >> 15;
    return ((float)(h % 200001u) - 100000.0f) * (r % 2 ? 1e-3f : 7.3f);
}

START_TEST(test_all_reduce_same_bits_as_rank_order) {
    size_t n = 100003; /* one slot and a partial second */
    float *x = malloc(n * sizeof *x), *mpi = malloc(n * sizeof *mpi);
    ck_assert(x && mpi);
    for (size_t i = 0; i < n; i++)
        mpi[i] = x[i] = value_of(g_rank, i);
    alarm(HANG_LIMIT_S);
    ck_assert_int_eq(ryz_comm_all_reduce_sum(g_shm, x, x, n), RYZ_OK);
    ck_assert_int_eq(ryz_comm_all_reduce_sum(g_world, mpi, mpi, n), RYZ_OK);
    alarm(0);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) {
        float want = value_of(0, i);
        for (int r = 1; r < g_k; r++)
            want += value_of(r, i);
        ck_assert_msg(memcmp(&x[i], &want, sizeof want) == 0, "rank %d element %zu: %a, want %a",
                      g_rank, i, (double)x[i], (double)want);
        double scale = 0;
        for (int r = 0; r < g_k; r++)
            scale += fabs((double)value_of(r, i));
        ck_assert_msg(fabs((double)x[i] - (double)mpi[i]) <= 1e-6 * scale + 1e-30,
                      "element %zu: shm %g, mpi %g", i, (double)x[i], (double)mpi[i]);
        differ += x[i] != mpi[i];
    }
    if (g_rank == 0 && g_k > 2)
        fprintf(stderr,
                "test_mpi_shm: %zu of %zu sums differ from Open MPI's in the last bits "
                "(another order)\n",
                differ, n);
    free(x), free(mpi);
}
END_TEST

/* Small collectives back to back, 1 to 9 floats a rank, each round's
 * data different; every so often one rank comes late, so the others
 * start the next round while it still reads this one (a slot must not be
 * rewritten under it). Integer values: the sums are exact. */
START_TEST(test_small_rounds_mixed_and_late) {
    enum { MAXK = 64 };
    float send[9], got[9 * MAXK], sum[9], b[9];
    ck_assert_int_le(g_k, MAXK);
    alarm(HANG_LIMIT_S);
    for (int it = 0; it < 3000; it++) {
        size_t n = 1 + (size_t)it % 9;
        int root = it % g_k;
        struct timespec late = {0, 2000000};
        if (it % 97 == 0 && g_rank == (it / 97) % g_k)
            nanosleep(&late, NULL);
        for (size_t j = 0; j < n; j++)
            send[j] = b[j] = (float)(it * 16 + g_rank * 4 + (int)j);
        ck_assert_int_eq(ryz_comm_all_gather(g_shm, send, got, n), RYZ_OK);
        ck_assert_int_eq(ryz_comm_all_reduce_sum(g_shm, send, sum, n), RYZ_OK);
        ck_assert_int_eq(ryz_comm_broadcast(g_shm, b, n * sizeof(float), root), RYZ_OK);
        for (size_t j = 0; j < n; j++) {
            float want = 0;
            for (int r = 0; r < g_k; r++) {
                float v = (float)(it * 16 + r * 4 + (int)j);
                ck_assert_msg(got[(size_t)r * n + j] == v, "round %d n %zu rank %d: [%d][%zu] %g",
                              it, n, g_rank, r, j, (double)got[(size_t)r * n + j]);
                want += v;
            }
            float from_root = (float)(it * 16 + root * 4 + (int)j);
            ck_assert_msg(sum[j] == want && b[j] == from_root,
                          "round %d n %zu rank %d: sum %g want %g, broadcast %g want %g", it, n,
                          g_rank, (double)sum[j], (double)want, (double)b[j], (double)from_root);
        }
    }
    alarm(0);
}
END_TEST

START_TEST(test_split_first) {
    for (int n = 1; n <= g_k; n++) {
        ryz_comm *sub = NULL;
        alarm(HANG_LIMIT_S);
        ck_assert_int_eq(ryz_comm_split_first(g_shm, n, &sub), RYZ_OK);
        ck_assert_msg((sub != NULL) == (g_rank < n), "rank %d, n %d: sub %p", g_rank, n,
                      (void *)sub);
        if (sub) {
            ck_assert_str_eq(ryz_comm_name(sub), "shm");
            ck_assert_int_eq(ryz_comm_size(sub), n);
            ck_assert_int_eq(ryz_comm_rank(sub), g_rank);
            float v[3] = {1, (float)g_rank, 2}, want = (float)(n * (n - 1) / 2);
            ck_assert_int_eq(ryz_comm_all_reduce_sum(sub, v, v, 3), RYZ_OK);
            ck_assert(v[0] == (float)n && v[1] == want && v[2] == 2.0f * (float)n);
            float g[8];
            for (int i = 0; i < 8; i++)
                g[i] = g_rank == n - 1 ? (float)(i * 3 + n) : -1.0f;
            ck_assert_int_eq(ryz_comm_broadcast(sub, g, sizeof g, n - 1), RYZ_OK);
            for (int i = 0; i < 8; i++)
                ck_assert_msg(g[i] == (float)(i * 3 + n), "rank %d, n %d: g[%d] = %g", g_rank, n, i,
                              (double)g[i]);
            ck_assert_int_eq(ryz_comm_barrier(sub), RYZ_OK);
        }
        ryz_comm_free(sub);
        ck_assert_int_eq(ryz_comm_barrier(g_shm), RYZ_OK);
        alarm(0);
    }
}
END_TEST

/* The wrapper numbers and records shm calls like any backend's. */
START_TEST(test_records_and_sequence) {
    ryz_comm_records_clear(g_shm);
    uint64_t seq = ryz_comm_seq(g_shm);
    float x[768] = {0}, all[768 * 4];
    alarm(HANG_LIMIT_S);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(ryz_comm_all_reduce_sum(g_shm, x, x, 768), RYZ_OK);
    ck_assert_int_eq(ryz_comm_all_gather(g_shm, x, all, 768), RYZ_OK);
    alarm(0);
    ck_assert_uint_eq(ryz_comm_seq(g_shm), seq + 6);
    ck_assert_uint_eq(ryz_comm_record_count(g_shm), 6);
    const ryz_comm_record *r = ryz_comm_record_at(g_shm, 5);
    ck_assert(r->op == RYZ_OP_ALL_GATHER && r->bytes == 768u * 4u * (unsigned)g_k);
    ck_assert(r->seconds >= 0);
}
END_TEST

static Suite *shm_suite(void) {
    Suite *s = suite_create("mpi_shm");
    TCase *tc = tcase_create("shm");
    tcase_set_timeout(tc, HANG_LIMIT_S);
    tcase_add_test(tc, test_ops_checked_small);
    tcase_add_test(tc, test_ops_checked_several_slots);
    tcase_add_test(tc, test_all_reduce_same_bits_as_rank_order);
    tcase_add_test(tc, test_small_rounds_mixed_and_late);
    tcase_add_test(tc, test_split_first);
    tcase_add_test(tc, test_records_and_sequence);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    if (test_mpi_setup(&argc, &argv, "test_mpi_shm", &g_world))
        return EXIT_FAILURE;
    g_rank = ryz_comm_rank(g_world);
    g_k = ryz_comm_size(g_world);
    if (ryz_comm_init_shm_world(&g_shm) != RYZ_OK) {
        fprintf(stderr, "test_mpi_shm: rank %d: %s\n", g_rank, ryz_last_error());
        ryz_comm_free(g_world);
        ryz_mpi_finalize();
        return EXIT_FAILURE;
    }
    int code = test_run_mpi_suite(shm_suite(), g_world, "test_mpi_shm", NULL);
    ryz_comm_free(g_shm);
    ryz_comm_free(g_world);
    ryz_mpi_finalize();
    return code;
}
