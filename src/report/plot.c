/* report/plot.c: the data files behind the plots and their rendering.
 * Each data set is written once as whitespace-separated columns
 * (DIR/NAME.dat, gnuplot data blocks separated by two blank lines, the
 * first line of a block its column titles); each plot that reads it is
 * rendered to PNG and SVG by plots/PLOT.gp. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define ERROR_FLOOR 1e-12 /* exact zeros on the log-scale error plot */
#define SETUP_MAX (4 * RYZ_PATH_LEN)

/* What a data writer tells the templates besides the file. */
typedef struct {
    int n;        /* data blocks (series); 0: nothing to plot */
    char unit[8]; /* y unit where the writer chose it ("KiB", "MiB") */
} plot_vars;

/* A data set: the writer of DIR/NAME.dat and the plots that read it. */
typedef struct {
    const char *name;
    void (*write)(const ryz_results *r, FILE *f, plot_vars *v);
    const char *plots[3]; /* template names, NULL-terminated */
} plot_data;

/* Writes a case name as a double-quoted gnuplot data field with `suffix`
 * (double quotes in the name become single ones). */
static void put_label(FILE *f, const char *name, const char *suffix) {
    fputs(" \"", f);
    for (const char *p = name; *p; p++)
        fputc(*p == '"' ? '\'' : *p, f);
    fprintf(f, "%s\"", suffix);
}

/* Starts data block number v->n: two blank lines before all but the first. */
static void begin_block(FILE *f, plot_vars *v) {
    if (v->n++ > 0)
        fputs("\n\n", f);
}

/* scaling.dat: per case of two TP degrees or more (one is a point at 1,
 * a `ryz bench` file's), tp and decode/prefill speedup and efficiency. */
static void write_scaling(const ryz_results *r, FILE *f, plot_vars *v) {
    size_t pos = 0;
    for (const char *name; (name = ryz_report_next_case(r, &pos)) != NULL;) {
        int tps[RYZ_REPORT_MAX_TP], n = ryz_report_case_tps(r, name, tps, RYZ_REPORT_MAX_TP);
        if (n < 2 || !ryz_report_timing(r, name, tps[0], "decode"))
            continue;
        begin_block(f, v);
        fprintf(f, "# case %s: tp decode_speedup prefill_speedup decode_eff prefill_eff\ntp", name);
        for (int k = 0; k < 4; k++)
            put_label(f, name, k % 2 ? " prefill" : " decode");
        fputc('\n', f);
        for (int i = 0; i < n; i++) {
            const ryz_row_timing *d = ryz_report_timing(r, name, tps[i], "decode");
            const ryz_row_timing *p = ryz_report_timing(r, name, tps[i], "prefill");
            if (!d || !p)
                continue;
            fprintf(f, "%d %.6g %.6g %.6g %.6g\n", tps[i], d->speedup, p->speedup, d->efficiency,
                    p->efficiency);
        }
    }
}

/* error.dat: per case, tp and max_abs (zeros raised to ERROR_FLOOR). */
static void write_error(const ryz_results *r, FILE *f, plot_vars *v) {
    size_t pos = 0;
    for (const char *name; (name = ryz_report_next_case(r, &pos)) != NULL;) {
        int tps[RYZ_REPORT_MAX_TP], n = ryz_report_case_tps(r, name, tps, RYZ_REPORT_MAX_TP);
        int started = 0;
        for (int i = 0; i < n; i++) {
            const ryz_row_correctness *c = ryz_report_correctness(r, name, tps[i]);
            if (!c)
                continue;
            if (!started++) {
                begin_block(f, v);
                fprintf(f, "# case %s: tp max_abs (0 written as %g)\ntp", name, ERROR_FLOOR);
                put_label(f, name, "");
                fputc('\n', f);
            }
            fprintf(f, "%d %.6g\n", tps[i], c->max_abs > ERROR_FLOOR ? c->max_abs : ERROR_FLOOR);
        }
    }
}

/* memory.dat: one row per (case, tp, rank): weights, kv_cache, scratch in
 * KiB or MiB (MiB when any rank holds 10 MiB or more). */
