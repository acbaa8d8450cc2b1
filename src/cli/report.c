/* ryz report FILE.h5 [-o DIR]: the Markdown scaling report with its plots. */
#include <stdio.h>
#include <string.h>

#include "ryz/cli.h"
#include "ryz/report.h"
#include "ryz/results.h"

static void report_usage(FILE *f) {
    fprintf(f, "usage: ryz report FILE.h5 [-o DIR]\n"
               "  Renders the plots of `ryz plot` into DIR and writes DIR/report.md: setup,\n"
               "  a plain-language summary per case, the correctness, timing, memory and\n"
               "  collectives tables, and links to the plots. DIR defaults to FILE without\n"
               "  .h5 plus \"-report\". Without gnuplot the report is written without plots\n"
               "  (a warning says so). Exit: 0 ok, 2 bad file, unwritable DIR or gnuplot\n"
               "  failing.\n");
}

/* Renders the plots into dir; without gnuplot, warns and leaves *plots
 * empty (the report is still useful). */
static ryz_status report_plots(const ryz_results *r, const char *dir, ryz_plot_files *plots) {
    char gnuplot[RYZ_PATH_LEN];
    memset(plots, 0, sizeof *plots);
    if (ryz_plot_find_gnuplot(gnuplot, sizeof gnuplot) != RYZ_OK) {
        fprintf(stderr, "ryz: warning: %s; writing the report without plots\n", ryz_last_error());
        ryz_error_clear();
        return RYZ_OK;
    }
    return ryz_plot_render(r, dir, plots);
}

/* Writes DIR/report.md; its path goes to `path`. */
static ryz_status report_write(const ryz_results *r, const char *dir, const ryz_plot_files *plots,
                               char *path, size_t cap) {
    if ((size_t)snprintf(path, cap, "%s/report.md", dir) >= cap)
        return ryz_error(RYZ_EINVAL, "report: directory name too long");
    FILE *f = fopen(path, "w");
    if (!f)
        return ryz_error(RYZ_EIO, "report: cannot write %s", path);
    ryz_status st = ryz_report_markdown(r, plots, f);
    if (fclose(f) != 0 && st == RYZ_OK)
        st = ryz_error(RYZ_EIO, "report: error writing %s", path);
    return st;
}

int ryz_cmd_report(int argc, char **argv) {
    const char *file, *dir;
    char dirbuf[RYZ_PATH_LEN], md[RYZ_PATH_LEN];
    int help;
    ryz_results res;
    ryz_plot_files plots;
    ryz_results_init(&res);
    ryz_status st = ryz_report_parse_args("report", argc, argv, &file, &dir, &help);
    if (st == RYZ_OK && help) {
        report_usage(stdout);
        return 0;
    }
    if (st == RYZ_OK && !dir)
        st = ryz_report_default_dir(file, "-report", dirbuf, sizeof dirbuf);
    if (st == RYZ_OK && !dir)
        dir = dirbuf;
    if (st == RYZ_OK)
        st = ryz_results_read(file, &res);
    if (st == RYZ_OK)
        st = ryz_report_mkdir(dir);
    if (st == RYZ_OK)
        st = report_plots(&res, dir, &plots);
    if (st == RYZ_OK)
        st = report_write(&res, dir, &plots, md, sizeof md);
    for (int i = 0; st == RYZ_OK && i < plots.n; i++)
        printf("%s/%s\n", dir, plots.names[i]);
    if (st == RYZ_OK)
        printf("%s\n", md);
    ryz_results_free(&res);
    return st == RYZ_OK ? 0 : ryz_cli_fail(st, NULL);
}
