/* ryz plot FILE.h5 [-o DIR]: PNG and SVG plots through gnuplot. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ryz/cli.h"
#include "ryz/report.h"
#include "ryz/results.h"

static void plot_usage(FILE *f) {
    fprintf(f, "usage: ryz plot FILE.h5 [-o DIR]\n"
               "  Writes the plot data (DIR/*.dat) and renders it with the gnuplot templates\n"
               "  of plots/ to PNG and SVG: speedup and efficiency against TP, logit error\n"
               "  against TP, memory per rank, collective latency and bus bandwidth against\n"
               "  message size. DIR defaults to FILE without .h5 plus \"-plots\". Prints the\n"
               "  files written. Needs gnuplot (gnuplot-nox); RYZ_PLOTS_DIR overrides where\n"
               "  the templates are. Exit: 0 ok, 2 bad file, gnuplot missing or failing.\n");
}

int ryz_cmd_plot(int argc, char **argv) {
    const char *file, *dir;
    char dirbuf[RYZ_PATH_LEN];
    int help;
    ryz_results res;
    ryz_plot_files files;
    ryz_results_init(&res);
    ryz_status st = ryz_report_parse_args("plot", argc, argv, &file, &dir, &help);
    if (st == RYZ_OK && help) {
        plot_usage(stdout);
        return 0;
    }
    if (st == RYZ_OK && !dir)
        st = ryz_report_default_dir(file, "-plots", dirbuf, sizeof dirbuf);
    if (st == RYZ_OK && !dir)
        dir = dirbuf;
    if (st == RYZ_OK)
        st = ryz_results_read(file, &res);
    int existed = st == RYZ_OK && access(dir, F_OK) == 0;
    if (st == RYZ_OK)
        st = ryz_plot_render(&res, dir, &files);
    for (int i = 0; st == RYZ_OK && i < files.n; i++)
        printf("%s/%s\n", dir, files.names[i]);
    if (st == RYZ_OK && files.n == 0) { /* say so, and leave no empty folder behind */
        if (!existed) rmdir(dir);
        fprintf(stderr, "ryz: nothing to plot in %s: no TP sweep, no collective sizes and no "
                "memory rows (a `ryz bench` file is one TP's table: `ryz show` prints it)\n",
                file);
    }
    ryz_results_free(&res);
    return st == RYZ_OK ? 0 : ryz_cli_fail(st, NULL);
}
