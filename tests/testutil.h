/* Helpers shared by the Check test programs (static inline: each program
 * uses what it needs, unused ones cost nothing). Include it after defining
 * _POSIX_C_SOURCE 200809L (mkdtemp, lstat). */
#ifndef RYZ_TESTUTIL_H
#define RYZ_TESTUTIL_H

#include <check.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ryz/comm.h"

/* The ryz binary under test: $RYZ_BIN, or build/ryz. */
static inline const char *test_ryz_bin(void) {
    const char *b = getenv("RYZ_BIN");
    return b && *b ? b : "build/ryz";
}

/* The whole content of a file (malloc'd, NUL-terminated); *len its size
 * when len is not NULL. Fails the test when unreadable. */
static inline char *test_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
}

/* Removes a file or a directory tree (best effort). */
static inline void test_rm_tree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return;
    if (!S_ISDIR(sb.st_mode)) {
        unlink(path);
        return;
    }
    DIR *d = opendir(path);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[4096];
        if (snprintf(sub, sizeof sub, "%s/%s", path, e->d_name) < (int)sizeof sub)
            test_rm_tree(sub);
    }
    if (d) closedir(d);
    rmdir(path);
}

/* A new directory $TMPDIR/ryz-TAG-XXXXXX; its path in dir[cap]. */
static inline void test_mkdtemp(char *dir, size_t cap, const char *tag) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, cap, "%s/ryz-%s-XXXXXX", base ? base : "/tmp", tag);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

/* A FIFO with no writer at dir/name (dir from test_mkdtemp), into
 * path[cap]: what a plain open() of it would block on forever. Remove with
 * test_rmfifo. */
static inline void test_mkfifo(char *dir, char *path, size_t cap, const char *name) {
    test_mkdtemp(dir, cap, "fifo");
    int n = snprintf(path, cap, "%s/%s", dir, name);
    ck_assert(n > 0 && (size_t)n < cap);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
}

static inline void test_rmfifo(const char *dir, const char *path) {
    unlink(path);
    rmdir(dir);
}

/* One ryz_model_generate run's outputs: ids (B, P + n_new) and logits
 * (B, P + n_new - 1, vocab), malloc'd; where the run says so, whether the
 * model still recorded its decode steps at the end (ryz_model_recording). */
typedef struct {
    int *ids;
    float *logits;
    int recorded;
} test_gen;

/* Frees a run's outputs and zeroes it (safe on a zeroed one). */
static inline void test_gen_free(test_gen *g) {
    free(g->ids);
    free(g->logits);
    *g = (test_gen){0};
}

/* A llama2.c tokenizer.bin at path (max_token_length 16): <unk> <s> </s>,
 * the 256 byte pieces <0x00>..<0xFF> (ids 3..258), then pieces[n] with
 * scores[n] (ids 259 on). */
static inline void test_write_tokenizer(const char *path, const char *const *pieces,
                                        const float *scores, int n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    int32_t max = 16;
    fwrite(&max, 4, 1, f);
    for (int i = 0; i < 259 + n; i++) {
        char byte[8];
        const char *s = i == 0 ? "<unk>" : i == 1 ? "\n<s>\n" : i == 2 ? "\n</s>\n" : byte;
        float score = i < 259 ? 0.0f : scores[i - 259];
        if (i >= 3 && i < 259)
            snprintf(byte, sizeof byte, "<0x%02X>", i - 3);
        if (i >= 259)
            s = pieces[i - 259];
        int32_t len = (int32_t)strlen(s);
        fwrite(&score, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(s, 1, (size_t)len, f);
    }
    fclose(f);
}

/* Tokens of test_write_hello_tokenizer's file. */
#define TEST_HELLO_VOCAB (259 + 19)

/* The fixture tokenizer.bin of TEST_HELLO_VOCAB tokens at path: "hello
 * world" encodes (BOS first) as 1 268 276 (" hello" = 259 + 9, " world" =
 * 259 + 17), "\xc3\xa9" is piece 259 + 18, other non-ASCII falls back to
 * bytes (byte + 3). */
static inline void test_write_hello_tokenizer(const char *path) {
    static const char *const pieces[] = {" ",    "h",     "e",      "l",      "o",       "he", "ll",
                                         "hell", "hello", " hello", "w",      "r",       "d",  "or",
                                         "wor",  "ld",    "world",  " world", "\xc3\xa9"};
    static const float scores[] = {-1, -2, -2, -2, -2, -5, -4, -6, -7, -3,
                                   -2, -2, -2, -5, -8, -6, -9, -4, -1};
    test_write_tokenizer(path, pieces, scores, (int)(sizeof pieces / sizeof pieces[0]));
}

/* Every one of the n strings of want is in text; the first missing one
 * fails the test, with (the start of) text. */
static inline void test_assert_all_in(const char *text, const char *const *want, size_t n) {
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(strstr(text, want[i]), "'%s' not in:\n%.3000s", want[i], text);
}

/* A child process that spins on a CPU until test_spin_stop, or at most
 * 120 s (its alarm), so that a test that fails between the two, or runs
 * with CK_FORK=no, leaves no spinner behind. */
static inline pid_t test_spin_start(void) {
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(120);
        for (volatile unsigned long x = 0;; x++) {
        }
    }
    return pid;
}

