/* report/show.c: what `ryz show` prints. The root attributes and the raw
 * tables come from ryz_results_print (rendered once into memory and cut
 * into its parts: the attributes, then one "/NAME: N rows" section per
 * table); the per-case tables from ryz_suite_print_row and the acceptance
 * checks from ryz_checks_print, as the suite printed them. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ryz/report.h"

/* Prints the part of a ryz_results_print text: the root attributes when
 * `table` is NULL, else the section "/TABLE: ..." up to the next section. */
static void print_part(const char *text, const char *table, FILE *out) {
    char head[RYZ_NAME_LEN + 4];
    const char *start = text;
    if (table) {
        snprintf(head, sizeof head, "\n\n/%s:", table);
        start = strstr(text, head);
        if (!start)
            return;
        start += 1; /* keep the blank line before the section */
    }
    const char *end = strstr(table ? start + 1 : start, "\n\n/");
    size_t len = end ? (size_t)(end - start) + 1 : strlen(start);
    fwrite(start, 1, len, out);
}

/* Prints one case as `ryz suite` did: header, baseline, each checked TP. */
static void print_case(const ryz_results *r, const char *name, FILE *out) {
    int tps[RYZ_REPORT_MAX_TP];
    int n = ryz_report_case_tps(r, name, tps, RYZ_REPORT_MAX_TP);
    const ryz_row_correctness *first = NULL;
    for (int i = 0; i < n && !first; i++)
        first = ryz_report_correctness(r, name, tps[i]);
    if (!first)
        return; /* not a suite case (e.g. `ryz comm` rows) */
    ryz_suite_case c;
    ryz_report_case_info(r, name, &c);
    ryz_suite_print_case_header(&c, first->positions, out);
    ryz_suite_print_row(r, name, 0, out);
    for (int i = 0; i < n; i++)
        ryz_suite_print_row(r, name, tps[i], out);
}

/* Prints the acceptance checks and the verdict as `ryz suite` printed
 * them: the list where ryz_checks_listed says (the recorded suite's
 * [acceptance], or a failed check), the verdict line always; for a suite
 * file before schema 5, that they were not kept, and for an interrupted
 * run, that they were not judged. Files of `ryz bench` and `ryz comm` have
 * none and print nothing. */
static ryz_status print_acceptance(const ryz_results *r, FILE *out) {
    ryz_checks c;
    ryz_suite s;
    if (strcmp(ryz_results_kind(&r->meta), RYZ_KIND_SUITE))
        return RYZ_OK;
    if (r->meta.schema_version < 5) {
        fprintf(out, "\nacceptance: not recorded (a schema %d file; schema 5 keeps the checks "
                     "and the verdict)\n", (int)r->meta.schema_version);
        return RYZ_OK;
    }
    ryz_status st = ryz_checks_from_results(r, &c);
    if (st == RYZ_OK && c.n == 0 && r->meta.interrupted)
        fprintf(out, "\nacceptance: not judged (the run was interrupted)\n");
    if (st != RYZ_OK || c.n == 0)
        return st;
    int known = ryz_report_suite(r, &s);
    if (ryz_checks_listed(known ? &s : NULL, &c, 0))
        ryz_checks_print(&c, out);
    ryz_checks_print_verdict(&c, r->meta.suite_name ? r->meta.suite_name : "", out);
    ryz_suite_free(&s);
    ryz_checks_free(&c);
    return RYZ_OK;
}

ryz_status ryz_report_show(const ryz_results *r, int raw, FILE *out) {
    char *text = NULL;
    size_t size = 0;
    FILE *mem = open_memstream(&text, &size);
    if (!mem)
        return ryz_error(RYZ_ENOMEM, "show: out of memory");
    ryz_results_print(r, mem);
    if (fclose(mem) != 0 || !text) {
        free(text);
        return ryz_error(RYZ_ENOMEM, "show: out of memory formatting the tables");
    }
    if (raw) {
        fputs(text, out);
        free(text);
        return RYZ_OK;
    }
    print_part(text, NULL, out);
    size_t pos = 0;
    for (const char *name; (name = ryz_report_next_case(r, &pos)) != NULL;)
        print_case(r, name, out);
    ryz_status st = print_acceptance(r, out);
    if (st != RYZ_OK) {
        free(text);
        return st;
    }
    print_part(text, "collectives", out);
    print_part(text, "memory", out);
    fprintf(out, "\n/samples: %zu rows (per-iteration times; `ryz show --raw` prints them)\n",
            r->n_samples);
    free(text);
    return RYZ_OK;
}
