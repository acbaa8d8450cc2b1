/* Tests of model/ (config rules, source parsing, shard plan, synthetic
 * weights, TP layers, build/forward/free, generate) and of the CPU backend.
 * The forward pass is checked against a plain double-precision Llama
 * reference written here (llama2.c conventions, DESIGN section 1). */
#define _POSIX_C_SOURCE 200809L

#include "ryz/backend.h"
#include "ryz/comm.h"
#include "ryz/cuda.h"
#include "ryz/info.h"
#include "ryz/model.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "shadow_backend.h"

/* ================================================================ helpers */

/* Asserts |got - want| <= atol + rtol * |want| for each of n elements; on
 * failure names the worst element, its index and both values. */
static void assert_close(const float *got, const float *want, size_t n, double atol, double rtol,
                         const char *what) {
    size_t worst = 0;
    double excess = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (got[i] == want[i])
            continue;
        double d = fabs((double)got[i] - (double)want[i]);
        double e = isnan(d) ? INFINITY : d - (atol + rtol * fabs((double)want[i]));
        if (e > excess)
            excess = e, worst = i;
    }
    ck_assert_msg(!(excess > 0), "%s: worst element %zu is %.9g, expected %.9g (tolerance %.3g)",
                  what, worst, (double)got[worst], (double)want[worst],
                  atol + rtol * fabs((double)want[worst]));
}

/* Converts n doubles to floats (for comparisons against a double reference). */
static void to_float(float *dst, const double *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)src[i];
}

/* Largest |x| of n floats. */
static double max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)x[i]) > m)
            m = fabs((double)x[i]);
    return m;
}

/* Fills x[0..n) with a deterministic pseudo-random pattern in [-1, 1). */
static void fill_rand(float *x, size_t n, uint32_t salt) {
    ryz_synth_fill(1234, salt, 1.0f, 0, 1, 1, 0, (int)n, (int)n, x);
}

/* Number of lines of a message (0 for ""). */
static int count_lines(const char *s) {
    if (!*s)
        return 0;
    int n = 1;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Asserts that ryz_last_error() contains `needle`. */
static void assert_error_has(const char *needle) {
    ck_assert_msg(strstr(ryz_last_error(), needle), "'%s' not in last error '%s'", needle,
                  ryz_last_error());
}

/* Parses a source that must be valid. */
static ryz_model_config parse_ok(const char *src) {
    ryz_model_config c;
    ck_assert_msg(ryz_model_source_parse(src, &c) == RYZ_OK, "%s: %s", src, ryz_last_error());
    return c;
}

/* Live bytes of every memory kind, into `out`. */
static void mem_snapshot(size_t out[RYZ_MEM_NKINDS]) {
    for (int k = 0; k < RYZ_MEM_NKINDS; k++)
        out[k] = ryz_mem_bytes((ryz_mem_kind)k);
}

/* Asserts that live bytes of every kind equal a snapshot. */
static void assert_mem_equals(const size_t want[RYZ_MEM_NKINDS], const char *when) {
    for (int k = 0; k < RYZ_MEM_NKINDS; k++)
        ck_assert_msg(ryz_mem_bytes((ryz_mem_kind)k) == want[k],
                      "%s: %s has %zu bytes, expected %zu", when,
                      ryz_mem_kind_name((ryz_mem_kind)k), ryz_mem_bytes((ryz_mem_kind)k), want[k]);
}

/* ======================================================= config rules */

/* Asserts validation fails with exactly `lines` lines containing every
 * needle (NULL-terminated). */
static void expect_invalid(const ryz_model_config *c, int tp, int lines,
                           const char *const *needles) {
    ryz_error_clear();
    ck_assert_int_eq(ryz_config_validate(c, tp), RYZ_EINVAL);
    const char *msg = ryz_last_error();
    ck_assert_msg(count_lines(msg) == lines, "expected %d line(s), got:\n%s", lines, msg);
    for (int i = 0; needles[i]; i++)
        ck_assert_msg(strstr(msg, needles[i]), "'%s' not in '%s'", needles[i], msg);
}

#define EXPECT_INVALID(cfg, tp, lines, ...)                                                        \
    do {                                                                                           \
        const char *const needles_[] = {__VA_ARGS__, NULL};                                        \
        expect_invalid(&(cfg), tp, lines, needles_);                                               \
    } while (0)

/* The tiny preset with overrides of the given fields (0: keep). */
static ryz_model_config tiny_with(int dim, int hidden, int heads, int kv_heads) {
    ryz_model_config c = parse_ok("synthetic:tiny");
    if (dim)
        c.dim = dim;
    if (hidden)
        c.hidden = hidden;
    if (heads)
        c.n_heads = heads;
    if (kv_heads)
        c.n_kv_heads = kv_heads;
    return c;
}

START_TEST(test_validate_accepts) {
    static const struct {
        const char *src;
        int tp;
    } ok[] = {
        {"synthetic:tiny", 1},
        {"synthetic:tiny", 2},
        {"synthetic:tiny", 4},
        {"synthetic:15m", 3},
        {"synthetic:15m", 6},
        {"synthetic:110m", 4},
        {"synthetic:1b", 8}, /* n_kv_heads 4 < tp 8: replicated, allowed */
        {"synthetic:7b", 32},
        {"synthetic:tiny,hidden=170", 4}, /* uneven hidden */
        {"synthetic:tiny,vocab=1003", 4}, /* padded vocab */
        {"synthetic:tiny,heads=4,kv_heads=1", 4},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ryz_model_config c = parse_ok(ok[i].src);
        ck_assert_msg(ryz_config_validate(&c, ok[i].tp) == RYZ_OK, "%s tp %d rejected: %s",
                      ok[i].src, ok[i].tp, ryz_last_error());
    }
}
END_TEST

START_TEST(test_validate_each_rule) {
    ryz_model_config c = tiny_with(0, 0, 4, 4);
    EXPECT_INVALID(c, 3, 1, "n_heads 4 not divisible by tp 3");
    c = tiny_with(66, 0, 4, 4);
    EXPECT_INVALID(c, 1, 1, "dim 66 not divisible by n_heads 4");
    c = tiny_with(12, 0, 4, 4);
    EXPECT_INVALID(c, 1, 1, "head_dim 3", "even");
    c = tiny_with(0, 0, 4, 3);
    EXPECT_INVALID(c, 1, 1, "n_heads 4 not a multiple of n_kv_heads 3");
    c = tiny_with(0, 0, 4, 8);
    EXPECT_INVALID(c, 1, 1, "n_kv_heads 8");
    c = tiny_with(0, 3, 4, 4);
    EXPECT_INVALID(c, 4, 1, "hidden 3 smaller than tp 4");
    c = tiny_with(0, 0, 0, 0);
    EXPECT_INVALID(c, 0, 1, "tp 0 must be >= 1");
    EXPECT_INVALID(c, -2, 1, "tp -2");
}
END_TEST

START_TEST(test_validate_dimension_ranges) {
    /* Each field zero, negative and above 2^24 in turn. */
    static const char *names[] = {"dim",        "hidden", "layers", "n_heads",
                                  "n_kv_heads", "vocab",  "seq_len"};
    const int bad[] = {0, -3, (1 << 24) + 1};
    for (int f = 0; f < 7; f++)
        for (int b = 0; b < 3; b++) {
            ryz_model_config c = parse_ok("synthetic:tiny");
            int *fields[] = {&c.dim,        &c.hidden, &c.n_layers, &c.n_heads,
                             &c.n_kv_heads, &c.vocab,  &c.seq_len};
            *fields[f] = bad[b];
            char want[64];
            snprintf(want, sizeof want, "%s %d out of range", names[f], bad[b]);
            EXPECT_INVALID(c, 1, 1, want);
        }
    ryz_model_config c = parse_ok("synthetic:tiny");
    c.n_layers = 1 << 24; /* the limit itself is allowed */
    ck_assert_int_eq(ryz_config_validate(&c, 1), RYZ_OK);
}
END_TEST

START_TEST(test_validate_several_at_once) {
    ryz_model_config c = tiny_with(0, 2, 4, 3);
    EXPECT_INVALID(c, 3, 3, "n_heads 4 not divisible by tp 3",
                   "n_heads 4 not a multiple of n_kv_heads 3", "hidden 2 smaller than tp 3");
    c = tiny_with(66, 0, 4, 4);
    EXPECT_INVALID(c, 3, 2, "n_heads 4 not divisible by tp 3", "dim 66 not divisible");
    c = tiny_with(0, 0, 0, 0);
    c.dim = 0, c.vocab = -1, c.seq_len = 1 << 30;
    EXPECT_INVALID(c, 0, 4, "dim 0", "vocab -1", "seq_len 1073741824", "tp 0");
}
END_TEST

/* ========================================================= source parsing */

START_TEST(test_parse_presets) {
    static const struct {
        const char *src;
        int dim, hidden, layers, heads, kv, vocab, seq;
    } want[] = {
        {"synthetic:tiny", 64, 176, 2, 4, 4, 512, 128},
        {"synthetic:15m", 288, 768, 6, 6, 6, 32000, 256},
        {"synthetic:110m", 768, 2048, 12, 12, 12, 32000, 1024},
        {"synthetic:1b", 2048, 5632, 22, 32, 4, 32000, 2048},
        {"synthetic:7b", 4096, 11008, 32, 32, 32, 32000, 4096},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ryz_model_config c = parse_ok(want[i].src);
        ck_assert_msg(
            c.dim == want[i].dim && c.hidden == want[i].hidden && c.n_layers == want[i].layers &&
                c.n_heads == want[i].heads && c.n_kv_heads == want[i].kv &&
                c.vocab == want[i].vocab && c.seq_len == want[i].seq,
            "%s: got dim %d hidden %d layers %d heads %d kv %d vocab %d seq %d", want[i].src, c.dim,
            c.hidden, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab, c.seq_len);
        ck_assert_uint_eq(c.seed, 0);
        ck_assert_float_eq(c.norm_eps, 1e-5f);
        ck_assert_float_eq(c.rope_base, 10000.0f);
        ck_assert_int_eq(ryz_config_validate(&c, 1), RYZ_OK);
    }
}
END_TEST

START_TEST(test_parse_overrides) {
    ryz_model_config c = parse_ok("synthetic:tiny,dim=128,hidden=100,layers=3,heads=8,"
                                  "kv_heads=2,vocab=1001,seq_len=64,seed=42");
    ck_assert_int_eq(c.dim, 128);
    ck_assert_int_eq(c.hidden, 100);
    ck_assert_int_eq(c.n_layers, 3);
    ck_assert_int_eq(c.n_heads, 8);
    ck_assert_int_eq(c.n_kv_heads, 2);
    ck_assert_int_eq(c.vocab, 1001);
    ck_assert_int_eq(c.seq_len, 64);
    ck_assert_uint_eq(c.seed, 42);
    /* heads alone keeps a multi-head preset multi-head... */
    ck_assert_int_eq(parse_ok("synthetic:tiny,heads=8").n_kv_heads, 8);
    /* ...and a grouped preset grouped; kv_heads in either order wins. */
    ck_assert_int_eq(parse_ok("synthetic:1b,heads=16").n_kv_heads, 4);
    ck_assert_int_eq(parse_ok("synthetic:tiny,kv_heads=2,heads=8").n_kv_heads, 2);
    ck_assert_uint_eq(parse_ok("synthetic:tiny,seed=2147483647").seed, 2147483647u);
    ck_assert_int_eq(parse_ok("synthetic:tiny,dim=16777216").dim, 1 << 24);
}
END_TEST

START_TEST(test_parse_errors) {
    static const struct {
        const char *src, *needle;
    } bad[] = {
        {"synthetic:huge", "unknown synthetic preset 'huge'"},
        {"synthetic:", "unknown synthetic preset"},
        {"synthetic:tiny,foo=1", "unknown model key 'foo'"},
        {"synthetic:tiny,layers=2,dim=64,layers=3", "model key 'layers' given twice"},
        {"synthetic:tiny,dim=abc", "dim='abc' is not an integer"},
        {"synthetic:tiny,dim=", "dim"},
        {"synthetic:tiny,dim=12x", "dim='12x'"},
        {"synthetic:tiny,dim", "'dim' is not key=value"},
        {"synthetic:tiny,dim=0", "dim=0 out of range"},
        {"synthetic:tiny,heads=-4", "heads=-4 out of range"},
        {"synthetic:tiny,vocab=16777217", "vocab=16777217 out of range"},
        {"synthetic:tiny,seed=-1", "seed=-1 out of range"},
        {"synthetic:tiny,seq_len=99999999999999999999", "seq_len"},
        {"llama2c:stories15M.bin", "not supported"},
        {"", "not supported"},
        {"SYNTHETIC:tiny", "not supported"},
        {"tiny", "not supported"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ryz_model_config c;
        ryz_error_clear();
        ck_assert_msg(ryz_model_source_parse(bad[i].src, &c) == RYZ_EINVAL, "'%s' accepted",
                      bad[i].src);
        assert_error_has(bad[i].needle);
    }
}
END_TEST

/* ============================================================ shard plan */

/* Checks one (config, tp) plan over all ranks: heads, KV heads, hidden and
 * vocab ranges partition their dimension as DESIGN section 1 says. */
static void check_plan(const ryz_model_config *c, int tp) {
    int head_owner[512], kv_holders[512], hidden_hits = 0, vocab_next = 0, hidden_next = 0;
    int kv_total = 0, min_h = c->hidden, max_h = 0;
    memset(head_owner, 0, sizeof head_owner);
    memset(kv_holders, 0, sizeof kv_holders);
    ck_assert(c->n_heads <= 512);
    for (int r = 0; r < tp; r++) {
        ryz_shard s;
        ryz_shard_plan(c, tp, r, &s);
        char where[160];
        snprintf(where, sizeof where, "heads %d kv %d hidden %d vocab %d tp %d rank %d", c->n_heads,
                 c->n_kv_heads, c->hidden, c->vocab, tp, r);
        ck_assert_msg(s.tp == tp && s.rank == r, "%s: tp/rank", where);
        ck_assert_msg(s.head_dim == c->dim / c->n_heads, "%s: head_dim %d", where, s.head_dim);
        ck_assert_msg(s.heads == c->n_heads / tp && s.head_start == r * s.heads,
                      "%s: heads %d from %d", where, s.heads, s.head_start);
        ck_assert_msg(s.kv_mul == c->n_heads / c->n_kv_heads, "%s: kv_mul %d", where, s.kv_mul);
        for (int h = s.head_start; h < s.head_start + s.heads; h++) {
            head_owner[h]++;
            int kv = h / s.kv_mul;
            ck_assert_msg(kv >= s.kv_start && kv < s.kv_start + s.kv_heads,
                          "%s: query head %d needs KV head %d, rank holds [%d, %d)", where, h, kv,
                          s.kv_start, s.kv_start + s.kv_heads);
        }
        /* Every KV head held is needed by one of the rank's query heads. */
        ck_assert_msg(s.kv_start == s.head_start / s.kv_mul &&
                          s.kv_start + s.kv_heads - 1 == (s.head_start + s.heads - 1) / s.kv_mul,
                      "%s: KV heads [%d, +%d) not exactly those needed", where, s.kv_start,
                      s.kv_heads);
        for (int k = s.kv_start; k < s.kv_start + s.kv_heads; k++)
            kv_holders[k]++;
        kv_total += s.kv_heads;
        ck_assert_msg(s.hidden_start == hidden_next && s.hidden >= 1, "%s: hidden [%d, +%d)", where,
                      s.hidden_start, s.hidden);
        hidden_next += s.hidden, hidden_hits += s.hidden;
        if (s.hidden < min_h)
            min_h = s.hidden;
        if (s.hidden > max_h)
            max_h = s.hidden;
        ck_assert_msg(s.vocab_padded % tp == 0 && s.vocab_padded >= c->vocab &&
                          s.vocab_padded < c->vocab + tp,
                      "%s: vocab_padded %d", where, s.vocab_padded);
        ck_assert_msg(s.vocab_local * tp == s.vocab_padded && s.vocab_start == vocab_next,
                      "%s: vocab [%d, +%d)", where, s.vocab_start, s.vocab_local);
        vocab_next += s.vocab_local;
    }
    for (int h = 0; h < c->n_heads; h++)
        ck_assert_msg(head_owner[h] == 1, "tp %d: query head %d owned %d times", tp, h,
                      head_owner[h]);
    for (int k = 0; k < c->n_kv_heads; k++)
        ck_assert_msg(kv_holders[k] >= 1, "tp %d: KV head %d held by no rank", tp, k);
    ck_assert_msg(hidden_next == c->hidden && hidden_hits == c->hidden && max_h - min_h <= 1,
                  "tp %d: hidden split covers %d of %d, sizes %d..%d", tp, hidden_next, c->hidden,
                  min_h, max_h);
    ryz_shard s0;
    ryz_shard_plan(c, tp, 0, &s0);
    ck_assert_msg(s0.kv_replicated == (kv_total > c->n_kv_heads),
                  "tp %d: kv_replicated %d but %d KV heads held for %d", tp, s0.kv_replicated,
                  kv_total, c->n_kv_heads);
    if (c->n_kv_heads < tp)
        ck_assert_int_eq(s0.kv_replicated, 1);
}

START_TEST(test_shard_plan_invariants) {
    static const char *srcs[] = {
        "synthetic:tiny",
        "synthetic:tiny,heads=8,kv_heads=2,vocab=1001",
        "synthetic:tiny,vocab=1003,hidden=170",
        "synthetic:tiny,heads=4,kv_heads=1,dim=128",
        "synthetic:tiny,heads=16,kv_heads=4,dim=128,hidden=7,vocab=5",
        "synthetic:15m",
        "synthetic:1b",
        "synthetic:7b",
        "synthetic:tiny,heads=12,kv_heads=6,dim=96,hidden=101",
    };
    for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
        ryz_model_config c = parse_ok(srcs[i]);
        for (int tp = 1; tp <= c.n_heads; tp++)
            if (ryz_config_validate(&c, tp) == RYZ_OK)
                check_plan(&c, tp);
    }
}
END_TEST

START_TEST(test_shard_plan_examples) {
    /* ci.ini's odd vocab and uneven hidden: vocab 1003 -> 1004, hidden 170 = 43/43/42/42. */
    ryz_model_config c = parse_ok("synthetic:tiny,vocab=1003,hidden=170");
    const int hid[] = {43, 43, 42, 42}, hstart[] = {0, 43, 86, 128};
    for (int r = 0; r < 4; r++) {
        ryz_shard s;
        ryz_shard_plan(&c, 4, r, &s);
        ck_assert_int_eq(s.vocab_padded, 1004);
        ck_assert_int_eq(s.vocab_local, 251);
        ck_assert_int_eq(s.vocab_start, 251 * r);
        ck_assert_int_eq(s.hidden, hid[r]);
        ck_assert_int_eq(s.hidden_start, hstart[r]);
    }
    /* 8 query heads over 2 KV heads at tp 4: each KV head on two ranks. */
    c = parse_ok("synthetic:tiny,heads=8,kv_heads=2");
    for (int r = 0; r < 4; r++) {
        ryz_shard s;
        ryz_shard_plan(&c, 4, r, &s);
        ck_assert_int_eq(s.heads, 2);
        ck_assert_int_eq(s.head_start, 2 * r);
        ck_assert_int_eq(s.kv_mul, 4);
        ck_assert_int_eq(s.kv_start, r / 2);
        ck_assert_int_eq(s.kv_heads, 1);
        ck_assert_int_eq(s.kv_replicated, 1);
    }
    /* Without replication: 15m at tp 2, three heads and three KV heads each. */
    c = parse_ok("synthetic:15m");
    ryz_shard s;
    ryz_shard_plan(&c, 2, 1, &s);
    ck_assert_int_eq(s.head_dim, 48);
    ck_assert_int_eq(s.heads, 3);
    ck_assert_int_eq(s.head_start, 3);
    ck_assert_int_eq(s.kv_start, 3);
    ck_assert_int_eq(s.kv_heads, 3);
    ck_assert_int_eq(s.kv_replicated, 0);
    ck_assert_int_eq(s.vocab_padded, 32000);
    ck_assert_int_eq(s.vocab_start, 16000);
}
END_TEST

/* ==================================================== synthetic weights */

START_TEST(test_synth_deterministic) {
    float a = ryz_synth_value(7, RYZ_T_LAYER(1, RYZ_T_WQ), 5, 9);
    ck_assert(a == ryz_synth_value(7, RYZ_T_LAYER(1, RYZ_T_WQ), 5, 9));
    ck_assert(a != ryz_synth_value(8, RYZ_T_LAYER(1, RYZ_T_WQ), 5, 9));
    ck_assert(a != ryz_synth_value(7, RYZ_T_LAYER(1, RYZ_T_WK), 5, 9));
    ck_assert(a != ryz_synth_value(7, RYZ_T_LAYER(2, RYZ_T_WQ), 5, 9));
    ck_assert(a != ryz_synth_value(7, RYZ_T_LAYER(1, RYZ_T_WQ), 6, 9));
    ck_assert(a != ryz_synth_value(7, RYZ_T_LAYER(1, RYZ_T_WQ), 5, 10));
    /* Uniform in [-1, 1): bounds and first two moments over many values. */
    double sum = 0, sum2 = 0, lo = 1, hi = -1;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double v = ryz_synth_value(3, RYZ_T_EMBED, i / 500, i % 500);
        ck_assert_msg(v >= -1.0 && v < 1.0, "value %d is %.9g, outside [-1, 1)", i, v);
        sum += v, sum2 += v * v;
        if (v < lo)
            lo = v;
        if (v > hi)
            hi = v;
    }
    ck_assert_msg(fabs(sum / n) < 0.01, "mean %.4f", sum / n);
    ck_assert_msg(fabs(sum2 / n - 1.0 / 3.0) < 0.01, "mean square %.4f, uniform is 1/3", sum2 / n);
    ck_assert(lo < -0.999 && hi > 0.999);
}
END_TEST

