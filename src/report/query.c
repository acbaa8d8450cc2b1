/* report/query.c: lookups over the results tables shared by show, plot and
 * report, the suite and machine descriptions, and the per-case summary
 * sentence. Tables are small (rows per case and TP), so lookups scan. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/report.h"

/* The case name of the i-th row of the virtual sequence correctness,
 * timing, memory, collectives; NULL past its end. */
static const char *case_at(const ryz_results *r, size_t i) {
    if (i < r->n_correctness)
        return r->correctness[i].case_name;
    i -= r->n_correctness;
    if (i < r->n_timing)
        return r->timing[i].case_name;
    i -= r->n_timing;
    if (i < r->n_memory)
        return r->memory[i].case_name;
    i -= r->n_memory;
    if (i < r->n_collectives)
        return r->collectives[i].case_name;
    return NULL;
}

const char *ryz_report_next_case(const ryz_results *r, size_t *pos) {
    for (const char *name; (name = case_at(r, *pos)) != NULL;) {
        size_t i = (*pos)++, j = 0;
        while (j < i && strcmp(case_at(r, j), name) != 0)
            j++;
        if (j == i)
            return name;
    }
    return NULL;
}

/* Inserts tp into the ascending set tps[0..n) unless present or full;
 * returns the new size. */
static int add_tp(int *tps, int n, int cap, int tp) {
    int i = 0;
    while (i < n && tps[i] < tp)
        i++;
    if ((i < n && tps[i] == tp) || n == cap)
        return n;
    memmove(tps + i + 1, tps + i, (size_t)(n - i) * sizeof *tps);
    tps[i] = tp;
    return n + 1;
}

int ryz_report_case_tps(const ryz_results *r, const char *name, int *tps, int cap) {
    int n = 0;
    for (size_t i = 0; i < r->n_correctness; i++)
        if (!strcmp(r->correctness[i].case_name, name))
            n = add_tp(tps, n, cap, r->correctness[i].tp);
    for (size_t i = 0; i < r->n_timing; i++)
        if (!strcmp(r->timing[i].case_name, name))
            n = add_tp(tps, n, cap, r->timing[i].tp);
    return n;
}

const ryz_row_correctness *ryz_report_correctness(const ryz_results *r, const char *name, int tp) {
    for (size_t i = 0; i < r->n_correctness; i++)
        if (r->correctness[i].tp == tp && !strcmp(r->correctness[i].case_name, name))
            return &r->correctness[i];
    return NULL;
}

const ryz_row_timing *ryz_report_timing(const ryz_results *r, const char *name, int tp,
                                        const char *phase) {
    for (size_t i = 0; i < r->n_timing; i++) {
        const ryz_row_timing *t = &r->timing[i];
        if (t->tp == tp && !strcmp(t->case_name, name) && !strcmp(t->phase, phase))
            return t;
    }
    return NULL;
}

const ryz_row_collective *ryz_report_main_all_reduce(const ryz_results *r, const char *name,
                                                     int tp) {
    const ryz_row_collective *best = NULL;
    for (size_t i = 0; i < r->n_collectives; i++) {
        const ryz_row_collective *c = &r->collectives[i];
        if (c->tp != tp || strcmp(c->case_name, name) || strcmp(c->op, "all_reduce"))
            continue;
        if (!best || c->count > best->count)
            best = c;
    }
    return best;
}

/* The minimal description of a case whose suite file is not available. */
static void minimal_case(const ryz_results *r, const char *name, ryz_suite_case *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->model, sizeof out->model, "(model not recorded)");
    out->batch = 1;
    for (size_t i = 0; i < r->n_correctness; i++)
        if (!strcmp(r->correctness[i].case_name, name)) {
            out->batch = r->correctness[i].batch;
            break;
        }
}

int ryz_report_suite(const ryz_results *r, ryz_suite *out) {
    memset(out, 0, sizeof *out);
    const char *text = r->meta.suite_text;
    /* bench's text is not a suite's: its rows (f32-t1, ...) share [case bench] */
    if (!text || !strcmp(ryz_results_kind(&r->meta), RYZ_KIND_BENCH))
        return 0;
    if (ryz_suite_parse_recorded(text, "suite_text", out) == RYZ_OK)
        return 1;
    ryz_error_clear(); /* a file without its suite is still readable */
    return 0;
}

