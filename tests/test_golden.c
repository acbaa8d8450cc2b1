/* Golden references: the TP=1 greedy ids and selected logits of the
 * synthetic presets, checked within tolerance so a numerical regression
 * fails CI. `test_golden --write DIR` regenerates them (`make golden`);
 * committing the new files is a deliberate, reviewed act. */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#include "ryz/model.h"

enum { MAX_IDS = 64, SHOWN = 8, MAX_POS = 3 };

typedef struct {
    const char *name, *model;
    int prompt[8], prompt_len, new_tokens;
} golden_case;

static const golden_case cases[] = {
    {"synthetic-tiny", "synthetic:tiny", {1, 2, 3, 4}, 4, 16},
    {"synthetic-15m", "synthetic:15m", {1, 9038, 2501, 263}, 4, 16},
};

/* What a golden file holds. */
typedef struct {
    int ids[MAX_IDS], n_ids;
    int pos[MAX_POS];               /* forward positions recorded: first, middle, last */
    float logits[MAX_POS][SHOWN];   /* their first SHOWN logits */
    float range[MAX_POS];           /* max |logit| of each recorded row */
    unsigned long digest;           /* FNV-1a of the ids */
} golden;

static unsigned long fnv1a(const int *ids, int n) {
    unsigned long h = 1469598103934665603UL;
    for (int i = 0; i < n; i++) h = (h ^ (unsigned)ids[i]) * 1099511628211UL;
    return h;
}

/* Runs a case at TP=1 and fills g. */
static ryz_status golden_compute(const golden_case *c, golden *g) {
    ryz_comm *self = NULL;
    ryz_backend be;
    ryz_model *m = NULL;
    int len = c->prompt_len + c->new_tokens, rows = len - 1;
    ryz_model_opts o = {.max_batch = 1, .max_chunk = c->prompt_len};
    float *logits = NULL;
    ryz_status st = ryz_comm_init_self(&self);
    if (st == RYZ_OK) st = ryz_backend_init_cpu(1, &be);
    if (st == RYZ_OK) st = ryz_model_open(c->model, self, &be, &o, &m);
    int vocab = m ? ryz_model_config_of(m)->vocab : 0;
    if (st == RYZ_OK && !(logits = malloc((size_t)rows * vocab * sizeof(float))))
        st = RYZ_ENOMEM;
    if (st == RYZ_OK)
        st = ryz_model_generate(m, c->prompt, 1, c->prompt_len, c->new_tokens, NULL, g->ids,
                                logits, NULL);
    g->n_ids = len;
    int pos[MAX_POS] = {0, rows / 2, rows - 1};
    for (int p = 0; st == RYZ_OK && p < MAX_POS; p++) {
        const float *row = logits + (size_t)pos[p] * vocab;
        g->pos[p] = pos[p];
        g->range[p] = 0;
        for (int v = 0; v < vocab; v++) g->range[p] = fmaxf(g->range[p], fabsf(row[v]));
        memcpy(g->logits[p], row, SHOWN * sizeof(float));
    }
    g->digest = fnv1a(g->ids, len);
    free(logits);
    ryz_model_free(m);
    ryz_comm_free(self);
    return st;
}

static int golden_write(const golden_case *c, const golden *g, const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.txt", dir, c->name);
    FILE *f = fopen(path, "w");
    if (!f) return perror(path), 1;
    fprintf(f, "# TP=1 greedy reference of %s. Regenerate: make golden (review the diff).\n",
            c->model);
    fprintf(f, "ids");
    for (int i = 0; i < g->n_ids; i++) fprintf(f, " %d", g->ids[i]);
    fprintf(f, "\ndigest %lu\n", g->digest);
    for (int p = 0; p < MAX_POS; p++) {
        fprintf(f, "pos %d range %.9g logits", g->pos[p], (double)g->range[p]);
        for (int i = 0; i < SHOWN; i++) fprintf(f, " %.9g", (double)g->logits[p][i]);
        fprintf(f, "\n");
    }
    printf("wrote %s\n", path);
    return fclose(f) != 0;
}