START_TEST(test_synth_fill_shards_match_dense) {
    enum { R = 23, C = 31 };
    const float scale = 0.125f;
    const uint32_t t = RYZ_T_LAYER(3, RYZ_T_W2);
    float dense[R * C];
    ryz_synth_fill(11, t, scale, 0, R, INT64_MAX, 0, C, C, dense);
    for (int i = 0; i < R * C; i++) {
        float want = scale * ryz_synth_value(11, t, i / C, i % C);
        ck_assert_msg(dense[i] == want, "dense (%d, %d) is %.9g, scale * value %.9g", i / C, i % C,
                      (double)dense[i], (double)want);
        ck_assert_msg(dense[i] >= -scale && dense[i] < scale, "dense (%d, %d) = %.9g", i / C, i % C,
                      (double)dense[i]);
    }
    /* Row and column blocks, as ranks generate them, with a padded stride. */
    const int row0[] = {0, 5, 22}, nrows[] = {R, 7, 1}, col0[] = {0, 10, 30}, ncols[] = {C, 9, 1};
    for (int b = 0; b < 3; b++) {
        enum { LD = C + 3 };
        float blk[R * LD], want[R * LD];
        for (int i = 0; i < R * LD; i++)
            blk[i] = want[i] = 77.0f; /* untouched sentinel */
        for (int r = 0; r < nrows[b]; r++)
            memcpy(want + r * LD, dense + (row0[b] + r) * C + col0[b],
                   (size_t)ncols[b] * sizeof(float));
        ryz_synth_fill(11, t, scale, row0[b], nrows[b], INT64_MAX, col0[b], ncols[b], LD, blk);
        assert_close(blk, want, (size_t)R * LD, 0, 0, "shard block");
    }
}
END_TEST

START_TEST(test_synth_fill_padding_rows) {
    enum { R = 8, C = 5, LIMIT = 6 };
    float dense[R * C], padded[R * C];
    ryz_synth_fill(2, RYZ_T_CLS, 1.0f, 0, R, INT64_MAX, 0, C, C, dense);
    for (int i = LIMIT * C; i < R * C; i++)
        dense[i] = 0.0f;
    for (int i = 0; i < R * C; i++)
        padded[i] = 5.0f;
    ryz_synth_fill(2, RYZ_T_CLS, 1.0f, 0, R, LIMIT, 0, C, C, padded);
    assert_close(padded, dense, R * C, 0, 0, "rows >= row_limit zero, others unchanged");
}
END_TEST

/* ====================================================== size accounting */

START_TEST(test_weight_bytes_15m) {
    ryz_model_config c = parse_ok("synthetic:15m");
    /* dim 288, hidden 768, 6 layers, 6 heads = 6 KV heads, vocab 32000.
     * Per layer: wq wk wv wo 4*288*288 = 331776; w1 w2 w3 3*288*768 = 663552;
     * 2 norms 576; sum 995904, times 6 = 5975424. Embedding and classifier
     * 2*32000*288 = 18432000; final norm 288. Total 24407712 floats. */
    ck_assert_uint_eq(ryz_model_weight_bytes(&c), (size_t)24407712 * 4);
    /* Per decoded token at tp 1: all layer matrices and norms 5975424, the
     * classifier 9216000, one embedding row and the final norm 576. */
    ryz_shard s;
    ryz_shard_plan(&c, 1, 0, &s);
    ck_assert_uint_eq(ryz_model_bytes_per_token(&c, &s), (size_t)15192000 * 4);
    /* tp 2: per layer 2*3*48*288*2 + 384*288*3 + 576 = 498240, times 6 =
     * 2989440, classifier half 4608000, plus 576. */
    ryz_shard_plan(&c, 2, 1, &s);
    ck_assert_uint_eq(ryz_model_bytes_per_token(&c, &s), (size_t)7598016 * 4);
}
END_TEST

/* ============================================================ CPU backend */

static ryz_backend be;

/* Fixture: the CPU backend with one thread. */
static void backend_setup(void) {
    ck_assert_int_eq(ryz_backend_init_cpu(1, &be), RYZ_OK);
}

/* Fixture: releases the backend. */
static void backend_teardown(void) {
    ryz_backend_free(&be);
}

/* y (n, out) = x (n, in) . W^T in double. */
static void ref_matmul(double *y, const float *x, const float *w, int n, int in, int out) {
    for (int r = 0; r < n; r++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int i = 0; i < in; i++)
                s += (double)x[r * in + i] * w[o * in + i];
            y[r * out + o] = s;
        }
}

/* llama2.c RMSNorm of one row in double. */
static void ref_rmsnorm(double *y, const double *x, const float *w, int dim, double eps) {
    double ss = 0;
    for (int i = 0; i < dim; i++)
        ss += x[i] * x[i];
    double scale = 1.0 / sqrt(ss / dim + eps);
    for (int i = 0; i < dim; i++)
        y[i] = w[i] * (scale * x[i]);
}

/* llama2.c RoPE of one row of `heads` heads at position `pos`, in double. */
static void ref_rope(double *x, int heads, int hd, int pos, double base) {
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < hd; i += 2) {
            double a = pos / pow(base, (double)i / hd), c = cos(a), s = sin(a);
            double *v = x + h * hd + i, v0 = v[0], v1 = v[1];
            v[0] = v0 * c - v1 * s;
            v[1] = v0 * s + v1 * c;
        }
}

/* Causal attention of one position over caches (rows 0..pos) in double;
 * query head h reads KV head h / kv_mul. scores holds pos + 1 doubles. */
static void ref_attend(double *out, const double *q, const double *kc, const double *vc, int pos,
                       int heads, int hd, int kv_heads, double *scores) {
    int kvd = kv_heads * hd, kv_mul = heads / kv_heads;
    for (int h = 0; h < heads; h++) {
        const double *qh = q + h * hd;
        int kvh = h / kv_mul;
        double mx = -INFINITY, sum = 0;
        for (int p = 0; p <= pos; p++) {
            double s = 0;
            for (int i = 0; i < hd; i++)
                s += qh[i] * kc[p * kvd + kvh * hd + i];
            scores[p] = s / sqrt((double)hd);
            if (scores[p] > mx)
                mx = scores[p];
        }
        for (int p = 0; p <= pos; p++)
            sum += scores[p] = exp(scores[p] - mx);
        for (int i = 0; i < hd; i++) {
            double o = 0;
            for (int p = 0; p <= pos; p++)
                o += scores[p] / sum * vc[p * kvd + kvh * hd + i];
            out[h * hd + i] = o;
        }
    }
}

/* Copies n floats to doubles. */
static void to_double(double *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
}

START_TEST(test_backend_init) {
    ck_assert_str_eq(be.iface->name, "cpu");
    ryz_backend other;
    ck_assert_int_eq(ryz_backend_init_cpu(0, &other), RYZ_EINVAL);
    assert_error_has("threads 0");
    size_t before = ryz_mem_bytes(RYZ_MEM_SCRATCH);
    void *p = be.iface->alloc(be.ctx, RYZ_MEM_SCRATCH, 1000);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(ryz_mem_bytes(RYZ_MEM_SCRATCH), before + 1000);
    be.iface->free(be.ctx, p);
    ck_assert_uint_eq(ryz_mem_bytes(RYZ_MEM_SCRATCH), before);
}
END_TEST

START_TEST(test_backend_matmul) {
    /* in 40 takes the vectorised decode path, in 37 the scalar one (and
     * sgemm for n > 1); out 19 leaves rows after the four bands. */
    enum { INMAX = 40, OUT = 19, NMAX = 6 };
    float x[NMAX * INMAX], w[OUT * INMAX], y[NMAX * OUT], want[NMAX * OUT];
    double ref[NMAX * OUT];
    fill_rand(x, NMAX * INMAX, 1);
    fill_rand(w, OUT * INMAX, 2);
    const int ins[] = {37, INMAX}, ns[] = {1, 2, NMAX}; /* gemv and gemm */
    for (int a = 0; a < 2; a++)
        for (int k = 0; k < 3; k++) {
            int in = ins[a], n = ns[k];
            char what[48];
            snprintf(what, sizeof what, "matmul n=%d in=%d out=%d", n, in, OUT);
            ref_matmul(ref, x, w, n, in, OUT);
            to_float(want, ref, (size_t)n * OUT);
            be.iface->matmul(be.ctx, y, x, w, n, in, OUT);
            assert_close(y, want, (size_t)n * OUT, 1e-5, 1e-5, what);
        }
}
END_TEST

int openblas_get_num_threads(void);
int openblas_get_parallel(void);

/* Every matmul path against the double reference on W: fp32 weights, or
 * bf16 weights packed by ryz_bf16_pack_rows in the backend's layout (the
 * reference reads the same rounded values), at 1, 2 and 3 threads. out 213
 * splits into chunks of whole 4-row steps the threads claim, and into four
 * bands per chunk with rows left after them: at 1 thread bands of 53 and
 * one row after; at 2 threads the claims shrink from 108 rows (bands of
 * 27) to 16 (bands of 4), and the last, 5 rows, is bands of one and a row
 * after.
 * bf16 in 37 and 40 take the scalar kernel, 64, 768 and MAXIN the
 * four-band one (64 and 768, in % 32 == 0, with its streams prefetched on
 * Intel; MAXIN makes each thread's bf16 prefill widen its rows of W in two
 * blocks: 204 then 9 at 1 thread, 102 then 6 or 3 at 2, 68 then 4 or 1
 * at 3); fp32 in 37 is scalar, 40 and up the four-band kernel. Each thread count
 * cuts the rows into other chunks, so the bands and the rows after them
 * fall in different places. */
static void check_matmul_paths(int threads, int bf16) {
    enum { OUT = 213, NMAX = 3, MAXIN = 10256 };
    const int ins[] = {37, 40, 64, 768, MAXIN}, ns[] = {1, NMAX};
    ryz_backend b;
    ck_assert_int_eq(ryz_backend_init_cpu(threads, &b), RYZ_OK);
    /* each pool thread calls OpenBLAS, so OpenBLAS itself runs one; its
     * pthreads build (1), or prefill would run on one thread only */
    ck_assert_int_eq(openblas_get_num_threads(), 1);
    ck_assert_int_eq(openblas_get_parallel(), 1);
    float *x = malloc(sizeof(float) * NMAX * MAXIN), *w = malloc(sizeof(float) * OUT * MAXIN);
    float *y = malloc(sizeof(float) * NMAX * OUT), *want = malloc(sizeof(float) * NMAX * OUT);
    uint16_t *h = malloc(sizeof(uint16_t) * OUT * MAXIN);
    double *ref = malloc(sizeof(double) * NMAX * OUT);
    ck_assert(x && w && y && want && h && ref);
    for (int a = 0; a < (int)(sizeof ins / sizeof ins[0]); a++)
        for (int k = 0; k < 2; k++) {
            int in = ins[a], n = ns[k];
            char what[80];
            fill_rand(x, (size_t)n * in, 3);
            fill_rand(w, (size_t)OUT * in, 4);
            for (size_t i = 0; bf16 && i < (size_t)OUT * in; i++)
                w[i] = ryz_f32_from_bf16(ryz_bf16_from_f32(w[i]));
            if (bf16) ryz_bf16_pack_rows(b.iface->bf16_layout, h, w, 0, OUT, in, OUT);
            snprintf(what, sizeof what, "%s matmul threads=%d n=%d in=%d", bf16 ? "bf16" : "f32",
                     threads, n, in);
            ref_matmul(ref, x, w, n, in, OUT);
            to_float(want, ref, (size_t)n * OUT);
            uint64_t streamed = ryz_streamed_total();
            if (bf16) b.iface->matmul_bf16(b.ctx, y, x, h, n, in, OUT);
            else b.iface->matmul(b.ctx, y, x, w, n, in, OUT);
            assert_close(y, want, (size_t)n * OUT, 1e-4, 1e-4, what);
            /* W's bytes, once whatever n: what the comm records replay */
            ck_assert_uint_eq(ryz_streamed_total() - streamed,
                              (uint64_t)OUT * (uint64_t)in * (bf16 ? 2 : 4));
        }
    ryz_backend_free(&b); /* first: a late GEMV worker may still read x and w */
    ryz_backend_free(&b); /* a second free is harmless */
    free(x), free(w), free(y), free(want), free(h), free(ref);
}

START_TEST(test_backend_matmul_threads) {
    for (int t = 1; t <= 3; t++) check_matmul_paths(t, 0);
}
END_TEST

START_TEST(test_backend_matmul_bf16) {
    for (int t = 1; t <= 3; t++) check_matmul_paths(t, 1);
}
END_TEST

/* The bf16 decode GEMV gives the same bits with its streams prefetched
 * (on Intel by default) as without, and both are right (the paths of
 * check_matmul_paths, prefetching 64 bytes ahead and none, whatever the
 * CPU's default). */
START_TEST(test_backend_matmul_bf16_prefetch) {
    enum { IN = 768, OUT = 203 };
    int was = ryz_test_set_bf16_prefetch(64);
    for (int t = 1; t <= 2; t++) check_matmul_paths(t, 1);
    ryz_test_set_bf16_prefetch(0);
    check_matmul_paths(2, 1);
    ryz_backend b;
    float *x = malloc(sizeof(float) * IN), *w = malloc(sizeof(float) * OUT * IN);
    float *y[2] = {malloc(sizeof(float) * OUT), malloc(sizeof(float) * OUT)};
    uint16_t *h = malloc(sizeof(uint16_t) * OUT * IN);
    ck_assert(x && w && y[0] && y[1] && h);
    fill_rand(x, IN, 31);
    fill_rand(w, (size_t)OUT * IN, 32);
    ck_assert_int_eq(ryz_backend_init_cpu(1, &b), RYZ_OK);
    ryz_bf16_pack_rows(b.iface->bf16_layout, h, w, 0, OUT, IN, OUT);
    for (int k = 0; k < 2; k++) {
        ryz_test_set_bf16_prefetch(k ? 1536 : 0);
        b.iface->matmul_bf16(b.ctx, y[k], x, h, 1, IN, OUT);
    }
    ck_assert_msg(!memcmp(y[0], y[1], sizeof(float) * OUT), "prefetching changed the bits");
    ryz_test_set_bf16_prefetch(was);
    ryz_backend_free(&b);
    free(x), free(w), free(y[0]), free(y[1]), free(h);
}
END_TEST

