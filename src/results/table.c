/* results/table.c: the in-memory result tables (growable arrays of rows),
 * the owned root-attribute strings, and the field descriptions of every
 * table that the HDF5 code and the printer are driven by. */
#define _POSIX_C_SOURCE 200809L

#include "schema.h"

#include <stdlib.h>
#include <math.h>
#include <string.h>

#define FIELD_SINCE(T, f, type, flags, since)                                                      \
    { #f, offsetof(T, f), type, sizeof(((T *)0)->f), flags, since }
#define FIELD(T, f, type, flags) FIELD_SINCE(T, f, type, flags, 0)
#define F_STR(T, f) FIELD(T, f, RYZ_FIELD_STR, 0)
#define F_I32(T, f) FIELD(T, f, RYZ_FIELD_I32, 0)
#define F_U64(T, f) FIELD(T, f, RYZ_FIELD_U64, 0)
#define F_BYTES(T, f) FIELD(T, f, RYZ_FIELD_U64, RYZ_FIELD_BYTES)
#define F_F64(T, f) FIELD(T, f, RYZ_FIELD_F64, 0)
#define F_F64_V2(T, f) FIELD_SINCE(T, f, RYZ_FIELD_F64, 0, 2) /* added in schema 2 */
#define F_F64_V3(T, f) FIELD_SINCE(T, f, RYZ_FIELD_F64, 0, 3) /* added in schema 3 */
#define F_STR_V4(T, f) FIELD_SINCE(T, f, RYZ_FIELD_STR, 0, 4) /* added in schema 4 */
#define F_STR_V5(T, f) FIELD_SINCE(T, f, RYZ_FIELD_STR, 0, 5) /* added in schema 5 */
#define F_BYTES_V3(T, f) FIELD_SINCE(T, f, RYZ_FIELD_U64, RYZ_FIELD_BYTES, 3)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

#define C ryz_row_correctness
static const ryz_field CORRECTNESS[] = {
    F_STR(C, case_name),         F_I32(C, tp),           F_I32(C, batch),   F_I32(C, positions),
    F_F64(C, max_abs),           F_F64(C, max_rel),      F_F64(C, min_cos), F_I32(C, top1_agree),
    F_I32(C, greedy_divergence), F_I32(C, greedy_class), F_I32(C, pass),
};
#undef C

#define T ryz_row_timing
static const ryz_field TIMING[] = {
    F_STR(T, case_name),
    F_I32(T, tp),
    F_STR(T, phase),
    F_I32(T, runs),
    F_F64(T, median_s),
    F_F64(T, p10_s),
    F_F64(T, p90_s),
    F_F64(T, tokens_per_s),
    F_F64(T, ttft_s),
    F_F64(T, speedup),
    F_F64(T, efficiency),
    F_F64(T, comm_fraction),
    F_F64(T, roofline_fraction),
    F_F64_V2(T, read_bandwidth_gbs),
};
#undef T

#define L ryz_row_collective
static const ryz_field COLLECTIVES[] = {
    F_STR(L, case_name), F_I32(L, tp),        F_STR(L, op),     F_BYTES(L, bytes),
    F_U64(L, count),     F_F64(L, p50_us),    F_F64(L, p99_us), F_F64(L, mean_us),
    F_F64(L, algbw_gbs), F_F64(L, busbw_gbs), F_F64_V2(L, p50_last_us), F_F64_V2(L, wait_p50_us),
    F_F64_V2(L, isolated_p50_us), F_F64_V2(L, last_over_isolated), F_BYTES_V3(L, streamed_bytes),
    F_F64_V3(L, isolated_evict_p50_us), F_F64_V3(L, last_over_evict),
};
#undef L

#define M ryz_row_memory
static const ryz_field MEMORY[] = {
    F_STR(M, case_name),  F_I32(M, tp),        F_I32(M, rank),       F_BYTES(M, weights),
    F_BYTES(M, kv_cache), F_BYTES(M, scratch), F_BYTES(M, peak_rss), F_F64(M, mem_efficiency),
};
#undef M

#define S ryz_row_sample
static const ryz_field SAMPLES[] = {
    F_STR(S, case_name), F_I32(S, tp), F_STR(S, metric), F_I32(S, iter), F_F64(S, value),
};
#undef S

/* The acceptance checks (the whole table is schema 5's, so its fields
 * are all "since" the table). */
#define K ryz_row_acceptance
static const ryz_field ACCEPTANCE[] = {
    F_STR(K, case_name), F_I32(K, tp),   F_STR(K, check),   F_F64(K, measured), F_STR(K, op),
    F_F64(K, threshold), F_I32(K, pass), F_I32(K, skipped), F_STR(K, note),
};
#undef K

#define TABLE_SINCE(name, row, member, fields, since)                                              \
    {                                                                                              \
        name, sizeof(row), offsetof(ryz_results, member), offsetof(ryz_results, n_##member),       \
            offsetof(ryz_results, cap_##member), fields, COUNT(fields), since                      \
    }
#define TABLE(name, row, member, fields) TABLE_SINCE(name, row, member, fields, 0)
const ryz_table_desc ryz_results_tables[RYZ_RESULTS_NTABLES] = {
    [RYZ_TABLE_CORRECTNESS] = TABLE("correctness", ryz_row_correctness, correctness, CORRECTNESS),
    [RYZ_TABLE_TIMING] = TABLE("timing", ryz_row_timing, timing, TIMING),
    [RYZ_TABLE_COLLECTIVES] = TABLE("collectives", ryz_row_collective, collectives, COLLECTIVES),
    [RYZ_TABLE_MEMORY] = TABLE("memory", ryz_row_memory, memory, MEMORY),
    [RYZ_TABLE_SAMPLES] = TABLE("samples", ryz_row_sample, samples, SAMPLES),
    [RYZ_TABLE_ACCEPTANCE] =
        TABLE_SINCE("acceptance", ryz_row_acceptance, acceptance, ACCEPTANCE, 5),
};

#define A ryz_results_meta
const ryz_field ryz_results_meta_fields[] = {
    F_I32(A, schema_version),
    F_STR(A, tool_version),
    F_STR(A, git_rev),
    F_STR(A, time_utc),
    F_STR(A, hosts),
    F_STR(A, backends),
    F_STR(A, device),
    F_STR(A, cpu_model),
    F_STR(A, suite_name),
    F_STR(A, suite_text),
    F_STR_V4(A, blas),
    F_STR_V5(A, kind),
    F_I32(A, world_size),
    F_I32(A, cores),
    F_I32(A, threads_per_rank),
    F_I32(A, oversubscribed),
    F_I32(A, interrupted),
    F_F64(A, read_bandwidth_gbs),
};
#undef A
const size_t ryz_results_n_meta_fields = COUNT(ryz_results_meta_fields);

/* The pointer member at byte offset `off` of r (copied as bytes, no aliasing). */
static void *get_ptr(const ryz_results *r, size_t off) {
    void *p;
    memcpy(&p, (const char *)r + off, sizeof p);
    return p;
}

void *ryz_table_rows(const ryz_results *r, const ryz_table_desc *t) {
    return get_ptr(r, t->rows_off);
}

size_t ryz_table_count(const ryz_results *r, const ryz_table_desc *t) {
    return *(const size_t *)((const char *)r + t->n_off);
}

void ryz_table_set(ryz_results *r, const ryz_table_desc *t, void *rows, size_t n, size_t cap) {
    free(get_ptr(r, t->rows_off));
    memcpy((char *)r + t->rows_off, &rows, sizeof rows);
    *(size_t *)((char *)r + t->n_off) = n;
    *(size_t *)((char *)r + t->cap_off) = cap;
}

void ryz_table_normalize_row(const ryz_table_desc *t, void *row) {
    for (size_t i = 0; i < t->nfields; i++) {
        const ryz_field *f = &t->fields[i];
        if (f->type != RYZ_FIELD_STR)
            continue;
        char *s = (char *)row + f->offset;
        s[f->size - 1] = '\0';
        size_t len = strlen(s);
        memset(s + len, 0, f->size - len);
    }
}

void ryz_results_init(ryz_results *r) {
    memset(r, 0, sizeof *r);
    r->meta.schema_version = RYZ_RESULTS_SCHEMA;
}

void ryz_results_free(ryz_results *r) {
    for (size_t i = 0; i < RYZ_RESULTS_NTABLES; i++)
        ryz_table_set(r, &ryz_results_tables[i], NULL, 0, 0);
    for (size_t i = 0; i < ryz_results_n_meta_fields; i++) {
        const ryz_field *f = &ryz_results_meta_fields[i];
        if (f->type != RYZ_FIELD_STR)
            continue;
        char **s = (char **)((char *)&r->meta + f->offset);
        free(*s);
        *s = NULL;
    }
}

/* Appends a copy of `row` to table `t`, doubling the capacity when full.
 * ENOMEM (r unchanged) when the array cannot grow. */
static ryz_status append(ryz_results *r, const ryz_table_desc *t, const void *row) {
    char *rows = ryz_table_rows(r, t);
    size_t n = ryz_table_count(r, t);
    size_t cap = *(const size_t *)((const char *)r + t->cap_off);
    if (n == cap) {
        size_t bytes, newcap = cap ? 2 * cap : 16;
        if (newcap < cap || !ryz_mul_ok(newcap, t->row_size, &bytes))
            return ryz_error(RYZ_ENOMEM, "results: /%s table too large", t->name);
        char *grown = realloc(rows, bytes);
        if (!grown)
            return ryz_error(RYZ_ENOMEM, "results: out of memory growing /%s to %zu rows", t->name,
                             newcap);
        memcpy((char *)r + t->rows_off, &grown, sizeof grown); /* realloc freed `rows` */
        rows = grown;
        cap = newcap;
    }
    memcpy(rows + n * t->row_size, row, t->row_size);
    ryz_table_normalize_row(t, rows + n * t->row_size);
    *(size_t *)((char *)r + t->n_off) = n + 1;
    *(size_t *)((char *)r + t->cap_off) = cap;
    return RYZ_OK;
}

ryz_status ryz_results_add_correctness(ryz_results *r, const ryz_row_correctness *row) {
    return append(r, &ryz_results_tables[RYZ_TABLE_CORRECTNESS], row);
}

ryz_status ryz_results_add_timing(ryz_results *r, const ryz_row_timing *row) {
    return append(r, &ryz_results_tables[RYZ_TABLE_TIMING], row);
}

ryz_status ryz_results_add_collective(ryz_results *r, const ryz_row_collective *row) {
    return append(r, &ryz_results_tables[RYZ_TABLE_COLLECTIVES], row);
}

ryz_status ryz_results_add_memory(ryz_results *r, const ryz_row_memory *row) {
    return append(r, &ryz_results_tables[RYZ_TABLE_MEMORY], row);
}

ryz_status ryz_results_add_acceptance(ryz_results *r, const ryz_row_acceptance *row) {
    return append(r, &ryz_results_tables[RYZ_TABLE_ACCEPTANCE], row);
}

const char *ryz_results_kind(const ryz_results_meta *m) {
    if (m->kind && *m->kind)
        return m->kind;
    /* Before schema 5, `ryz comm` and `ryz bench` named their files so, and
     * their texts tell them from a user's suite of that name: a command
     * line has no [section], and bench's text opens with its one case,
     * [case bench] (a suite file holds its [suite] first, or names itself
     * after its file). */
    const char *name = m->suite_name ? m->suite_name : "";
    const char *text = m->suite_text ? m->suite_text : "";
    if (!strcmp(name, RYZ_KIND_COMM) && !strchr(text, '['))
        return RYZ_KIND_COMM;
    if (!strcmp(name, RYZ_KIND_BENCH) && !strncmp(text, "[case bench]\n", 13))
        return RYZ_KIND_BENCH;
    return RYZ_KIND_SUITE;
}

double *ryz_results_sample_values(const ryz_results *r, const char *case_name, int tp,
                                  const char *metric, int *n) {
    double *v = malloc((r->n_samples + 1) * sizeof *v);
    *n = 0;
    for (size_t i = 0; v && i < r->n_samples; i++) {
        const ryz_row_sample *s = &r->samples[i];
        if (s->tp == tp && !strcmp(s->case_name, case_name) && !strcmp(s->metric, metric))
            v[(*n)++] = s->value;
    }
    return v;
}

void ryz_results_memory_of(const ryz_results *r, const char *case_name, int tp,
                           ryz_memory_summary *out) {
    *out = (ryz_memory_summary){.efficiency = NAN};
    for (size_t i = 0; i < r->n_memory; i++) {
        const ryz_row_memory *m = &r->memory[i];
        if (m->tp != tp || strcmp(m->case_name, case_name)) continue;
        double state = (double)(m->weights + m->kv_cache);
        out->ranks++;
        out->largest_state = fmax(out->largest_state, state);
        out->largest_total = fmax(out->largest_total, state + (double)m->scratch);
        out->efficiency = isnan(out->efficiency) ? m->mem_efficiency
                                                 : fmin(out->efficiency, m->mem_efficiency);
    }
}

ryz_status ryz_results_add_sample(ryz_results *r, const ryz_row_sample *row) {
    return append(r, &ryz_results_tables[RYZ_TABLE_SAMPLES], row);
}

ryz_status ryz_results_set_str(char **field, const char *value) {
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return ryz_error(RYZ_ENOMEM, "results: out of memory copying a %zu-byte string",
                         strlen(value));
    free(*field);
    *field = copy;
    return RYZ_OK;
}
