/* suitefile: reading suite files (INI) into ryz_suite, and token id lists.
 *
 * Grammar (one construct per line, whitespace around everything trimmed):
 *   ; comment            # comment
 *   [suite]              [case NAME]
 *   key = value          key = "value"
 *   key = value ; comment (a ";" or "#" after a blank; inside quotes, text)
 * Every problem is EINVAL with "WHERE:LINE: what is wrong (what is right)". */
#define _POSIX_C_SOURCE 200809L

#include "ryz/suite.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUITE_FILE_MAX (1024L * 1024L) /* ryz_suite_load refuses larger files */
#define MSG_MAX 512

enum { SECT_NONE = 0, SECT_SUITE, SECT_CASE, SECT_ACCEPT };

/* Keys of each section, in the order of the switch in set_*_key. */
enum { K_NAME, K_RANKS, K_REPEAT, K_WARMUP, K_THREADS, K_ATOL, K_RTOL, K_BF16_ATOL, K_BF16_RTOL,
       K_TF32_ATOL, K_TF32_RTOL, K_EXTRA_RUNS, K_NSUITE };
enum { K_MODEL, K_TP, K_BATCH, K_PROMPT, K_NEW_TOKENS, K_BACKEND, K_COMM, K_DTYPE, K_TF32,
       K_PROMPT_TEXT, K_TOKENIZER, K_NCASE };

static const char *const SUITE_KEYS[K_NSUITE] = {"name", "ranks", "repeat",    "warmup",
                                                 "threads", "atol", "rtol", "bf16_atol",
                                                 "bf16_rtol", "tf32_atol", "tf32_rtol",
                                                 "extra_runs"};
static const char *const CASE_KEYS[K_NCASE] = {"model",      "tp",          "batch",    "prompt",
                                               "new_tokens", "backend",     "comm",     "dtype",
                                               "tf32",       "prompt_text", "tokenizer"};
enum { K_MIN_SPEEDUP, K_MIN_EFF, K_MAX_AR_P99, K_AR_BYTES, K_MAX_COMM, K_MIN_MEM, K_MAX_ERR,
       K_MAX_COLL_RATIO, K_MIN_BW_SCALING, K_NACCEPT };
static const char *const ACCEPT_KEYS[K_NACCEPT] = {
    "min_speedup",          "min_efficiency",        "max_allreduce_p99_us", "allreduce_bytes",
    "max_comm_fraction",    "min_memory_efficiency", "max_logit_error",      "max_collective_ratio",
    "min_bandwidth_scaling"};
#define ACCEPT_KNOWN                                                                             \
    "min_speedup, min_efficiency, max_allreduce_p99_us, allreduce_bytes, max_comm_fraction, "    \
    "min_memory_efficiency, max_logit_error, max_collective_ratio, min_bandwidth_scaling"
#define SUITE_KNOWN                                                                              \
    "name, ranks, repeat, extra_runs, warmup, threads, atol, rtol, bf16_atol, bf16_rtol, "       \
    "tf32_atol, tf32_rtol"
#define CASE_KNOWN                                                                                 \
    "model, tp, batch, prompt, prompt_text, tokenizer, new_tokens, backend, comm, dtype, tf32"

#define MAX_KEYS 16

typedef struct {
    const char *where;      /* source name for messages */
    int line;               /* current line, 1-based */
    int sect;               /* SECT_* of the current section */
    int sect_line;          /* header line of the current section */
    int suite_line;         /* header line of [suite], 0 if none yet */
    int key_line[MAX_KEYS]; /* line of each key set in this section, 0 if unset */
    int *case_lines;        /* header line of each case */
    int threshold_line[2];  /* line of min_speedup, min_efficiency (0 unset), for
                               check_threshold_tps once every case is known */
    int cap;                /* capacity of s->cases and case_lines */
    int recorded;           /* a results file's text: the rules older ryz lacked are off */
    ryz_suite *s;
} parser;

/* Records EINVAL with "WHERE:LINE: " + the formatted message; returns EINVAL. */
__attribute__((format(printf, 3, 4))) static ryz_status perr(const parser *p, int line,
                                                             const char *fmt, ...) {
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ryz_error(RYZ_EINVAL, "%s:%d: %s", p->where, line, msg);
}

