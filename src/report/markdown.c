/* report/markdown.c: the Markdown scaling report (`ryz report`): setup,
 * a plain-language summary per case, the tables and links to the plots. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/report.h"

/* The plots the report links, in order, with their captions. */
static const struct {
    const char *stem, *caption;
} PLOTS[] = {
    {"speedup", "Decode and prefill speedup against TP, with the ideal line"},
    {"efficiency", "Parallel efficiency (speedup / TP) against TP"},
    {"error", "Largest absolute logit error against TP (log scale)"},
    {"memory", "Memory per rank by category"},
    {"collectives", "Collective latency (p50, p99) against message size"},
    {"busbw", "Collective bus bandwidth against message size"},
};

/* Writes `s` for a Markdown table cell ('|' escaped, newlines as spaces). */
static void md_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
}

/* Whether `plots` holds the file `name`. */
static int has_file(const ryz_plot_files *plots, const char *name) {
    for (int i = 0; plots && i < plots->n; i++)
        if (!strcmp(plots->names[i], name))
            return 1;
    return 0;
}

/* A root attribute string, or `def` when unset or empty. */
static const char *or_default(const char *s, const char *def) {
    return s && *s ? s : def;
}

/* One check in words: "case `a` TP=2: speedup 0.48, needs >= 100
 * (note)". */
static void check_words(FILE *f, const ryz_check *x) {
    fputs("case `", f);
    md_text(f, x->case_name);
    fprintf(f, "` TP=%d: %s %.4g, needs %s %.4g", x->tp, x->check, x->measured, x->op,
            x->threshold);
    if (x->note[0]) {
        fputs(" (", f);
        md_text(f, x->note);
        fputc(')', f);
    }
}

/* The run's verdict from its acceptance checks `c`, first thing after the
 * title, so that a failed run cannot read as a pass: FAIL with every
 * failed check, or PASS. A suite file before schema 5 did not keep its
 * checks: it says so and counts the correctness rows that pass. Files of
 * `ryz bench` and `ryz comm` have no verdict. */
static void write_verdict(const ryz_results *r, const ryz_checks *c, FILE *f) {
    if (strcmp(ryz_results_kind(&r->meta), RYZ_KIND_SUITE))
        return;
    if (r->meta.schema_version < 5 || c->n == 0) {
        size_t pass = 0;
        for (size_t i = 0; i < r->n_correctness; i++)
            pass += r->correctness[i].pass != 0;
        fprintf(f, "> **Verdict not recorded.** %s; of the correctness rows, %zu of %zu pass "
                   "(the [acceptance] thresholds were not kept).\n\n",
                r->meta.schema_version < 5 ? "This file predates schema 5, which keeps the "
                                             "acceptance checks"
                                           : "The run kept no acceptance checks (interrupted?)",
                pass, r->n_correctness);
        return;
    }
    if (!c->failed) {
        fprintf(f, "**Verdict: PASS.** All %d acceptance checks passed", c->n);
        if (c->skipped)
            fprintf(f, " (%d timing checks skipped: oversubscribed run)", c->skipped);
        fprintf(f, ".\n\n");
        return;
    }
    fprintf(f, "> **Verdict: FAIL.** %d of %d acceptance checks failed:\n>\n", c->failed, c->n);
    for (int i = 0; i < c->n; i++) {
        if (c->checks[i].pass)
            continue;
        fputs("> - ", f);
        check_words(f, &c->checks[i]);
        fputc('\n', f);
    }
    fputc('\n', f);
}