/* Kills and reaps a test_spin_start child. */
static inline void test_spin_stop(pid_t pid) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* What one run of the binary did. */
typedef struct {
    int code;  /* exit status, or -1 if it did not exit normally */
    char *out; /* stdout (malloc'd) */
    char *err; /* stderr (malloc'd) */
} test_run;

/* Runs `ENV timeout 120 RYZ ARGS </dev/null` through the shell (env may be
 * NULL or "NAME=VALUE ..."), capturing stdout and stderr. */
static inline test_run test_run_ryz(const char *env, const char *args) {
    const char *bin = test_ryz_bin();
    ck_assert_msg(access(bin, X_OK) == 0, "%s is not an executable (run make first)", bin);
    char out[] = "/tmp/ryz_test_out_XXXXXX", err[] = "/tmp/ryz_test_err_XXXXXX", cmd[4096];
    close(mkstemp(out));
    close(mkstemp(err));
    snprintf(cmd, sizeof cmd, "%s timeout 120 %s %s >%s 2>%s </dev/null", env ? env : "", bin, args,
             out, err);
    int st = system(cmd);
    test_run r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, test_slurp(out, NULL), test_slurp(err, NULL)};
    unlink(out);
    unlink(err);
    return r;
}

/* Frees a run's captured output. */
static inline void test_run_free(test_run *r) {
    free(r->out);
    free(r->err);
}

/* The start of an MPI test program: MPI and its world communicator, the
 * log's rank prefix. 0, or 1 after saying why on stderr (MPI finalised). */
static inline int test_mpi_setup(int *argc, char ***argv, const char *name, ryz_comm **world) {
    if (ryz_mpi_init(argc, argv) != RYZ_OK || ryz_comm_init_mpi_world(world) != RYZ_OK) {
        fprintf(stderr, "%s: setup failed: %s\n", name, ryz_last_error());
        ryz_mpi_finalize();
        return 1;
    }
    ryz_log_set_rank(ryz_comm_rank(*world));
    return 0;
}

/* Runs one Check suite on every rank of world without forking (MPI does
 * not allow it), calls before_sum (NULL: nothing; e.g. to switch off a
 * fault that would disturb the sum), then sums the failures of all ranks,
 * which rank 0 prints under `name`. The exit status, the same on every
 * rank: failure when any rank failed. */
static inline int test_run_mpi_suite(Suite *s, ryz_comm *world, const char *name,
                                     void (*before_sum)(void)) {
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    float failed = (float)srunner_ntests_failed(sr), all_failed = 0;
    srunner_free(sr);
    if (before_sum) before_sum();
    if (ryz_comm_all_reduce_sum(world, &failed, &all_failed, 1) != RYZ_OK) all_failed = 1;
    if (ryz_comm_rank(world) == 0)
        fprintf(stderr, "%s at %d rank(s): %.0f failed test(s) over all ranks\n", name,
                ryz_comm_size(world), (double)all_failed);
    return all_failed > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Runs one Check suite (CK_NORMAL) and returns the process exit status. */
static inline int test_run_suite(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