/* Reads reference/NAME.txt; 0 on success. */
static int golden_read(const golden_case *c, golden *g) {
    char path[512], word[32];
    snprintf(path, sizeof path, "reference/%s.txt", c->name);
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    int ok = fscanf(f, "%*[^\n]\n%31s", word) == 1 && !strcmp(word, "ids");
    for (g->n_ids = 0; ok && g->n_ids < MAX_IDS && fscanf(f, "%d", &g->ids[g->n_ids]) == 1;)
        g->n_ids++;
    ok = ok && fscanf(f, " digest %lu", &g->digest) == 1;
    for (int p = 0; ok && p < MAX_POS; p++) {
        ok = fscanf(f, " pos %d range %f logits", &g->pos[p], &g->range[p]) == 2;
        for (int i = 0; ok && i < SHOWN; i++) ok = fscanf(f, "%f", &g->logits[p][i]) == 1;
    }
    fclose(f);
    return !ok;
}

/* Where got departs from want: a message in why[cap] and 1, or 0 when they
 * agree (ids exactly, logits within 1e-4 * range + 1e-4 * |golden|). */
static int golden_mismatch(const golden *want, const golden *got, char *why, size_t cap) {
    if (want->digest != fnv1a(want->ids, want->n_ids))
        return snprintf(why, cap, "digest does not match its ids (edited by hand?)"), 1;
    if (got->n_ids != want->n_ids)
        return snprintf(why, cap, "%d ids, golden %d", got->n_ids, want->n_ids), 1;
    for (int i = 0; i < want->n_ids; i++)
        if (got->ids[i] != want->ids[i])
            return snprintf(why, cap, "id %d is %d, golden %d", i, got->ids[i], want->ids[i]), 1;
    for (int p = 0; p < MAX_POS; p++)
        for (int i = 0; i < SHOWN; i++) {
            double b = want->logits[p][i], a = got->logits[p][i];
            double tol = 1e-4 * want->range[p] + 1e-4 * fabs(b);
            if (!(fabs(a - b) <= tol))
                return snprintf(why, cap,
                                "position %d logit %d is %.9g, golden %.9g (|diff| %.3g > %.3g)",
                                want->pos[p], i, a, b, fabs(a - b), tol),
                       1;
        }
    return 0;
}

START_TEST(test_golden_matches) {
    const golden_case *c = &cases[_i];
    golden want, got;
    char why[256];
    ck_assert_msg(golden_read(c, &want) == 0, "reference/%s.txt missing or malformed", c->name);
    ck_assert_int_eq(golden_compute(c, &got), RYZ_OK);
    ck_assert_msg(!golden_mismatch(&want, &got, why, sizeof why), "%s: %s", c->name, why);
}
END_TEST

/* The check can fail: an altered golden (a logit off by 1e-3, an id, a
 * digest) is reported. */
START_TEST(test_golden_altered_fails) {
    golden want, got, bad;
    char why[256];
    ck_assert(golden_read(&cases[0], &want) == 0);
    ck_assert_int_eq(golden_compute(&cases[0], &got), RYZ_OK);
    bad = want, bad.logits[1][3] += 1e-3f;
    ck_assert_msg(golden_mismatch(&bad, &got, why, sizeof why) && strstr(why, "logit 3"), "%s", why);
    bad = want, bad.ids[want.n_ids - 1] ^= 1, bad.digest = fnv1a(bad.ids, bad.n_ids);
    ck_assert_msg(golden_mismatch(&bad, &got, why, sizeof why) && strstr(why, "id "), "%s", why);
    bad = want, bad.digest ^= 1;
    ck_assert_msg(golden_mismatch(&bad, &got, why, sizeof why) && strstr(why, "digest"), "%s", why);
}
END_TEST

int main(int argc, char **argv) {
    int n = (int)(sizeof cases / sizeof cases[0]);
    if (argc == 3 && !strcmp(argv[1], "--write")) {
        int bad = 0;
        for (int i = 0; i < n; i++) {
            golden g;
            if (golden_compute(&cases[i], &g) != RYZ_OK)
                return fprintf(stderr, "%s: %s\n", cases[i].name, ryz_last_error()), 1;
            bad |= golden_write(&cases[i], &g, argv[2]);
        }
        return bad;
    }
    Suite *s = suite_create("golden");
    TCase *tc = tcase_create("golden");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_golden_matches, 0, n);
    tcase_add_test(tc, test_golden_altered_fails);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