static void write_setup(const ryz_results *r, const ryz_checks *c, FILE *f) {
    const ryz_results_meta *m = &r->meta;
    char line[512];
    ryz_report_machine_line(r, line, sizeof line);
    fprintf(f, "# Ryzanstein scaling report: suite %s\n\n%s\n\n",
            or_default(m->suite_name, "(unnamed)"), line);
    write_verdict(r, c, f);
    if (m->oversubscribed)
        fprintf(f,
                "> **Warning: oversubscribed.** %d ranks x %d thread(s) ran on %d cores, so "
                "ranks competed for cores: speedup, efficiency and communication times are "
                "not meaningful. Correctness results are unaffected.\n\n",
                (int)m->world_size, (int)m->threads_per_rank, (int)m->cores);
    if (m->interrupted)
        fprintf(f, "> **Warning: interrupted.** The run stopped early; tables are partial.\n\n");
    fprintf(f, "## Setup\n\n| | |\n|---|---|\n");
    fprintf(f, "| tool | ryz %s (git %s) |\n", or_default(m->tool_version, "?"),
            or_default(m->git_rev, "unknown"));
    fprintf(f, "| time (UTC) | %s |\n| hosts | ", or_default(m->time_utc, "?"));
    md_text(f, or_default(m->hosts, "?"));
    fprintf(f, " |\n| CPU | ");
    md_text(f, or_default(m->cpu_model, "unknown"));
    fprintf(f, ", %d cores |\n| world size | %d ranks, %d thread(s) per rank%s |\n", (int)m->cores,
            (int)m->world_size, (int)m->threads_per_rank,
            m->oversubscribed ? " (**oversubscribed**)" : "");
    fprintf(f, "| backends / device | %s / %s |\n", or_default(m->backends, "?"),
            or_default(m->device, "?"));
    if (m->blas && *m->blas) { /* files before schema 4 did not record it */
        fprintf(f, "| BLAS | ");
        md_text(f, m->blas);
        fprintf(f, " |\n");
    }
    if (m->read_bandwidth_gbs > 0)
        fprintf(f, "| memory read bandwidth | %.1f GB/s (measured in the same run) |\n",
                m->read_bandwidth_gbs);
    else
        fprintf(f, "| memory read bandwidth | not measured |\n");
    fprintf(f, "| results schema | %d |\n\n", (int)m->schema_version);
}

/* "; **FAILED acceptance: speedup, efficiency**" for the checks of
 * (case, tp) in c that failed; nothing when none did. */
static void failed_clause(const ryz_checks *c, const char *name, int tp, FILE *f) {
    int n = 0;
    for (int i = 0; i < c->n; i++) {
        const ryz_check *x = &c->checks[i];
        if (x->pass || x->tp != tp || strcmp(x->case_name, name))
            continue;
        fprintf(f, "%s%s", n++ ? ", " : "; **FAILED acceptance: ", x->check);
    }
    if (n)
        fputs("**", f);
}

/* The median of (case, tp)'s /samples of metric; NAN where it has none. */
static double sample_median(const ryz_results *r, const char *name, int tp, const char *metric) {
    int n = 0;
    double *v = ryz_results_sample_values(r, name, tp, metric, &n);
    double m = v ? ryz_stats_known_median(v, (size_t)n) : NAN;
    free(v);
    return m;
}

/* "; timed on a busy machine (...)" where the median over (case, tp)'s
 * timed runs of what the host's neighbours took, stolen or run by other
 * processes, passes RYZ_LOAD_DISTURBED, as `ryz suite` noted when it ran:
 * a reader of the figures beside it should know. */
static void busy_clause(const ryz_results *r, const char *name, int tp, FILE *f) {
    double steal = sample_median(r, name, tp, "host_steal_fraction");
    double other = sample_median(r, name, tp, "host_other_load");
    if (!ryz_load_disturbed(steal, other))
        return;
    fprintf(f, "; timed on a busy machine (the hypervisor took %.0f%% of the CPU time its CPUs "
            "wanted, other processes ran %.0f%% of it: medians over the runs)",
            isnan(steal) ? 0 : 100 * steal, isnan(other) ? 0 : 100 * other);
}

/* One case of the summary: what ran, the baseline's speed, a sentence per
 * checked TP degree, with the acceptance checks it failed. */