/* Strips leading and trailing whitespace in place; returns the new start. */
static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* 1 when `s` is entirely a base-10 integer in [lo, hi] (stored in *out). */
static int to_long(const char *s, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno == ERANGE || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

/* Separators of id and tp lists. */
static int is_sep(char ch) {
    return ch == ' ' || ch == ',' || ch == '\t' || ch == '\r' || ch == '\n';
}

/* Next token of a separator-delimited list at *pp (length in *len), advancing
 * *pp past it; NULL at the end of the list. */
static const char *next_tok(const char **pp, size_t *len) {
    const char *s = *pp;
    while (*s && is_sep(*s))
        s++;
    if (!*s)
        return NULL;
    const char *start = s;
    while (*s && !is_sep(*s))
        s++;
    *len = (size_t)(s - start);
    *pp = s;
    return start;
}

/* Checks one id token: 0 and *id set when it is decimal digits with value in
 * [0, INT_MAX]; otherwise -1 with the reason in why. */
static int check_id(const char *tok, size_t len, int *id, char *why, size_t whylen) {
    long long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)tok[i])) {
            snprintf(why, whylen, "bad id '%.*s' (want a decimal integer in [0, %d])",
                     (int)(len > 40 ? 40 : len), tok, INT_MAX);
            return -1;
        }
        v = v * 10 + (tok[i] - '0');
        if (v > INT_MAX) {
            snprintf(why, whylen, "id '%.*s' out of range (want [0, %d])",
                     (int)(len > 40 ? 40 : len), tok, INT_MAX);
            return -1;
        }
    }
    *id = (int)v;
    return 0;
}

/* ryz_parse_ids without recording the error: the reason goes to why. On
 * error *ids is NULL and *n 0. */
static ryz_status ids_parse(const char *text, int **ids, int *n, char *why, size_t whylen) {
    const char *p = text ? text : "";
    const char *tok;
    size_t len;
    int count = 0, id;
    *ids = NULL;
    *n = 0;
    while ((tok = next_tok(&p, &len))) {
        if (check_id(tok, len, &id, why, whylen))
            return RYZ_EINVAL;
        if (count == INT_MAX) {
            snprintf(why, whylen, "too many ids");
            return RYZ_EINVAL;
        }
        count++;
    }
    if (count == 0) {
        snprintf(why, whylen, "empty id list (want ids like '1 2 3')");
        return RYZ_EINVAL;
    }
    int *out = malloc((size_t)count * sizeof *out);
    if (!out) {
        snprintf(why, whylen, "out of memory for %d ids", count);
        return RYZ_ENOMEM;
    }
    p = text;
    for (int i = 0; i < count; i++) {
        tok = next_tok(&p, &len);
        check_id(tok, len, &out[i], why, whylen); /* already validated */
    }
    *ids = out;
    *n = count;
    return RYZ_OK;
}

/* Parses "1 2,3" into a malloc'd array (*ids, *n). EINVAL for an empty list
 * or a token that is not a decimal integer in [0, 2^31), naming it; on error
 * *ids is NULL and *n is 0. */
ryz_status ryz_parse_ids(const char *text, int **ids, int *n) {
    char why[MSG_MAX];
    ryz_status st = ids_parse(text, ids, n, why, sizeof why);
    return st == RYZ_OK ? st : ryz_error(st, "%s", why);
}

/* Writes "[suite]" or "[case NAME]" (the current section) into buf. */
static const char *sect_label(const parser *p, char *buf, size_t cap) {
    if (p->sect == SECT_SUITE)
        return "[suite]";
    if (p->sect == SECT_ACCEPT)
        return "[acceptance]";
    snprintf(buf, cap, "[case %s]", p->s->cases[p->s->n_cases - 1].name);
    return buf;
}

/* Sets an int field from `val` in [lo, INT_MAX]; EINVAL naming the key. */
static ryz_status set_int(const parser *p, const char *key, const char *val, long lo, int *dst) {
    long v;
    if (!to_long(val, lo, INT_MAX, &v))
        return perr(p, p->line, "bad value '%s' for %s (want an integer >= %ld)", val, key, lo);
    *dst = (int)v;
    return RYZ_OK;
}

/* Sets a double field from `val` (finite, > 0); EINVAL naming the key and
 * showing `example` as a good value. */
static ryz_status set_pos_double(const parser *p, const char *key, const char *val,
                                 const char *example, double *dst) {
    char *end = NULL;
    errno = 0;
    double v = strtod(val, &end);
    if (end == val || *end != '\0' || errno == ERANGE || !isfinite(v) || !(v > 0))
        return perr(p, p->line, "bad value '%s' for %s (want a number > 0, e.g. %s)", val, key,
                    example);
    *dst = v;
    return RYZ_OK;
}

