/* report/internal.h (private to src/report): the pieces the plot and
 * Markdown code share that are not part of the public report API. */
#ifndef RYZ_REPORT_INTERNAL_H
#define RYZ_REPORT_INTERNAL_H

#include "ryz/report.h"

/* Runs `gnuplot -e SETUP SCRIPT` without a shell, stdin from /dev/null.
 * On success gnuplot's warnings (its stderr) are passed on to our stderr;
 * on failure EIO with its exit status and stderr (truncated) in the
 * message. */
ryz_status ryz_gnuplot_run(const char *gnuplot, const char *script, const char *setup);

#endif