static void write_case_summary(const ryz_results *r, const ryz_checks *checks, const char *name,
                               FILE *f) {
    ryz_suite_case c;
    int tps[RYZ_REPORT_MAX_TP], n = ryz_report_case_tps(r, name, tps, RYZ_REPORT_MAX_TP);
    if (n == 0)
        return; /* no suite rows (e.g. `ryz comm` collectives) */
    ryz_report_case_info(r, name, &c);
    /* `ryz project -o` names its rows after the model it projects */
    int projected = ryz_report_timing(r, name, tps[n - 1], "decode_proj") != NULL;
    fprintf(f, "### %s\n\n`%s`, batch %d", name, projected && !c.prompt_len ? name : c.model,
            c.batch);
    if (c.prompt_len)
        fprintf(f, ", prompt %d tokens, %d new tokens", c.prompt_len, c.new_tokens);
    const ryz_row_timing *base = ryz_report_timing(r, name, 1, "decode");
    if (base)
        fprintf(f, "; baseline (TP=1) decodes %.1f tokens/s", base->tokens_per_s);
    fprintf(f, ".\n\n");
    for (int i = 0; i < n; i++) {
        char sentence[512];
        const ryz_row_timing *proj = ryz_report_timing(r, name, tps[i], "decode_proj");
        if (proj)
            fprintf(f, "- TP=%d, projected by `ryz project` (alpha-beta fit of the collectives, "
                    "not measured): %.1f tokens/s, %.2fx, efficiency %.0f%%, %.0f%% of a token "
                    "in collectives.\n", tps[i], proj->tokens_per_s, proj->speedup,
                    100 * proj->efficiency, 100 * proj->comm_fraction);
        if (!ryz_report_correctness(r, name, tps[i]))
            continue;
        ryz_report_summary(r, name, tps[i], sentence, sizeof sentence);
        fprintf(f, "- %s", sentence);
        busy_clause(r, name, tps[i], f);
        failed_clause(checks, name, tps[i], f);
        fputc('\n', f);
    }
    fputc('\n', f);
}

static void write_summary(const ryz_results *r, const ryz_checks *c, FILE *f) {
    size_t pos = 0;
    fprintf(f, "## Summary\n\n");
    if (r->meta.oversubscribed)
        fprintf(f, "Efficiency is not meaningful in this run (oversubscribed); the speedups are "
                   "shown as measured.\n\n");
    for (const char *name; (name = ryz_report_next_case(r, &pos)) != NULL;)
        write_case_summary(r, c, name, f);
    if (!r->n_correctness && !r->n_timing)
        fprintf(f, "No suite cases in this file (collectives only, e.g. from `ryz comm`).\n\n");
}

/* Starts a table section: heading, header row and separator row. */
static void table_head(FILE *f, const char *title, const char *const *cols, int n) {
    fprintf(f, "## %s\n\n|", title);
    for (int i = 0; i < n; i++)
        fprintf(f, " %s |", cols[i]);
    fprintf(f, "\n|");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s", i < 2 ? "---|" : "--:|");
    fputc('\n', f);
}

static void write_correctness(const ryz_results *r, FILE *f) {
    static const char *cols[] = {"case",    "TP",      "batch", "positions", "max abs",
                                 "max rel", "min cos", "top-1", "greedy",    "result"};
    table_head(f, "Correctness (teacher-forced against the TP=1 baseline)", cols, 10);
    for (size_t i = 0; i < r->n_correctness; i++) {
        const ryz_row_correctness *c = &r->correctness[i];
        char greedy[32] = "identical";
        if (c->greedy_divergence >= 0)
            snprintf(greedy, sizeof greedy, "%s@%d", c->greedy_class == 1 ? "near-tie" : "MISMATCH",
                     (int)c->greedy_divergence);
        fputs("| ", f);
        md_text(f, c->case_name);
        fprintf(f, " | %d | %d | %d | %.3e | %.3e | %.7f | %d/%d | %s | %s |\n", (int)c->tp,
                (int)c->batch, (int)c->positions, c->max_abs, c->max_rel, c->min_cos,
                (int)c->top1_agree, (int)c->positions, greedy, c->pass ? "PASS" : "**FAIL**");
    }
    fprintf(f, "\nmax rel is relative to the logit range of the row; top-1 counts positions "
               "whose argmax agrees; greedy is the sharded model decoding on its own.\n\n");
}

/* Below the correctness table, whose PASS they qualify: the tolerances the
 * recorded suite set above their defaults (ryz_suite_loosened), as `ryz
 * suite` noted them when it ran. Nothing when none, or no suite is known. */
static void write_loosened(const ryz_results *r, FILE *f) {
    ryz_suite s;
    char lines[RYZ_SUITE_LOOSENED_MAX];
    if (!ryz_report_suite(r, &s))
        return;
    if (ryz_suite_loosened(&s, "> - ", lines, sizeof lines))
        fprintf(f,
                "> **Tolerances looser than the defaults.** The results above were judged "
                "against them:\n>\n%s\n",
                lines);
    ryz_suite_free(&s);
}

