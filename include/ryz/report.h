/* report: a results file for people (DESIGN section 5): the per-case
 * tables of `ryz show`, the gnuplot plots of `ryz plot` and the Markdown
 * report of `ryz report`. Everything here reads a ryz_results; nothing
 * changes it. */
#ifndef RYZ_REPORT_H
#define RYZ_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "ryz/core.h"
#include "ryz/results.h"
#include "ryz/suite.h"

#define RYZ_REPORT_MAX_TP RYZ_SUITE_MAX_TP
#define RYZ_PLOT_MAX_FILES 24
#define RYZ_PLOT_NAME_LEN 32
#define RYZ_PATH_LEN 4096

/* ---- queries over the tables (src/report/query.c) ---- */

/* The next case name after the `*pos`-th row of the virtual sequence
 * correctness, timing, memory, collectives that was not seen before;
 * start with *pos = 0. Returns NULL when there is none. Names point into r. */
const char *ryz_report_next_case(const ryz_results *r, size_t *pos);
/* The distinct TP degrees of a case in /correctness and /timing, sorted
 * ascending, at most `cap` of them; returns how many. */
int ryz_report_case_tps(const ryz_results *r, const char *name, int *tps, int cap);
/* The /correctness row of (case, tp), or NULL. */
const ryz_row_correctness *ryz_report_correctness(const ryz_results *r, const char *name, int tp);
/* The /timing row of (case, tp, phase), or NULL. */
const ryz_row_timing *ryz_report_timing(const ryz_results *r, const char *name, int tp,
                                        const char *phase);
/* The all-reduce a decode step issues most often for (case, tp): the
 * /collectives all_reduce row with the most calls, or NULL. */
const ryz_row_collective *ryz_report_main_all_reduce(const ryz_results *r, const char *name,
                                                     int tp);
/* The suite a results file recorded (meta.suite_text, read with
 * ryz_suite_parse_recorded) into *out: 1; or 0 with *out zeroed when the
 * file kept none, is `ryz bench`'s (its text is not a suite's) or the text
 * does not parse (the error cleared: the file is still readable). Free
 * *out with ryz_suite_free. */
int ryz_report_suite(const ryz_results *r, ryz_suite *out);
/* Describes case `name` as the suite ran it: from the suite file kept in
 * meta.suite_text when it parses and names the case, else a minimal case
 * (model "(model not recorded)", batch from /correctness, prompt_len and
 * new_tokens 0). out->prompt is always NULL (nothing to free). */
void ryz_report_case_info(const ryz_results *r, const char *name, ryz_suite_case *out);
/* One line naming the suite and the machine for plot titles and headings:
 * "suite ci | AMD EPYC, 2 cores | 4 ranks x 1 thread[ | OVERSUBSCRIBED...]". */
void ryz_report_machine_line(const ryz_results *r, char *buf, size_t cap);
/* A size in bytes for people: "256 B", "1.1 KiB", "2.0 MiB", "1.5 GiB". */
void ryz_report_format_bytes(double bytes, char *buf, size_t cap);
/* The plain-language summary of (case, tp) in one sentence, e.g. "TP=2:
 * 1.86x decode speedup, 93% efficiency; all-reduce of 1.1 KiB p50 41 us; 9%
 * of decode time in communication; outputs agree (max abs error 2.1e-06)".
 * Oversubscribed runs say efficiency is not meaningful; clauses without
 * data are left out. */
void ryz_report_summary(const ryz_results *r, const char *name, int tp, char *buf, size_t cap);

/* ---- `ryz show` (src/report/show.c) ---- */

/* Prints the root attributes, one table per case as `ryz suite` printed it,
 * the acceptance checks (where ryz_checks_listed says, as the suite did)
 * and the verdict line as it printed them (from /acceptance; a suite file
 * before schema 5 says they were not kept), then the /collectives and
 * /memory tables and the /samples row count. With `raw`, every table is
 * printed in full instead. ENOMEM when the text cannot be buffered. */
ryz_status ryz_report_show(const ryz_results *r, int raw, FILE *out);

/* ---- plots (src/report/plot.c, src/report/gnuplot.c) ---- */

/* What ryz_plot_render wrote into `dir`: the image names (no directory),
 * e.g. "speedup.png", "speedup.svg", in render order. */
typedef struct {
    char dir[RYZ_PATH_LEN];
    char names[RYZ_PLOT_MAX_FILES][RYZ_PLOT_NAME_LEN];
    int n;
} ryz_plot_files;

/* The gnuplot executable: $RYZ_GNUPLOT when set, else "gnuplot" found on
 * $PATH. EIO "gnuplot not found ... (install gnuplot-nox)" otherwise. */
ryz_status ryz_plot_find_gnuplot(char *buf, size_t cap);
/* The template folder: $RYZ_PLOTS_DIR when set, else <dir of the
 * executable>/../plots, else ./plots (the first that holds speedup.gp). EIO
 * naming the places tried. */
ryz_status ryz_plot_templates_dir(char *buf, size_t cap);
/* Escapes `s` for a gnuplot single-quoted string (' becomes ''; newlines
 * become spaces) into buf. EINVAL when it does not fit. */
ryz_status ryz_plot_quote(const char *s, char *buf, size_t cap);
/* Creates `dir` and its missing parents (mode 0777 before umask). EIO
 * naming the directory. */
ryz_status ryz_report_mkdir(const char *dir);
/* `file` without a trailing ".h5", plus `suffix` ("-plots"). EINVAL when it
 * does not fit. */
ryz_status ryz_report_default_dir(const char *file, const char *suffix, char *buf, size_t cap);
/* Writes each plot that has data as DIR/NAME.dat and renders it through
 * plots/NAME.gp to DIR/NAME.png and DIR/NAME.svg (dir is created). Plots:
 * speedup, efficiency, collectives (latency), busbw, memory, error. Fills
 * *out (out->n = 0 first). EIO when gnuplot is missing, a file cannot be
 * written, or gnuplot fails (its stderr in the message). */
ryz_status ryz_plot_render(const ryz_results *r, const char *dir, ryz_plot_files *out);

/* ---- command lines (src/report/args.c) ---- */

/* Parses `ryz CMD FILE.h5 [-o DIR] [--help]` (argv[0] is CMD): *dir NULL
 * when -o is absent. EINVAL naming CMD and the problem. */
ryz_status ryz_report_parse_args(const char *cmd, int argc, char **argv, const char **file,
                                 const char **dir, int *help);

/* ---- Markdown (src/report/markdown.c) ---- */

/* Writes the scaling report of r as Markdown to `out`: the verdict (from
 * /acceptance: PASS, or FAIL with each failed check, before anything else
 * but the title), setup, summary per case (a TP with a failed check says
 * which), correctness, acceptance, timing, memory and collectives tables,
 * the plots of `plots` (may be NULL or empty) as relative links, and the
 * suite file. EIO when writing fails, ENOMEM. */
ryz_status ryz_report_markdown(const ryz_results *r, const ryz_plot_files *plots, FILE *out);

#endif
