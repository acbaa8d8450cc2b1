/* Regression comparison between two results files. A slowdown is reported
 * only when it is both large (ratio of medians above the threshold) and
 * significant (one-sided Mann-Whitney U on the raw samples); correctness,
 * the acceptance checks and memory are deterministic and compared
 * directly. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/backend.h"
#include "ryz/model.h"
#include "ryz/regress.h"

/* ------------------------------------------------------------ statistics */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* U = #(x < y) + 0.5 #(x == y), and whether any value is tied. */
static double mw_u(const double *x, int n, const double *y, int m, int *ties) {
    double u = 0;
    *ties = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) {
            if (x[i] < y[j]) u += 1;
            else if (x[i] == y[j]) u += 0.5, *ties = 1;
        }
    return u;
}

/* Exact P(U >= u) without ties: f(i, j, v) = f(i, j-1, v-i) + f(i-1, j, v)
 * counts orderings of i x's and j y's with v pairs x < y. */
static double mw_exact(int n, int m, double u) {
    int umax = n * m;
    double *f = calloc((size_t)(n + 1) * (m + 1) * (umax + 1), sizeof *f);
    if (!f) return 1;
#define F(i, j, v) f[((size_t)(i) * (m + 1) + (j)) * (umax + 1) + (v)]
    for (int i = 0; i <= n; i++)
        for (int j = 0; j <= m; j++)
            for (int v = 0; v <= umax; v++) {
                if (i == 0 || j == 0) F(i, j, v) = v == 0;
                else F(i, j, v) = (v >= i ? F(i, j - 1, v - i) : 0) + F(i - 1, j, v);
            }
    double total = 0, tail = 0;
    for (int v = 0; v <= umax; v++) {
        total += F(n, m, v);
        if (v >= u - 1e-9) tail += F(n, m, v);
    }
#undef F
    free(f);
    return tail / total;
}

/* Normal approximation with tie correction and continuity correction. */
static double mw_normal(const double *x, int n, const double *y, int m, double u) {
    int N = n + m;
    double *all = malloc((size_t)N * sizeof *all), tie_sum = 0;
    if (!all) return 1;
    memcpy(all, x, (size_t)n * sizeof *all);
    memcpy(all + n, y, (size_t)m * sizeof *all);
    qsort(all, (size_t)N, sizeof *all, cmp_double);
    for (int i = 0, j; i < N; i = j) {
        for (j = i; j < N && all[j] == all[i]; j++) {}
        double t = j - i;
        tie_sum += t * t * t - t;
    }
    free(all);
    double mu = 0.5 * n * m;
    double var = n * m / 12.0 * ((N + 1) - tie_sum / ((double)N * (N - 1)));
    if (var <= 0) return u > mu ? 0 : 1;
    double z = (u - mu - 0.5) / sqrt(var);
    return 0.5 * erfc(z / sqrt(2.0));
}

double ryz_mann_whitney_greater(const double *x, int n, const double *y, int m) {
    if (n < 1 || m < 1) return 1;
    int ties;
    double u = mw_u(x, n, y, m, &ties);
    if (!ties && n <= 20 && m <= 20) return mw_exact(n, m, u);
    return mw_normal(x, n, y, m, u);
}