/* Every acceptance check, the failed ones first, as `ryz suite` lists
 * them. */
static void write_acceptance(const ryz_checks *c, FILE *f) {
    static const char *cols[] = {"case", "TP", "check", "measured", "threshold", "result", "note"};
    table_head(f, "Acceptance checks", cols, 7);
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < c->n; i++) {
            const ryz_check *x = &c->checks[i];
            if (x->pass != pass)
                continue;
            fputs("| ", f);
            md_text(f, x->case_name);
            fprintf(f, " | %d | %s | %.4g | %s %.4g | %s | ", x->tp, x->check, x->measured,
                    x->op, x->threshold, x->skipped ? "skipped" : x->pass ? "pass" : "**FAIL**");
            md_text(f, x->note);
            fputs(" |\n", f);
        }
    fprintf(f, "\nCorrectness of every (case, TP) and each [acceptance] threshold of the suite "
               "(docs/guide.md, \"Acceptance\"); skipped: a timing check of an oversubscribed "
               "run.\n\n");
}

static void write_timing(const ryz_results *r, FILE *f) {
    static const char *cols[] = {"case",   "TP",       "phase",       "runs",    "median ms",
                                 "p10 ms", "p90 ms",   "tokens/s",    "speedup", "efficiency",
                                 "comm",   "roofline", "read bw GB/s"};
    table_head(f, "Timing (median of the timed runs)", cols, 13);
    for (size_t i = 0; i < r->n_timing; i++) {
        const ryz_row_timing *t = &r->timing[i];
        fputs("| ", f);
        md_text(f, t->case_name);
        fprintf(f, " | %d | %s | %d | %.3f | %.3f | %.3f | %.1f | %.2fx | %.0f%% | %.0f%% | ",
                (int)t->tp, t->phase, (int)t->runs, 1e3 * t->median_s, 1e3 * t->p10_s,
                1e3 * t->p90_s, t->tokens_per_s, t->speedup, 100 * t->efficiency,
                100 * t->comm_fraction);
        if (t->roofline_fraction > 0)
            fprintf(f, "%.0f%% |", 100 * t->roofline_fraction);
        else
            fprintf(f, "- |");
        if (t->read_bandwidth_gbs > 0)
            fprintf(f, " %.2f |\n", t->read_bandwidth_gbs);
        else
            fprintf(f, " - |\n");
    }
    fprintf(f, "\ncomm: time in collectives / wall time (largest rank); roofline: decode "
               "tokens/s against read bandwidth / bytes read per token; read bw: TP ranks "
               "streaming at once, in the same run.\n\n");
}

/* Writes one byte count as a table cell. */
static void bytes_cell(FILE *f, uint64_t b) {
    char cell[32];
    ryz_report_format_bytes((double)b, cell, sizeof cell);
    fprintf(f, " %s |", cell);
}

static void write_memory(const ryz_results *r, FILE *f) {
    static const char *cols[] = {"case",     "TP",      "rank",     "weights",
                                 "KV cache", "scratch", "peak RSS", "mem eff"};
    table_head(f, "Memory per rank", cols, 8);
    for (size_t i = 0; i < r->n_memory; i++) {
        const ryz_row_memory *m = &r->memory[i];
        fputs("| ", f);
        md_text(f, m->case_name);
        fprintf(f, " | %d | %d |", (int)m->tp, (int)m->rank);
        bytes_cell(f, m->weights), bytes_cell(f, m->kv_cache), bytes_cell(f, m->scratch);
        bytes_cell(f, m->peak_rss);
        fprintf(f, " %.3f |\n", m->mem_efficiency);
    }
    fprintf(f, "\nmem eff: (baseline bytes / TP) / largest rank's bytes; 1 = perfect split.\n\n");
}