/* Copies a string value into dst[cap]; EINVAL when it does not fit. */
static ryz_status set_str(const parser *p, const char *key, const char *val, char *dst,
                          size_t cap) {
    size_t n = strlen(val);
    if (n >= cap)
        return perr(p, p->line, "value of %s too long (%zu chars, at most %zu)", key, n, cap - 1);
    memcpy(dst, val, n + 1);
    return RYZ_OK;
}

/* val must be one of the NULL-terminated `choices`; the error lists them
 * ("want mpi, nccl or shm"). */
static ryz_status set_choice(const parser *p, const char *key, const char *val,
                             const char *const *choices, char *dst, size_t cap) {
    char want[128] = "";
    for (int i = 0; choices[i]; i++) {
        if (!strcmp(val, choices[i])) return set_str(p, key, val, dst, cap);
        size_t len = strlen(want);
        const char *sep = i == 0 ? "" : choices[i + 1] ? ", " : " or ";
        snprintf(want + len, sizeof want - len, "%s%s", sep, choices[i]);
    }
    return perr(p, p->line, "bad %s '%s' (want %s)", key, val, want);
}

/* Parses a tp list ("1, 2 4") into c->tp; each degree >= 1, at most
 * RYZ_SUITE_MAX_TP of them. */
static ryz_status set_tp(const parser *p, const char *val, ryz_suite_case *c) {
    const char *s = val, *tok;
    size_t len;
    char buf[32];
    long v;
    c->n_tp = 0;
    while ((tok = next_tok(&s, &len))) {
        if (c->n_tp == RYZ_SUITE_MAX_TP)
            return perr(p, p->line, "too many tp degrees in '%s' (at most %d)", val,
                        RYZ_SUITE_MAX_TP);
        snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), tok);
        if (len >= sizeof buf || !to_long(buf, 1, INT_MAX, &v))
            return perr(p, p->line,
                        "bad tp degree '%.*s' (want integers >= 1, e.g. 'tp = 1, 2, 4')",
                        (int)(len > 40 ? 40 : len), tok);
        for (int i = 0; i < c->n_tp; i++)
            if (c->tp[i] == v && !p->recorded) /* it would run, and write its rows, twice */
                return perr(p, p->line, "tp %ld listed twice in '%s' (each degree runs once)", v,
                            val);
        c->tp[c->n_tp++] = (int)v;
    }
    if (c->n_tp == 0)
        return perr(p, p->line, "empty tp list (want e.g. 'tp = 1, 2, 4')");
    return RYZ_OK;
}

/* Parses the prompt ids into c->prompt, prefixing errors with the line. */
static ryz_status set_prompt(const parser *p, const char *val, ryz_suite_case *c) {
    char why[MSG_MAX];
    ryz_status st = ids_parse(val, &c->prompt, &c->prompt_len, why, sizeof why);
    if (st == RYZ_ENOMEM)
        return ryz_error(st, "%s:%d: %s", p->where, p->line, why);
    if (st != RYZ_OK)
        return perr(p, p->line, "bad prompt: %s", why);
    return RYZ_OK;
}

/* Applies key number k (K_NAME..) of [suite]. */
static ryz_status set_suite_key(const parser *p, int k, const char *val) {
    ryz_suite *s = p->s;
    const char *key = SUITE_KEYS[k];
    switch (k) {
    case K_NAME:
        if ((strchr(val, '/') || val[0] == '.') && !p->recorded) /* results/<name>-<time>.h5 */
            return perr(p, p->line, "name '%s' may not hold '/' or begin with '.': it names the "
                        "results file results/<name>-<time>.h5", val);
        return set_str(p, key, val, s->name, sizeof s->name);
    case K_RANKS:
        return set_int(p, key, val, 0, &s->ranks);
    case K_REPEAT:
        return set_int(p, key, val, 1, &s->repeat);
    case K_WARMUP:
        return set_int(p, key, val, 0, &s->warmup);
    case K_THREADS:
        return set_int(p, key, val, 1, &s->threads);
    case K_ATOL:
        return set_pos_double(p, key, val, "1e-4", &s->atol);
    case K_RTOL:
        return set_pos_double(p, key, val, "1e-4", &s->rtol);
    case K_BF16_ATOL:
        return set_pos_double(p, key, val, "2e-2", &s->bf16_atol);
    case K_BF16_RTOL:
        return set_pos_double(p, key, val, "2e-2", &s->bf16_rtol);
    case K_TF32_ATOL:
        return set_pos_double(p, key, val, "1e-2", &s->tf32_atol);
    case K_TF32_RTOL:
        return set_pos_double(p, key, val, "1e-2", &s->tf32_rtol);
    default:
        return set_int(p, key, val, 0, &s->extra_runs);
    }
}