/* call(b, arg) with a worker stalled worker_us in one of its row claims
 * (ryz_test_set_rows_stall) and, unless caller_us is 0, the calling
 * thread caller_us in its first (ryz_test_set_rows_caller_stall); returns
 * how long the call took. A worker asleep when a call starts may find
 * every row done, so the call is repeated until one takes the stall. */
static double with_stalls(ryz_backend *b, void (*call)(ryz_backend *, void *), void *arg,
                          int worker_us, int caller_us) {
    double dt = 0;
    int armed = 1;
    for (int tries = 0; armed && tries < 50; tries++) {
        ryz_test_set_rows_stall(worker_us);
        ryz_test_set_rows_caller_stall(caller_us);
        double t0 = ryz_time_now();
        call(b, arg);
        dt = ryz_time_now() - t0;
        armed = ryz_test_set_rows_stall(0) | ryz_test_set_rows_caller_stall(0);
    }
    ck_assert_msg(!armed, "no worker (or not the caller) claimed rows in 50 calls");
    return dt;
}

/* with_stalls with a worker asleep 300 ms. */
static double with_stalled_worker(ryz_backend *b, void (*call)(ryz_backend *, void *), void *arg) {
    return with_stalls(b, call, arg, 300000, 0);
}

/* The decode GEMV y = W x (W OUT x IN) with a stalled worker. */
typedef struct {
    float *y;
    const float *x, *w;
    int in, out;
} gemv_args;
static void gemv_call(ryz_backend *b, void *arg) {
    gemv_args *a = arg;
    b->iface->matmul(b->ctx, a->y, a->x, a->w, 1, a->in, a->out);
}

static double gemv_with_stalled_worker(ryz_backend *b, float *y, const float *x, const float *w,
                                       int in, int out) {
    gemv_args a = {y, x, w, in, out};
    return with_stalled_worker(b, gemv_call, &a);
}

/* A random decode GEMV of the stall tests: nx inputs x (nx, in) from
 * salt, W (out, in) from salt + 1, want (nx, out) = each x times W^T,
 * and y (out). */
typedef struct {
    float *x, *w, *y, *want;
} gemv_case;
static gemv_case gemv_case_new(int in, int out, int nx, uint32_t salt) {
    gemv_case g = {malloc(sizeof(float) * in * nx), malloc(sizeof(float) * out * in),
                   malloc(sizeof(float) * out), malloc(sizeof(float) * out * nx)};
    double *ref = malloc(sizeof(double) * out);
    ck_assert(g.x && g.w && g.y && g.want && ref);
    fill_rand(g.x, (size_t)in * nx, salt);
    fill_rand(g.w, (size_t)out * in, salt + 1);
    for (int k = 0; k < nx; k++) {
        ref_matmul(ref, g.x + k * in, g.w, 1, in, out);
        to_float(g.want + k * out, ref, out);
    }
    free(ref);
    return g;
}
static void gemv_case_free(gemv_case *g) {
    free(g->x), free(g->w), free(g->y), free(g->want);
}

/* A worker that loses its core in the middle of a decode GEMV claim no
 * longer holds the call: the caller computes that claim itself and
 * returns long before the worker wakes. The worker, waking later, drops
 * its rows: it does not write them over y, whether x has changed under
 * it since (it would write other values; freeing the backend waits for
 * the worker) or later calls are running into the same y. */
START_TEST(test_backend_matmul_late_worker) {
    enum { IN = 256, OUT = 16384 };
    ryz_backend b;
    gemv_case g = gemv_case_new(IN, OUT, 2, 21);
    float *x = g.x, *w = g.w, *y = g.y, *want = g.want;
    ck_assert_int_eq(ryz_backend_init_cpu(2, &b), RYZ_OK);
    double dt = gemv_with_stalled_worker(&b, y, x, w, IN, OUT);
    ck_assert_msg(dt < 0.25, "the call waited %.3f s for a stalled worker", dt);
    assert_close(y, want, OUT, 1e-4, 1e-4, "GEMV with a stalled worker");
    memcpy(x, x + IN, sizeof(float) * IN); /* what the late worker reads now */
    ryz_backend_free(&b); /* joins the worker */
    assert_close(y, want, OUT, 1e-4, 1e-4, "y after the late worker woke");
    ck_assert_int_eq(ryz_backend_init_cpu(2, &b), RYZ_OK);
    double t0 = ryz_time_now();
    gemv_with_stalled_worker(&b, y, x, w, IN, OUT);
    int calls = 0;
    for (; ryz_time_now() - t0 < 0.5; calls++) { /* the worker wakes during these */
        b.iface->matmul(b.ctx, y, x, w, 1, IN, OUT);
        assert_close(y, want + OUT, OUT, 1e-4, 1e-4, "GEMV while a late worker wakes");
    }
    ck_assert_int_gt(calls, 1);
    ryz_backend_free(&b);
    gemv_case_free(&g);
}
END_TEST

/* The OpenBLAS core ryz asks for: only in place of a generic fallback,
 * only where the CPU has better kernels' instructions, never over the
 * user's OPENBLAS_CORETYPE. */
START_TEST(test_blas_core_for) {
    ck_assert_str_eq(ryz_blas_core_for("Prescott", NULL, 1, 1), "SkylakeX");
    ck_assert_str_eq(ryz_blas_core_for("Prescott", "", 1, 0), "Haswell");
    ck_assert_str_eq(ryz_blas_core_for("Nehalem", NULL, 1, 0), "Haswell");
    ck_assert_ptr_null(ryz_blas_core_for("Prescott", NULL, 0, 0));
    ck_assert_ptr_null(ryz_blas_core_for("Prescott", "Prescott", 1, 1));
    ck_assert_ptr_null(ryz_blas_core_for("Haswell", NULL, 1, 1));
    ck_assert_ptr_null(ryz_blas_core_for("Zen", NULL, 1, 0));
    ck_assert_str_eq(ryz_blas_core_for("Opteron_SSE3", NULL, 1, 0), "Haswell");
    ck_assert_ptr_null(ryz_blas_core_for(NULL, NULL, 1, 1));
}
END_TEST

/* A caller that lost its core during one of its own claims still takes a
 * stalled worker's claim about as soon as it could compute it, not after
 * a share of the time it was away: away 600 ms in its first claim (half
 * the rows), with a worker asleep 1.5 s in the next (a quarter), the call
 * ends within 100 ms of the caller's return. Timing its claims as a whole
 * (before session 25) it waited a third of its time away more (with 300
 * ms away, 0.402 s in all). */
START_TEST(test_backend_matmul_caller_away) {
    enum { IN = 256, OUT = 16384 };
    ryz_backend b;
    gemv_case g = gemv_case_new(IN, OUT, 1, 23);
    gemv_args a = {g.y, g.x, g.w, IN, OUT};
    ck_assert_int_eq(ryz_backend_init_cpu(2, &b), RYZ_OK);
    double dt = with_stalls(&b, gemv_call, &a, 1500000, 600000);
    ck_assert_msg(dt < 0.7, "the call took %.3f s: the caller waited %.3f s after its 0.6 s away",
                  dt, dt - 0.6);
    assert_close(g.y, g.want, OUT, 1e-4, 1e-4, "GEMV with the caller away and a stalled worker");
    ryz_backend_free(&b); /* joins the worker */
    gemv_case_free(&g);
}
END_TEST

/* The two bf16 layouts, packed from values that bf16 holds exactly (o * in
 * + i < 256): row-major puts (o, i) at o * in + i; tiled puts rows in
 * groups of four, 16-column tiles of the four in turn, and the rows after
 * the last whole group row-major. A row whose index is a multiple of 4
 * starts at row * in in both, as the model's chunked upload assumes. */
START_TEST(test_bf16_layouts) {
    enum { IN = 32, OUT = 6 };
    float src[OUT * IN];
    uint16_t rows[OUT * IN], tiled[OUT * IN];
    for (int e = 0; e < OUT * IN; e++) src[e] = (float)e;
    ryz_bf16_pack_rows(RYZ_BF16_ROWS, rows, src, 0, OUT, IN, OUT);
    ryz_bf16_pack_rows(RYZ_BF16_TILED, tiled, src, 0, 4, IN, OUT); /* two chunks */
    ryz_bf16_pack_rows(RYZ_BF16_TILED, tiled, src + 4 * IN, 4, 2, IN, OUT);
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            size_t t = o < 4 ? (size_t)(i / 16) * 64 + (size_t)o * 16 + (size_t)(i % 16)
                             : (size_t)o * IN + (size_t)i;
            ck_assert_msg(ryz_f32_from_bf16(rows[o * IN + i]) == (float)(o * IN + i) &&
                              ryz_f32_from_bf16(tiled[t]) == (float)(o * IN + i),
                          "element (%d, %d)", o, i);
            ck_assert_uint_eq(ryz_bf16_index(RYZ_BF16_TILED, o, i, IN, OUT), t);
        }
    for (int r = 0; r < OUT; r += 4)
        ck_assert_uint_eq(ryz_bf16_index(RYZ_BF16_TILED, r, 0, IN, OUT),
                          ryz_bf16_index(RYZ_BF16_ROWS, r, 0, IN, OUT));
}
END_TEST

/* bfloat16 conversion: exact values survive, ties go to even, NaN and
 * infinity keep their class and sign. */
START_TEST(test_bf16_round) {
    ck_assert(ryz_f32_from_bf16(ryz_bf16_from_f32(1.0f)) == 1.0f);
    ck_assert(ryz_f32_from_bf16(ryz_bf16_from_f32(-2.5f)) == -2.5f);
    /* 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: even mantissa (1) wins. */
    ck_assert(ryz_f32_from_bf16(ryz_bf16_from_f32(1.0f + 0x1p-8f)) == 1.0f);
    /* 1 + 3 * 2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6: up to even. */
    ck_assert(ryz_f32_from_bf16(ryz_bf16_from_f32(1.0f + 0x3p-8f)) == 1.0f + 0x1p-6f);
    ck_assert(ryz_f32_from_bf16(ryz_bf16_from_f32(1.0f + 0x1p-8f + 0x1p-20f)) == 1.0f + 0x1p-7f);
    ck_assert(isnan(ryz_f32_from_bf16(ryz_bf16_from_f32(NAN))));
    ck_assert(isinf(ryz_f32_from_bf16(ryz_bf16_from_f32(-INFINITY))));
    ck_assert(ryz_f32_from_bf16(ryz_bf16_from_f32(-INFINITY)) < 0);
    /* The largest float rounds up to infinity, as IEEE rounding does. */
    ck_assert(isinf(ryz_f32_from_bf16(ryz_bf16_from_f32(3.4028235e38f))));
}
END_TEST

/* rmsnorm of n rows of dim against double: dim 40 takes the 8-lane path,
 * 44 the plain loop; add_rmsnorm gives add's and rmsnorm's results, bit
 * for bit. */
static void check_rmsnorm(int n, int dim) {
    float *x = malloc(sizeof(float) * n * dim), *w = malloc(sizeof(float) * dim);
    float *y = malloc(sizeof(float) * n * dim), *want = malloc(sizeof(float) * n * dim);
    float *r = malloc(sizeof(float) * n * dim), *x2 = malloc(sizeof(float) * n * dim);
    double *xd = malloc(sizeof(double) * n * dim), *ref = malloc(sizeof(double) * n * dim);
    ck_assert(x && w && y && want && r && x2 && xd && ref);
    fill_rand(x, (size_t)n * dim, 3);
    fill_rand(w, dim, 4);
    fill_rand(r, (size_t)n * dim, 5);
    to_double(xd, x, (size_t)n * dim);
    for (int t = 0; t < n; t++)
        ref_rmsnorm(ref + t * dim, xd + t * dim, w, dim, 1e-5);
    to_float(want, ref, (size_t)n * dim);
    be.iface->rmsnorm(be.ctx, y, x, w, n, dim, 1e-5f);
    assert_close(y, want, (size_t)n * dim, 1e-6, 1e-5, "rmsnorm");
    memcpy(x2, x, sizeof(float) * n * dim);
    be.iface->add_rmsnorm(be.ctx, y, x2, r, w, n, dim, 1e-5f);
    be.iface->add(be.ctx, x, r, (size_t)n * dim);
    be.iface->rmsnorm(be.ctx, want, x, w, n, dim, 1e-5f);
    ck_assert_msg(!memcmp(x2, x, sizeof(float) * n * dim), "add_rmsnorm's x, dim %d", dim);
    ck_assert_msg(!memcmp(y, want, sizeof(float) * n * dim), "add_rmsnorm's y, dim %d", dim);
    be.iface->rmsnorm(be.ctx, x, x, w, n, dim, 1e-5f);
    assert_close(x, want, (size_t)n * dim, 0, 0, "rmsnorm in place");
    free(x), free(w), free(y), free(want), free(r), free(x2), free(xd), free(ref);
}

START_TEST(test_backend_rmsnorm) {
    check_rmsnorm(3, 40);
    check_rmsnorm(2, 44);
}
END_TEST

START_TEST(test_backend_rope) {
    enum { N = 4, HEADS = 3, HD = 8, W = HEADS * HD };
    float x[N * W], orig[N * W], want[N * W];
    double ref[N * W];
    fill_rand(orig, N * W, 5);
    /* Position 0 is the identity, exactly. */
    memcpy(x, orig, sizeof x);
    const int p0 = 0, p5 = 5, p7 = 7; /* positions: backend memory, host-visible on cpu */
    be.iface->rope(be.ctx, x, 1, HEADS, HD, &p0, 10000.0f);
    assert_close(x, orig, W, 0, 0, "rope at position 0");
    /* Rows at positions 5..8 against the double formula; pair norms kept. */
    memcpy(x, orig, sizeof x);
    be.iface->rope(be.ctx, x, N, HEADS, HD, &p5, 10000.0f);
    to_double(ref, orig, N * W);
    for (int t = 0; t < N; t++)
        ref_rope(ref + t * W, HEADS, HD, 5 + t, 10000.0);
    to_float(want, ref, N * W);
    assert_close(x, want, N * W, 1e-5, 1e-5, "rope at positions 5..8");
    float norm_got[N * W / 2], norm_want[N * W / 2];
    for (int i = 0; i < N * W; i += 2) {
        norm_got[i / 2] = hypotf(x[i], x[i + 1]);
        norm_want[i / 2] = hypotf(orig[i], orig[i + 1]);
    }
    assert_close(norm_got, norm_want, N * W / 2, 1e-6, 1e-5, "rope pair norms");
    /* Row t at pos0 equals a single row at pos0 + t. */
    float one[W];
    memcpy(one, orig + 2 * W, sizeof one);
    be.iface->rope(be.ctx, one, 1, HEADS, HD, &p7, 10000.0f);
    assert_close(one, x + 2 * W, W, 0, 0, "rope row 2 at 5 vs row at 7");
    /* The same position after another base, then another head_dim (the
     * backend may keep a position's rotation between calls), and a
     * head_dim too large to keep. */
    const float bases[] = {500000.0f, 10000.0f};
    const int hds[] = {HD, 2 * HD, 1040};
    for (int k = 0; k < 3; k++) {
        int hd = hds[k], heads = k == 2 ? 1 : HEADS;
        float base = bases[k % 2], got[1040], ref32[1040];
        double r[1040];
        ck_assert(heads * hd <= 1040);
        fill_rand(got, (size_t)heads * hd, 9 + k);
        to_double(r, got, (size_t)heads * hd);
        be.iface->rope(be.ctx, got, 1, heads, hd, &p7, base);
        ref_rope(r, heads, hd, 7, base);
        to_float(ref32, r, (size_t)heads * hd);
        assert_close(got, ref32, (size_t)heads * hd, 1e-5, 1e-5, "rope after a change");
    }
}
END_TEST

START_TEST(test_backend_silu_mul_add) {
    enum { N = 50 };
    float a[N], b[N], want[N];
    fill_rand(a, N, 6);
    fill_rand(b, N, 7);
    for (int i = 0; i < N; i++) {
        a[i] *= 8.0f; /* cover the saturated ends */
        want[i] = (float)(a[i] / (1.0 + exp(-(double)a[i])) * b[i]);
    }
    be.iface->silu_mul(be.ctx, a, b, N);
    assert_close(a, want, N, 1e-6, 1e-5, "silu_mul");
    for (int i = 0; i < N; i++)
        want[i] = a[i] + b[i];
    be.iface->add(be.ctx, a, b, N);
    assert_close(a, want, N, 0, 0, "add");
}
END_TEST

/* How many times a backend's matmul_pair was called (pair_spy). */
static int g_pair_calls;

static void pair_spy(void *ctx, float *y1, float *y2, const float *x, const void *w1,
                     const void *w2, ryz_dtype dtype, int n, int in, int out) {
    (void)ctx, (void)y1, (void)y2, (void)x, (void)w1, (void)w2, (void)dtype, (void)n, (void)in,
        (void)out;
    g_pair_calls++;
}

/* ryz_backend_matmul_pair: without the op (the cpu backend), exactly the
 * separate matmuls and silu_mul; with it, one call of the op, unless the
 * two matrices' dtypes differ. */
