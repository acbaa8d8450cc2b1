/* results/schema.h (private to src/results): the field description tables
 * that drive the generic table code, the HDF5 writer/reader and the printer.
 * Each table and the root attributes are described once, in table.c. */
#ifndef RYZ_RESULTS_SCHEMA_H
#define RYZ_RESULTS_SCHEMA_H

#include <stddef.h>

#include "ryz/results.h"

typedef enum {
    RYZ_FIELD_STR, /* char[size], NUL-terminated (rows); char * (meta) */
    RYZ_FIELD_I32, /* int32_t */
    RYZ_FIELD_U64, /* uint64_t */
    RYZ_FIELD_F64, /* double */
} ryz_field_type;

#define RYZ_FIELD_BYTES 1u /* print hint: a size in bytes, also shown as KiB/MiB */

/* One member of a row struct (or of ryz_results_meta). */
typedef struct {
    const char *name; /* the C field name, also the HDF5 member/attribute name */
    size_t offset;    /* offsetof in the struct */
    ryz_field_type type;
    size_t size;    /* sizeof the field (string array length for rows) */
    unsigned flags; /* RYZ_FIELD_* print hints */
    int since;      /* schema version that added it (0: the first); files of an
                       older version lack it and read it as 0 */
} ryz_field;

/* One table of ryz_results: where its array, count and capacity live. */
typedef struct {
    const char *name;                /* "correctness"; the dataset is "/correctness" */
    size_t row_size;                 /* sizeof one row */
    size_t rows_off, n_off, cap_off; /* offsetof in ryz_results */
    const ryz_field *fields;
    size_t nfields;
    int since; /* schema version that added the table (0: the first); files of an
                  older version lack it and read it as empty */
} ryz_table_desc;

/* Indexes of ryz_results_tables. */
enum {
    RYZ_TABLE_CORRECTNESS,
    RYZ_TABLE_TIMING,
    RYZ_TABLE_COLLECTIVES,
    RYZ_TABLE_MEMORY,
    RYZ_TABLE_SAMPLES,
    RYZ_TABLE_ACCEPTANCE,
    RYZ_RESULTS_NTABLES
};

/* The six tables, in file and print order. */
extern const ryz_table_desc ryz_results_tables[RYZ_RESULTS_NTABLES];
/* The root attributes; schema_version first. STR fields are char *. */
extern const ryz_field ryz_results_meta_fields[];
extern const size_t ryz_results_n_meta_fields;

/* The rows array of table `t` in `r` (NULL when empty). */
void *ryz_table_rows(const ryz_results *r, const ryz_table_desc *t);
/* The row count of table `t` in `r`. */
size_t ryz_table_count(const ryz_results *r, const ryz_table_desc *t);
/* Replaces table `t` of `r` with `rows` (owned by r from now on, malloc'd),
 * `n` rows in a capacity of `cap`; the previous array is freed. */
void ryz_table_set(ryz_results *r, const ryz_table_desc *t, void *rows, size_t n, size_t cap);
/* Makes every string field of `row` NUL-terminated and zero after its end,
 * so files are deterministic and readers can trust the strings. */
void ryz_table_normalize_row(const ryz_table_desc *t, void *row);

#endif