/* Parses "3.8" (every TP > 1) or "2:1.9 4:3.8" into a threshold list. */
static ryz_status set_thresholds(const parser *p, const char *key, const char *val,
                                 ryz_threshold *t, int *n) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", val);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, " ,\t", &save); tok;
         tok = strtok_r(NULL, " ,\t", &save)) {
        char *colon = strchr(tok, ':'), *end;
        long tp = 0;
        if (colon && (!to_long((*colon = '\0', tok), 1, 4096, &tp)))
            return perr(p, p->line, "bad TP '%s' in %s (want TP:VALUE, e.g. 4:3.8)", tok, key);
        double v = strtod(colon ? colon + 1 : tok, &end);
        if (*n == RYZ_SUITE_MAX_TP || end == (colon ? colon + 1 : tok) || *end || !(v > 0))
            return perr(p, p->line, "bad value in %s = %s (want VALUE or TP:VALUE pairs, > 0)",
                        key, val);
        for (int i = 0; i < *n && !p->recorded; i++) /* one would silently win */
            if (t[i].tp == (int)tp && tp)
                return perr(p, p->line, "%s gives TP %ld twice (%g and %g; give each TP once)",
                            key, tp, t[i].value, v);
            else if (t[i].tp == (int)tp)
                return perr(p, p->line, "%s gives two values for every TP (%g and %g; give one, "
                            "or TP:VALUE pairs)", key, t[i].value, v);
        t[(*n)++] = (ryz_threshold){(int)tp, v};
    }
    return RYZ_OK;
}

/* Applies key number k of [acceptance]. */
static ryz_status set_accept_key(parser *p, int k, const char *val) {
    ryz_acceptance *a = &p->s->acc;
    const char *key = ACCEPT_KEYS[k];
    double *dst[] = {NULL,
                     NULL,
                     &a->max_allreduce_p99_us,
                     &a->allreduce_bytes,
                     &a->max_comm_fraction,
                     &a->min_memory_efficiency,
                     &a->max_logit_error,
                     &a->max_collective_ratio,
                     &a->min_bandwidth_scaling};
    if (k == K_MIN_SPEEDUP || k == K_MIN_EFF) p->threshold_line[k == K_MIN_EFF] = p->line;
    if (k == K_MIN_SPEEDUP) return set_thresholds(p, key, val, a->min_speedup, &a->n_min_speedup);
    if (k == K_MIN_EFF)
        return set_thresholds(p, key, val, a->min_efficiency, &a->n_min_efficiency);
    if (k == K_AR_BYTES) {
        long b;
        if (!to_long(val, 4, 1L << 40, &b))
            return perr(p, p->line, "bad value '%s' for %s (want bytes >= 4)", val, key);
        a->allreduce_bytes = (double)b;
        return RYZ_OK;
    }
    static const char *const example[K_NACCEPT] = {"", "", "5000", "", "0.10", "0.95", "1e-4",
                                                   "1.10", "0.95"};
    return set_pos_double(p, key, val, example[k], dst[k]);
}

/* Applies key number k (K_MODEL..) of the current [case]. */
static ryz_status set_case_key(const parser *p, int k, const char *val) {
    ryz_suite_case *c = &p->s->cases[p->s->n_cases - 1];
    const char *key = CASE_KEYS[k];
    switch (k) {
    case K_MODEL:
        return set_str(p, key, val, c->model, sizeof c->model);
    case K_TP:
        return set_tp(p, val, c);
    case K_BATCH:
        return set_int(p, key, val, 1, &c->batch);
    case K_PROMPT:
        c->prompt_line = p->line;
        return set_prompt(p, val, c);
    case K_NEW_TOKENS:
        return set_int(p, key, val, 1, &c->new_tokens);
    case K_BACKEND:
        return set_choice(p, key, val, (const char *const[]){"cpu", "cuda", NULL}, c->backend,
                          sizeof c->backend);
    case K_COMM:
        return set_choice(p, key, val, (const char *const[]){"mpi", "nccl", "shm", NULL}, c->comm,
                          sizeof c->comm);
    case K_PROMPT_TEXT:
        c->prompt_line = p->line;
        return set_str(p, key, val, c->prompt_text, sizeof c->prompt_text);
    case K_TOKENIZER:
        c->tokenizer_line = p->line;
        return set_str(p, key, val, c->tokenizer, sizeof c->tokenizer);
    case K_TF32:
        if (strcmp(val, "0") && strcmp(val, "1"))
            return perr(p, p->line, "bad tf32 '%s' (want 0 or 1)", val);
        c->tf32 = val[0] == '1';
        return RYZ_OK;
    default:
        if (ryz_dtype_parse(val, &c->dtype) != RYZ_OK)
            return perr(p, p->line, "bad dtype '%s' (want f32 or bf16)", val);
        return RYZ_OK;
    }
}

