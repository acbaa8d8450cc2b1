/* What `ryz comm` writes: nccl-tests-style tables, the results tables
 * (/collectives, /samples, root attributes) and the JSON twin. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"


/* ---- tables ------------------------------------------------------------- */

/* Column layout shared by the head and the rows. */
#define LEAD_FMT "%12s  %12s  %6s  %6s  %6s"
#define PLACE_FMT "  %9s  %8s  %8s  %7s"
#define TAIL_FMT "  %9s  %9s\n"

void bench_print_header(FILE *f, const ryz_bench_opts *o, const char *backend,
                        const bench_rank_info *ranks, int k) {
    fprintf(f,
            "# ryz comm: backend %s, %d rank%s  minBytes %llu maxBytes %llu step: %d(factor) "
            "warmup iters: %d iters: %d validation: %d\n#\n# Using devices\n",
            backend, k, k == 1 ? "" : "s", (unsigned long long)o->min_bytes,
            (unsigned long long)o->max_bytes, o->factor, o->warmup, o->iters, o->check);
    if (o->evict_bytes)
        fprintf(f, "# Evicting: each rank reads %llu bytes before each timed call; latency is "
                   "the fastest rank's\n#\n", (unsigned long long)o->evict_bytes);
    if (o->gap_s > 0)
        fprintf(f, "# Idling: each rank stays busy until %.0f us after its previous call before "
                   "each timed call; latency is the fastest rank's\n#\n", 1e6 * o->gap_s);
    for (int r = 0; r < k; r++)
        fprintf(f, "#  Rank %2d Pid %6d on %s device cpu\n", r, ranks[r].pid, ranks[r].host);
    fflush(f);
}

void bench_print_table_head(FILE *f, ryz_comm_op op) {
    /* the two labels centred over their 40-column blocks */
    fprintf(f, "#\n# %s\n#%50s%14s%s%30s%s\n", ryz_comm_op_name(op), "", "", "out-of-place", "",
            "in-place");
    fprintf(f, "#" LEAD_FMT PLACE_FMT PLACE_FMT TAIL_FMT, "size", "count", "type", "redop", "root",
            "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong", "p50", "p99");
    fprintf(f, "#" LEAD_FMT PLACE_FMT PLACE_FMT TAIL_FMT, "(B)", "(elements)", "", "", "", "(us)",
            "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(us)");
    fflush(f);
}

/* The four cells of one placement: time, algbw, busbw, #wrong. */
static void place_cells(const ryz_bench_result *p, char cell[4][24]) {
    if (!p->ran) {
        for (int i = 0; i < 4; i++)
            snprintf(cell[i], 24, "n/a");
        return;
    }
    snprintf(cell[0], 24, "%.2f", p->time_us);
    snprintf(cell[1], 24, "%.3f", p->algbw_gbs);
    snprintf(cell[2], 24, "%.3f", p->busbw_gbs);
    if (p->wrong < 0)
        snprintf(cell[3], 24, "N/A");
    else
        snprintf(cell[3], 24, "%lld", (long long)p->wrong);
}

void bench_print_row(FILE *f, const ryz_bench_row *row) {
    char lead[3][24], out[4][24], in[4][24], tail[2][24];
    snprintf(lead[0], 24, "%llu", (unsigned long long)row->bytes);
    snprintf(lead[1], 24, "%llu", (unsigned long long)row->count);
    snprintf(lead[2], 24, "%d", row->root);
    place_cells(&row->place[0], out);
    place_cells(&row->place[1], in);
    snprintf(tail[0], 24, "%.2f", row->place[0].p50_us);
    snprintf(tail[1], 24, "%.2f", row->place[0].p99_us);
    fprintf(f, " " LEAD_FMT PLACE_FMT PLACE_FMT TAIL_FMT, lead[0], lead[1], "float",
            bench_redop(row->op), lead[2], out[0], out[1], out[2], out[3], in[0], in[1], in[2],
            in[3], tail[0], tail[1]);
    fflush(f);
}

