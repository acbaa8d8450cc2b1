/* Reliability of the comm layer on the MPI world (1, 2 or 4 ranks): fault
 * specs parse or fail with EINVAL naming the bad part; collectives are
 * numbered per communicator; the agreement check stops mismatched
 * collectives on every rank with both sides named (exact beyond float
 * precision) and leaves the communicator usable; corrupt and slow faults do
 * what they say; a pending signal stops world rank 0 at its next collective
 * only; every rank answers ryz_comm_check_peers. Faults that end the
 * process (kill, hang, timeouts) are tests/fault.sh's.
 *
 * Run under mpirun with CK_FORK=no. Every rank runs the same tests in the
 * same order; failures of all ranks are all-reduced into the exit code. A
 * test that could hang arms alarm() first. */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ryz/comm.h"
#include "testutil.h"

static ryz_comm *g_world;
static int g_rank, g_k;

#define HANG_LIMIT_S 60 /* a test taking longer has hung */

/* Clears faults and restores the checking the environment asked for. */
static void reset(void) {
    ryz_comm_fault_set(NULL);
    ryz_interrupt_set(0);
    ryz_comm_set_check(getenv("RYZ_CHECK_COLLECTIVES") &&
                       !strcmp(getenv("RYZ_CHECK_COLLECTIVES"), "1"));
    alarm(0);
}

static void expect_message(const char *needle) {
    ck_assert_msg(strstr(ryz_last_error(), needle), "rank %d/%d: message '%s' lacks '%s'", g_rank,
                  g_k, ryz_last_error(), needle);
}