START_TEST(test_backend_matmul_pair) {
    enum { N = 3, IN = 40, OUT = 24 };
    float x[N * IN], w1[OUT * IN], w2[OUT * IN], y1[N * OUT], y2[N * OUT], want1[N * OUT],
        want2[N * OUT];
    fill_rand(x, N * IN, 11);
    fill_rand(w1, OUT * IN, 12);
    fill_rand(w2, OUT * IN, 13);
    ck_assert_ptr_null(be.iface->matmul_pair);
    be.iface->matmul(be.ctx, want1, x, w1, N, IN, OUT);
    be.iface->matmul(be.ctx, want2, x, w2, N, IN, OUT);
    be.iface->silu_mul(be.ctx, want1, want2, N * OUT);
    ryz_backend_matmul_pair(&be, y1, y2, x, ryz_matrix_f32(w1), ryz_matrix_f32(w2), N, IN, OUT);
    assert_close(y1, want1, N * OUT, 0, 0, "swiglu y1");
    ryz_backend_iface spied = *be.iface;
    spied.matmul_pair = pair_spy;
    ryz_backend b = {.iface = &spied, .ctx = be.ctx};
    g_pair_calls = 0;
    ryz_backend_matmul_pair(&b, y1, y2, x, ryz_matrix_f32(w1), ryz_matrix_f32(w2), N, IN, OUT);
    ck_assert_int_eq(g_pair_calls, 1);
    /* Mixed dtypes: the separate ops, which with W2 all zeros give
     * silu(x . W1^T) * 0 = 0 (the spy would have left y1 as it was). */
    uint16_t wb[OUT * IN] = {0};
    ryz_backend_matmul_pair(&b, y1, y2, x, ryz_matrix_f32(w1), (ryz_matrix){wb, RYZ_DTYPE_BF16}, N,
                            IN, OUT);
    ck_assert_int_eq(g_pair_calls, 1);
    for (int i = 0; i < N * OUT; i++)
        ck_assert(y1[i] == 0.0f);
}
END_TEST

/* How many times a backend's matmul_multi was called, and its last count
 * (multi_spy). */
static int g_multi_calls, g_multi_count;

static void multi_spy(void *ctx, int count, float *const *y, const void *const *w, const int *out,
                      ryz_dtype dtype, const float *x, int n, int in) {
    (void)ctx, (void)y, (void)w, (void)out, (void)dtype, (void)x, (void)n, (void)in;
    g_multi_calls++;
    g_multi_count = count;
}

/* ryz_backend_matmul_multi: without the op (the cpu backend), the values
 * of one matmul per product, each of its own out; with it, one call of
 * the op, unless the matrices' dtypes differ. */
START_TEST(test_backend_matmul_multi) {
    enum { N = 2, IN = 24 };
    const int out[3] = {16, 4, 8};
    float x[N * IN], w[3][16 * IN], y[3][N * 16], want[N * 16];
    fill_rand(x, N * IN, 21);
    for (int i = 0; i < 3; i++) fill_rand(w[i], 16 * IN, 22 + (uint32_t)i);
    float *ys[3] = {y[0], y[1], y[2]};
    ryz_matrix wm[3] = {ryz_matrix_f32(w[0]), ryz_matrix_f32(w[1]), ryz_matrix_f32(w[2])};
    ck_assert_ptr_null(be.iface->matmul_multi);
    ryz_backend_matmul_multi(&be, 3, ys, x, wm, out, N, IN);
    for (int i = 0; i < 3; i++) {
        be.iface->matmul(be.ctx, want, x, w[i], N, IN, out[i]);
        assert_close(y[i], want, (size_t)N * out[i], 0, 0, "multi product");
    }
    ryz_backend_iface spied = *be.iface;
    spied.matmul_multi = multi_spy;
    ryz_backend b = {.iface = &spied, .ctx = be.ctx};
    g_multi_calls = 0;
    ryz_backend_matmul_multi(&b, 3, ys, x, wm, out, N, IN);
    ck_assert_int_eq(g_multi_calls, 1);
    ck_assert_int_eq(g_multi_count, 3);
    uint16_t wb[16 * IN] = {0};
    wm[1] = (ryz_matrix){wb, RYZ_DTYPE_BF16};
    ryz_backend_matmul_multi(&b, 3, ys, x, wm, out, N, IN);
    ck_assert_int_eq(g_multi_calls, 1); /* mixed dtypes: the separate matmuls */
    for (int i = 0; i < N * out[1]; i++) ck_assert(y[1][i] == 0.0f);
}
END_TEST

START_TEST(test_backend_attention_single_position) {
    enum { HD = 8, SEQ = 3 };
    /* Full geometry: 4 query heads over 2 KV heads; a shard holding query
     * heads 2..3 whose only KV head is global head 1; and one holding heads
     * 1..2, which starts inside KV head 0's group and ends in head 1's
     * (head_dim 8: the vectorised all-heads loop where the CPU has AVX2). */
    const ryz_attn_geom geoms[] = {{4, HD, 2, 0, 0, 2}, {2, HD, 1, 2, 1, 2}, {2, HD, 2, 1, 0, 2}};
    for (int gi = 0; gi < 3; gi++) {
        const ryz_attn_geom *g = &geoms[gi];
        float q[4 * HD], kc[SEQ * 2 * HD], vc[SEQ * 2 * HD], out[4 * HD], want[4 * HD];
        float scratch[4]; /* (max(T, heads), pos0 + T) */
        fill_rand(q, 4 * HD, 8);
        fill_rand(kc, SEQ * 2 * HD, 9);
        fill_rand(vc, SEQ * 2 * HD, 10);
        for (int h = 0; h < g->heads; h++) /* softmax of one score is 1: out = v */
            memcpy(want + h * HD, vc + ((g->head_start + h) / g->kv_mul - g->kv_start) * HD,
                   HD * sizeof(float));
        const int pos0 = 0;
        be.iface->attention(be.ctx, out, q, kc, vc, 1, &pos0, g, scratch);
        assert_close(out, want, (size_t)g->heads * HD, 0, 0, "attention at position 0");
    }
}
END_TEST

/* T positions from pos0 on with geometry g against the double reference,
 * each query row over the cache rows up to its own position. The
 * reference maps head h to KV head h / (heads / kv_heads): g must map its
 * heads alike (any whole model does; so does a shard starting inside a KV
 * group whose heads each fall in the next group). */
static void check_attention_on(ryz_backend *b, ryz_attn_geom g, int T, int pos0, float qmag,
                               const char *what) {
    int heads = g.heads, kvh = g.kv_heads, hd = g.head_dim;
    int qd = heads * hd, kvd = kvh * hd, seq = pos0 + T + 2, L = pos0 + T;
    float *q = malloc(sizeof(float) * T * qd), *kc = malloc(sizeof(float) * seq * kvd);
    float *vc = malloc(sizeof(float) * seq * kvd), *out = malloc(sizeof(float) * T * qd);
    float *want = malloc(sizeof(float) * T * qd);
    float *scratch = malloc(sizeof(float) * ryz_attention_scratch_rows(T, heads) * L);
    double *qdd = malloc(sizeof(double) * T * qd), *kd = malloc(sizeof(double) * seq * kvd);
    double *vd = malloc(sizeof(double) * seq * kvd), *ref = malloc(sizeof(double) * T * qd);
    double *sc = malloc(sizeof(double) * seq);
    ck_assert(q && kc && vc && out && want && scratch && qdd && kd && vd && ref && sc);
    fill_rand(q, (size_t)T * qd, 11);
    for (size_t i = 0; i < (size_t)T * qd; i++) q[i] *= qmag;
    fill_rand(kc, (size_t)seq * kvd, 12);
    fill_rand(vc, (size_t)seq * kvd, 13);
    to_double(qdd, q, (size_t)T * qd);
    to_double(kd, kc, (size_t)seq * kvd);
    to_double(vd, vc, (size_t)seq * kvd);
    for (int t = 0; t < T; t++)
        ref_attend(ref + t * qd, qdd + t * qd, kd, vd, pos0 + t, heads, hd, kvh, sc);
    to_float(want, ref, (size_t)T * qd);
    b->iface->attention(b->ctx, out, q, kc, vc, T, &pos0, &g, scratch);
    assert_close(out, want, (size_t)T * qd, 1e-6, 1e-5, what);
    free(q), free(kc), free(vc), free(out), free(want), free(scratch);
    free(qdd), free(kd), free(vd), free(ref), free(sc);
}

static void check_attention_geom(ryz_attn_geom g, int T, int pos0, const char *what) {
    check_attention_on(&be, g, T, pos0, 1.0f, what);
}

/* 4 query heads over 2 KV heads, head_dim hd. */
static void check_attention(int T, int pos0, int hd, const char *what) {
    check_attention_geom((ryz_attn_geom){4, hd, 2, 0, 0, 2}, T, pos0, what);
}

/* Prefill shares the heads out between the threads, each with its own
 * scores: 6 query heads over 2 KV heads, at 3 threads heads 0..1, 2..3
 * (one in each KV group) and 4..5; a longer prompt after a shorter one
 * grows the threads' scores, and one a little longer still doubles them. */
START_TEST(test_backend_attention_causal) {
    check_attention(3, 2, 6, "causal attention (prefill)");
    for (int t = 1; t <= 3; t++) {
        ryz_backend b;
        char what[64];
        ck_assert_int_eq(ryz_backend_init_cpu(t, &b), RYZ_OK);
        snprintf(what, sizeof what, "prefill, 6 heads, threads=%d", t);
        check_attention_on(&b, (ryz_attn_geom){6, 8, 2, 0, 0, 3}, 4, 3, 1.0f, what);
        check_attention_on(&b, (ryz_attn_geom){6, 8, 2, 0, 0, 3}, 9, 0, 1.0f, what);
        check_attention_on(&b, (ryz_attn_geom){6, 8, 2, 0, 0, 3}, 9, 1, 1.0f, what); /* 2x room */
        ryz_backend_free(&b);
    }
}
END_TEST

/* One decode step after 9 cached positions: head_dim 16 takes the
 * vectorised all-heads loop, 6 the scalar one. */
START_TEST(test_backend_attention_decode) {
    check_attention(1, 9, 16, "decode attention, head_dim 16");
    check_attention(1, 9, 6, "decode attention, head_dim 6");
    /* query heads 1..2 of 4 over KV heads 0..1 (kv_mul 2): head 0 is in
     * KV head 0's group, head 1 in KV head 1's, so the K and V walks must
     * move on between them */
    check_attention_geom((ryz_attn_geom){2, 16, 2, 1, 0, 2}, 1, 9, "decode, shard inside a group");
    /* every head its own KV head, and 3 groups of 2: the walks move on
     * after every head, or every second, all the way */
    check_attention_geom((ryz_attn_geom){4, 16, 4, 0, 0, 1}, 1, 9, "decode, 4 KV heads of 1");
    check_attention_geom((ryz_attn_geom){6, 8, 3, 0, 0, 2}, 1, 13, "decode, 3 KV heads of 2");
    /* Scores over a range of hundreds, so most weights underflow: the
     * softmax's 8-lane exponentials (36 positions: 4 vectors, a tail of 4)
     * and its max, decode and prefill. */
    const ryz_attn_geom g4 = {4, 16, 2, 0, 0, 2};
    check_attention_on(&be, g4, 1, 35, 200.0f, "decode, wide scores");
    check_attention_on(&be, g4, 5, 31, 200.0f, "prefill, wide scores");
    /* The largest score in the softmax's scalar tail (position 9 of 11),
     * 226 above the others: the output is V's row 9, exactly. */
    enum { L = 11, HD = 8 };
    float q[HD], kc[L * HD], vc[L * HD], out[HD], scores[L];
    const int pos = L - 1;
    fill_rand(vc, L * HD, 14);
    for (int i = 0; i < L * HD; i++) kc[i] = i / HD == 9 ? 1.0f : -1.0f;
    for (int i = 0; i < HD; i++) q[i] = 40.0f;
    be.iface->attention(be.ctx, out, q, kc, vc, 1, &pos, &(ryz_attn_geom){1, HD, 1, 0, 0, 1},
                        scores);
    assert_close(out, vc + 9 * HD, HD, 0, 0, "decode, the largest score in the tail");
}
END_TEST

/* From 128 cached rows on, decode attention splits the rows into chunks
 * that the threads claim. At 1-3 threads, each geometry twice (a second
 * call must not add the first's partial outputs): 201 rows with a KV head
 * per head (chunks of 50 and 51, bands and leftovers in each), exactly
 * 128 rows over 3 KV groups of 2, a shard starting inside a group. The
 * output is the same bits at every thread count, and a worker stalled in
 * a GEMV claim does not hold the call up. */
START_TEST(test_backend_attention_decode_chunks) {
    enum { HEADS = 4, HD = 16, L = 201, IN = 256, OUT = 16384 };
    const ryz_attn_geom g = {HEADS, HD, HEADS, 0, 0, 1};
    const ryz_attn_geom more[] = {g, {6, 8, 3, 0, 0, 2}, {2, 16, 2, 1, 0, 2}};
    const int rows[] = {L, 128, 150};
    float *q = malloc(sizeof(float) * HEADS * HD), *kc = malloc(sizeof(float) * L * HEADS * HD);
    float *vc = malloc(sizeof(float) * L * HEADS * HD), *s = malloc(sizeof(float) * HEADS * L);
    float *x = malloc(sizeof(float) * IN), *w = malloc(sizeof(float) * OUT * IN);
    float *y = malloc(sizeof(float) * OUT), out[4][HEADS * HD];
    ck_assert(q && kc && vc && s && x && w && y);
    fill_rand(q, HEADS * HD, 21);
    fill_rand(kc, (size_t)L * HEADS * HD, 22);
    fill_rand(vc, (size_t)L * HEADS * HD, 23);
    fill_rand(x, IN, 24);
    fill_rand(w, (size_t)OUT * IN, 25);
    const int pos = L - 1;
    for (int t = 1; t <= 3; t++) {
        ryz_backend b;
        char what[80];
        ck_assert_int_eq(ryz_backend_init_cpu(t, &b), RYZ_OK);
        for (int k = 0; k < 6; k++) {
            snprintf(what, sizeof what, "decode geometry %d over %d rows, threads=%d, call %d",
                     k / 2, rows[k / 2], t, k % 2 + 1);
            check_attention_on(&b, more[k / 2], 1, rows[k / 2] - 1, 1.0f, what);
        }
        b.iface->attention(b.ctx, out[t - 1], q, kc, vc, 1, &pos, &g, s);
        if (t == 2) {
            gemv_with_stalled_worker(&b, y, x, w, IN, OUT);
            double t0 = ryz_time_now();
            b.iface->attention(b.ctx, out[3], q, kc, vc, 1, &pos, &g, s);
            double dt = ryz_time_now() - t0;
            ck_assert_msg(dt < 0.25, "attention waited %.3f s for a stalled worker", dt);
        }
        ryz_backend_free(&b);
    }
    ck_assert_msg(!memcmp(out[0], out[1], sizeof out[0]), "2 threads differ from 1");
    ck_assert_msg(!memcmp(out[0], out[2], sizeof out[0]), "3 threads differ from 1");
    ck_assert_msg(!memcmp(out[0], out[3], sizeof out[0]), "with a stalled worker, not as 1 thread");
    free(q), free(kc), free(vc), free(s), free(x), free(w), free(y);
}
END_TEST

/* One read probe over a->bytes of a->buf; a->sum receives its sum. */
typedef struct {
    const void *buf;
    size_t bytes;
    uint64_t sum;
} probe_args;

static void probe_call(ryz_backend *b, void *arg) {
    probe_args *a = arg;
    double sec = 0;
    ck_assert_int_eq(ryz_backend_read_probe(b, a->buf, a->bytes, &sec, &a->sum), RYZ_OK);
    ck_assert_msg(sec > 0, "a probe of %zu bytes took %g s", a->bytes, sec);
}

/* The read probe reads every word once, whatever the threads' claims: its
 * sum modulo 2^24 is ryz_mem_read_sum's over a buffer of words that are
 * not a pattern a skipped or twice-read row would leave unchanged. A
 * worker stalled in a claim does not hold it up (the caller reads that
 * claim, as it computes a late worker's GEMV rows). Sizes the probe
 * cannot take are refused with a message. */
START_TEST(test_backend_read_probe) {
    const size_t sizes[] = {4096, 3 * 4096, (size_t)257 * 4096, (size_t)4099 * 4096};
    size_t most = sizes[3];
    uint64_t *buf = malloc(most);
    ck_assert_ptr_nonnull(buf);
    uint32_t h = 12345;
    for (size_t i = 0; i < most / 8; i++) buf[i] = (uint64_t)(h = h * 1664525u + 1013904223u) << 7;
    for (int t = 1; t <= 3; t++) {
        ryz_backend b;
        ck_assert_int_eq(ryz_backend_init_cpu(t, &b), RYZ_OK);
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            probe_args a = {buf, sizes[k], 0};
            probe_call(&b, &a);
            uint64_t want = ryz_mem_read_sum(buf, sizes[k]) & 0xffffff;
            ck_assert_msg(a.sum == want, "%zu bytes at %d threads: sum %llu, want %llu",
                          sizes[k], t, (unsigned long long)a.sum, (unsigned long long)want);
        }
        if (t == 2) {
            probe_args a = {buf, most, 0};
            double dt = with_stalled_worker(&b, probe_call, &a);
            ck_assert_msg(dt < 0.25, "the probe waited %.3f s for a stalled worker", dt);
            ck_assert_uint_eq(a.sum, ryz_mem_read_sum(buf, most) & 0xffffff);
        }
        double sec;
        uint64_t sum;
        ck_assert_int_eq(ryz_backend_read_probe(&b, buf, 4096 + 8, &sec, &sum), RYZ_EINVAL);
        assert_error_has("read probe of 4104 bytes: must be a positive multiple of 4096");
        ck_assert_int_eq(ryz_backend_read_probe(&b, buf, 0, &sec, &sum), RYZ_EINVAL);
        ryz_backend_free(&b);
    }
    free(buf);
}
END_TEST

/* The slices of a probe buffer: the first is read at open (so that no
 * later read allocates), then each read takes the next whole slice and
 * wraps to the start where one would not fit (3 slices of 8 KiB in 28
 * KiB: reads 2, 3, then 1 again), each slice's words summed into the
 * sink (the buffer holds 0, 1, 2, ...; the probe keeps each sum modulo
 * 2^24). Sizes that do not fit and a backend without a read probe are
 * refused; freeing twice is safe. */