void bench_print_footer(FILE *f, const ryz_bench_report *r) {
    fprintf(f, "#\n");
    if (r->wrong < 0)
        fprintf(f, "# Wrong elements       : not checked (-c 0)\n");
    else
        fprintf(f, "# Wrong elements       : %lld %s\n", (long long)r->wrong,
                r->wrong ? "FAILED" : "OK");
    fprintf(f, "# Avg bus bandwidth    : %g\n#\n", r->avg_busbw_gbs);
    fflush(f);
}

/* ---- results tables ----------------------------------------------------- */

/* Root attributes of a `ryz comm` run. */
static ryz_status fill_meta(const ryz_bench_report *r, const char *cmdline, ryz_results_meta *m) {
    char backends[32];
    snprintf(backends, sizeof backends, "cpu+%s", r->backend);
    ryz_status st = ryz_results_meta_machine(m, r->world, 1, r->hosts, backends, "comm", cmdline);
    if (st == RYZ_OK) st = ryz_results_set_str(&m->kind, RYZ_KIND_COMM);
    if (st == RYZ_OK && !strcmp(r->backend, "nccl")) /* the GPUs' links were timed */
        st = ryz_results_meta_set_cuda_device(m);
    return st;
}

/* The /collectives row of one table row: its out-of-place placement. */
static ryz_row_collective collective_row(const ryz_bench_row *row, int world) {
    const ryz_bench_result *p = &row->place[0];
    ryz_row_collective c = {.tp = world,
                            .bytes = row->bytes,
                            .count = p->n_samples,
                            .p50_us = p->p50_us,
                            .p99_us = p->p99_us,
                            .mean_us = p->time_us};
    snprintf(c.case_name, sizeof c.case_name, "comm");
    snprintf(c.op, sizeof c.op, "%s", ryz_comm_op_name(row->op));
    c.algbw_gbs = ryz_bench_algbw_gbs(row->bytes, 1e-6 * p->p50_us);
    c.busbw_gbs = c.algbw_gbs * ryz_comm_busbw_factor(row->op, world);
    return c;
}

/* /samples rows of one placement. */
static ryz_status add_samples(const ryz_bench_row *row, int ip, int world, ryz_results *res) {
    const ryz_bench_result *p = &row->place[ip];
    ryz_row_sample s = {.tp = world};
    snprintf(s.case_name, sizeof s.case_name, "comm");
    snprintf(s.metric, sizeof s.metric, "%s%s_us@%llu", ryz_comm_op_name(row->op), ip ? "_ip" : "",
             (unsigned long long)row->bytes);
    ryz_status st = RYZ_OK;
    for (size_t i = 0; st == RYZ_OK && i < p->n_samples; i++) {
        s.iter = (int32_t)i;
        s.value = p->samples_us[i];
        st = ryz_results_add_sample(res, &s);
    }
    return st;
}

ryz_status ryz_bench_results(const ryz_bench_report *r, const char *cmdline, ryz_results *res) {
    ryz_status st = fill_meta(r, cmdline, &res->meta);
    for (size_t i = 0; st == RYZ_OK && i < r->n_rows; i++) {
        ryz_row_collective c = collective_row(&r->rows[i], r->world);
        st = ryz_results_add_collective(res, &c);
        for (int ip = 0; st == RYZ_OK && ip < 2; ip++)
            if (r->rows[i].place[ip].ran)
                st = add_samples(&r->rows[i], ip, r->world, res);
    }
    return st;
}

/* ---- JSON --------------------------------------------------------------- */

static void json_meta(FILE *f, const ryz_results_meta *m) {
    const char *keys[] = {"tool_version", "git_rev",    "time_utc",   "hosts",
                          "backends",     "device",     "cpu_model",  "blas",
                          "suite_name",   "suite_text", "kind"};
    const char *vals[] = {m->tool_version, m->git_rev,    m->time_utc,  m->hosts,
                          m->backends,     m->device,     m->cpu_model, m->blas,
                          m->suite_name,   m->suite_text, m->kind};
    fprintf(f, "  \"meta\": {\"schema_version\": %d", m->schema_version);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        fprintf(f, ", \"%s\": ", keys[i]);
        ryz_json_string(f, vals[i]);
    }
    fprintf(f, ", \"world_size\": %d, \"cores\": %d, \"oversubscribed\": %d},\n", m->world_size,
            m->cores, m->oversubscribed);
}