void ryz_report_case_info(const ryz_results *r, const char *name, ryz_suite_case *out) {
    ryz_suite s;
    minimal_case(r, name, out);
    const char *text = r->meta.suite_text;
    if (text && !strcmp(ryz_results_kind(&r->meta), RYZ_KIND_BENCH)) { /* [case bench]'s */
        char model[sizeof out->model];
        ryz_results_case_value(text, "bench", "model", model, sizeof model);
        if (*model) snprintf(out->model, sizeof out->model, "%s", model);
        return;
    }
    if (!ryz_report_suite(r, &s))
        return;
    for (int i = 0; i < s.n_cases; i++)
        if (!strcmp(s.cases[i].name, name)) {
            *out = s.cases[i];
            out->prompt = NULL; /* owned by s, freed below */
            break;
        }
    ryz_suite_free(&s);
}

void ryz_report_machine_line(const ryz_results *r, char *buf, size_t cap) {
    const ryz_results_meta *m = &r->meta;
    int threads = m->threads_per_rank > 0 ? m->threads_per_rank : 1;
    snprintf(buf, cap, "suite %s | %s, %d cores | %d rank%s x %d thread%s%s",
             m->suite_name && *m->suite_name ? m->suite_name : "(unnamed)",
             m->cpu_model && *m->cpu_model ? m->cpu_model : "unknown CPU", (int)m->cores,
             (int)m->world_size, m->world_size == 1 ? "" : "s", threads, threads == 1 ? "" : "s",
             m->oversubscribed ? " | OVERSUBSCRIBED: timings not meaningful" : "");
}

void ryz_report_format_bytes(double bytes, char *buf, size_t cap) {
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4)
        bytes /= 1024, u++;
    if (u == 0)
        snprintf(buf, cap, "%.0f B", bytes);
    else
        snprintf(buf, cap, "%.1f %s", bytes, units[u]);
}

/* Appends printf-style text at buf + strlen(buf), truncating at cap. */
__attribute__((format(printf, 3, 4))) static void append(char *buf, size_t cap, const char *fmt,
                                                         ...) {
    size_t len = strlen(buf);
    if (len + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
}

/* The correctness clause of a summary: agreement, error and greedy outcome. */
static void correctness_clause(const ryz_row_correctness *c, char *buf, size_t cap) {
    if (!c->pass)
        append(buf, cap, "outputs DISAGREE (max abs error %.1e", c->max_abs);
    else
        append(buf, cap, "outputs agree (max abs error %.1e", c->max_abs);
    if (c->greedy_divergence >= 0)
        append(buf, cap, "; greedy %s at position %d",
               c->greedy_class == 1 ? "near-tie" : "MISMATCH", (int)c->greedy_divergence);
    append(buf, cap, ")");
}

void ryz_report_summary(const ryz_results *r, const char *name, int tp, char *buf, size_t cap) {
    const ryz_row_timing *dec = ryz_report_timing(r, name, tp, "decode");
    const ryz_row_collective *ar = ryz_report_main_all_reduce(r, name, tp);
    const ryz_row_correctness *c = ryz_report_correctness(r, name, tp);
    snprintf(buf, cap, "TP=%d:", tp);
    const char *sep = " ";
    if (dec) {
        append(buf, cap, "%s%.2fx decode speedup", sep, dec->speedup);
        if (r->meta.oversubscribed)
            append(buf, cap, " (oversubscribed: efficiency not meaningful)");
        else
            append(buf, cap, ", %.0f%% efficiency", 100 * dec->efficiency);
        sep = "; ";
    }
    if (ar) {
        char size[32];
        ryz_report_format_bytes((double)ar->bytes, size, sizeof size);
        append(buf, cap, "%sall-reduce of %s p50 %.*f us", sep, size, ar->p50_us < 10 ? 1 : 0,
               ar->p50_us);
        sep = "; ";
    }
    if (dec && tp > 1) {
        append(buf, cap, "%s%.0f%% of decode time in communication", sep, 100 * dec->comm_fraction);
        sep = "; ";
    }
    append(buf, cap, "%s", sep);
    if (c)
        correctness_clause(c, buf, cap);
    else
        append(buf, cap, "no correctness row");
}