START_TEST(test_probe_slices) {
    enum { SLICE = 8192, WORDS = SLICE / 8 };
    ryz_backend b;
    ryz_probe_slices ps;
    ck_assert_int_eq(ryz_backend_init_cpu(2, &b), RYZ_OK);
    ck_assert_int_eq(ryz_probe_slices_open(&b, 7 * 4096, SLICE, &ps), RYZ_OK);
    uint64_t want = 0;
    const int order[] = {0, 1, 2, 0, 1};
    for (int k = 0; k < 5; k++) {
        uint64_t first = (uint64_t)order[k] * WORDS;
        want += (WORDS * first + (uint64_t)WORDS * (WORDS - 1) / 2) & 0xffffff;
        double sec = 0;
        if (k > 0) ck_assert_int_eq(ryz_probe_slices_read(&ps, &sec), RYZ_OK);
        ck_assert_uint_eq(ps.sink, want);
        ck_assert_uint_eq(ps.at, (size_t)(order[k] + 1) * SLICE);
    }
    ryz_probe_slices_free(&ps);
    ryz_probe_slices_free(&ps);
    ck_assert_int_eq(ryz_probe_slices_open(&b, 4096, SLICE, &ps), RYZ_EINVAL);
    assert_error_has("probe slice of 8192 bytes: must be a positive multiple of 4096, at most "
                     "the buffer's 4096");
    ck_assert_int_eq(ryz_probe_slices_open(&b, SLICE, 100, &ps), RYZ_EINVAL);
    ryz_backend_iface none = *b.iface;
    none.read_probe = NULL;
    ryz_backend copy = {&none, b.ctx};
    ck_assert_int_eq(ryz_probe_slices_open(&copy, SLICE, SLICE, &ps), RYZ_EINVAL);
    assert_error_has("the cpu backend has no read probe");
    ck_assert_ptr_null(ps.buf);
    ryz_backend_free(&b);
}
END_TEST

/* silu over [-100, 100] against double precision, 8 lanes at a time and
 * a tail: within 3e-7 relative (5 ulp), or 1e-36 absolute where it
 * underflows (-0 for the vector path below about -87.7, a denormal or -0
 * for expf); NaN stays NaN, +inf gives +inf and -inf NaN, as in the plain
 * loop. */
START_TEST(test_backend_silu_range) {
    enum { N = 803, NANAT = N / 2, INF = 9, NEGINF = 10 }; /* all in vectors of 8 */
    static float a[N], b[N], want[N];
    for (int i = 0; i < N; i++) {
        a[i] = -100.0f + 0.25f * (float)i, b[i] = 1.0f;
        want[i] = (float)(a[i] / (1.0 + exp(-(double)a[i])));
    }
    a[NANAT] = NAN, a[INF] = INFINITY, a[NEGINF] = -INFINITY;
    be.iface->silu_mul(be.ctx, a, b, N);
    ck_assert(isnan(a[NANAT]) && isnan(a[NEGINF]) && isinf(a[INF]) && a[INF] > 0);
    a[NANAT] = want[NANAT] = a[INF] = want[INF] = a[NEGINF] = want[NEGINF] = 0.0f;
    assert_close(a, want, N, 1e-36, 3e-7, "silu over [-100, 100]");
}
END_TEST

START_TEST(test_argmax) {
    const float a[] = {1, 3, 3, 2};
    ck_assert_int_eq(ryz_argmax(a, 4), 1);
    const float b[] = {-5, -2, -2, -7};
    ck_assert_int_eq(ryz_argmax(b, 4), 1);
    const float c[] = {4, 4, 4};
    ck_assert_int_eq(ryz_argmax(c, 3), 0);
    const float d[] = {-INFINITY, -1e30f, 0.5f, 0.5f};
    ck_assert_int_eq(ryz_argmax(d, 4), 2);
    ck_assert_int_eq(ryz_argmax(d, 1), 0);
    const float e[] = {1, 2, INFINITY};
    ck_assert_int_eq(ryz_argmax(e, 3), 2);
}
END_TEST

/* The first index of the largest value, as a plain loop finds it. */
static int argmax_plain(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Long enough for the vector path (8 lanes, then a tail): values from a
 * few levels, so the largest repeats in several lanes and the first one
 * must win; a NaN in the middle never wins, one in x[0] always does;
 * signed zeros tie. */
START_TEST(test_argmax_long) {
    enum { N = 77 };
    float x[N];
    for (int n = 1; n <= N; n++)
        for (int seed = 0; seed < 8; seed++) {
            for (int i = 0; i < n; i++) x[i] = (float)((i * 7919 + seed * 104729) % 5) - 2.0f;
            ck_assert_msg(ryz_argmax(x, n) == argmax_plain(x, n), "n %d seed %d: %d, want %d",
                          n, seed, ryz_argmax(x, n), argmax_plain(x, n));
            if (n > 9) {
                x[n / 2] = NAN;
                ck_assert_int_eq(ryz_argmax(x, n), argmax_plain(x, n));
                x[0] = NAN;
                ck_assert_int_eq(ryz_argmax(x, n), 0);
            }
        }
    float z[16] = {-1.0f, -0.0f}; /* then +0: equal to -0, so -0 at 1 stays first */
    ck_assert_int_eq(ryz_argmax(z, 16), 1);
}
END_TEST

/* The data-movement ops of the vtable on the cpu backend: copies in host
 * memory, exact. */
START_TEST(test_backend_upload_download_copy) {
    enum { ROWS = 3, W = 5, SP = 7, DP = 9 };
    ck_assert_int_eq(be.iface->host_visible, 1);
    float src[ROWS * SP], dst[ROWS * DP], back[ROWS * SP];
    fill_rand(src, ROWS * SP, 40);
    float *d = be.iface->alloc(be.ctx, RYZ_MEM_SCRATCH, sizeof src);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(be.iface->upload(be.ctx, d, src, sizeof src), RYZ_OK);
    ck_assert_int_eq(be.iface->download(be.ctx, back, d, sizeof back), RYZ_OK);
    ck_assert_int_eq(memcmp(back, src, sizeof src), 0);
    ck_assert_int_eq(be.iface->upload(be.ctx, d, NULL, 0), RYZ_OK); /* nothing to copy */
    for (int i = 0; i < ROWS * DP; i++) dst[i] = -1.0f;
    be.iface->copy_rows(be.ctx, dst, DP * sizeof(float), d + 1, SP * sizeof(float),
                        W * sizeof(float), ROWS);
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < DP; c++)
            ck_assert_msg(dst[r * DP + c] == (c < W ? src[r * SP + 1 + c] : -1.0f),
                          "copy_rows: row %d col %d is %g", r, c, (double)dst[r * DP + c]);
    ryz_backend_copy(&be, dst, src + 2, 3 * sizeof(float)); /* one row */
    ck_assert_int_eq(memcmp(dst, src + 2, 3 * sizeof(float)), 0);
    ck_assert(dst[3] == src[1 + 3]); /* untouched past the copy */
    be.iface->free(be.ctx, d);
}
END_TEST

/* embedding (shard edges, outside tokens zero), argmax over strided rows
 * (ties, -inf, a larger value past n), mask of trailing columns. */
START_TEST(test_backend_embedding_argmax_mask) {
    enum { N = 6, DIM = 4, START = 100, LOCAL = 50, ROWS = 4, COLS = 6, LD = 8 };
    const int tokens[N] = {99, 100, 149, 150, 120, 0};
    float emb[LOCAL * DIM], x[N * DIM];
    fill_rand(emb, LOCAL * DIM, 41);
    be.iface->embedding(be.ctx, x, tokens, N, emb, START, LOCAL, DIM);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < DIM; c++) {
            int l = tokens[r] - START;
            ck_assert(x[r * DIM + c] == (l >= 0 && l < LOCAL ? emb[l * DIM + c] : 0.0f));
        }
    float m[ROWS * LD];
    fill_rand(m, ROWS * LD, 42);
    m[0 * LD + 1] = m[0 * LD + 4] = 9.0f; /* a tie: the first */
    for (int c = 0; c < COLS; c++) m[1 * LD + c] = -INFINITY;
    m[2 * LD + COLS] = 99.0f; /* past n, inside ld: ignored */
    m[3 * LD + COLS - 1] = 9.0f;
    int idx[ROWS] = {-1, -1, -1, -1};
    be.iface->argmax(be.ctx, idx, m, ROWS, COLS, LD);
    for (int r = 0; r < ROWS; r++) ck_assert_int_eq(idx[r], ryz_argmax(m + r * LD, COLS));
    ck_assert_int_eq(idx[0], 1);
    ck_assert_int_eq(idx[1], 0);
    ck_assert_int_eq(idx[3], COLS - 1);
    float keep[ROWS * LD];
    memcpy(keep, m, sizeof m);
    be.iface->mask_cols(be.ctx, m, ROWS, COLS, LD);
    for (int i = 0; i < ROWS * LD; i++)
        ck_assert(i % LD >= COLS ? isinf(m[i]) && m[i] < 0 : m[i] == keep[i]);
    be.iface->mask_cols(be.ctx, m, ROWS, LD, LD); /* no columns */
}
END_TEST

/* sync, memory figures through the vtable, and choosing a backend by name. */
START_TEST(test_backend_sync_mem_kinds) {
    ck_assert_int_eq(be.iface->sync(be.ctx), RYZ_OK);
    size_t before = ryz_backend_mem_bytes(&be, RYZ_MEM_KV);
    ck_assert_uint_eq(before, ryz_mem_bytes(RYZ_MEM_KV));
    void *p = be.iface->alloc(be.ctx, RYZ_MEM_KV, 4096);
    ck_assert_uint_eq(ryz_backend_mem_bytes(&be, RYZ_MEM_KV), before + 4096);
    ck_assert_uint_ge(ryz_backend_mem_peak(&be, RYZ_MEM_KV), before + 4096);
    be.iface->free(be.ctx, p);
    ck_assert_uint_eq(ryz_backend_mem_bytes(&be, RYZ_MEM_KV), before);
    ck_assert_uint_eq(ryz_backend_mem_bytes(&be, RYZ_MEM_NKINDS), 0); /* not a kind */
    ryz_backend_kind k;
    ck_assert_int_eq(ryz_backend_kind_parse("cuda", &k), RYZ_OK);
    ck_assert_int_eq(k, RYZ_BACKEND_CUDA);
    ck_assert_str_eq(ryz_backend_kind_name(k), "cuda");
    ck_assert_int_eq(ryz_backend_kind_parse("gpu", &k), RYZ_EINVAL);
    assert_error_has("known: cpu, cuda");
    ck_assert_int_eq(ryz_backend_available(RYZ_BACKEND_CPU), RYZ_OK);
    ryz_backend b;
    ck_assert_int_eq(ryz_backend_init(RYZ_BACKEND_CPU, 2, &b), RYZ_OK);
    ck_assert_str_eq(b.iface->name, "cpu");
    ryz_backend_free(&b); /* through cpu's destroy op */
    ck_assert_ptr_null(b.iface);
    ryz_backend_opts tf32_on_cpu = {.threads = 1, .tf32 = 1};
    b.iface = (const ryz_backend_iface *)1;
    ck_assert_int_eq(ryz_backend_init_opts(RYZ_BACKEND_CPU, &tf32_on_cpu, &b), RYZ_EINVAL);
    assert_error_has("tf32 needs backend cuda");
    ck_assert_ptr_null(b.iface); /* zeroed: safe to free */
    ck_assert_ptr_null(be.iface->pin_host); /* host memory needs no pinning */
    double rate = -1;
    ck_assert_int_eq(ryz_cuda_host_pinned(&rate), 0);
    ck_assert_int_eq(ryz_cuda_copy_bandwidth(&be, (size_t)1 << 20, 1, &rate), RYZ_EINVAL);
    ck_assert(rate == 0);
    ck_assert_msg(strstr(ryz_last_error(), ryz_cuda_built() ? "'cpu' is not the cuda backend"
                                                            : "built without CUDA"),
                  "message: %s", ryz_last_error());
    int n = 0;
    if (ryz_cuda_device_count(&n) == RYZ_OK) return; /* a GPU here: test_cuda's business */
    ck_assert_int_eq(ryz_backend_available(RYZ_BACKEND_CUDA), RYZ_EINVAL);
    assert_error_has("no CUDA device: ");
    ck_assert_int_eq(ryz_backend_init(RYZ_BACKEND_CUDA, 1, &b), RYZ_EINVAL);
    ck_assert_ptr_null(b.ctx);
}
END_TEST

/* ================================================================ TP layers */

/* A fake rank 0 of `size` ranks in which every other rank holds the same
 * data as this one: all-reduce multiplies by size, all-gather repeats. */
static int mirror_size;

/* All-reduce over `size` identical ranks: recv = size * send. */
static ryz_status mirror_all_reduce(void *ctx, const float *send, float *recv, size_t n) {
    (void)ctx;
    for (size_t i = 0; i < n; i++)
        recv[i] = send[i] * (float)mirror_size;
    return RYZ_OK;
}

/* All-gather over identical ranks: send repeated size times. */
static ryz_status mirror_all_gather(void *ctx, const float *send, float *recv, size_t n) {
    (void)ctx;
    for (int r = 0; r < mirror_size; r++)
        memcpy(recv + (size_t)r * n, send, n * sizeof(float));
    return RYZ_OK;
}

/* Barrier of the mirror comm: nothing to wait for. */
static ryz_status mirror_unused(void *ctx) {
    (void)ctx;
    return RYZ_OK;
}

/* Mirror comm context free: nothing owned. */
static void mirror_free(void *ctx) {
    (void)ctx;
}

/* A mirror comm of `size` ranks (only the collectives the TP layers use);
 * with device_memory it claims to take device buffers, as nccl does. */
static ryz_comm *mirror_comm_as(int size, int device_memory) {
    static const ryz_comm_iface host = {.name = "mirror",
                                        .all_reduce_sum = mirror_all_reduce,
                                        .all_gather = mirror_all_gather,
                                        .barrier = mirror_unused,
                                        .free = mirror_free};
    static ryz_comm_iface device;
    device = host;
    device.device_memory = 1;
    ryz_comm *c = NULL;
    mirror_size = size;
    ck_assert_int_eq(ryz_comm_create(device_memory ? &device : &host, NULL, 0, size, &c), RYZ_OK);
    return c;
}

static ryz_comm *mirror_comm(int size) {
    return mirror_comm_as(size, 0);
}

START_TEST(test_tp_embedding) {
    enum { DIM = 6, VL = 5, N = 4 };
    float emb[VL * DIM], x[N * DIM], want[N * DIM];
    fill_rand(emb, VL * DIM, 14);
    const int tokens[N] = {12, 3, 14, 15}; /* this rank owns [10, 15) */
    memset(want, 0, sizeof want);
    memcpy(want, emb + 2 * DIM, DIM * sizeof(float));
    memcpy(want + 2 * DIM, emb + 4 * DIM, DIM * sizeof(float));
    ryz_comm *self = NULL;
    ck_assert_int_eq(ryz_comm_init_self(&self), RYZ_OK);
    for (int i = 0; i < N * DIM; i++)
        x[i] = 99.0f;
    ck_assert_int_eq(ryz_tp_embedding(&be, self, x, tokens, N, emb, 10, VL, DIM, NULL), RYZ_OK);
    assert_close(x, want, N * DIM, 0, 0, "embedding on one rank");
    ryz_comm_free(self);
    /* Two ranks: the local rows, then one all-reduce over all of x. */
    ryz_comm *two = mirror_comm(2);
    for (int i = 0; i < N * DIM; i++)
        want[i] *= 2.0f;
    ck_assert_int_eq(ryz_tp_embedding(&be, two, x, tokens, N, emb, 10, VL, DIM, NULL), RYZ_OK);
    assert_close(x, want, N * DIM, 0, 0, "embedding all-reduced");
    ck_assert_uint_eq(ryz_comm_record_count(two), 1);
    ck_assert_int_eq(ryz_comm_record_at(two, 0)->op, RYZ_OP_ALL_REDUCE);
    ck_assert_uint_eq(ryz_comm_record_at(two, 0)->bytes, N * DIM * sizeof(float));
    ryz_comm_free(two);
}
END_TEST

START_TEST(test_tp_column_and_row) {
    enum { N = 3, IN = 10, OUT = 7 };
    float x[N * IN], w[OUT * IN], y[N * OUT], want[N * OUT];
    double ref[N * OUT];
    fill_rand(x, N * IN, 15);
    fill_rand(w, OUT * IN, 16);
    ref_matmul(ref, x, w, N, IN, OUT);
    to_float(want, ref, N * OUT);
    ryz_tp_column(&be, y, x, ryz_matrix_f32(w), N, IN, OUT);
    assert_close(y, want, N * OUT, 1e-5, 1e-5, "column-parallel");
    ryz_comm *two = mirror_comm(2);
    ck_assert_int_eq(ryz_tp_row(&be, two, y, x, ryz_matrix_f32(w), N, IN, OUT, NULL), RYZ_OK);
    for (int i = 0; i < N * OUT; i++)
        want[i] *= 2.0f;
    assert_close(y, want, N * OUT, 1e-5, 1e-5, "row-parallel all-reduced");
    ck_assert_uint_eq(ryz_comm_record_count(two), 1);
    ck_assert_uint_eq(ryz_comm_record_at(two, 0)->bytes, N * OUT * sizeof(float));
    ryz_comm_free(two);
}
END_TEST

START_TEST(test_tp_lm_head_padding) {
    /* vocab 10 at tp 4 -> padded 12, 3 rows per rank; columns 10, 11 are padding. */
    enum { N = 2, DIM = 5, VOCAB = 10, TP = 4 };
    ryz_model_config c = parse_ok("synthetic:tiny,vocab=10");
    ryz_shard s;
    ryz_shard_plan(&c, TP, 0, &s);
    ck_assert_int_eq(s.vocab_padded, 12);
    ck_assert_int_eq(s.vocab_local, 3);
    float x[N * DIM], cls[3 * DIM], part[N * 3], gather[N * 12], logits[N * 12], want[N * 12];
    double ref[N * 3];
    fill_rand(x, N * DIM, 17);
    fill_rand(cls, 3 * DIM, 18);
    ref_matmul(ref, x, cls, N, DIM, 3);
    for (int i = 0; i < N; i++)
        for (int v = 0; v < 12; v++)
            want[i * 12 + v] = v < VOCAB ? (float)ref[i * 3 + v % 3] : -INFINITY;
    ryz_comm *four = mirror_comm(TP);
    ck_assert_int_eq(ryz_tp_lm_head(&be, four, logits, x, ryz_matrix_f32(cls), N, DIM, VOCAB, &s,
                                    part, gather, NULL),
                     RYZ_OK);
    assert_close(logits, want, N * 12, 1e-5, 1e-5, "gathered logits, padding -inf");
    for (int i = 0; i < N * 12; i++)
        ck_assert_msg(!!isinf(logits[i]) == (i % 12 >= VOCAB), "logit (%d, %d) is %g", i / 12,
                      i % 12, (double)logits[i]);
    ck_assert_uint_eq(ryz_comm_record_count(four), 1);
    ck_assert_int_eq(ryz_comm_record_at(four, 0)->op, RYZ_OP_ALL_GATHER);
    /* Recorded as nccl-tests counts an all-gather: its output. */
    ck_assert_uint_eq(ryz_comm_record_at(four, 0)->bytes, N * 12 * sizeof(float));
    ryz_comm_free(four);
}
END_TEST

