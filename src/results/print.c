/* results/print.c: results as text (what `ryz show` prints): the root
 * attributes as "key: value" lines, then every table as aligned columns,
 * driven by the field tables of schema.h. */
#include "schema.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#define CELL_MAX (RYZ_NOTE_LEN + 16) /* longest formatted cell: an acceptance note */
#define MAX_FIELDS 24 /* at least the most fields of any row (collectives: 17) */

/* Formats a size in bytes: "N", "N (x.x KiB)" or "N (x.x MiB)". */
static void format_bytes(uint64_t b, char *cell, size_t size) {
    if (b >= (1u << 20))
        snprintf(cell, size, "%" PRIu64 " (%.1f MiB)", b, (double)b / (1u << 20));
    else if (b >= 1024)
        snprintf(cell, size, "%" PRIu64 " (%.1f KiB)", b, (double)b / 1024);
    else
        snprintf(cell, size, "%" PRIu64, b);
}

/* Formats field `f` of the struct at `base` into `cell`. String fields are
 * char arrays (rows), printed up to their first NUL or their size. */
static void format_cell(const ryz_field *f, const void *base, char *cell, size_t size) {
    const char *p = (const char *)base + f->offset;
    switch (f->type) {
    case RYZ_FIELD_STR:
        snprintf(cell, size, "%.*s", (int)f->size, p);
        break;
    case RYZ_FIELD_I32:
        snprintf(cell, size, "%" PRId32, *(const int32_t *)p);
        break;
    case RYZ_FIELD_F64:
        snprintf(cell, size, "%.6g", *(const double *)p);
        break;
    case RYZ_FIELD_U64:
        if (f->flags & RYZ_FIELD_BYTES)
            format_bytes(*(const uint64_t *)p, cell, size);
        else
            snprintf(cell, size, "%" PRIu64, *(const uint64_t *)p);
        break;
    }
}

/* Prints "key: value" for every root attribute; a multi-line string value
 * goes on the following lines, indented by four spaces. */
static void print_meta(const ryz_results_meta *m, FILE *out) {
    for (size_t i = 0; i < ryz_results_n_meta_fields; i++) {
        const ryz_field *f = &ryz_results_meta_fields[i];
        char cell[CELL_MAX];
        if (f->type != RYZ_FIELD_STR) {
            format_cell(f, m, cell, sizeof cell);
            fprintf(out, "%s: %s\n", f->name, cell);
            continue;
        }
        const char *s = *(char *const *)((const char *)m + f->offset);
        if (!s && f->since > m->schema_version) {
            fprintf(out, "%s: (not recorded: added in schema %d)\n", f->name, f->since);
            continue;
        }
        if (!s)
            s = "";
        if (!strchr(s, '\n')) {
            fprintf(out, "%s: %s\n", f->name, s);
            continue;
        }
        fprintf(out, "%s:\n", f->name);
        for (const char *line = s; *line;) {
            size_t len = strcspn(line, "\n");
            fprintf(out, "    %.*s\n", (int)len, line);
            line += len + (line[len] == '\n');
        }
    }
}

/* Prints one line of a table: each cell padded to its column's width,
 * strings left-aligned, numbers right-aligned. `row` NULL prints the header. */
static void print_line(const ryz_table_desc *t, const void *row, const int *width, FILE *out) {
    char cell[CELL_MAX];
    for (size_t j = 0; j < t->nfields; j++) {
        const ryz_field *f = &t->fields[j];
        if (row)
            format_cell(f, row, cell, sizeof cell);
        else
            snprintf(cell, sizeof cell, "%s", f->name);
        int w = f->type == RYZ_FIELD_STR ? -width[j] : width[j];
        fprintf(out, "  %*s", w, cell);
    }
    fputc('\n', out);
}

/* Prints "/NAME: N rows", then (when there are rows) the column header and
 * every row with columns as wide as their widest cell. */
static void print_table(const ryz_results *r, const ryz_table_desc *t, FILE *out) {
    RYZ_ASSERT(t->nfields <= MAX_FIELDS);
    const char *rows = ryz_table_rows(r, t);
    size_t n = ryz_table_count(r, t);
    int width[MAX_FIELDS];
    char cell[CELL_MAX];
    fprintf(out, "\n/%s: %zu row%s", t->name, n, n == 1 ? "" : "s");
    if (n == 0 && t->since > r->meta.schema_version)
        fprintf(out, " (not recorded: added in schema %d)", t->since);
    fputc('\n', out);
    if (n == 0)
        return;
    for (size_t j = 0; j < t->nfields; j++)
        width[j] = (int)strlen(t->fields[j].name);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < t->nfields; j++) {
            format_cell(&t->fields[j], rows + i * t->row_size, cell, sizeof cell);
            int len = (int)strlen(cell);
            if (len > width[j])
                width[j] = len;
        }
    print_line(t, NULL, width, out);
    for (size_t i = 0; i < n; i++)
        print_line(t, rows + i * t->row_size, width, out);
}

void ryz_results_print(const ryz_results *r, FILE *out) {
    print_meta(&r->meta, out);
    for (size_t i = 0; i < RYZ_RESULTS_NTABLES; i++)
        print_table(r, &ryz_results_tables[i], out);
}

void ryz_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

void ryz_json_number(FILE *f, double x) {
    if (isfinite(x))
        fprintf(f, "%.9g", x);
    else
        fputs("null", f);
}