START_TEST(test_fault_specs) {
    const char *good[] = {"kill:rank=1:step=2",
                          "hang:step=9:rank=0",
                          "slow:rank=3:step=1",
                          "corrupt:rank=0:step=4:op=all_reduce",
                          "desync:rank=2:step=7:op=comm_split",
                          ""};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        ck_assert_msg(ryz_comm_fault_set(good[i]) == RYZ_OK, "'%s': %s", good[i], ryz_last_error());
    const struct {
        const char *spec, *needle;
    } bad[] = {{"kil:rank=1:step=2", "unknown kind 'kil'"},
               {"kill:rank=1", "missing step=S"},
               {"kill:rank=x:step=1", "rank=x is not an integer >= 0"},
               {"kill:rank=1:step=0", "step=0 is not an integer >= 1"},
               {"kill:rank=1:step=2:op=allreduce", "op=allreduce is not"},
               {"kill:rank=1:step=2:when=3", "unknown field 'when'"},
               {"kill:rank=1:step=2:now", "'now' is not key=value"},
               {":rank=1:step=2", "unknown kind"},
               {"hang:step=3", "missing rank=R"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_msg(ryz_comm_fault_set(bad[i].spec) == RYZ_EINVAL, "'%s' accepted", bad[i].spec);
        expect_message(bad[i].needle);
    }
    ck_assert_int_eq(ryz_comm_fault_set(NULL), RYZ_OK);
}
END_TEST

START_TEST(test_settings) {
    double was = ryz_comm_timeout();
    ryz_comm_set_timeout(7);
    ck_assert(ryz_comm_timeout() == 7);
    ryz_comm_set_timeout(-1);
    ck_assert(ryz_comm_timeout() == 0);
    ryz_comm_set_timeout(was);
    ryz_comm_set_check(1);
    ck_assert_int_eq(ryz_comm_check_enabled(), 1);
    ck_assert_int_eq(ryz_comm_setup(), RYZ_OK);
}
END_TEST

START_TEST(test_sequence_numbers) {
    alarm(HANG_LIMIT_S);
    uint64_t s0 = ryz_comm_seq(g_world);
    float x[4] = {1, 2, 3, 4}, all[4 * 4];
    ck_assert_int_eq(ryz_comm_all_reduce_sum(g_world, x, x, 4), RYZ_OK);
    ck_assert_int_eq(ryz_comm_barrier(g_world), RYZ_OK);
    ryz_comm *sub = NULL;
    ck_assert_int_eq(ryz_comm_split_first(g_world, 1, &sub), RYZ_OK);
    ck_assert_uint_eq(ryz_comm_seq(g_world), s0 + 3); /* split counts on the parent */
    if (sub) {
        ck_assert_uint_eq(ryz_comm_seq(sub), 0);
        ck_assert_int_eq(ryz_comm_all_gather(sub, x, all, 4), RYZ_OK);
        ck_assert_uint_eq(ryz_comm_seq(sub), 1);
    }
    ryz_comm_free(sub);
    ck_assert_uint_eq(ryz_comm_seq(g_world), s0 + 3);
}
END_TEST

START_TEST(test_desync_fault_detected) {
    if (g_k < 2)
        return;
    alarm(HANG_LIMIT_S);
    ryz_comm_set_check(1);
    ck_assert_int_eq(ryz_comm_fault_set("desync:rank=1:step=1:op=all_reduce"), RYZ_OK);
    float x[8] = {0};
    char want0[64], want1[64];
    uint64_t seq = ryz_comm_seq(g_world) + 1;
    snprintf(want0, sizeof want0, "rank 0: all_reduce #%llu of 8 floats", (unsigned long long)seq);
    snprintf(want1, sizeof want1, "rank 1: all_reduce #%llu of 7 floats", (unsigned long long)seq);
    ck_assert_int_eq(ryz_comm_all_reduce_sum(g_world, x, x, 8), RYZ_ECOMM);
    expect_message(want0);
    expect_message(want1);
    /* nothing was issued: the communicator still works */
    for (int i = 0; i < 8; i++)
        x[i] = 1;
    ck_assert_int_eq(ryz_comm_all_reduce_sum(g_world, x, x, 8), RYZ_OK);
    for (int i = 0; i < 8; i++)
        ck_assert(x[i] == g_k);
}
END_TEST

START_TEST(test_mismatched_ops_named) {
    if (g_k < 2)
        return;
    alarm(HANG_LIMIT_S);
    ryz_comm_set_check(1);
    float x[8] = {0}, all[8 * 4];
    uint64_t seq = ryz_comm_seq(g_world) + 1;
    ryz_status st = g_rank == 0 ? ryz_comm_all_reduce_sum(g_world, x, x, 8)
                                : ryz_comm_all_gather(g_world, x, all, 8);
    ck_assert_int_eq(st, RYZ_ECOMM);
    char want[128];
    snprintf(want, sizeof want,
             "rank 0: all_reduce #%llu of 8 floats; rank 1: all_gather #%llu of 8 floats",
             (unsigned long long)seq, (unsigned long long)seq);
    expect_message(want);
    ck_assert_int_eq(ryz_comm_barrier(g_world), RYZ_OK);
}
END_TEST

/* Counts past 2^24 differ by one: float32 could not tell them apart, the
 * 16-bit chunks of the fingerprint can. Nothing is issued, so the buffers
 * are never read. */
START_TEST(test_large_counts_compared_exactly) {
    if (g_k < 2)
        return;
    alarm(HANG_LIMIT_S);
    ryz_comm_set_check(1);
    float x[1];
    size_t n = ((size_t)1 << 24) + 1 + (g_rank == 0);
    ck_assert_int_eq(ryz_comm_all_reduce_sum(g_world, x, x, n), RYZ_ECOMM);
    expect_message("of 16777218 floats; rank 1: all_reduce");
    expect_message("of 16777217 floats");
}
END_TEST

START_TEST(test_corrupt_fault) {
    alarm(HANG_LIMIT_S);
    ck_assert_int_eq(ryz_comm_fault_set("corrupt:rank=0:step=1:op=all_reduce"), RYZ_OK);
    ck_assert_int_eq(ryz_comm_barrier(g_world), RYZ_OK); /* not an all_reduce: not counted */
    for (int round = 0; round < 2; round++) {
        float x[5] = {1, 1, 1, 1, 1};
        ck_assert_int_eq(ryz_comm_all_reduce_sum(g_world, x, x, 5), RYZ_OK);
        for (int i = 0; i < 5; i++) {
            float want = (float)g_k + (round == 0 && g_rank == 0 && i == 2);
            ck_assert_msg(x[i] == want, "rank %d round %d x[%d] = %g, want %g", g_rank, round, i,
                          (double)x[i], (double)want);
        }
    }
}
END_TEST

START_TEST(test_slow_fault_within_timeout) {
    alarm(HANG_LIMIT_S);
    double was = ryz_comm_timeout();
    ryz_comm_set_timeout(30);
    char spec[64];
    snprintf(spec, sizeof spec, "slow:rank=%d:step=1", g_k - 1);
    ck_assert_int_eq(ryz_comm_fault_set(spec), RYZ_OK);
    double t0 = ryz_time_now();
    ck_assert_int_eq(ryz_comm_barrier(g_world), RYZ_OK);
    ck_assert_msg(ryz_time_now() - t0 >= 0.9, "rank %d: the slow rank did not hold the barrier",
                  g_rank);
    ryz_comm_set_timeout(was);
}
END_TEST

/* A pending signal stops world rank 0 at its next collective, before it
 * communicates; the other ranks go on (rank 0 writes the results). A
 * one-rank communicator, so no rank waits for another. */
START_TEST(test_interrupt_stops_rank_0) {
    ryz_comm *self = NULL;
    ck_assert_int_eq(ryz_comm_init_self(&self), RYZ_OK);
    ryz_interrupt_set(SIGTERM);
    ck_assert_int_eq(ryz_interrupted(), SIGTERM);
    float x[2] = {1, 2};
    ryz_status st = ryz_comm_all_reduce_sum(self, x, x, 2);
    if (g_rank == 0) {
        ck_assert_int_eq(st, RYZ_ECOMM);
        expect_message("interrupted by signal 15");
        ck_assert_uint_eq(ryz_comm_seq(self), 0);
    } else {
        ck_assert_int_eq(st, RYZ_OK);
    }
    ryz_interrupt_set(0);
    ck_assert_int_eq(ryz_comm_all_reduce_sum(self, x, x, 2), RYZ_OK);
    ryz_comm_free(self);
}
END_TEST

START_TEST(test_every_rank_answers) {
    alarm(HANG_LIMIT_S);
    ryz_status st = ryz_comm_check_peers(g_world, 10.0);
    ck_assert_msg(st == RYZ_OK, "rank %d/%d: %s", g_rank, g_k, ryz_last_error());
    ck_assert_int_eq(ryz_comm_barrier(g_world), RYZ_OK);
}
END_TEST

static Suite *fault_suite(void) {
    Suite *s = suite_create("mpi_fault");
    TCase *tc = tcase_create("reliability");
    tcase_add_checked_fixture(tc, reset, reset);
    tcase_set_timeout(tc, 0);
    tcase_add_test(tc, test_fault_specs);
    tcase_add_test(tc, test_settings);
    tcase_add_test(tc, test_sequence_numbers);
    tcase_add_test(tc, test_desync_fault_detected);
    tcase_add_test(tc, test_mismatched_ops_named);
    tcase_add_test(tc, test_large_counts_compared_exactly);
    tcase_add_test(tc, test_corrupt_fault);
    tcase_add_test(tc, test_slow_fault_within_timeout);
    tcase_add_test(tc, test_interrupt_stops_rank_0);
    tcase_add_test(tc, test_every_rank_answers);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    if (test_mpi_setup(&argc, &argv, "test_mpi_fault", &g_world)) return EXIT_FAILURE;
    g_rank = ryz_comm_rank(g_world);
    g_k = ryz_comm_size(g_world);
    int code = test_run_mpi_suite(fault_suite(), g_world, "test_mpi_fault", reset);
    ryz_comm_free(g_world);
    ryz_mpi_finalize();
    return code;
}