/* Index of key in names[n], or -1. */
static int key_index(const char *const *names, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], key) == 0)
            return i;
    return -1;
}

/* Cuts an inline comment off val in place: from a ";" or "#" that starts
 * the value or follows a blank, outside double quotes, with the blanks
 * before it ("quick   ; default: file name" is "quick"). */
static void cut_comment(char *val) {
    int quoted = 0;
    for (char *c = val; *c; c++) {
        if (*c == '"')
            quoted = !quoted;
        else if (!quoted && (*c == ';' || *c == '#') &&
                 (c == val || isspace((unsigned char)c[-1]))) {
            *c = '\0';
            break;
        }
    }
    trim(val);
}

/* Removes surrounding double quotes from *val in place; EINVAL when a quote
 * is opened but not closed. */
static ryz_status unquote(const parser *p, const char *key, char **val) {
    char *v = *val;
    size_t n = strlen(v);
    if (v[0] != '"')
        return RYZ_OK;
    if (n < 2 || v[n - 1] != '"')
        return perr(p, p->line, "unterminated quote in value of %s (want \"...\")", key);
    v[n - 1] = '\0';
    *val = v + 1;
    return RYZ_OK;
}

/* Handles a "key = value" line (text already trimmed, not a comment). */
static ryz_status parse_pair(parser *p, char *line) {
    char label[96];
    char *eq = strchr(line, '=');
    if (!eq)
        return perr(p, p->line, "expected 'key = value', '[section]' or a comment, got '%.60s'",
                    line);
    *eq = '\0';
    char *key = trim(line), *val = trim(eq + 1);
    if (!*key)
        return perr(p, p->line, "missing key before '=' (want 'key = value')");
    if (p->sect == SECT_NONE)
        return perr(p, p->line, "key '%s' before any section (put it under [suite] or [case NAME])",
                    key);
    int suite = p->sect == SECT_SUITE, accept = p->sect == SECT_ACCEPT;
    int k = suite    ? key_index(SUITE_KEYS, K_NSUITE, key)
            : accept ? key_index(ACCEPT_KEYS, K_NACCEPT, key)
                     : key_index(CASE_KEYS, K_NCASE, key);
    if (k < 0 && p->recorded) return RYZ_OK; /* a later ryz's key: the file still reads */
    if (k < 0)
        return perr(p, p->line, "unknown key '%s' in %s (known: %s)", key,
                    sect_label(p, label, sizeof label),
                    suite ? SUITE_KNOWN : accept ? ACCEPT_KNOWN : CASE_KNOWN);
    if (p->key_line[k])
        return perr(p, p->line, "duplicate key '%s' in %s (first set at line %d)", key,
                    sect_label(p, label, sizeof label), p->key_line[k]);
    p->key_line[k] = p->line;
    cut_comment(val);
    ryz_status st = unquote(p, key, &val);
    if (st != RYZ_OK)
        return st;
    if (!*val)
        return perr(p, p->line, "empty value for %s (want '%s = VALUE')", key, key);
    if (accept) return set_accept_key(p, k, val);
    return suite ? set_suite_key(p, k, val) : set_case_key(p, k, val);
}

/* EINVAL naming the key, its line and the TP when a TP:VALUE threshold
 * is for a TP no case runs sharded: it would never be checked, and a gate
 * that checks nothing must not pass. As a case that cannot run, this is
 * known from the file, so it is refused before any run (a figure the run
 * could not measure fails its check instead: that is known only after). */