static double median_of(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n == 0 ? 0 : n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* ------------------------------------------------------------ comparison */

/* How line_value reads a value: words, token ids, or text. */
enum { VAL_WORDS, VAL_IDS, VAL_TEXT };

/* A text value (prompt_text) from v to end into out[cap] as suitefile.c
 * reads it: inline comment cut, ends trimmed, one pair of surrounding
 * quotes dropped, every blank inside kept (the tokenizer encodes
 * "a  b" otherwise than "a b"). */
static void text_value(const char *v, const char *end, char *out, size_t cap) {
    int quoted = 0;
    for (const char *c = v; c < end; c++)
        if (*c == '"')
            quoted = !quoted;
        else if (!quoted && (*c == ';' || *c == '#') && (c == v || c[-1] == ' ' || c[-1] == '\t'))
            end = c;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (end - v >= 2 && *v == '"' && end[-1] == '"')
        v++, end--;
    size_t n = (size_t)(end - v) < cap ? (size_t)(end - v) : cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

/* Whether `line` (to its end of line) is "KEY = VALUE"; then VALUE into
 * out[cap] with an inline comment (";" or "#" after a blank) and quotes
 * dropped and runs of blanks made one space, so "1  2 3" reads "1 2 3";
 * as VAL_IDS, commas count as blanks ("1,2" is "1 2"); as VAL_TEXT, see
 * text_value. */
static int line_value(const char *line, const char *key, int kind, char *out, size_t cap) {
    size_t klen = strlen(key);
    const char *end = line + strcspn(line, "\r\n");
    line += strspn(line, " \t");
    if ((size_t)(end - line) <= klen || strncmp(line, key, klen))
        return 0;
    const char *v = line + klen;
    v += strspn(v, " \t");
    if (v >= end || *v != '=')
        return 0;
    if (kind == VAL_TEXT)
        return text_value(v + 1, end, out, cap), 1;
    int ids = kind == VAL_IDS;
    size_t n = 0;
    int blank = 1, quoted = 0;
    for (v++; v < end && n + 1 < cap; v++) {
        int is_blank = *v == ' ' || *v == '\t' || (ids && *v == ',');
        if (*v == '"') {
            quoted = !quoted; /* a quote is not text: "1, 2" reads as 1, 2 */
            continue;
        }
        if (!quoted && blank && (*v == ';' || *v == '#'))
            break;
        if (!is_blank || !blank)
            out[n++] = is_blank ? ' ' : *v;
        blank = is_blank;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    return 1;
}

/* Whether `line` is the header "[case NAME]" (blanks allowed inside the
 * brackets, as the suite parser allows them). */
static int is_case_header(const char *line, const char *name) {
    line += strspn(line, " \t");
    if (*line++ != '[')
        return 0;
    line += strspn(line, " \t");
    if (strncmp(line, "case", 4) || (line[4] != ' ' && line[4] != '\t'))
        return 0;
    line += 4 + strspn(line + 4, " \t");
    size_t n = strlen(name);
    return !strncmp(line, name, n) && line[n + strspn(line + n, " \t")] == ']';
}

void ryz_results_case_value(const char *text, const char *name, const char *key, char *out,
                            size_t cap) {
    int in_case = 0, kind = !strcmp(key, "prompt")        ? VAL_IDS
                            : !strcmp(key, "prompt_text") ? VAL_TEXT
                                                          : VAL_WORDS;
    out[0] = '\0';
    for (const char *line = text; line && *line;) {
        if (line[strspn(line, " \t")] == '[') {
            if (in_case)
                return; /* the next section */
            in_case = is_case_header(line, name);
        } else if (in_case && line_value(line, key, kind, out, cap)) {
            return;
        }
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
}

/* The case keys two runs must agree on to be compared, and the value a
 * suite file leaves each at when it does not say (suitefile.c); `work`,
 * `ryz bench`'s sizes, is compared only where both files have it. */
static const struct {
    const char *key, *dflt;
} SAME_WORK[] = {{"model", ""},    {"prompt", ""},      {"batch", "1"},     {"new_tokens", "16"},
                 {"dtype", "f32"}, {"tf32", "0"},       {"backend", "cpu"}, {"comm", "mpi"},
                 {"work", NULL},   {"prompt_text", ""}, {"tokenizer", ""}};

/* The next blank-separated word of *s (advanced past it), its length in
 * *len; NULL at the end. */
static const char *next_word(const char **s, size_t *len) {
    *s += strspn(*s, " \t\n");
    if (!**s)
        return NULL;
    const char *w = *s;
    *len = strcspn(w, " \t\n");
    *s += *len;
    return w;
}

/* Whether the words of a and b agree, the output options (-o, -J,
 * --json and their values) left out: two `ryz comm` runs of one sweep. */
static int same_words(const char *a, const char *b) {
    const char *w[2], *s[2] = {a ? a : "", b ? b : ""};
    size_t n[2];
    for (;;) {
        for (int i = 0; i < 2; i++)
            while ((w[i] = next_word(&s[i], &n[i])) &&
                   ((n[i] == 2 && (!strncmp(w[i], "-o", 2) || !strncmp(w[i], "-J", 2))) ||
                    (n[i] == 6 && !strncmp(w[i], "--json", 6))))
                next_word(&s[i], &n[i]); /* the option's value */
        if (!w[0] || !w[1])
            return !w[0] && !w[1];
        if (n[0] != n[1] || strncmp(w[0], w[1], n[0]))
            return 0;
    }
}

/* EINVAL unless two `ryz comm` files ran the same command line, their
 * output files aside: a --gap, --evict or size changes every time. */
static ryz_status same_command(const char *b, const char *c) {
    if (same_words(b, c))
        return RYZ_OK;
    return ryz_error(RYZ_EINVAL, "different ryz comm command lines: base '%.200s', new '%.200s' "
                     "(the runs did not do the same work)", b ? b : "", c ? c : "");
}

/* Brings the value v of `key` (a copy in buf[cap]) to one spelling: a
 * dtype's name ("float32" is "f32"), a number's digits ("01" is "1"), a
 * synthetic model's shapes ("synthetic:tiny,layers=2" is "synthetic:tiny",
 * whose preset has 2); anything else, or a value that does not parse, as
 * it is. */
static const char *canonical(const char *key, const char *v, char *buf, size_t cap) {
    ryz_dtype d;
    ryz_model_config m;
    char *end;
    long x = strtol(v, &end, 10);
    int dtype = !strcmp(key, "dtype") && ryz_dtype_parse(v, &d) == RYZ_OK;
    int synth = !strcmp(key, "model") && !strncmp(v, "synthetic:", 10) &&
                ryz_model_source_parse(v, &m) == RYZ_OK;
    ryz_error_clear(); /* a value that does not parse is not this comparison's error */
    if (dtype)
        snprintf(buf, cap, "%s", ryz_dtype_name(d));
    else if (synth) /* "synthetic:tiny" is "synthetic:tiny,layers=2": the same shapes */
        snprintf(buf, cap, "synthetic dim=%d hidden=%d layers=%d heads=%d kv_heads=%d vocab=%d "
                 "seq_len=%d seed=%llu", m.dim, m.hidden, m.n_layers, m.n_heads, m.n_kv_heads,
                 m.vocab, m.seq_len, (unsigned long long)m.seed);
    else if (*v && !*end && strcmp(key, "prompt") && strcmp(key, "prompt_text") &&
             strcmp(key, "model") && strcmp(key, "tokenizer"))
        snprintf(buf, cap, "%ld", x);
    else
        return v;
    return buf;
}

/* "a `ryz comm` file" for kind RYZ_KIND_COMM, and so on. */
static const char *kind_words(const char *kind) {
    if (!strcmp(kind, RYZ_KIND_COMM))
        return "a `ryz comm` file";
    if (!strcmp(kind, RYZ_KIND_BENCH))
        return "a `ryz bench` file";
    return "a `ryz suite` file";
}

/* EINVAL when base and cand are not runs of the same kind (the root
 * attribute kind, or for files before it the name ryz_results_kind reads
 * it from) and suite doing the same work in every case: model, prompt
 * (ids, or text and tokenizer), batch, new tokens, dtype, TF32, backend
 * and comm (`ryz bench` files: its one case, and its sizes); for `ryz
 * comm` files, the same ranks and command line (word for word, else as
 * o->same_comm_work judges it). */
static ryz_status check_comparable(const ryz_results *b, const ryz_results *c,
                                   const ryz_regress_opts *o) {
    const char *bn = b->meta.suite_name ? b->meta.suite_name : "";
    const char *cn = c->meta.suite_name ? c->meta.suite_name : "";
    const char *kind = ryz_results_kind(&b->meta), *ckind = ryz_results_kind(&c->meta);
    if (strcmp(kind, ckind))
        return ryz_error(RYZ_EINVAL, "different kinds of results: base is %s, new is %s (compare "
                         "two files of one command)", kind_words(kind), kind_words(ckind));
    if (strcmp(bn, cn))
        return ryz_error(RYZ_EINVAL, "different suites: base '%s', new '%s'", bn, cn);
    int comm = !strcmp(kind, RYZ_KIND_COMM);
    if (comm && b->meta.world_size != c->meta.world_size)
        return ryz_error(RYZ_EINVAL, "different ryz comm ranks: base %d, new %d (the runs did not "
                         "do the same work)", b->meta.world_size, c->meta.world_size);
    /* Word for word is the same work whatever the parser says (a line of
     * an older ryz may hold an option this one does not know). */
    if (comm && o->same_comm_work && !same_words(b->meta.suite_text, c->meta.suite_text))
        return o->same_comm_work(b->meta.suite_text, c->meta.suite_text);
    if (comm)
        return same_command(b->meta.suite_text, c->meta.suite_text);
    size_t cap = (b->meta.suite_text ? strlen(b->meta.suite_text) : 0) +
                 (c->meta.suite_text ? strlen(c->meta.suite_text) : 0) + 32;
    char *bv = malloc(cap), *cv = malloc(cap); /* a value is at most its text */
    ryz_status st = bv && cv ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory comparing suites");
    int bench = !strcmp(kind, RYZ_KIND_BENCH); /* one [case bench], no correctness rows */
    for (size_t i = 0; st == RYZ_OK && i < (bench ? 1 : b->n_correctness); i++)
        for (size_t k = 0; st == RYZ_OK && k < sizeof SAME_WORK / sizeof SAME_WORK[0]; k++) {
            const char *name = bench ? "bench" : b->correctness[i].case_name;
            const char *key = SAME_WORK[k].key, *dflt = SAME_WORK[k].dflt;
            ryz_results_case_value(b->meta.suite_text, name, key, bv, cap);
            ryz_results_case_value(c->meta.suite_text, name, key, cv, cap);
            if (!dflt && (!*bv || !*cv))
                continue; /* a key older files lack */
            char xb[192], yb[192]; /* a synthetic model's shapes (canonical) */
            const char *x = canonical(key, *bv ? bv : dflt, xb, sizeof xb);
            const char *y = canonical(key, *cv ? cv : dflt, yb, sizeof yb);
            int as_given = !strcmp(key, "model"); /* not its shapes, which say less */
            if (strcmp(x, y))
                st = ryz_error(RYZ_EINVAL, "case %s: different %s: base '%.200s', new '%.200s' "
                               "(the runs did not do the same work)", name, key,
                               as_given ? (*bv ? bv : dflt) : x, as_given ? (*cv ? cv : dflt) : y);
        }
    free(bv), free(cv);
    return st;
}

/* The case name of row i of a table of r, in the order correctness,
 * timing, samples, memory, collectives (*i past them all: NULL). */
static const char *case_at(const ryz_results *r, size_t i) {
    if (i < r->n_correctness) return r->correctness[i].case_name;
    i -= r->n_correctness;
    if (i < r->n_timing) return r->timing[i].case_name;
    i -= r->n_timing;
    if (i < r->n_samples) return r->samples[i].case_name;
    i -= r->n_samples;
    if (i < r->n_memory) return r->memory[i].case_name;
    i -= r->n_memory;
    return i < r->n_collectives ? r->collectives[i].case_name : NULL;
}

/* Whether any row of r is of case `name`. */
static int has_case(const ryz_results *r, const char *name) {
    const char *n;
    for (size_t i = 0; (n = case_at(r, i)) != NULL; i++)
        if (!strcmp(n, name)) return 1;
    return 0;
}

/* r's distinct case names, quoted and comma-separated, into buf[cap]
 * (cut with "..." when longer); "none" when r has no rows. */
static void case_list(const ryz_results *r, char *buf, size_t cap) {
    size_t len = 0;
    const char *n;
    snprintf(buf, cap, "none");
    for (size_t i = 0; (n = case_at(r, i)) != NULL && len < cap; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = !strcmp(case_at(r, j), n);
        if (seen) continue;
        int w = snprintf(buf + len, cap - len, "%s'%s'", len ? ", " : "", n);
        len += w > 0 ? (size_t)w : 0;
    }
    if (len >= cap && cap > 4) snprintf(buf + cap - 4, 4, "...");
}

/* EINVAL when base has rows and none of its cases is in cand: every row
 * would compare against nothing and pass (`ryz bench --threads 1` against
 * `--threads 2`: f32-t1 against f32-t2). Names each file's cases, as a
 * suite file missing a case is refused. */
static ryz_status check_common_case(const ryz_results *b, const ryz_results *c) {
    const char *n;
    for (size_t i = 0; (n = case_at(b, i)) != NULL; i++)
        if (has_case(c, n)) return RYZ_OK;
    if (!case_at(b, 0)) return RYZ_OK; /* no rows at all: ryz_regress_compare says so */
    char bl[512], cl[512];
    case_list(b, bl, sizeof bl);
    case_list(c, cl, sizeof cl);
    return ryz_error(RYZ_EINVAL, "no case in common: base has %s, new has %s (the runs did not "
                     "do the same work; nothing to compare)", bl, cl);
}

static ryz_regress_row *add_row(ryz_regress *r, const char *name, int tp, const char *metric) {
    ryz_regress_row *rows = realloc(r->rows, (r->n + 1) * sizeof *rows);
    if (!rows) return NULL;
    r->rows = rows;
    ryz_regress_row *row = &rows[r->n++];
    memset(row, 0, sizeof *row);
    snprintf(row->case_name, sizeof row->case_name, "%s", name);
    snprintf(row->metric, sizeof row->metric, "%s", metric);
    row->tp = tp;
    return row;
}

/* First sample row of its (case, tp, metric) in r? */
static int first_of_kind(const ryz_results *r, size_t i) {
    for (size_t j = 0; j < i; j++)
        if (r->samples[j].tp == r->samples[i].tp &&
            !strcmp(r->samples[j].case_name, r->samples[i].case_name) &&
            !strcmp(r->samples[j].metric, r->samples[i].metric))
            return 0;
    return 1;
}

/* Whether a /samples metric is a figure of the machine's rather than a
 * time of ours: the probes' bandwidths (*_gbs), the sgemm rate prefill is
 * held to (sgemm_gflops), lockstep_efficiency and what the host's
 * neighbours took (host_*). A build is not slower because
 * the machine read memory faster or slower, kept its ranks in step
 * better, or was busier. Such a row is shown, never a regression: it
 * says whether the machine moved under the times beside it. */
static int metric_is_machines(const char *metric) {
    return strstr(metric, "_gbs") != NULL || !strcmp(metric, "lockstep_efficiency") ||
           !strcmp(metric, "sgemm_gflops") || !strncmp(metric, "host_", 5);
}

/* The smallest p ryz_mann_whitney_greater can give for n and m samples
 * without ties: every y above every x, 1 / C(n + m, n). */
static double mw_min_p(int n, int m) {
    double ways = 1;
    for (int i = 1; i <= n && ways < 1e300; i++)
        ways = ways * (m + i) / i;
    return 1 / ways;
}

/* row->why for a slowdown over the threshold that is not significant:
 * why, so that "ok" beside a 1.5x ratio is not read as "no change". */
static void not_significant(ryz_regress_row *row, double alpha) {
    int len = snprintf(row->why, sizeof row->why, "%.2fx slower, not significant: p %.2g >= %.2g",
                       row->ratio, row->p_value, alpha);
    if (len > 0 && (size_t)len < sizeof row->why && mw_min_p(row->n_base, row->n_cand) >= alpha)
        snprintf(row->why + len, sizeof row->why - (size_t)len,
                 " (%d and %d samples cannot go below %.2g: repeat more)", row->n_base,
                 row->n_cand, mw_min_p(row->n_base, row->n_cand));
}

/* Fills row from the two files' samples xb (nb) and xc (nc). */
static void fill_row(ryz_regress_row *row, double *xb, int nb, double *xc, int nc,
                     const ryz_regress_opts *o) {
    row->n_base = nb, row->n_cand = nc;
    row->p_value = ryz_mann_whitney_greater(xb, nb, xc, nc);
    row->base = median_of(xb, nb), row->cand = median_of(xc, nc);
    row->ratio = row->base > 0 ? row->cand / row->base : 0;
    if (metric_is_machines(row->metric)) {
        snprintf(row->why, sizeof row->why, "the machine's figure, not gated");
        return;
    }
    row->regression = nc > 0 && row->ratio > o->max_slowdown && row->p_value < o->alpha;
    if (row->regression)
        snprintf(row->why, sizeof row->why, "%.2fx slower (> %.2f), p %.2g (< %.2g)", row->ratio,
                 o->max_slowdown, row->p_value, o->alpha);
    else if (nc == 0)
        snprintf(row->why, sizeof row->why, "no samples in new file");
    else if (row->ratio > o->max_slowdown)
        not_significant(row, o->alpha);
}

static ryz_status compare_timing(const ryz_results *b, const ryz_results *c,
                                 const ryz_regress_opts *o, ryz_regress *r) {
    for (size_t i = 0; i < b->n_samples; i++) {
        if (!first_of_kind(b, i)) continue;
        const ryz_row_sample *key = &b->samples[i];
        int nb, nc;
        double *xb = ryz_results_sample_values(b, key->case_name, key->tp, key->metric, &nb);
        double *xc = ryz_results_sample_values(c, key->case_name, key->tp, key->metric, &nc);
        ryz_regress_row *row = xb && xc ? add_row(r, key->case_name, key->tp, key->metric) : NULL;
        if (row) fill_row(row, xb, nb, xc, nc, o);
        free(xb);
        free(xc);
        if (!row) return ryz_error(RYZ_ENOMEM, "out of memory comparing samples");
    }
    return RYZ_OK;
}

static ryz_status compare_correctness(const ryz_results *b, const ryz_results *c,
                                      ryz_regress *r) {
    for (size_t i = 0; i < b->n_correctness; i++) {
        const ryz_row_correctness *x = &b->correctness[i], *y = NULL;
        for (size_t j = 0; j < c->n_correctness && !y; j++)
            if (c->correctness[j].tp == x->tp && !strcmp(c->correctness[j].case_name, x->case_name))
                y = &c->correctness[j];
        ryz_regress_row *row = add_row(r, x->case_name, x->tp, "correctness");
        if (!row) return ryz_error(RYZ_ENOMEM, "out of memory comparing correctness");
        row->base = x->max_abs, row->cand = y ? y->max_abs : NAN;
        row->ratio = y ? y->pass : 0;
        row->regression = !y || (x->pass && !y->pass);
        if (!y) snprintf(row->why, sizeof row->why, "missing in new file");
        else if (row->regression)
            snprintf(row->why, sizeof row->why, "PASS -> FAIL (max abs %.3g -> %.3g)", x->max_abs,
                     y->max_abs);
    }
    return RYZ_OK;
}

/* The /acceptance row of r like x (same case, tp and check), or NULL. */
static const ryz_row_acceptance *acceptance_like(const ryz_results *r,
                                                 const ryz_row_acceptance *x) {
    for (size_t j = 0; j < r->n_acceptance; j++) {
        const ryz_row_acceptance *y = &r->acceptance[j];
        if (y->tp == x->tp && !strcmp(y->check, x->check) && !strcmp(y->case_name, x->case_name))
            return y;
    }
    return NULL;
}

/* One row per acceptance check of base (metric "accept:CHECK"): a check
 * that passed in base and failed in cand is a regression, as correctness
 * PASS -> FAIL is. Correctness itself is compare_correctness's row. A
 * check cand did not make (its suite dropped the threshold, or a file
 * before schema 5) is shown, not a regression; so is one skipped
 * (oversubscribed) on either side, which was never judged. */
static ryz_status compare_acceptance(const ryz_results *b, const ryz_results *c,
                                     ryz_regress *r) {
    for (size_t i = 0; i < b->n_acceptance; i++) {
        const ryz_row_acceptance *x = &b->acceptance[i], *y = acceptance_like(c, x);
        char metric[sizeof r->rows->metric];
        if (!strcmp(x->check, "outputs_within_tolerance"))
            continue;
        snprintf(metric, sizeof metric, "accept:%s", x->check);
        ryz_regress_row *row = add_row(r, x->case_name, x->tp, metric);
        if (!row) return ryz_error(RYZ_ENOMEM, "out of memory comparing acceptance checks");
        row->base = x->measured, row->cand = y ? y->measured : NAN;
        row->ratio = !y || y->pass;
        row->regression = y && x->pass && !x->skipped && !y->pass;
        if (!y)
            snprintf(row->why, sizeof row->why, "not checked in new file");
        else if (x->skipped || y->skipped)
            snprintf(row->why, sizeof row->why, "skipped in %s file (oversubscribed)",
                     x->skipped ? "base" : "new");
        else if (x->pass != y->pass || !y->pass) {
            char was[48] = ""; /* a verdict that moved with the threshold says so */
            if (x->threshold != y->threshold)
                snprintf(was, sizeof was, "; base's threshold %.4g", x->threshold);
            snprintf(row->why, sizeof row->why, "%s -> %s (needs %s %.4g%s)",
                     x->pass ? "PASS" : "FAIL", y->pass ? "PASS" : "FAIL", y->op, y->threshold,
                     was);
        }
    }
    return RYZ_OK;
}

/* Largest rank's weights + KV of (case, tp) in r. */
static double mem_of(const ryz_results *r, const char *name, int tp) {
    ryz_memory_summary m;
    ryz_results_memory_of(r, name, tp, &m);
    return m.largest_state;
}

static ryz_status compare_memory(const ryz_results *b, const ryz_results *c,
                                 const ryz_regress_opts *o, ryz_regress *r) {
    for (size_t i = 0; i < b->n_memory; i++) {
        const ryz_row_memory *m = &b->memory[i];
        if (m->rank != 0) continue; /* one row per (case, tp) */
        ryz_regress_row *row = add_row(r, m->case_name, m->tp, "memory_bytes");
        if (!row) return ryz_error(RYZ_ENOMEM, "out of memory comparing memory");
        row->base = mem_of(b, m->case_name, m->tp), row->cand = mem_of(c, m->case_name, m->tp);
        row->ratio = row->base > 0 ? row->cand / row->base : 0;
        row->regression = row->ratio > o->max_mem_growth;
        if (row->regression)
            snprintf(row->why, sizeof row->why, "%.3fx the memory (> %.3f)", row->ratio,
                     o->max_mem_growth);
    }
    return RYZ_OK;
}

/* Copies src (NULL: "") into dst[cap], cut with "..." when longer. */
static void copy_cut(char *dst, size_t cap, const char *src) {
    src = src ? src : "";
    if (strlen(src) < cap)
        snprintf(dst, cap, "%s", src);
    else
        snprintf(dst, cap, "%.*s...", (int)(cap - 4), src);
}

/* Adds attribute `name` to r->diffs when its values b and c differ and
 * either file recorded it (NULL or "": not recorded); text: a string. */
static void note_diff(ryz_regress *r, const char *name, int text, const char *b, const char *c) {
    b = b ? b : "", c = c ? c : "";
    if (!strcmp(b, c) || r->n_diffs == RYZ_REGRESS_MAX_DIFFS)
        return;
    ryz_regress_diff *d = &r->diffs[r->n_diffs++];
    d->text = text;
    copy_cut(d->name, sizeof d->name, name);
    copy_cut(d->base, sizeof d->base, b);
    copy_cut(d->cand, sizeof d->cand, c);
}

/* note_diff for a count, 0 (or less) meaning not recorded. */
static void note_count(ryz_regress *r, const char *name, int b, int c) {
    char sb[16] = "", sc[16] = "";
    if (b > 0)
        snprintf(sb, sizeof sb, "%d", b);
    if (c > 0)
        snprintf(sc, sizeof sc, "%d", c);
    note_diff(r, name, 0, sb, sc);
}

/* Distinct hosts of a comma-separated list, 0 for none recorded. */
static int host_count(const char *hosts) {
    if (!hosts || !*hosts)
        return 0;
    int n = 1;
    for (; *hosts; hosts++)
        n += *hosts == ',';
    return n;
}

/* Fills r->diffs with what the runs' timings depend on besides the build,
 * where it differs: the CPU, the BLAS and its core, the device, how many
 * hosts and cores, threads per rank, and whether ranks were oversubscribed.
 * `ryz bench` keys each row by its own thread count, so its files'
 * threads_per_rank (the largest) is left out. */
static void note_machines(const ryz_results_meta *b, const ryz_results_meta *c, ryz_regress *r) {
    int bench = !strcmp(ryz_results_kind(b), RYZ_KIND_BENCH);
    note_diff(r, "cpu_model", 1, b->cpu_model, c->cpu_model);
    note_diff(r, "blas", 1, b->blas, c->blas);
    note_diff(r, "device", 1, b->device, c->device);
    note_count(r, "hosts", host_count(b->hosts), host_count(c->hosts));
    note_count(r, "cores", b->cores, c->cores);
    if (!bench)
        note_count(r, "threads_per_rank", b->threads_per_rank, c->threads_per_rank);
    note_diff(r, "oversubscribed", 0, b->oversubscribed ? "yes" : "no",
              c->oversubscribed ? "yes" : "no");
}

/* A diff's value as printed: quoted when text, "(not recorded)" when "". */
static void format_value(char *buf, size_t cap, const char *v, int text) {
    if (!*v)
        snprintf(buf, cap, "(not recorded)");
    else
        snprintf(buf, cap, text ? "'%s'" : "%s", v);
}

void ryz_regress_format_diffs(const ryz_regress *r, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->n_diffs && len < cap; i++) {
        const ryz_regress_diff *d = &r->diffs[i];
        char vb[sizeof d->base + 2], vc[sizeof d->cand + 2];
        format_value(vb, sizeof vb, d->base, d->text);
        format_value(vc, sizeof vc, d->cand, d->text);
        int n = snprintf(buf + len, cap - len, "%s%s %s -> %s", i ? "; " : "", d->name, vb, vc);
        len += n > 0 ? (size_t)n : 0;
    }
}

/* Regressions first, then by ratio, largest first. */
static int cmp_rows(const void *a, const void *b) {
    const ryz_regress_row *x = a, *y = b;
    if (x->regression != y->regression) return y->regression - x->regression;
    return (y->ratio > x->ratio) - (y->ratio < x->ratio);
}

ryz_status ryz_regress_compare(const ryz_results *base, const ryz_results *cand,
                               const ryz_regress_opts *opts, ryz_regress *out) {
    memset(out, 0, sizeof *out);
    ryz_status st = check_comparable(base, cand, opts);
    if (st == RYZ_OK) st = check_common_case(base, cand);
    if (st == RYZ_OK) st = compare_timing(base, cand, opts, out);
    if (st == RYZ_OK) st = compare_correctness(base, cand, out);
    if (st == RYZ_OK) st = compare_acceptance(base, cand, out);
    if (st == RYZ_OK) st = compare_memory(base, cand, opts, out);
    if (st != RYZ_OK) {
        ryz_regress_free(out);
        return st;
    }
    if (out->n == 0) return ryz_error(RYZ_EINVAL, "nothing to compare: base has no rows");
    qsort(out->rows, out->n, sizeof *out->rows, cmp_rows);
    note_machines(&base->meta, &cand->meta, out);
    for (size_t i = 0; i < out->n; i++) out->regressions += out->rows[i].regression;
    return RYZ_OK;
}

void ryz_regress_free(ryz_regress *r) {
    free(r->rows);
    memset(r, 0, sizeof *r);
}

void ryz_regress_print(const ryz_regress *r, FILE *out) {
    if (r->n_diffs > 0) {
        char note[RYZ_REGRESS_MAX_DIFFS * 640];
        ryz_regress_format_diffs(r, note, sizeof note);
        fprintf(out, "note: the runs differ in machine or setup, so a time ratio is theirs too: "
                     "%s\n", note);
    }
    fprintf(out, "%-24s %4s %-25s %12s %12s %8s %9s %7s  %s\n", "case", "tp", "metric", "base",
            "new", "ratio", "p", "n", "verdict");
    for (size_t i = 0; i < r->n; i++) {
        const ryz_regress_row *x = &r->rows[i];
        char n[16];
        snprintf(n, sizeof n, "%d/%d", x->n_base, x->n_cand);
        fprintf(out, "%-24s %4d %-25s %12.6g %12.6g %8.3f %9.3g %7s  %s%s%s\n", x->case_name,
                x->tp, x->metric, x->base, x->cand, x->ratio, x->p_value, n,
                x->regression ? "REGRESSION" : "ok", *x->why ? ": " : "", x->why);
    }
    fprintf(out, "%d regression%s in %zu comparisons\n", r->regressions,
            r->regressions == 1 ? "" : "s", r->n);
}

ryz_status ryz_regress_write_json(const ryz_regress *r, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return ryz_error(RYZ_EIO, "cannot write %s", path);
    fprintf(f, "{\"regressions\": %d, \"machine_diff\": {", r->regressions);
    for (int i = 0; i < r->n_diffs; i++) {
        const ryz_regress_diff *d = &r->diffs[i];
        const char *vals[] = {d->base, d->cand};
        fprintf(f, "%s", i ? ", " : "");
        ryz_json_string(f, d->name);
        for (int k = 0; k < 2; k++) {
            fprintf(f, k ? ", \"new\": " : ": {\"base\": ");
            if (*vals[k])
                ryz_json_string(f, vals[k]);
            else
                fputs("null", f); /* not recorded */
        }
        fputc('}', f);
    }
    fprintf(f, "}, \"rows\": [");
    for (size_t i = 0; i < r->n; i++) {
        const ryz_regress_row *x = &r->rows[i];
        const char *keys[] = {"base", "new", "ratio", "p"};
        const double vals[] = {x->base, x->cand, x->ratio, x->p_value};
        fprintf(f, "%s\n  {\"case\": ", i ? "," : "");
        ryz_json_string(f, x->case_name);
        fprintf(f, ", \"tp\": %d, \"metric\": ", x->tp);
        ryz_json_string(f, x->metric);
        for (int k = 0; k < 4; k++) {
            fprintf(f, ", \"%s\": ", keys[k]);
            ryz_json_number(f, vals[k]);
        }
        fprintf(f, ", \"n_base\": %d, \"n_new\": %d, \"regression\": %s, \"why\": ",
                x->n_base, x->n_cand, x->regression ? "true" : "false");
        ryz_json_string(f, x->why);
        fputc('}', f);
    }
    fprintf(f, "\n]}\n");
    if (fclose(f) != 0) return ryz_error(RYZ_EIO, "short write to %s", path);
    return RYZ_OK;
}
