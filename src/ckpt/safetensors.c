/* safetensors: u64 LE header length N, N bytes of JSON ({name: {dtype,
 * shape, data_offsets}} plus optional "__metadata__" of strings), then the
 * data. Headers are hostile: every size and offset is checked. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Element size of a safetensors dtype; 0 when unknown to us. */
static uint64_t st_dtype_size(const char *s) {
    static const struct {
        const char *name;
        uint64_t size;
    } table[] = {{"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2},    {"I64", 8},
                 {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U8", 1},      {"U16", 2},
                 {"U32", 4}, {"U64", 8}, {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(s, table[i].name) == 0)
            return table[i].size;
    return 0;
}

/* Reads array node `a` of non-negative integers (at most max) into v. */
static int int_array(const json_doc *d, int a, int64_t *v, int max, int *n) {
    if (a < 0 || d->nodes[a].type != JSON_ARR || d->nodes[a].count > max)
        return 0;
    *n = 0;
    for (int c = d->nodes[a].child; c >= 0; c = d->nodes[c].next) {
        const json_node *e = &d->nodes[c];
        if (e->type != JSON_NUM || !e->is_int || e->i < 0)
            return 0;
        v[(*n)++] = e->i;
    }
    return 1;
}

/* One tensor entry (node k) of the header; data_len bytes of data follow
 * the header at data_start. */
static ryz_status parse_tensor(const json_doc *d, int k, const char *path, uint64_t data_start,
                               uint64_t data_len, st_tensor *t) {
    const char *name = d->nodes[k].key;
    int dt = json_get(d, k, "dtype"), n;
    int64_t off[2];
    t->name = name;
    if (d->nodes[k].type != JSON_OBJ)
        return ryz_error(RYZ_EINVAL, "%s: tensor %s: expected an object", path, name);
    if (dt < 0 || d->nodes[dt].type != JSON_STR)
        return ryz_error(RYZ_EINVAL, "%s: tensor %s: dtype missing or not a string", path, name);
    t->dtype = d->nodes[dt].str;
    if (!int_array(d, json_get(d, k, "shape"), t->shape, 8, &t->ndim))
        return ryz_error(RYZ_EINVAL, "%s: tensor %s: shape is not a list of at most 8 sizes", path,
                         name);
    if (!int_array(d, json_get(d, k, "data_offsets"), off, 2, &n) || n != 2)
        return ryz_error(RYZ_EINVAL, "%s: tensor %s: data_offsets is not [begin, end]", path, name);
    if (off[0] > off[1] || (uint64_t)off[1] > data_len)
        return ryz_error(
            RYZ_EINVAL, "%s: tensor %s: data_offsets [%lld, %lld] outside the %llu data bytes",
            path, name, (long long)off[0], (long long)off[1], (unsigned long long)data_len);
    uint64_t bytes = st_dtype_size(t->dtype);
    for (int i = 0; i < t->ndim; i++)
        if (!ryz_mul_ok(bytes, (size_t)t->shape[i], &bytes))
            return ryz_error(RYZ_EINVAL, "%s: tensor %s: shape overflows", path, name);
    if (st_dtype_size(t->dtype) && bytes != (uint64_t)(off[1] - off[0]))
        return ryz_error(RYZ_EINVAL,
                         "%s: tensor %s: data_offsets span %lld bytes, shape and dtype %s "
                         "need %llu",
                         path, name, (long long)(off[1] - off[0]), t->dtype,
                         (unsigned long long)bytes);
    t->begin = data_start + (uint64_t)off[0];
    t->end = data_start + (uint64_t)off[1];
    return RYZ_OK;
}

/* qsort/bsearch order of tensors: by name. */
static int by_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

/* qsort order of tensor pointers: by first data byte, then last. */
static int by_begin(const void *a, const void *b) {
    const st_tensor *x = *(st_tensor *const *)a, *y = *(st_tensor *const *)b;
    return x->begin < y->begin   ? -1
           : x->begin > y->begin ? 1
                                 : (x->end > y->end) - (x->end < y->end);
}

/* Checks that no two non-empty tensors share a byte. */
static ryz_status check_overlap(const st_header *h, const char *path) {
    const st_tensor **order = malloc(((size_t)h->n + 1) * sizeof *order);
    if (!order)
        return ryz_error(RYZ_ENOMEM, "out of memory reading %s", path);
    int m = 0;
    for (int i = 0; i < h->n; i++)
        if (h->t[i].end > h->t[i].begin)
            order[m++] = &h->t[i];
    qsort(order, (size_t)m, sizeof *order, by_begin);
    ryz_status st = RYZ_OK;
    for (int i = 1; i < m && st == RYZ_OK; i++)
        if (order[i]->begin < order[i - 1]->end)
            st = ryz_error(RYZ_EINVAL, "%s: tensors %s and %s: data_offsets overlap", path,
                           order[i - 1]->name, order[i]->name);
    free(order);
    return st;
}

/* Fills h->t from the root object (metadata aside), sorted by name. */
static ryz_status parse_entries(st_header *h, const char *path, uint64_t data_start,
                                uint64_t data_len) {
    const json_doc *d = &h->doc;
    h->t = calloc((size_t)d->nodes[0].count + 1, sizeof *h->t);
    if (!h->t)
        return ryz_error(RYZ_ENOMEM, "out of memory reading %s", path);
    for (int k = d->nodes[0].child; k >= 0; k = d->nodes[k].next) {
        if (strcmp(d->nodes[k].key, "__metadata__") == 0) {
            if (d->nodes[k].type != JSON_OBJ)
                return ryz_error(RYZ_EINVAL, "%s: __metadata__ is not an object", path);
            h->meta = k;
            continue;
        }
        ryz_status st = parse_tensor(d, k, path, data_start, data_len, &h->t[h->n]);
        if (st != RYZ_OK)
            return st;
        h->n++;
    }
    qsort(h->t, (size_t)h->n, sizeof *h->t, by_name);
    for (int i = 1; i < h->n; i++)
        if (strcmp(h->t[i].name, h->t[i - 1].name) == 0)
            return ryz_error(RYZ_EINVAL, "%s: tensor %s appears twice", path, h->t[i].name);
    return check_overlap(h, path);
}

ryz_status st_parse(st_header *h, const char *path, char *json, size_t len, uint64_t data_start,
                    uint64_t file_size) {
    memset(h, 0, sizeof *h);
    h->meta = -1;
    ryz_status st = json_parse(&h->doc, json, len);
    if (st != RYZ_OK)
        return ryz_error_wrap(st, "%s: header", path);
    if (h->doc.nodes[0].type != JSON_OBJ)
        return ryz_error(RYZ_EINVAL, "%s: header is not a JSON object", path);
    if (data_start > file_size)
        return ryz_error(RYZ_EINVAL, "%s: header ends past the end of the file", path);
    return parse_entries(h, path, data_start, file_size - data_start);
}

ryz_status st_read(st_header *h, const ckpt_file *f) {
    uint8_t b[8];
    memset(h, 0, sizeof *h);
    h->meta = -1;
    if (f->size < 8)
        return ryz_error(RYZ_EINVAL, "%s: header length: file of %llu bytes is truncated", f->path,
                         (unsigned long long)f->size);
    ryz_status st = ckpt_pread(f, b, 8, 0, "header length");
    if (st != RYZ_OK)
        return st;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | b[i];
    if (n > CKPT_MAX_ST_HEADER)
        return ryz_error(RYZ_EINVAL, "%s: header length %llu exceeds the limit of 100 MB", f->path,
                         (unsigned long long)n);
    if (n + 8 > f->size)
        return ryz_error(RYZ_EINVAL,
                         "%s: header length %llu runs past the end of the file "
                         "(%llu bytes)",
                         f->path, (unsigned long long)n, (unsigned long long)f->size);
    char *json = malloc((size_t)n + 1);
    if (!json)
        return ryz_error(RYZ_ENOMEM, "out of memory reading %s", f->path);
    st = ckpt_pread(f, json, (size_t)n, 8, "header");
    if (st != RYZ_OK)
        return free(json), st;
    json[n] = '\0';
    return st_parse(h, f->path, json, (size_t)n, 8 + n, f->size);
}

void st_free(st_header *h) {
    json_free(&h->doc);
    free(h->t);
    memset(h, 0, sizeof *h);
    h->meta = -1;
}

const st_tensor *st_find(const st_header *h, const char *name) {
    st_tensor key = {.name = name};
    return h->n ? bsearch(&key, h->t, (size_t)h->n, sizeof *h->t, by_name) : NULL;
}

const char *st_meta(const st_header *h, const char *key) {
    int k = json_get(&h->doc, h->meta, key);
    return k >= 0 && h->doc.nodes[k].type == JSON_STR ? h->doc.nodes[k].str : NULL;
}

ryz_status st_to_slot(ckpt_tensor *e, const st_tensor *s, int file, const char *path, int64_t rows,
                      int64_t cols) {
    ckpt_dtype dt;
    if (!ckpt_dtype_parse(s->dtype, &dt))
        return ryz_error(RYZ_EINVAL, "%s: tensor %s: dtype %s not supported (F32, F16, BF16)", path,
                         s->name, s->dtype);
    int ok = (s->ndim == 2 && s->shape[0] == rows && s->shape[1] == cols) ||
             (s->ndim == 1 && rows == 1 && s->shape[0] == cols);
    if (!ok) {
        char shape[200] = "[";
        for (int i = 0; i < s->ndim; i++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", i ? ", " : "",
                     (long long)s->shape[i]);
        return ryz_error(RYZ_EINVAL,
                         "%s: tensor %s: shape %s] does not match the config's [%lld, %lld]", path,
                         s->name, shape, (long long)rows, (long long)cols);
    }
    *e = (ckpt_tensor){.file = file, .offset = s->begin, .dtype = dt, .rows = rows, .cols = cols};
    snprintf(e->name, sizeof e->name, "%s", s->name);
    return RYZ_OK;
}

/* The JSON text of a header (unpadded) into a memory stream. */
static void header_json(FILE *f, const st_entry *e, int n, const char *const *meta, int nmeta) {
    uint64_t off = 0;
    fputc('{', f);
    if (nmeta > 0) {
        fputs("\"__metadata__\":{", f);
        for (int i = 0; i < nmeta; i++) {
            json_write_string(f, meta[2 * i]);
            fputc(':', f);
            json_write_string(f, meta[2 * i + 1]);
            fputs(i + 1 < nmeta ? "," : "}", f);
        }
        if (n > 0)
            fputc(',', f);
    }
    for (int i = 0; i < n; i++) {
        uint64_t bytes =
            4 * (uint64_t)e[i].shape[0] * (uint64_t)(e[i].ndim > 1 ? e[i].shape[1] : 1);
        json_write_string(f, e[i].name);
        fprintf(f, ":{\"dtype\":\"F32\",\"shape\":[%lld", (long long)e[i].shape[0]);
        if (e[i].ndim > 1)
            fprintf(f, ",%lld", (long long)e[i].shape[1]);
        fprintf(f, "],\"data_offsets\":[%llu,%llu]}%s", (unsigned long long)off,
                (unsigned long long)(off + bytes), i + 1 < n ? "," : "");
        off += bytes;
    }
    fputc('}', f);
}

ryz_status st_write_header(ckpt_out *o, const st_entry *e, int n, const char *const *meta,
                           int nmeta) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return ryz_error(RYZ_ENOMEM, "out of memory writing %s", o->path);
    header_json(f, e, n, meta, nmeta);
    while ((ftell(f) & 7) != 0)
        fputc(' ', f); /* data 8-byte aligned */
    if (fclose(f) != 0 || !text) {
        free(text);
        return ryz_error(RYZ_ENOMEM, "out of memory writing %s", o->path);
    }
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)len >> (8 * i));
    ryz_status st = ckpt_out_write(o, b, 8);
    if (st == RYZ_OK)
        st = ckpt_out_write(o, text, len);
    free(text);
    return st;
}