static ryz_status check_threshold_tps(const parser *p) {
    if (p->recorded) return RYZ_OK;
    const ryz_acceptance *a = &p->s->acc;
    const ryz_threshold *lists[2] = {a->min_speedup, a->min_efficiency};
    const int counts[2] = {a->n_min_speedup, a->n_min_efficiency};
    int sharded[RYZ_SUITE_MAX_TP * 4], n = 0; /* the distinct TP > 1 of the cases */
    char tps[128] = " none";
    for (int c = 0; c < p->s->n_cases; c++)
        for (int j = 0; j < p->s->cases[c].n_tp; j++) {
            int t = p->s->cases[c].tp[j], seen = t <= 1;
            for (int i = 0; i < n && !seen; i++) seen = sharded[i] == t;
            if (!seen && n < (int)(sizeof sharded / sizeof sharded[0])) sharded[n++] = t;
        }
    for (int i = 0, len = 0; i < n && len >= 0 && (size_t)len < sizeof tps; i++)
        len += snprintf(tps + len, sizeof tps - (size_t)len, " %d", sharded[i]);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < counts[k]; i++) {
            int tp = lists[k][i].tp, runs = 0; /* every case, past the listing's cap too */
            for (int c = 0; c < p->s->n_cases && tp > 1; c++)
                for (int j = 0; j < p->s->cases[c].n_tp; j++) runs |= p->s->cases[c].tp[j] == tp;
            if (tp == 0 || runs) continue;
            if (tp == 1)
                return perr(p, p->threshold_line[k],
                            "%s: TP 1 (1:%g) is the baseline, whose speedup and efficiency are 1 "
                            "by definition (thresholds are for TP > 1; the cases run TP%s)",
                            ACCEPT_KEYS[k], lists[k][i].value, tps);
            return perr(p, p->threshold_line[k],
                        "%s: no case runs TP %d (%d:%g), so it would never be checked (the "
                        "cases run TP%s; drop it or add TP %d to a case)",
                        ACCEPT_KEYS[k], tp, tp, lists[k][i].value, tps, tp);
        }
    return RYZ_OK;
}

/* Checks the section that just ended: a case needs a model and one prompt,
 * ids or text (both would leave unsaid which one runs), and a tokenizer
 * only encodes text. */
static ryz_status finish_section(const parser *p) {
    if (p->sect != SECT_CASE)
        return RYZ_OK;
    const ryz_suite_case *c = &p->s->cases[p->s->n_cases - 1];
    int ids = p->key_line[K_PROMPT], text = p->key_line[K_PROMPT_TEXT];
    if (!c->model[0])
        return perr(p, p->sect_line,
                    "[case %s] has no model (add e.g. 'model = synthetic:15m,layers=2')", c->name);
    if (ids && text)
        return perr(p, ids > text ? ids : text,
                    "[case %s] has both prompt (line %d) and prompt_text (line %d) (give one: "
                    "'prompt = 1 2 3' for token ids or 'prompt_text = Once upon a time' for text)",
                    c->name, ids, text);
    if (!ids && !text)
        return perr(p, p->sect_line,
                    "[case %s] has no prompt (add e.g. 'prompt = 1 2 3' for token ids or "
                    "'prompt_text = Once upon a time' for text)",
                    c->name);
    if (p->key_line[K_TOKENIZER] && !text)
        return perr(p, p->key_line[K_TOKENIZER],
                    "[case %s]: tokenizer without prompt_text (the tokenizer only encodes "
                    "prompt_text; drop it, or give the prompt as text)",
                    c->name);
    return RYZ_OK;
}

/* Enters [suite]; EINVAL when it appeared before. */
static ryz_status open_suite(parser *p) {
    if (p->suite_line)
        return perr(p, p->line, "duplicate [suite] section (first at line %d)", p->suite_line);
    p->suite_line = p->line;
    p->sect = SECT_SUITE;
    return RYZ_OK;
}

/* Makes room for one more case; ENOMEM on failure. */
static ryz_status grow_cases(parser *p) {
    ryz_suite *s = p->s;
    if (s->n_cases < p->cap)
        return RYZ_OK;
    int cap = p->cap ? 2 * p->cap : 4;
    ryz_suite_case *cases = realloc(s->cases, (size_t)cap * sizeof *cases);
    if (!cases)
        return ryz_error(RYZ_ENOMEM, "%s:%d: out of memory for cases", p->where, p->line);
    s->cases = cases;
    int *lines = realloc(p->case_lines, (size_t)cap * sizeof *lines);
    if (!lines)
        return ryz_error(RYZ_ENOMEM, "%s:%d: out of memory for cases", p->where, p->line);
    p->case_lines = lines;
    p->cap = cap;
    return RYZ_OK;
}

/* Enters [case NAME]: name non-empty, unique, shorter than
 * RYZ_SUITE_NAME_MAX; the new case starts with the defaults. */