/* A copy of `bytes` of host memory h in b's memory. */
static void *backend_copy_of(ryz_backend *b, const void *h, size_t bytes) {
    void *d = b->iface->alloc(b->ctx, RYZ_MEM_SCRATCH, bytes);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(b->iface->upload(b->ctx, d, h, bytes), RYZ_OK);
    return d;
}

/* Downloads d (n floats of b's memory) and frees it. */
static void backend_take(ryz_backend *b, float *h, void *d, size_t n) {
    ck_assert_int_eq(b->iface->download(b->ctx, h, d, n * sizeof(float)), RYZ_OK);
    b->iface->free(b->ctx, d);
}

/* When collectives are staged: only with several ranks, a backend the host
 * cannot see, and a comm that takes host memory only. */
START_TEST(test_tp_staged_rule) {
    ryz_backend sb;
    shadow_init(&sb);
    ryz_comm *host = mirror_comm_as(2, 0), *dev = mirror_comm_as(2, 1), *self = NULL;
    ck_assert_int_eq(ryz_comm_init_self(&self), RYZ_OK);
    ck_assert_int_eq(ryz_tp_staged(&be, host), 0);
    ck_assert_int_eq(ryz_tp_staged(&sb, host), 1);
    ck_assert_int_eq(ryz_tp_staged(&sb, dev), 0);
    ck_assert_int_eq(ryz_tp_staged(&sb, self), 0);
    ck_assert_int_eq(ryz_comm_device_memory(dev), 1);
    ck_assert_int_eq(ryz_comm_device_memory(self), 0);
    ryz_comm_free(host), ryz_comm_free(dev), ryz_comm_free(self);
    ryz_backend_free(&sb);
}
END_TEST

/* The TP layers on device memory (the shadow backend) with their
 * collectives staged through a host buffer give the cpu backend's results
 * exactly: row-parallel, embedding (tokens in device memory) and the LM
 * head's gather, reorder and padding mask. */
START_TEST(test_tp_layers_staged) {
    enum { N = 3, IN = 10, OUT = 7, DIM = 5, VOCAB = 10 };
    ryz_backend sb;
    shadow_init(&sb);
    float x[N * IN], w[OUT * IN], want[N * 12], got[N * 12], stage[N * 15];
    fill_rand(x, N * IN, 43);
    fill_rand(w, OUT * IN, 44);
    ryz_comm *two = mirror_comm(2);
    ck_assert_int_eq(ryz_tp_row(&be, two, want, x, ryz_matrix_f32(w), N, IN, OUT, NULL), RYZ_OK);
    float *dx = backend_copy_of(&sb, x, sizeof x), *dw = backend_copy_of(&sb, w, sizeof w);
    float *dy = backend_copy_of(&sb, got, N * OUT * sizeof(float));
    ck_assert_int_eq(ryz_tp_row(&sb, two, dy, dx, ryz_matrix_f32(dw), N, IN, OUT, stage), RYZ_OK);
    backend_take(&sb, got, dy, N * OUT);
    ck_assert_int_eq(memcmp(got, want, N * OUT * sizeof(float)), 0);
    const int tokens[N] = {2, 9, 4}; /* the local rows are 0..4 of vocab_start 0 */
    int *dtok = backend_copy_of(&sb, tokens, sizeof tokens);
    ck_assert_int_eq(ryz_tp_embedding(&be, two, want, tokens, N, x, 0, 5, 2, NULL), RYZ_OK);
    float *de = backend_copy_of(&sb, got, N * 2 * sizeof(float));
    ck_assert_int_eq(ryz_tp_embedding(&sb, two, de, dtok, N, dx, 0, 5, 2, stage), RYZ_OK);
    backend_take(&sb, got, de, N * 2);
    ck_assert_int_eq(memcmp(got, want, N * 2 * sizeof(float)), 0);
    ryz_comm_free(two);
    ryz_model_config c = parse_ok("synthetic:tiny,vocab=10");
    ryz_shard s; /* tp 4: vocab padded to 12, 3 rows a rank */
    ryz_shard_plan(&c, 4, 0, &s);
    ryz_comm *four = mirror_comm(4);
    float part[N * 3], gather[N * 12];
    ck_assert_int_eq(ryz_tp_lm_head(&be, four, want, x, ryz_matrix_f32(w), N, DIM, VOCAB, &s, part,
                                    gather, NULL),
                     RYZ_OK);
    float *dl = backend_copy_of(&sb, got, sizeof got);
    float *dp = backend_copy_of(&sb, part, sizeof part);
    float *dg = backend_copy_of(&sb, gather, sizeof gather);
    ck_assert_int_eq(ryz_tp_lm_head(&sb, four, dl, dx, ryz_matrix_f32(dw), N, DIM, VOCAB, &s, dp,
                                    dg, stage),
                     RYZ_OK);
    backend_take(&sb, got, dl, N * 12);
    ck_assert_int_eq(memcmp(got, want, sizeof got), 0);
    sb.iface->free(sb.ctx, dx), sb.iface->free(sb.ctx, dw), sb.iface->free(sb.ctx, dtok);
    sb.iface->free(sb.ctx, dp), sb.iface->free(sb.ctx, dg);
    ryz_comm_free(four);
    ryz_backend_free(&sb);
}
END_TEST

/* ===================================================== model and reference */

/* Dense weights of the whole model, generated the way DESIGN section 3
 * describes (uniform, 1/sqrt(fan_in); norms 1 + 0.1 u). */
typedef struct {
    ryz_model_config c;
    float *emb, *cls, *final_norm;
    float *w[64][RYZ_T_PER_LAYER]; /* per layer, by RYZ_T_* */
} ref_model;

/* One dense tensor (rows, cols) of tensor id t. */
static float *ref_tensor(const ryz_model_config *c, uint32_t t, float scale, int rows, int cols) {
    float *w = malloc((size_t)rows * cols * sizeof(float));
    ck_assert_ptr_nonnull(w);
    ryz_synth_fill(c->seed, t, scale, 0, rows, INT64_MAX, 0, cols, cols, w);
    return w;
}

/* A norm weight (dim) of tensor id t. */
static float *ref_norm(const ryz_model_config *c, uint32_t t) {
    float *w = ref_tensor(c, t, 0.1f, 1, c->dim);
    for (int i = 0; i < c->dim; i++)
        w[i] += 1.0f;
    return w;
}

/* Generates every dense tensor of config c into r. */
static void ref_load(ref_model *r, const ryz_model_config *c) {
    ck_assert(c->n_layers <= 64);
    memset(r, 0, sizeof *r);
    r->c = *c;
    int dim = c->dim, kvd = dim / c->n_heads * c->n_kv_heads, hid = c->hidden;
    float sd = 1.0f / sqrtf((float)dim), sh = 1.0f / sqrtf((float)hid);
    r->emb = ref_tensor(c, RYZ_T_EMBED, 1.0f, c->vocab, dim);
    r->cls = ref_tensor(c, RYZ_T_CLS, sd, c->vocab, dim);
    r->final_norm = ref_norm(c, RYZ_T_FINAL_NORM);
    for (int l = 0; l < c->n_layers; l++) {
        float **w = r->w[l];
        w[RYZ_T_WQ] = ref_tensor(c, RYZ_T_LAYER(l, RYZ_T_WQ), sd, dim, dim);
        w[RYZ_T_WK] = ref_tensor(c, RYZ_T_LAYER(l, RYZ_T_WK), sd, kvd, dim);
        w[RYZ_T_WV] = ref_tensor(c, RYZ_T_LAYER(l, RYZ_T_WV), sd, kvd, dim);
        w[RYZ_T_WO] = ref_tensor(c, RYZ_T_LAYER(l, RYZ_T_WO), sd, dim, dim);
        w[RYZ_T_W1] = ref_tensor(c, RYZ_T_LAYER(l, RYZ_T_W1), sd, hid, dim);
        w[RYZ_T_W3] = ref_tensor(c, RYZ_T_LAYER(l, RYZ_T_W3), sd, hid, dim);
        w[RYZ_T_W2] = ref_tensor(c, RYZ_T_LAYER(l, RYZ_T_W2), sh, dim, hid);
        w[RYZ_T_ATT_NORM] = ref_norm(c, RYZ_T_LAYER(l, RYZ_T_ATT_NORM));
        w[RYZ_T_FFN_NORM] = ref_norm(c, RYZ_T_LAYER(l, RYZ_T_FFN_NORM));
    }
}

/* Frees what ref_load allocated. */
static void ref_free(ref_model *r) {
    free(r->emb);
    free(r->cls);
    free(r->final_norm);
    for (int l = 0; l < r->c.n_layers; l++)
        for (int t = 0; t < RYZ_T_PER_LAYER; t++)
            free(r->w[l][t]);
}

/* y (out) = W (out, in) . x (in), double. */
static void ref_matvec(double *y, const float *w, const double *x, int out, int in) {
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++)
            s += (double)w[(size_t)o * in + i] * x[i];
        y[o] = s;
    }
}

/* Logits (len, vocab) of one sequence, token by token, in double. */
static void ref_forward(const ref_model *r, const int *tok, int len, float *logits) {
    const ryz_model_config *c = &r->c;
    int dim = c->dim, hd = dim / c->n_heads, kvd = hd * c->n_kv_heads, hid = c->hidden;
    size_t cache = (size_t)c->n_layers * len * kvd;
    double *kc = calloc(cache, sizeof(double)), *vc = calloc(cache, sizeof(double));
    double *buf = calloc((size_t)6 * dim + 2 * hid + len + c->vocab, sizeof(double));
    ck_assert(kc && vc && buf);
    double *x = buf, *xb = x + dim, *q = xb + dim, *att = q + dim, *y = att + dim;
    double *h1 = y + dim, *h3 = h1 + hid, *sc = h3 + hid, *lg = sc + len;
    for (int pos = 0; pos < len; pos++) {
        to_double(x, r->emb + (size_t)tok[pos] * dim, dim);
        for (int l = 0; l < c->n_layers; l++) {
            float *const *w = r->w[l];
            double *kl = kc + (size_t)l * len * kvd, *vl = vc + (size_t)l * len * kvd;
            ref_rmsnorm(xb, x, w[RYZ_T_ATT_NORM], dim, c->norm_eps);
            ref_matvec(q, w[RYZ_T_WQ], xb, dim, dim);
            ref_matvec(kl + (size_t)pos * kvd, w[RYZ_T_WK], xb, kvd, dim);
            ref_matvec(vl + (size_t)pos * kvd, w[RYZ_T_WV], xb, kvd, dim);
            ref_rope(q, c->n_heads, hd, pos, c->rope_base);
            ref_rope(kl + (size_t)pos * kvd, c->n_kv_heads, hd, pos, c->rope_base);
            ref_attend(att, q, kl, vl, pos, c->n_heads, hd, c->n_kv_heads, sc);
            ref_matvec(y, w[RYZ_T_WO], att, dim, dim);
            for (int i = 0; i < dim; i++)
                x[i] += y[i];
            ref_rmsnorm(xb, x, w[RYZ_T_FFN_NORM], dim, c->norm_eps);
            ref_matvec(h1, w[RYZ_T_W1], xb, hid, dim);
            ref_matvec(h3, w[RYZ_T_W3], xb, hid, dim);
            for (int i = 0; i < hid; i++)
                h1[i] = h1[i] / (1.0 + exp(-h1[i])) * h3[i];
            ref_matvec(y, w[RYZ_T_W2], h1, dim, hid);
            for (int i = 0; i < dim; i++)
                x[i] += y[i];
        }
        ref_rmsnorm(xb, x, r->final_norm, dim, c->norm_eps);
        ref_matvec(lg, r->cls, xb, c->vocab, dim);
        to_float(logits + (size_t)pos * c->vocab, lg, c->vocab);
    }
    free(kc);
    free(vc);
    free(buf);
}

/* The model tests' communicator (one rank). */
static ryz_comm *self_comm;

/* Fixture: backend and self comm. */
static void model_setup(void) {
    backend_setup();
    ck_assert_int_eq(ryz_comm_init_self(&self_comm), RYZ_OK);
}

/* Fixture: frees the self comm and backend. */
static void model_teardown(void) {
    ryz_comm_free(self_comm);
    backend_teardown();
}

/* Builds a model that must build. */
static ryz_model *build_ok(const ryz_model_config *c, int max_batch, int max_chunk) {
    ryz_model_opts o = {.max_batch = max_batch, .max_chunk = max_chunk};
    ryz_model *m = NULL;
    ck_assert_msg(ryz_model_build(c, self_comm, &be, &o, &m) == RYZ_OK, "build: %s",
                  ryz_last_error());
    ck_assert_ptr_nonnull(m);
    return m;
}

#define REF_SRC                                                                                    \
    "synthetic:tiny,dim=32,hidden=48,layers=2,heads=4,kv_heads=2,vocab=50,seq_len=16,seed=3"

START_TEST(test_forward_matches_reference) {
    /* Two sequences of 8 tokens: a 5-token prefill, then 3 decode steps. */
    enum { B = 2, LEN = 8, P = 5 };
    ryz_model_config c = parse_ok(REF_SRC);
    const int tok[B][LEN] = {{1, 7, 3, 49, 0, 12, 5, 5}, {20, 20, 2, 31, 8, 44, 9, 1}};
    ref_model r;
    ref_load(&r, &c);
    float want[B][LEN * 50], got[B][LEN * 50];
    for (int b = 0; b < B; b++)
        ref_forward(&r, tok[b], LEN, want[b]);
    ref_free(&r);
    ryz_model *m = build_ok(&c, B, P);
    ck_assert_int_eq(ryz_model_shard(m)->vocab_padded, 50);
    const float *lg;
    int in[B * P];
    for (int b = 0; b < B; b++)
        memcpy(in + b * P, tok[b], P * sizeof(int));
    ck_assert_int_eq(ryz_model_forward(m, in, B, P, 0, &lg), RYZ_OK);
    for (int b = 0; b < B; b++)
        memcpy(got[b], lg + b * P * 50, P * 50 * sizeof(float));
    for (int pos = P; pos < LEN; pos++) {
        int step[B] = {tok[0][pos], tok[1][pos]};
        ck_assert_int_eq(ryz_model_forward(m, step, B, 1, pos, &lg), RYZ_OK);
        for (int b = 0; b < B; b++)
            memcpy(got[b] + pos * 50, lg + b * 50, 50 * sizeof(float));
    }
    for (int b = 0; b < B; b++)
        assert_close(got[b], want[b], LEN * 50, 1e-4 * max_abs(want[b], LEN * 50), 1e-4,
                     b ? "sequence 1 vs reference" : "sequence 0 vs reference");
    ryz_model_free(m);
}
END_TEST

START_TEST(test_forward_finite_logits) {
    ryz_model_config c = parse_ok("synthetic:tiny,vocab=1003,layers=3,seed=9");
    ryz_model *m = build_ok(&c, 1, 4);
    const ryz_shard *s = ryz_model_shard(m);
    ck_assert_int_eq(s->tp, 1);
    ck_assert_int_eq(s->vocab_padded, 1003); /* one rank: nothing to pad */
    ck_assert_int_eq(ryz_model_config_of(m)->vocab, 1003);
    const int tok[4] = {0, 1002, 500, 7};
    const float *lg = NULL;
    ck_assert_int_eq(ryz_model_forward(m, tok, 1, 4, 0, &lg), RYZ_OK);
    for (int i = 0; i < 4 * s->vocab_padded; i++)
        ck_assert_msg(!!isfinite(lg[i]) == (i % s->vocab_padded < c.vocab), "logit (%d, %d) is %g",
                      i / s->vocab_padded, i % s->vocab_padded, (double)lg[i]);
    ck_assert_msg(max_abs(lg, 4 * 1003) > 1e-3, "logits all near zero");
    ryz_model_free(m);
}
END_TEST

START_TEST(test_forward_last_rows) {
    enum { B = 2, T = 5, V = 1003 };
    ryz_model_config c = parse_ok("synthetic:tiny,vocab=1003,seed=4");
    ryz_model *full = build_ok(&c, B, T), *last = build_ok(&c, B, T);
    const int tok[B * T] = {1, 2, 3, 4, 5, 900, 800, 700, 600, 1002};
    const float *lf = NULL, *ll = NULL;
    ck_assert_int_eq(ryz_model_forward(full, tok, B, T, 0, &lf), RYZ_OK);
    ck_assert_int_eq(ryz_model_forward_last(last, tok, B, T, 0, &ll), RYZ_OK);
    for (int b = 0; b < B; b++) {
        const float *want = lf + ((size_t)b * T + T - 1) * V, *got = ll + (size_t)b * V;
        int worst = 0;
        for (int v = 1; v < V; v++)
            if (fabsf(got[v] - want[v]) > fabsf(got[worst] - want[worst])) worst = v;
        ck_assert_msg(fabsf(got[worst] - want[worst]) <= 1e-5f * (1 + fabsf(want[worst])),
                      "sequence %d logit %d: last-only %.9g, full %.9g", b, worst,
                      (double)got[worst], (double)want[worst]);
    }
    ryz_model_free(full);
    ryz_model_free(last);
}
END_TEST