static void write_memory(const ryz_results *r, FILE *f, plot_vars *v) {
    double big = 0;
    for (size_t i = 0; i < r->n_memory; i++) {
        const ryz_row_memory *m = &r->memory[i];
        double b = (double)(m->weights + m->kv_cache + m->scratch);
        big = b > big ? b : big;
    }
    int mib = big >= 10.0 * (1 << 20);
    double scale = mib ? 1.0 / (1 << 20) : 1.0 / 1024;
    snprintf(v->unit, sizeof v->unit, "%s", mib ? "MiB" : "KiB");
    if (r->n_memory == 0)
        return;
    begin_block(f, v);
    fprintf(f, "# one bar per (case, tp, rank), %s\nlabel weights kv_cache scratch\n", v->unit);
    for (size_t i = 0; i < r->n_memory; i++) {
        const ryz_row_memory *m = &r->memory[i];
        char suffix[48];
        snprintf(suffix, sizeof suffix, " tp=%d r%d", (int)m->tp, (int)m->rank);
        put_label(f, m->case_name, suffix);
        fprintf(f, " %.6g %.6g %.6g\n", (double)m->weights * scale, (double)m->kv_cache * scale,
                (double)m->scratch * scale);
    }
}

/* The /collectives row of (op, tp) with the smallest size above `above`
 * (the one with most calls among equal sizes, over all cases), or NULL. */
static const ryz_row_collective *next_size(const ryz_results *r, const ryz_row_collective *key,
                                           const ryz_row_collective *above) {
    const ryz_row_collective *best = NULL;
    for (size_t i = 0; i < r->n_collectives; i++) {
        const ryz_row_collective *c = &r->collectives[i];
        if (c->tp != key->tp || strcmp(c->op, key->op) || (above && c->bytes <= above->bytes))
            continue;
        if (!best || c->bytes < best->bytes || (c->bytes == best->bytes && c->count > best->count))
            best = c;
    }
    return best;
}

/* Whether (op, tp) of row i appeared in an earlier row. */
static int seen_before(const ryz_results *r, size_t i) {
    for (size_t j = 0; j < i; j++)
        if (r->collectives[j].tp == r->collectives[i].tp &&
            !strcmp(r->collectives[j].op, r->collectives[i].op))
            return 1;
    return 0;
}

/* collectives.dat: per (op, tp), bytes against p50, p99 and bus bandwidth. */
static void write_collectives(const ryz_results *r, FILE *f, plot_vars *v) {
    for (size_t i = 0; i < r->n_collectives; i++) {
        const ryz_row_collective *key = &r->collectives[i];
        if (seen_before(r, i))
            continue;
        char series[48];
        snprintf(series, sizeof series, " tp=%d", (int)key->tp);
        begin_block(f, v);
        fprintf(f, "# %s tp=%d: bytes p50_us p99_us busbw_gbs\nbytes", key->op, (int)key->tp);
        char p50[64], p99[64];
        snprintf(p50, sizeof p50, "%s p50", series);
        snprintf(p99, sizeof p99, "%s p99", series);
        put_label(f, key->op, p50), put_label(f, key->op, p99), put_label(f, key->op, series);
        fputc('\n', f);
        for (const ryz_row_collective *c = next_size(r, key, NULL); c; c = next_size(r, key, c))
            fprintf(f, "%llu %.6g %.6g %.6g\n", (unsigned long long)c->bytes, c->p50_us, c->p99_us,
                    c->busbw_gbs);
    }
}

static const plot_data DATASETS[] = {
    {"scaling", write_scaling, {"speedup", "efficiency", NULL}},
    {"error", write_error, {"error", NULL}},
    {"memory", write_memory, {"memory", NULL}},
    {"collectives", write_collectives, {"collectives", "busbw", NULL}},
};

/* Records `name` (e.g. "speedup.png") as written into dir. */
static void add_file(ryz_plot_files *out, const char *name) {
    if (out->n == RYZ_PLOT_MAX_FILES)
        return;
    snprintf(out->names[out->n++], RYZ_PLOT_NAME_LEN, "%s", name);
}