static ryz_status open_case(parser *p, const char *name) {
    ryz_suite *s = p->s;
    size_t n = strlen(name);
    if (n == 0)
        return perr(p, p->line, "[case] needs a name (want e.g. '[case small]')");
    if (n >= RYZ_SUITE_NAME_MAX)
        return perr(p, p->line, "case name '%.20s...' too long (%zu chars, at most %d)", name, n,
                    RYZ_SUITE_NAME_MAX - 1);
    for (int i = 0; i < s->n_cases; i++)
        if (strcmp(s->cases[i].name, name) == 0)
            return perr(p, p->line,
                        "duplicate case name '%s' (first at line %d; names must be unique)", name,
                        p->case_lines[i]);
    ryz_status st = grow_cases(p);
    if (st != RYZ_OK)
        return st;
    ryz_suite_case *c = &s->cases[s->n_cases];
    memset(c, 0, sizeof *c);
    memcpy(c->name, name, n + 1);
    c->tp[0] = 1;
    c->n_tp = 1;
    c->batch = 1;
    c->new_tokens = 16;
    strcpy(c->backend, "cpu");
    strcpy(c->comm, "mpi");
    p->case_lines[s->n_cases++] = p->line;
    p->sect = SECT_CASE;
    return RYZ_OK;
}

/* Handles a "[...]" line: ends the previous section, opens the new one. */
static ryz_status parse_header(parser *p, char *line) {
    size_t n = strlen(line);
    if (n < 2 || line[n - 1] != ']')
        return perr(p, p->line, "malformed section header '%.60s' (want [suite] or [case NAME])",
                    line);
    line[n - 1] = '\0';
    char *inner = trim(line + 1);
    ryz_status st = finish_section(p);
    if (st != RYZ_OK)
        return st;
    memset(p->key_line, 0, sizeof p->key_line);
    p->sect_line = p->line;
    if (strcmp(inner, "suite") == 0)
        return open_suite(p);
    if (strcmp(inner, "acceptance") == 0) {
        if (p->s->acc.present)
            return perr(p, p->line, "duplicate [acceptance] section");
        p->s->acc.present = 1;
        p->sect = SECT_ACCEPT;
        return RYZ_OK;
    }
    if (strncmp(inner, "case", 4) == 0 && (inner[4] == '\0' || isspace((unsigned char)inner[4])))
        return open_case(p, trim(inner + 4));
    return perr(p, p->line, "unknown section '[%.60s]' (known: [suite], [acceptance], [case NAME])",
                inner);
}

/* Handles one line of text (without its newline). */
static ryz_status parse_line(parser *p, char *line) {
    line = trim(line);
    if (!*line || *line == ';' || *line == '#')
        return RYZ_OK;
    if (*line == '[')
        return parse_header(p, line);
    return parse_pair(p, line);
}

/* Writes the base name of `where` without extension and leading dots
 * ("quick" for "suites/quick.ini" and ".quick.ini", as a `name` may not
 * begin with '.') into dst[cap], truncated; "suite" if that is empty. */
static void default_name(const char *where, char *dst, size_t cap) {
    const char *base = strrchr(where, '/');
    base = base ? base + 1 : where;
    base += strspn(base, ".");
    const char *dot = strrchr(base, '.');
    size_t n = (dot && dot != base) ? (size_t)(dot - base) : strlen(base);
    if (n == 0) {
        base = "suite";
        n = 5;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, base, n);
    dst[n] = '\0';
}

/* Sets the [suite] defaults and keeps copies of the text in s->text and of
 * its name in s->where (validation's messages name the file too). */
static ryz_status init_suite(ryz_suite *s, const char *text, const char *where) {
    default_name(where, s->name, sizeof s->name);
    s->ranks = 0;
    s->repeat = 3;
    s->warmup = 1;
    s->threads = 1;
    s->atol = s->rtol = RYZ_F32_TOL;
    s->bf16_atol = s->bf16_rtol = RYZ_BF16_TOL;
    s->tf32_atol = s->tf32_rtol = RYZ_TF32_TOL;
    s->acc.max_allreduce_p99_us = s->acc.max_comm_fraction = NAN;
    s->acc.min_memory_efficiency = s->acc.max_logit_error = NAN;
    s->acc.max_collective_ratio = s->acc.min_bandwidth_scaling = NAN;
    s->text = strdup(text);
    s->where = strdup(where);
    if (!s->text || !s->where)
        return ryz_error(RYZ_ENOMEM, "%s: out of memory for the suite text", where);
    return RYZ_OK;
}