START_TEST(test_forward_rejects_bad_input) {
    ryz_model_config c = parse_ok("synthetic:tiny,seq_len=8");
    ryz_model *m = build_ok(&c, 2, 3);
    const float *lg = NULL;
    const int good[6] = {1, 2, 3, 4, 5, 6};
    static const struct {
        int tok, B, T, pos0;
        const char *needle;
    } bad[] = {
        {-1, 1, 1, 0, "token id -1 outside vocab [0, 512)"},
        {512, 1, 1, 0, "token id 512"},
        {0, 1, 4, 0, "chunk 3"}, /* too long a chunk */
        {0, 3, 1, 0, "batch 2"}, /* too many sequences */
        {0, 0, 1, 0, "batch 0"},
        {0, 1, 0, 0, "x 0 tokens"},
        {0, 1, 2, 7, "seq_len 8"}, /* past the cache */
        {0, 1, 1, -1, "position -1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int tok[6];
        memcpy(tok, good, sizeof tok);
        tok[0] = bad[i].tok ? bad[i].tok : tok[0];
        ryz_error_clear();
        ck_assert_msg(ryz_model_forward(m, tok, bad[i].B, bad[i].T, bad[i].pos0, &lg) == RYZ_EINVAL,
                      "case %zu accepted", i);
        assert_error_has(bad[i].needle);
    }
    ck_assert_int_eq(ryz_model_forward(m, good, 2, 3, 5, &lg), RYZ_OK); /* the limits */
    ryz_model_free(m);
}
END_TEST

START_TEST(test_build_free_accounting) {
    size_t before[RYZ_MEM_NKINDS];
    mem_snapshot(before);
    ryz_model_config c = parse_ok("synthetic:tiny,heads=8,kv_heads=2,layers=3,seq_len=32");
    ryz_model *m = build_ok(&c, 2, 4);
    ck_assert_uint_eq(ryz_mem_bytes(RYZ_MEM_WEIGHTS) - before[RYZ_MEM_WEIGHTS],
                      ryz_model_weight_bytes(&c));
    /* KV cache: k and v, 2 sequences x 3 layers x 32 positions x 2 KV heads x 8. */
    ck_assert_uint_eq(ryz_mem_bytes(RYZ_MEM_KV) - before[RYZ_MEM_KV], 2u * 2 * 3 * 32 * 16 * 4);
    ck_assert_uint_gt(ryz_mem_bytes(RYZ_MEM_SCRATCH), before[RYZ_MEM_SCRATCH]);
    const int tok[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const float *lg;
    ck_assert_int_eq(ryz_model_forward(m, tok, 2, 4, 0, &lg), RYZ_OK);
    ryz_model_free(m);
    assert_mem_equals(before, "after ryz_model_free");
    ryz_model_free(NULL);
}
END_TEST

START_TEST(test_build_rejects) {
    size_t before[RYZ_MEM_NKINDS];
    mem_snapshot(before);
    ryz_model_config c = parse_ok("synthetic:tiny");
    ryz_model *m = (ryz_model *)1;
    ryz_model_opts o = {.max_batch = 1, .max_chunk = 4};
    c.n_kv_heads = 3;
    ck_assert_int_eq(ryz_model_build(&c, self_comm, &be, &o, &m), RYZ_EINVAL);
    assert_error_has("n_kv_heads 3");
    ck_assert_ptr_null(m);
    c = parse_ok("synthetic:tiny,seq_len=8");
    const ryz_model_opts bad[] = {{.max_batch = 0, .max_chunk = 4}, {.max_batch = 1, .max_chunk = 0},
                                  {.max_batch = 1, .max_chunk = 9}};
    for (int i = 0; i < 3; i++) {
        m = (ryz_model *)1;
        ck_assert_int_eq(ryz_model_build(&c, self_comm, &be, &bad[i], &m), RYZ_EINVAL);
        ck_assert_ptr_null(m);
    }
    assert_mem_equals(before, "after rejected builds");
}
END_TEST

/* The device of test_device_memory_check: g_dev_free bytes free, and
 * every byte the model allocates on it counted in g_dev_used. */
static size_t g_dev_free, g_dev_used;

static ryz_status counted_mem_info(void *ctx, size_t *free_bytes, size_t *total_bytes) {
    (void)ctx;
    *free_bytes = g_dev_free;
    *total_bytes = (size_t)80e9;
    return RYZ_OK;
}

static void *counted_alloc(void *ctx, ryz_mem_kind kind, size_t bytes) {
    g_dev_used += bytes;
    return shadow_iface.alloc(ctx, kind, bytes);
}

/* A model of the memory-check test: rank 0 of tp, batch sequences. */
typedef struct {
    const char *src;
    int tp, batch, tiled;
    ryz_dtype dtype;
} mem_case;

/* Builds mc on a device backend with `free_bytes` free: the status, with
 * the device bytes the build allocated in g_dev_used (0 when refused). */
static ryz_status build_given_free(const mem_case *mc, size_t free_bytes) {
    ryz_backend sb;
    if (mc->tiled) shadow_init_tiled(&sb);
    else shadow_init(&sb);
    ryz_backend_iface dev = *sb.iface;
    dev.mem_info = counted_mem_info, dev.alloc = counted_alloc, sb.iface = &dev;
    ryz_comm *comm = mc->tp > 1 ? mirror_comm(mc->tp) : self_comm;
    ryz_model_config c = parse_ok(mc->src);
    ryz_model_opts o = {.max_batch = mc->batch, .max_chunk = 4, .dtype = mc->dtype};
    ryz_model *m = (ryz_model *)1;
    g_dev_free = free_bytes, g_dev_used = 0;
    ryz_status st = ryz_model_build(&c, comm, &sb, &o, &m);
    ck_assert(st == RYZ_OK ? m != NULL : m == NULL);
    ryz_model_free(m);
    if (comm != self_comm) ryz_comm_free(comm);
    ryz_backend_free(&sb);
    return st;
}

/* A backend with memory of its own (cuda) refuses a shard whose weights
 * and KV cache exceed what it has free, before allocating anything, and
 * says why with the sizes; a shard that fits in exactly the bytes its
 * build allocates is built (the check's figure is a lower bound): f32 and
 * bf16 (both layouts), one rank and rank 0 of 2 with a replicated KV
 * head, an uneven FFN split and a padded vocab. */
START_TEST(test_device_memory_check) {
    static const char *gqa = "synthetic:tiny,heads=8,kv_heads=1,vocab=1003,hidden=170";
    const mem_case cases[] = {{"synthetic:tiny,seq_len=256", 1, 2, 0, RYZ_DTYPE_F32},
                              {"synthetic:tiny,seq_len=256", 1, 2, 0, RYZ_DTYPE_BF16},
                              {"synthetic:tiny,seq_len=256", 1, 2, 1, RYZ_DTYPE_BF16},
                              {gqa, 2, 1, 0, RYZ_DTYPE_F32},
                              {gqa, 2, 3, 1, RYZ_DTYPE_BF16}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mem_case *mc = &cases[i];
        ck_assert_int_eq(build_given_free(mc, SIZE_MAX), RYZ_OK);
        size_t used = g_dev_used, weights, kv;
        ck_assert_int_eq(build_given_free(mc, used), RYZ_OK);
        ryz_model_config c = parse_ok(mc->src);
        ryz_shard sh;
        ryz_shard_plan(&c, mc->tp, 0, &sh);
        ryz_model_shard_bytes(&c, &sh, mc->dtype, mc->batch, &weights, &kv);
        ck_assert_msg(weights + kv <= used && weights + kv > used / 2,
                      "%s tp %d: %zu + %zu bytes estimated, %zu allocated", mc->src, mc->tp,
                      weights, kv, used);
        ck_assert_int_eq(build_given_free(mc, weights + kv - 1), RYZ_EINVAL);
        ck_assert_uint_eq(g_dev_used, 0);
        assert_error_has("free on its shadow device (of 80.0 GB)");
        assert_error_has(mc->dtype == RYZ_DTYPE_F32 ? "(one GPU each), bf16 weights, fewer"
                                                    : "(one GPU each), fewer sequences");
    }
    ck_assert_int_eq(build_given_free(&cases[0], 0), RYZ_EINVAL); /* a full device */
    assert_error_has("rank 0: its shard's f32 weights (0.00 GB) and KV cache (0.00 GB: 2 "
                     "sequence(s) of 256 positions)");
    assert_error_has("more than the 0.0 MB free");
}
END_TEST

/* bf16 weights: half the matrix bytes (norms and embedding stay float),
 * logits near the fp32 model's but not equal to them (the weights really
 * are rounded), and an unknown dtype refused before any allocation. */
START_TEST(test_bf16_model) {
    enum { P = 6, NEW = 8, LEN = P + NEW, ROWS = LEN - 1, V = 300 };
    ryz_model_config c = parse_ok("synthetic:tiny,dim=64,hidden=176,layers=3,vocab=300,seq_len=32");
    const int prompt[P] = {3, 1, 4, 1, 5, 9};
    int ids[LEN], ids2[LEN];
    static float lf[ROWS * V], lb[ROWS * V];
    ryz_model *m = build_ok(&c, 1, P);
    ck_assert_int_eq(ryz_model_generate(m, prompt, 1, P, NEW, NULL, ids, lf, NULL), RYZ_OK);
    ryz_model_free(m);
    size_t before[RYZ_MEM_NKINDS];
    mem_snapshot(before);
    ryz_backend b16; /* its own backend: the bf16 scratch it grows is counted and given back */
    ck_assert_int_eq(ryz_backend_init_cpu(1, &b16), RYZ_OK);
    ryz_model_opts o = {.max_batch = 1, .max_chunk = P, .dtype = RYZ_DTYPE_BF16};
    ck_assert_int_eq(ryz_model_build(&c, self_comm, &b16, &o, &m), RYZ_OK);
    size_t kvd = 64 / c.n_heads * c.n_kv_heads;
    size_t mat = ((2 * 64 * 64 + 2 * kvd * 64 + 3 * 64 * 176) * 3 + 300 * 64);
    ck_assert_uint_eq(ryz_mem_bytes(RYZ_MEM_WEIGHTS) - before[RYZ_MEM_WEIGHTS],
                      ryz_model_weight_bytes(&c) - 2 * mat);
    ryz_shard sh;
    ryz_shard_plan(&c, 1, 0, &sh);
    ck_assert_uint_eq(ryz_model_bytes_per_token_as(&c, &sh, RYZ_DTYPE_BF16),
                      ryz_model_bytes_per_token(&c, &sh) - 2 * mat);
    ck_assert_int_eq(ryz_model_generate(m, prompt, 1, P, NEW, ids, ids2, lb, NULL), RYZ_OK);
    ryz_model_free(m);
    /* the widened prefill block (the largest matrix whole when it is under
     * 2^21 floats: the 300 x 64 classifier, not 8 MiB) and decode's permuted x */
    size_t scratch = ryz_mem_bytes(RYZ_MEM_SCRATCH) - before[RYZ_MEM_SCRATCH];
    ck_assert_uint_ge(scratch, (300 * 64 + 64) * sizeof(float));
    ck_assert_uint_lt(scratch, (1u << 20));
    ryz_backend_free(&b16);
    assert_mem_equals(before, "after freeing the bf16 model and its backend");
    double worst = 0, scale = max_abs(lf, ROWS * V);
    for (int i = 0; i < ROWS * V; i++) worst = fmax(worst, fabs((double)lf[i] - lb[i]));
    ck_assert_msg(worst > 1e-6 * scale && worst < 2e-2 * scale,
                  "bf16 vs f32 logits: max abs difference %g (max logit %g)", worst, scale);
    o.dtype = (ryz_dtype)7;
    ck_assert_int_eq(ryz_model_build(&c, self_comm, &be, &o, &m), RYZ_EINVAL);
    assert_error_has("dtype 7");
    ryz_dtype d;
    ck_assert_int_eq(ryz_dtype_parse("bfloat16", &d), RYZ_OK);
    ck_assert_int_eq(d, RYZ_DTYPE_BF16);
    ck_assert_int_eq(ryz_dtype_parse("fp32", &d), RYZ_OK);
    ck_assert_int_eq(d, RYZ_DTYPE_F32);
    ck_assert_int_eq(ryz_dtype_parse("fp16", &d), RYZ_EINVAL);
    assert_error_has("known: f32, bf16");
}
END_TEST

START_TEST(test_generate_consistency) {
    /* Greedy ids follow the argmax of the logits; teacher forcing with the
     * same ids and chunked prefill give the same result. */
    enum { P = 5, NEW = 6, LEN = P + NEW, ROWS = LEN - 1, V = 50 };
    ryz_model_config c = parse_ok(REF_SRC);
    const int prompt[P] = {3, 1, 4, 1, 5};
    int ids[LEN], ids2[LEN];
    float logits[ROWS * V], logits2[ROWS * V];
    ryz_model *m = build_ok(&c, 1, P);
    ryz_gen_timing t;
    ck_assert_int_eq(ryz_model_generate(m, prompt, 1, P, NEW, NULL, ids, logits, &t), RYZ_OK);
    ck_assert_int_eq(t.decode_steps, NEW - 1);
    for (int i = 0; i < P; i++)
        ck_assert_int_eq(ids[i], prompt[i]);
    for (int p = P; p < LEN; p++)
        ck_assert_msg(ids[p] == ryz_argmax(logits + (p - 1) * V, V),
                      "id at %d is %d, argmax of row %d is %d", p, ids[p], p - 1,
                      ryz_argmax(logits + (p - 1) * V, V));
    ck_assert_int_eq(ryz_model_generate(m, prompt, 1, P, NEW, ids, ids2, logits2, NULL), RYZ_OK);
    ck_assert_int_eq(memcmp(ids, ids2, sizeof ids), 0);
    assert_close(logits2, logits, ROWS * V, 0, 0, "teacher-forced vs greedy logits");
    ck_assert_int_eq(ryz_model_generate(m, prompt, 1, P, 17, NULL, ids2, NULL, NULL),
                     RYZ_EINVAL); /* 5 + 17 - 1 > seq_len 16 */
    ryz_model_free(m);
    m = build_ok(&c, 1, 2); /* prefill in chunks of 2, 2, 1 */
    ck_assert_int_eq(ryz_model_generate(m, prompt, 1, P, NEW, NULL, ids2, logits2, NULL), RYZ_OK);
    assert_close(logits2, logits, ROWS * V, 1e-4 * max_abs(logits, ROWS * V), 1e-4,
                 "chunked vs whole prefill");
    ck_assert_int_eq(memcmp(ids, ids2, sizeof ids), 0);
    ryz_model_free(m);
}
END_TEST

/* A step hook that spends HOOK_S seconds and counts its calls in
 * calls[0]; call number calls[1] fails. */
#define HOOK_S 0.05
static ryz_status busy_hook(void *ctx) {
    int *calls = ctx;
    if (++calls[0] == calls[1]) return ryz_error(RYZ_ECOMM, "hook failed at call %d", calls[0]);
    for (double t0 = ryz_time_now(); ryz_time_now() - t0 < HOOK_S;) {
    }
    return RYZ_OK;
}

/* The step hook runs once after every decode step, none after the
 * prefill; its time is not decode's (a step of this model takes
 * microseconds, the hooks 0.25 s), it changes no id, and its error ends
 * the generation and is returned. */
START_TEST(test_generate_step_hook) {
    enum { P = 5, NEW = 6, LEN = P + NEW };
    ryz_model_config c = parse_ok(REF_SRC);
    const int prompt[P] = {3, 1, 4, 1, 5};
    int ids[LEN], ids2[LEN], calls[2] = {0, 0};
    ryz_model *m = build_ok(&c, 1, P);
    ryz_gen_timing t;
    ck_assert_int_eq(ryz_model_generate(m, prompt, 1, P, NEW, NULL, ids, NULL, NULL), RYZ_OK);
    ryz_model_set_step_hook(m, busy_hook, calls);
    ck_assert_int_eq(ryz_model_generate(m, prompt, 1, P, NEW, NULL, ids2, NULL, &t), RYZ_OK);
    ck_assert_int_eq(calls[0], NEW - 1);
    ck_assert_int_eq(t.decode_steps, NEW - 1);
    ck_assert_msg(t.decode_s > 0 && t.decode_s < HOOK_S * (NEW - 1),
                  "decode %.3f s: counts the hooks', or takes them off twice", t.decode_s);
    ck_assert_int_eq(memcmp(ids, ids2, sizeof ids), 0);
    calls[0] = 0, calls[1] = 2;
    ck_assert_int_eq(ryz_model_generate(m, prompt, 1, P, NEW, NULL, ids2, NULL, &t), RYZ_ECOMM);
    assert_error_has("hook failed at call 2");
    ck_assert_int_eq(calls[0], 2);
    ryz_model_set_step_hook(m, NULL, NULL);
    calls[0] = 0;
    ck_assert_int_eq(ryz_model_generate(m, prompt, 1, P, NEW, NULL, ids2, NULL, NULL), RYZ_OK);
    ck_assert_int_eq(calls[0], 0);
    ryz_model_free(m);
}
END_TEST

/* One generate run of the model test below: ids (B, LEN) and logits. */
enum { SH_B = 2, SH_P = 5, SH_NEW = 6, SH_LEN = SH_P + SH_NEW, SH_V = 1003 };
#define SHADOW_SRC "synthetic:tiny,vocab=1003,layers=2,heads=8,kv_heads=2,seed=7"

/* Builds src (vocab SH_V) with weights stored as dtype on b and comm
 * (prefill chunk 2) and generates from prompt into ids and logits (NULL:
 * greedy only, last-only prefill). */
static ryz_model *shadow_case(ryz_backend *b, ryz_comm *comm, const char *src, ryz_dtype dtype,
                              const int *prompt, int *ids, float *logits) {
    ryz_model_config c = parse_ok(src);
    ryz_model_opts o = {.max_batch = SH_B, .max_chunk = 2, .dtype = dtype};
    ryz_model *m = NULL;
    ck_assert_msg(ryz_model_build(&c, comm, b, &o, &m) == RYZ_OK, "%s", ryz_last_error());
    ryz_model_set_last_only_prefill(m, logits == NULL);
    ck_assert_msg(ryz_model_generate(m, prompt, SH_B, SH_P, SH_NEW, NULL, ids, logits, NULL) ==
                      RYZ_OK,
                  "%s (%s) on %s: %s", src, ryz_dtype_name(dtype), b->iface->name,
                  ryz_last_error());
    return m;
}

static const int shadow_prompt[SH_B * SH_P] = {1, 1002, 7, 500, 3, 9, 8, 7, 6, 1000};
/* The last runs of shadow_matches_cpu: ids (B, LEN) and logits on each. */
static int sh_ids_c[SH_B * SH_LEN], sh_ids_s[SH_B * SH_LEN];
static float sh_lc[SH_B * (SH_LEN - 1) * SH_V], sh_ls[SH_B * (SH_LEN - 1) * SH_V];

/* Runs src as dtype over comm on the cpu backend cb and on the shadow
 * backend sb, asserts that the shadow's ids and logits are the cpu's bit
 * for bit, and returns the shadow's model (still built) for more checks. */
static ryz_model *shadow_matches_cpu(ryz_backend *cb, ryz_backend *sb, ryz_comm *comm,
                                     const char *src, ryz_dtype dtype) {
    ryz_model_free(shadow_case(cb, comm, src, dtype, shadow_prompt, sh_ids_c, sh_lc));
    ryz_model *m = shadow_case(sb, comm, src, dtype, shadow_prompt, sh_ids_s, sh_ls);
    ck_assert_msg(!memcmp(sh_ids_c, sh_ids_s, sizeof sh_ids_c) &&
                      !memcmp(sh_lc, sh_ls, sizeof sh_lc),
                  "%s (%s): shadow backend differs from cpu at %d rank(s)", src,
                  ryz_dtype_name(dtype), ryz_comm_size(comm));
    return m;
}

/* The model on device memory the host cannot touch (the shadow backend)
 * gives the cpu backend's logits and greedy ids bit for bit, at one rank
 * (its one-row steps recorded once and replayed, at every position) and
 * with its collectives staged (a mirror comm of 2 ranks, nothing
 * recorded), has the backend page-lock its host buffers (the logits; and
 * the staging buffer when staged) and unlock them when freed, waits for
 * the backend once per forward, downloads only B ids per greedy step,
 * refuses bf16 when the backend has no matmul_bf16 and frees all it
 * allocated. */
START_TEST(test_model_on_shadow_backend) {
    size_t before[RYZ_MEM_NKINDS];
    mem_snapshot(before);
    ryz_backend sb;
    shadow_init(&sb);
    shadow_ctx *sc = shadow_of(&sb);
    for (int k = 1; k <= 2; k++) { /* k 2: staged through the host */
        ryz_comm *comm = k == 1 ? self_comm : mirror_comm(k);
        long pins = sc->pins, records = sc->records, replays = sc->replays;
        ryz_model *m = shadow_matches_cpu(&be, &sb, comm, SHADOW_SRC, RYZ_DTYPE_F32);
        /* the last prompt row (chunks 2, 2, 1) and each decode step: one shape */
        ck_assert_int_eq(sc->records - records, k == 1);
        ck_assert_int_eq(sc->replays - replays, k == 1 ? SH_NEW : 0);
        ck_assert_int_eq(ryz_tp_staged(&sb, comm), k > 1);
        ck_assert_int_eq(sc->pins - pins, k > 1 ? 2 : 1); /* logits, and the stage */
        ck_assert_int_eq(sc->unpins, pins);               /* none of this model's yet */
        long syncs = sc->syncs, downloads = sc->downloads;
        ryz_model_set_last_only_prefill(m, 1);
        ck_assert_int_eq(ryz_model_generate(m, shadow_prompt, SH_B, SH_P, SH_NEW, NULL, sh_ids_s,
                                            NULL, NULL),
                         RYZ_OK);
        ck_assert_int_eq(memcmp(sh_ids_c, sh_ids_s, sizeof sh_ids_c), 0);
        ck_assert_int_eq(sc->syncs - syncs, 3 + SH_NEW - 1); /* prefill 2 + 2 + 1, then decode */
        if (k == 1) /* ids after the prompt, then after each decode step: nothing else */
            ck_assert_int_eq(sc->downloads - downloads, SH_NEW);
        ck_assert_int_eq(sc->records - records, k == 1); /* the same shape: kept */
        ryz_model_free(m);
        ck_assert_int_eq(sc->bad_calls, 0); /* no host traffic while recording */
        ck_assert_int_eq(sc->unpins, sc->pins);
        if (k > 1) ryz_comm_free(comm);
    }
    ryz_model_config c = parse_ok(SHADOW_SRC);
    ryz_model_opts o = {.max_batch = 1, .max_chunk = 2, .dtype = RYZ_DTYPE_BF16};
    ryz_model *m = (ryz_model *)1;
    ryz_backend_iface no_bf16 = *sb.iface;
    no_bf16.matmul_bf16 = NULL;
    ryz_backend nb = {.iface = &no_bf16, .ctx = sb.ctx};
    ck_assert_int_eq(ryz_model_build(&c, self_comm, &nb, &o, &m), RYZ_EINVAL);
    assert_error_has("dtype bf16 not supported by the shadow backend (f32 only)");
    ck_assert_ptr_null(m);
    ryz_backend_free(&sb);
    assert_mem_equals(before, "after the shadow backend's models");
}
END_TEST

/* A record_end that records, then fails as a CUDA capture can. */
static ryz_status failing_record_end(void *ctx, void **graph) {
    ryz_status st = shadow_iface.record_end(ctx, graph);
    shadow_iface.graph_free(ctx, *graph);
    *graph = NULL;
    return st == RYZ_OK ? ryz_error(RYZ_EIO, "test: the capture failed") : st;
}

/* Recorded steps on the shadow backend: a logits step (no argmax) is a
 * shape of its own, kept beside the greedy one; RYZ_CUDA_GRAPHS=0 turns
 * recording off; a recording that fails turns it off for the model, which
 * runs its ops one by one and still gives the cpu's ids and logits. */
START_TEST(test_model_recorded_steps) {
    ryz_backend sb;
    shadow_init(&sb);
    shadow_ctx *sc = shadow_of(&sb);
    ryz_model *m = shadow_matches_cpu(&be, &sb, self_comm, SHADOW_SRC, RYZ_DTYPE_F32);
    long records = sc->records;
    const float *lg = NULL;
    int step[SH_B] = {5, 6};
    ck_assert_int_eq(ryz_model_forward(m, step, SH_B, 1, SH_LEN, &lg), RYZ_OK);
    ck_assert_int_eq(sc->records - records, 1); /* logits, no argmax: a new shape */
    ck_assert_int_eq(ryz_model_generate(m, shadow_prompt, SH_B, SH_P, SH_NEW, NULL, sh_ids_s,
                                        sh_ls, NULL),
                     RYZ_OK);
    ck_assert_int_eq(sc->records - records, 1); /* the greedy shape was kept */
    ck_assert_int_eq(memcmp(sh_ids_c, sh_ids_s, sizeof sh_ids_c), 0);
    ck_assert_int_eq(memcmp(sh_lc, sh_ls, sizeof sh_lc), 0);
    ck_assert_int_eq(ryz_model_recording(m), 1);
    ryz_model_free(m);

    setenv("RYZ_CUDA_GRAPHS", "0", 1);
    records = sc->records;
    m = shadow_matches_cpu(&be, &sb, self_comm, SHADOW_SRC, RYZ_DTYPE_F32);
    ck_assert_int_eq(sc->records, records);
    ck_assert_int_eq(ryz_model_recording(m), 0);
    ryz_model_free(m);
    unsetenv("RYZ_CUDA_GRAPHS");

    ryz_backend_iface failing = *sb.iface;
    failing.record_end = failing_record_end;
    ryz_backend fb = {.iface = &failing, .ctx = sb.ctx};
    long replays = sc->replays;
    m = shadow_matches_cpu(&be, &fb, self_comm, SHADOW_SRC, RYZ_DTYPE_F32);
    ck_assert_int_eq(ryz_model_recording(m), 0); /* turned off by the failure */
    ryz_model_free(m);
    ck_assert_int_eq(sc->records - records, 1); /* tried once, then not again */
    ck_assert_int_eq(sc->replays, replays);
    ck_assert_int_eq(sc->bad_calls, 0);
    ryz_backend_free(&sb);
}
END_TEST

/* bf16 weights on a backend the host cannot touch are packed on the host
 * FILL_ROWS rows at a time, in the backend's layout, and uploaded: the
 * model then gives the cpu backend's bf16 logits and ids bit for bit, at
 * one rank and staged over two, with the shadow storing bf16 row-major
 * (as cpu does) and tiled (as cuda does). Shapes: in % 16 == 0, where the
 * tiled layout has row groups and a row-major tail (vocab 1003: 3 tail
 * rows at one rank, 2 at two; uploads of 64 rows then 43), and in % 16 !=
 * 0 everywhere (dim 36, hidden 90: every matrix row-major in both
 * layouts, and the w1/w3 chunks end in a tail, 45 rows a rank at two). */
START_TEST(test_bf16_model_on_shadow_backend) {
    static const char *const srcs[] = {
        SHADOW_SRC,
        "synthetic:tiny,dim=36,heads=6,kv_heads=3,hidden=90,vocab=1003,layers=2,seed=3"};
    size_t before[RYZ_MEM_NKINDS];
    mem_snapshot(before);
    ryz_backend cb; /* cb's own bf16 scratch is given back with it */
    ck_assert_int_eq(ryz_backend_init_cpu(1, &cb), RYZ_OK);
    for (int tiled = 0; tiled <= 1; tiled++) {
        ryz_backend sb;
        if (tiled) shadow_init_tiled(&sb);
        else shadow_init(&sb);
        for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++)
            for (int k = 1; k <= 2; k++) {
                ryz_comm *comm = k == 1 ? self_comm : mirror_comm(k);
                long uploads = shadow_of(&sb)->uploads;
                ryz_model_free(shadow_matches_cpu(&cb, &sb, comm, srcs[i], RYZ_DTYPE_BF16));
                ck_assert_int_gt(shadow_of(&sb)->uploads, uploads);
                if (k > 1) ryz_comm_free(comm);
            }
        ryz_backend_free(&sb);
    }
    ryz_backend_free(&cb);
    assert_mem_equals(before, "after the shadow backend's bf16 models");
}
END_TEST

/* ================================================================== main */

/* ============================================================ weight sources */

/* A source that forwards to synthetic weights, counts the floats it is asked
 * for, and fails on tensor `fail_at` (or never when it is UINT32_MAX). */
typedef struct {
    ryz_weights *inner;
    size_t floats;
    uint32_t fail_at;
} counting_source;

/* Fill of the counting source: EIO on fail_at, else the synthetic values. */
static ryz_status counting_fill(void *ctx, uint32_t t, int64_t row0, int nrows, int64_t col0,
                                int ncols, int ld, float *out) {
    counting_source *c = ctx;
    if (t == c->fail_at) return ryz_error(RYZ_EIO, "model.bin: tensor %u unreadable", t);
    c->floats += (size_t)nrows * ncols;
    return ryz_weights_fill(c->inner, t, row0, nrows, col0, ncols, ld, out);
}

/* Close of the counting source: the inner source is closed by the test. */
static void counting_close(void *ctx) {
    (void)ctx;
}

/* A comm claiming to be `rank` of `size` (the build performs no collective). */
static ryz_comm *rank_comm(int rank, int size) {
    static const ryz_comm_iface iface = {.name = "rank", .free = mirror_free};
    ryz_comm *c = NULL;
    ck_assert_int_eq(ryz_comm_create(&iface, NULL, rank, size, &c), RYZ_OK);
    return c;
}

START_TEST(test_weight_source_shard_only) {
    static const ryz_weights_iface iface = {"counting", counting_fill, counting_close};
    ryz_model_config cfg;
    ck_assert_int_eq(ryz_model_source_parse("synthetic:tiny,heads=8,kv_heads=2,vocab=1001", &cfg),
                     RYZ_OK);
    counting_source cs = {.fail_at = UINT32_MAX};
    ck_assert_int_eq(ryz_weights_synthetic(&cfg, &cs.inner), RYZ_OK);
    ryz_weights *w = NULL;
    ck_assert_int_eq(ryz_weights_create(&iface, &cs, &w), RYZ_OK);
    ck_assert_str_eq(ryz_weights_name(w), "counting");
    ryz_comm *c = rank_comm(2, 4);
    ryz_backend be;
    ryz_backend_init_cpu(1, &be);
    ryz_model_opts o = {.max_batch = 1, .max_chunk = 4};
    ryz_model *m = NULL;
    size_t before = ryz_mem_bytes(RYZ_MEM_WEIGHTS);
    ck_assert_int_eq(ryz_model_build_from(&cfg, w, c, &be, &o, &m), RYZ_OK);
    size_t got = ryz_mem_bytes(RYZ_MEM_WEIGHTS) - before;
    ck_assert_msg(cs.floats * sizeof(float) == got,
                  "source asked for %zu floats, rank holds %zu weight bytes", cs.floats, got);
    ck_assert_msg(got * 4 < ryz_model_weight_bytes(&cfg) * 3 / 2,
                  "rank 2 of 4 holds %zu of %zu bytes", got, ryz_model_weight_bytes(&cfg));
    ryz_model_free(m);
    /* A failing source: the build returns its error and frees everything. */
    cs.fail_at = RYZ_T_LAYER(1, RYZ_T_W2);
    size_t kinds[RYZ_MEM_NKINDS];
    for (int k = 0; k < RYZ_MEM_NKINDS; k++) kinds[k] = ryz_mem_bytes((ryz_mem_kind)k);
    ck_assert_int_eq(ryz_model_build_from(&cfg, w, c, &be, &o, &m), RYZ_EIO);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(ryz_last_error(), "model.bin: tensor"), "%s", ryz_last_error());
    for (int k = 0; k < RYZ_MEM_NKINDS; k++)
        ck_assert_uint_eq(ryz_mem_bytes((ryz_mem_kind)k), kinds[k]);
    ryz_weights_close(w);
    ryz_weights_close(cs.inner);
    ryz_comm_free(c);
    ryz_backend_free(&be);
}
END_TEST