static void json_collective(FILE *f, const ryz_row_collective *c) {
    fprintf(f, "{\"case_name\": ");
    ryz_json_string(f, c->case_name);
    fprintf(f, ", \"tp\": %d, \"op\": ", c->tp);
    ryz_json_string(f, c->op);
    fprintf(f, ", \"bytes\": %llu, \"count\": %llu", (unsigned long long)c->bytes,
            (unsigned long long)c->count);
    const char *keys[] = {"p50_us", "p99_us", "mean_us", "algbw_gbs", "busbw_gbs"};
    const double vals[] = {c->p50_us, c->p99_us, c->mean_us, c->algbw_gbs, c->busbw_gbs};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        fprintf(f, ", \"%s\": ", keys[i]);
        ryz_json_number(f, vals[i]);
    }
    fputc('}', f);
}

static void json_place(FILE *f, const ryz_bench_result *p) {
    if (!p->ran) {
        fputs("null", f);
        return;
    }
    const char *keys[] = {"time_us", "algbw_gbs", "busbw_gbs", "p50_us", "p99_us"};
    const double vals[] = {p->time_us, p->algbw_gbs, p->busbw_gbs, p->p50_us, p->p99_us};
    fputc('{', f);
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        fprintf(f, "\"%s\": ", keys[i]);
        ryz_json_number(f, vals[i]);
        fputs(", ", f);
    }
    if (p->wrong < 0)
        fputs("\"wrong\": null, \"samples_us\": [", f);
    else
        fprintf(f, "\"wrong\": %lld, \"samples_us\": [", (long long)p->wrong);
    for (size_t i = 0; i < p->n_samples; i++) {
        if (i)
            fputs(", ", f);
        ryz_json_number(f, p->samples_us[i]);
    }
    fputs("]}", f);
}

static void json_row(FILE *f, const ryz_bench_row *row) {
    fprintf(f,
            "{\"op\": \"%s\", \"bytes\": %llu, \"count\": %llu, \"type\": \"float\", "
            "\"redop\": \"%s\", \"root\": %d,\n     \"out_of_place\": ",
            ryz_comm_op_name(row->op), (unsigned long long)row->bytes,
            (unsigned long long)row->count, bench_redop(row->op), row->root);
    json_place(f, &row->place[0]);
    fputs(",\n     \"in_place\": ", f);
    json_place(f, &row->place[1]);
    fputc('}', f);
}

/* The whole document. */
static void json_doc(FILE *f, const ryz_bench_report *r, const ryz_results *res) {
    fputs("{\n", f);
    json_meta(f, &res->meta);
    fputs("  \"avg_busbw_gbs\": ", f);
    ryz_json_number(f, r->avg_busbw_gbs);
    if (r->wrong < 0)
        fputs(",\n  \"wrong\": null,\n  \"collectives\": [", f);
    else
        fprintf(f, ",\n  \"wrong\": %lld,\n  \"collectives\": [", (long long)r->wrong);
    for (size_t i = 0; i < res->n_collectives; i++) {
        fputs(i ? ",\n    " : "\n    ", f);
        json_collective(f, &res->collectives[i]);
    }
    fputs("\n  ],\n  \"rows\": [", f);
    for (size_t i = 0; i < r->n_rows; i++) {
        fputs(i ? ",\n    " : "\n    ", f);
        json_row(f, &r->rows[i]);
    }
    fputs("\n  ]\n}\n", f);
}

ryz_status ryz_bench_write_json(const ryz_bench_report *r, const ryz_results *res,
                                const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return ryz_error(RYZ_EIO, "%s: cannot create %s", path, tmp);
    json_doc(f, r, res);
    int bad = ferror(f);
    bad |= fclose(f) != 0;
    if (!bad && rename(tmp, path) == 0)
        return RYZ_OK;
    remove(tmp);
    return ryz_error(RYZ_EIO, "%s: write failed", path);
}