/* ryz_suite_parse, or with `recorded` ryz_suite_parse_recorded. */
static ryz_status suite_parse(const char *text, const char *where, int recorded,
                              ryz_suite *out) {
    parser p;
    char *buf = NULL;
    ryz_status st;
    memset(out, 0, sizeof *out);
    memset(&p, 0, sizeof p);
    p.recorded = recorded;
    p.where = where ? where : "<suite>";
    p.s = out;
    if (!text)
        return ryz_error(RYZ_EINVAL, "%s: no suite text", p.where);
    st = init_suite(out, text, p.where);
    if (st != RYZ_OK)
        goto cleanup;
    buf = strdup(text);
    if (!buf) {
        st = ryz_error(RYZ_ENOMEM, "%s: out of memory for the suite text", p.where);
        goto cleanup;
    }
    for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        p.line++;
        st = parse_line(&p, line);
        if (st != RYZ_OK)
            goto cleanup;
    }
    st = finish_section(&p);
    if (st == RYZ_OK && out->n_cases == 0)
        st = perr(&p, p.line > 0 ? p.line : 1,
                  "no [case NAME] sections (add one, e.g. '[case small]' with model and prompt)");
    if (st == RYZ_OK) st = check_threshold_tps(&p);
cleanup:
    free(buf);
    free(p.case_lines);
    if (st != RYZ_OK)
        ryz_suite_free(out);
    return st;
}

ryz_status ryz_suite_parse(const char *text, const char *where, ryz_suite *out) {
    return suite_parse(text, where, 0, out);
}

ryz_status ryz_suite_parse_recorded(const char *text, const char *where, ryz_suite *out) {
    return suite_parse(text, where, 1, out);
}

/* Reads all of `f` (at most SUITE_FILE_MAX bytes) into a malloc'd,
 * NUL-terminated *text. EIO on read errors, EINVAL when too large or
 * containing a NUL byte. */
static ryz_status read_text(FILE *f, const char *path, char **text) {
    ryz_status st = RYZ_OK;
    char *buf = malloc((size_t)SUITE_FILE_MAX + 1);
    *text = NULL;
    if (!buf)
        return ryz_error(RYZ_ENOMEM, "%s: out of memory reading the file", path);
    size_t n = fread(buf, 1, (size_t)SUITE_FILE_MAX + 1, f);
    if (ferror(f)) {
        st = ryz_error(RYZ_EIO, "%s: cannot read: %s", path, strerror(errno));
        goto cleanup;
    }
    if (n > (size_t)SUITE_FILE_MAX) {
        st = ryz_error(RYZ_EINVAL, "%s: file too large (over 1 MiB; suite files are small INI)",
                       path);
        goto cleanup;
    }
    if (memchr(buf, '\0', n)) {
        st = ryz_error(RYZ_EINVAL, "%s: contains a NUL byte (want an INI text file)", path);
        goto cleanup;
    }
    buf[n] = '\0';
    *text = buf;
    buf = NULL;
cleanup:
    free(buf);
    return st;
}

/* Reads and parses the suite file at path into *out (s->text keeps the file).
 * EIO "PATH: cannot open: REASON" when unreadable, EINVAL when larger than
 * 1 MiB or invalid; on error *out is zeroed. */
ryz_status ryz_suite_load(const char *path, ryz_suite *out) {
    char *text = NULL;
    ryz_status st;
    memset(out, 0, sizeof *out);
    if (!path)
        return ryz_error(RYZ_EINVAL, "no suite file path given");
    int fd;
    st = ryz_open_regular(path, &fd);
    if (st != RYZ_OK)
        return st;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        return ryz_error(RYZ_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    st = read_text(f, path, &text);
    if (st != RYZ_OK)
        goto cleanup;
    st = ryz_suite_parse(text, path, out);
cleanup:
    free(text);
    fclose(f);
    return st;
}

/* Frees the cases, prompts, text and name of s and zeroes it; safe on a zeroed or
 * already freed struct and on NULL. */
void ryz_suite_free(ryz_suite *s) {
    if (!s)
        return;
    for (int i = 0; s->cases && i < s->n_cases; i++)
        free(s->cases[i].prompt);
    free(s->cases);
    free(s->text);
    free(s->where);
    memset(s, 0, sizeof *s);
}

/* Largest TP degree over all cases; 1 for NULL or a suite without cases. */
int ryz_suite_max_tp(const ryz_suite *s) {
    int max = 1;
    for (int i = 0; s && i < s->n_cases; i++)
        for (int j = 0; j < s->cases[i].n_tp; j++)
            if (s->cases[i].tp[j] > max)
                max = s->cases[i].tp[j];
    return max;
}