static Suite *model_suite(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_validate_accepts);
    tcase_add_test(tc, test_weight_source_shard_only);
    tcase_add_test(tc, test_validate_each_rule);
    tcase_add_test(tc, test_validate_dimension_ranges);
    tcase_add_test(tc, test_validate_several_at_once);
    tcase_add_test(tc, test_parse_presets);
    tcase_add_test(tc, test_parse_overrides);
    tcase_add_test(tc, test_parse_errors);
    tcase_add_test(tc, test_shard_plan_invariants);
    tcase_add_test(tc, test_shard_plan_examples);
    tcase_add_test(tc, test_weight_bytes_15m);
    suite_add_tcase(s, tc);
    tc = tcase_create("synth");
    tcase_add_test(tc, test_synth_deterministic);
    tcase_add_test(tc, test_synth_fill_shards_match_dense);
    tcase_add_test(tc, test_synth_fill_padding_rows);
    suite_add_tcase(s, tc);
    tc = tcase_create("backend");
    tcase_set_timeout(tc, 60); /* the stall tests sleep seconds in all */
    tcase_add_checked_fixture(tc, backend_setup, backend_teardown);
    tcase_add_test(tc, test_backend_init);
    tcase_add_test(tc, test_backend_matmul);
    tcase_add_test(tc, test_backend_matmul_threads);
    tcase_add_test(tc, test_backend_matmul_bf16);
    tcase_add_test(tc, test_backend_matmul_bf16_prefetch);
    tcase_add_test(tc, test_backend_matmul_late_worker);
    tcase_add_test(tc, test_backend_matmul_caller_away);
    tcase_add_test(tc, test_blas_core_for);
    tcase_add_test(tc, test_backend_read_probe);
    tcase_add_test(tc, test_probe_slices);
    tcase_add_test(tc, test_backend_matmul_pair);
    tcase_add_test(tc, test_backend_matmul_multi);
    tcase_add_test(tc, test_bf16_layouts);
    tcase_add_test(tc, test_bf16_round);
    tcase_add_test(tc, test_backend_rmsnorm);
    tcase_add_test(tc, test_backend_rope);
    tcase_add_test(tc, test_backend_silu_mul_add);
    tcase_add_test(tc, test_backend_attention_single_position);
    tcase_add_test(tc, test_backend_attention_causal);
    tcase_add_test(tc, test_backend_attention_decode);
    tcase_add_test(tc, test_backend_attention_decode_chunks);
    tcase_add_test(tc, test_argmax);
    tcase_add_test(tc, test_backend_silu_range);
    tcase_add_test(tc, test_argmax_long);
    tcase_add_test(tc, test_tp_embedding);
    tcase_add_test(tc, test_tp_column_and_row);
    tcase_add_test(tc, test_tp_lm_head_padding);
    tcase_add_test(tc, test_tp_staged_rule);
    tcase_add_test(tc, test_tp_layers_staged);
    tcase_add_test(tc, test_backend_upload_download_copy);
    tcase_add_test(tc, test_backend_embedding_argmax_mask);
    tcase_add_test(tc, test_backend_sync_mem_kinds);
    suite_add_tcase(s, tc);
    tc = tcase_create("forward");
    tcase_add_checked_fixture(tc, model_setup, model_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_forward_matches_reference);
    tcase_add_test(tc, test_forward_finite_logits);
    tcase_add_test(tc, test_forward_last_rows);
    tcase_add_test(tc, test_forward_rejects_bad_input);
    tcase_add_test(tc, test_build_free_accounting);
    tcase_add_test(tc, test_build_rejects);
    tcase_add_test(tc, test_device_memory_check);
    tcase_add_test(tc, test_generate_consistency);
    tcase_add_test(tc, test_generate_step_hook);
    tcase_add_test(tc, test_model_on_shadow_backend);
    tcase_add_test(tc, test_model_recorded_steps);
    tcase_add_test(tc, test_bf16_model_on_shadow_backend);
    tcase_add_test(tc, test_bf16_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return test_run_suite(model_suite());
}