static void write_collectives(const ryz_results *r, FILE *f) {
    static const char *cols[] = {
        "case",       "TP",          "op",          "size",           "calls",
        "p50 us",     "p99 us",      "mean us",     "algbw GB/s",     "busbw GB/s",
        "last p50 us", "wait p50 us", "isolated p50 us", "read MiB", "isolated after read p50 us",
        "last/isolated after read"};
    table_head(f, "Collectives (per call; size as nccl-tests counts it)", cols, 16);
    for (size_t i = 0; i < r->n_collectives; i++) {
        const ryz_row_collective *c = &r->collectives[i];
        fputs("| ", f);
        md_text(f, c->case_name);
        fprintf(f, " | %d | %s |", (int)c->tp, c->op);
        bytes_cell(f, c->bytes);
        fprintf(f, " %llu | %.1f | %.1f | %.1f | %.3f | %.3f |", (unsigned long long)c->count,
                c->p50_us, c->p99_us, c->mean_us, c->algbw_gbs, c->busbw_gbs);
        if (c->p50_last_us > 0)
            fprintf(f, " %.1f | %.1f |", c->p50_last_us, c->wait_p50_us);
        else
            fputs(" - | - |", f);
        if (c->isolated_p50_us > 0)
            fprintf(f, " %.1f |", c->isolated_p50_us);
        else
            fputs(" - |", f);
        if (c->isolated_evict_p50_us > 0)
            fprintf(f, " %.1f | %.1f | %.2f |\n", c->streamed_bytes / 1048576.0,
                    c->isolated_evict_p50_us, c->last_over_evict);
        else
            fputs(" - | - | - |\n", f);
    }
    fprintf(f, "\nBandwidths follow the nccl-tests conventions, at p50. p50 is rank 0's calls "
               "in situ; last: per call, the fastest rank's time (the last to arrive: the "
               "collective once all arrived); wait: per call, slowest - fastest rank; isolated: "
               "the same op and size alone on the same ranks (`ryz comm`'s harness), back to "
               "back; read: the weights rank 0 read before a call in situ (p50); isolated after "
               "read: the same, each call after reading as much again (`ryz comm --evict`), "
               "the reference `max_collective_ratio` holds the last arriver to.\n\n");
}

static void write_plots(const ryz_plot_files *plots, FILE *f) {
    char png[RYZ_PLOT_NAME_LEN], svg[RYZ_PLOT_NAME_LEN];
    int any = 0;
    fprintf(f, "## Plots\n\n");
    for (size_t i = 0; i < sizeof PLOTS / sizeof PLOTS[0]; i++) {
        snprintf(png, sizeof png, "%s.png", PLOTS[i].stem);
        snprintf(svg, sizeof svg, "%s.svg", PLOTS[i].stem);
        if (!has_file(plots, png))
            continue;
        fprintf(f, "### %s\n\n![%s](%s)\n\n", PLOTS[i].caption, PLOTS[i].caption, png);
        if (has_file(plots, svg))
            fprintf(f, "[SVG](%s)\n\n", svg);
        any = 1;
    }
    if (!any)
        fprintf(f, "No plots were rendered (gnuplot missing, or no data to plot).\n\n");
}

static void write_suite_text(const ryz_results *r, FILE *f) {
    if (!r->meta.suite_text || !*r->meta.suite_text)
        return;
    fprintf(f, "## Suite file\n\n```ini\n%s%s```\n", r->meta.suite_text,
            r->meta.suite_text[strlen(r->meta.suite_text) - 1] == '\n' ? "" : "\n");
}

ryz_status ryz_report_markdown(const ryz_results *r, const ryz_plot_files *plots, FILE *out) {
    ryz_checks checks;
    ryz_status st = ryz_checks_from_results(r, &checks);
    if (st != RYZ_OK)
        return st;
    write_setup(r, &checks, out);
    write_summary(r, &checks, out);
    write_plots(plots, out);
    if (r->n_correctness) {
        write_correctness(r, out);
        write_loosened(r, out);
    }
    if (checks.n)
        write_acceptance(&checks, out);
    ryz_checks_free(&checks);
    if (r->n_timing)
        write_timing(r, out);
    if (r->n_memory)
        write_memory(r, out);
    if (r->n_collectives)
        write_collectives(r, out);
    write_suite_text(r, out);
    if (ferror(out))
        return ryz_error(RYZ_EIO, "report: error writing the Markdown");
    return RYZ_OK;
}