/* Writes DIR/NAME.dat with the writer of `d`; *v receives its variables. */
static ryz_status write_data(const ryz_results *r, const char *dir, const plot_data *d,
                             plot_vars *v) {
    char path[RYZ_PATH_LEN];
    memset(v, 0, sizeof *v);
    if ((size_t)snprintf(path, sizeof path, "%s/%s.dat", dir, d->name) >= sizeof path)
        return ryz_error(RYZ_EIO, "plot: path too long in %s", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return ryz_error(RYZ_EIO, "plot: cannot write %s", path);
    d->write(r, f, v);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return ryz_error(RYZ_EIO, "plot: error writing %s", path);
    return RYZ_OK;
}

/* Appends `name='value';` (value quoted for gnuplot) to setup[*len..]. */
static ryz_status put_var(char *setup, size_t *len, const char *name, const char *value) {
    char quoted[2 * RYZ_PATH_LEN];
    ryz_status st = ryz_plot_quote(value, quoted, sizeof quoted);
    if (st != RYZ_OK)
        return st;
    int n = snprintf(setup + *len, SETUP_MAX - *len, "%s='%s'; ", name, quoted);
    if (n < 0 || (size_t)n >= SETUP_MAX - *len)
        return ryz_error(RYZ_EINVAL, "plot: gnuplot settings too long (%s)", name);
    *len += (size_t)n;
    return RYZ_OK;
}

/* The paths and settings one rendering passes to gnuplot. */
typedef struct {
    const char *gnuplot, *templates, *dir, *title;
} plot_env;

/* Renders template `plot` over DIR/DATA.dat to DIR/PLOT.EXT, EXT "png" or
 * "svg"; records the image in *out. */
static ryz_status render_one(const plot_env *e, const char *data, const plot_vars *v,
                             const char *plot, const char *ext, ryz_plot_files *out) {
    char setup[SETUP_MAX], datafile[RYZ_PATH_LEN], outfile[RYZ_PATH_LEN], script[RYZ_PATH_LEN];
    size_t len = (size_t)snprintf(setup, sizeof setup, "n=%d; zero=%g; ", v->n, ERROR_FLOOR);
    if ((size_t)snprintf(datafile, sizeof datafile, "%s/%s.dat", e->dir, data) >= sizeof datafile ||
        (size_t)snprintf(outfile, sizeof outfile, "%s/%s.%s", e->dir, plot, ext) >=
            sizeof outfile ||
        (size_t)snprintf(script, sizeof script, "%s/%s.gp", e->templates, plot) >= sizeof script)
        return ryz_error(RYZ_EINVAL, "plot: path too long in %s", e->dir);
    const char *vars[][2] = {{"datafile", datafile},     {"outfile", outfile},
                             {"title", e->title},        {"term", ext},
                             {"plotsdir", e->templates}, {"unit", v->unit}};
    ryz_status st = RYZ_OK;
    for (size_t i = 0; st == RYZ_OK && i < sizeof vars / sizeof vars[0]; i++)
        st = put_var(setup, &len, vars[i][0], vars[i][1]);
    if (st == RYZ_OK)
        st = ryz_gnuplot_run(e->gnuplot, script, setup);
    if (st == RYZ_OK)
        add_file(out, outfile + strlen(e->dir) + 1);
    return st;
}

/* Writes data set `d` and renders each of its plots as PNG and SVG; a data
 * set without rows is removed again and renders nothing. */
static ryz_status render_data(const ryz_results *r, const plot_env *e, const plot_data *d,
                              ryz_plot_files *out) {
    plot_vars v;
    char name[RYZ_PLOT_NAME_LEN];
    ryz_status st = write_data(r, e->dir, d, &v);
    if (st != RYZ_OK)
        return st;
    snprintf(name, sizeof name, "%s.dat", d->name);
    if (v.n == 0) { /* nothing to plot: leave no empty file behind */
        char path[RYZ_PATH_LEN];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", e->dir, name) < sizeof path)
            unlink(path);
        return RYZ_OK;
    }
    add_file(out, name);
    for (int i = 0; st == RYZ_OK && d->plots[i]; i++) {
        st = render_one(e, d->name, &v, d->plots[i], "png", out);
        if (st == RYZ_OK)
            st = render_one(e, d->name, &v, d->plots[i], "svg", out);
    }
    return st;
}

ryz_status ryz_plot_render(const ryz_results *r, const char *dir, ryz_plot_files *out) {
    char gnuplot[RYZ_PATH_LEN], templates[RYZ_PATH_LEN], title[512];
    memset(out, 0, sizeof *out);
    if ((size_t)snprintf(out->dir, sizeof out->dir, "%s", dir) >= sizeof out->dir)
        return ryz_error(RYZ_EINVAL, "plot: directory name too long");
    ryz_status st = ryz_plot_find_gnuplot(gnuplot, sizeof gnuplot);
    if (st == RYZ_OK)
        st = ryz_plot_templates_dir(templates, sizeof templates);
    if (st == RYZ_OK)
        st = ryz_report_mkdir(dir);
    if (st != RYZ_OK)
        return st;
    ryz_report_machine_line(r, title, sizeof title);
    plot_env e = {gnuplot, templates, dir, title};
    for (size_t i = 0; st == RYZ_OK && i < sizeof DATASETS / sizeof DATASETS[0]; i++)
        st = render_data(r, &e, &DATASETS[i], out);
    return st;
}
