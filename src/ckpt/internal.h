/* Private to ckpt/: hostile-file reading, dtypes, the tensor table every
 * file-backed weight source serves from, a small JSON parser, safetensors
 * headers, and streamed writing. Every function that reads a file names the
 * file (and the field) in its one-line error message. */
#ifndef RYZ_CKPT_INTERNAL_H
#define RYZ_CKPT_INTERNAL_H

#include <stdio.h>

#include "ryz/ckpt.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "checkpoint readers assume a little-endian host"
#endif

#define CKPT_MAX_JSON ((size_t)1 << 20)          /* config.json, index.json */
#define CKPT_MAX_ST_HEADER ((uint64_t)100 << 20) /* safetensors header */
#define CKPT_MAX_DIM ((int64_t)1 << 24)          /* as ryz_config_validate */
#define CKPT_MAX_FILES 256                       /* HF weight files */

/* ================================================================ files */

typedef struct {
    int fd; /* -1 when closed */
    char *path;
    uint64_t size;
} ckpt_file;

/* Opens a regular file read-only; EIO naming it otherwise. */
ryz_status ckpt_file_open(const char *path, ckpt_file *f);
/* Closes f; safe on a zeroed or closed file. */
void ckpt_file_close(ckpt_file *f);
/* Reads exactly n bytes at off; EIO "PATH: <what>: truncated at byte X"
 * or the system error. */
ryz_status ckpt_pread(const ckpt_file *f, void *buf, size_t n, uint64_t off, const char *what);
/* Reads a whole file of at most max bytes into a malloc'd NUL-terminated
 * buffer (*len bytes). EINVAL when larger, EIO when unreadable. */
ryz_status ckpt_slurp(const char *path, size_t max, char **text, size_t *len);
/* "dir/name", malloc'd (NULL when out of memory). */
char *ckpt_path_join(const char *dir, const char *name);
/* Creates directory `dir` unless it exists (EIO naming it otherwise). */
ryz_status ckpt_mkdir(const char *dir);
/* Writes a whole small file (temporary name, fsync, rename). */
ryz_status ckpt_write_file(const char *path, const char *text, size_t len);
/* SHA-256 of a whole open file, as 64 hex digits. */
ryz_status ckpt_sha256_file(const ckpt_file *f, char hex[65]);

/* ================================================================ dtypes */

typedef enum { CKPT_F32 = 0, CKPT_F16, CKPT_BF16 } ckpt_dtype;

size_t ckpt_dtype_size(ckpt_dtype d);
const char *ckpt_dtype_name(ckpt_dtype d);
/* Maps a safetensors dtype string to a dtype we convert; 0 if unsupported. */
int ckpt_dtype_parse(const char *s, ckpt_dtype *out);
float ckpt_f16_to_f32(uint16_t h);
float ckpt_bf16_to_f32(uint16_t h);

/* ========================================================= tensor table */

/* Where one tensor of the model lives: a (rows, cols) row-major block of a
 * file whose element (0, 0) is the global element (row_origin, col_origin).
 * perm_hd > 0: rows are stored in Hugging Face rotary order within heads of
 * perm_hd rows (llama2.c row 2i+j of a head is stored at j*perm_hd/2 + i). */
typedef struct {
    int file; /* index in the table's files; -1: absent */
    uint64_t offset;
    ckpt_dtype dtype;
    int64_t rows, cols;
    int64_t row_origin, col_origin;
    int perm_hd;
    char name[64]; /* the name in the file, for messages */
} ckpt_tensor;

typedef struct {
    ryz_model_config cfg;
    int nfiles;
    ckpt_file *files;
    int ntensors; /* RYZ_T_PER_LAYER * layers + 3 */
    ckpt_tensor *tensors;
} ckpt_table;

/* Allocates a table for cfg with nfiles closed files and absent tensors. */
ryz_status ckpt_table_init(ckpt_table *tab, const ryz_model_config *cfg, int nfiles);
/* Frees the table and closes its files; safe on a zeroed table. */
void ckpt_table_free(ckpt_table *tab);
/* The table slot of tensor id t, or NULL when t is not a tensor of cfg. */
ckpt_tensor *ckpt_table_slot(ckpt_table *tab, uint32_t t);
/* Fails naming the first absent tensor (`where`: the file or directory). */
ryz_status ckpt_table_complete(const ckpt_table *tab, const char *where);
/* Moves the table into a weight source named `kind` (*tab is zeroed; the
 * source owns the files). */
ryz_status ckpt_table_source(ckpt_table *tab, const char *kind, ryz_weights **out);

/* Number of tensors of a model (RYZ_T_PER_LAYER * layers + 3) and the id of
 * the i-th (layers first, then embedding, LM head, final norm). */
int ckpt_tensor_count(const ryz_model_config *c);
uint32_t ckpt_tensor_id(const ryz_model_config *c, int i);
/* Global (unpadded) shape of tensor t: W (out, in); norms (1, dim). */
void ckpt_tensor_shape(const ryz_model_config *c, uint32_t t, int64_t *rows, int64_t *cols);
/* Our name of tensor t: "layers.3.wq", "embed", "cls", "final_norm". */
void ckpt_tensor_name(uint32_t t, char *buf, size_t n);
/* Inverse of ckpt_tensor_name for cfg; 0 when unknown. */
int ckpt_tensor_parse_name(const ryz_model_config *c, const char *name, uint32_t *t);
/* Kind of a tensor id: RYZ_T_* for layer tensors, else the id itself. */
uint32_t ckpt_tensor_kind(uint32_t t);
/* Checks shapes read from a file before any size is computed: every dim in
 * [1, 2^24], dim % n_heads, even head_dim, grouped KV heads. EINVAL
 * "PATH: FIELD VALUE ..." naming the field. */
ryz_status ckpt_check_config(const char *path, const ryz_model_config *c);
/* Checked a * b * c (0 on overflow). */
int ckpt_mul3(uint64_t a, uint64_t b, uint64_t c, uint64_t *out);

/* ================================================================ JSON */

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ } json_type;

/* One value; members and elements are linked through child/next indices. */
typedef struct {
    json_type type;
    int boolean;     /* JSON_BOOL */
    int is_int;      /* JSON_NUM written as an integer that fits int64 */
    int64_t i;       /* when is_int */
    double num;      /* JSON_NUM */
    const char *str; /* JSON_STR: decoded UTF-8, NUL-terminated, no NUL inside */
    const char *key; /* member name inside an object, else NULL */
    int child, next; /* first member or element; next sibling (-1: none) */
    int count;       /* members or elements */
} json_node;

typedef struct {
    char *text; /* owned, decoded in place */
    json_node *nodes;
    int n, cap;
} json_doc;

/* Parses len bytes of text (taking ownership of the malloc'd buffer, which
 * must have a NUL at text[len]); the root is node 0. Depth <= 64, at most
 * 2^21 values. EINVAL "JSON syntax error at byte N: ..." (callers prefix the
 * file). */
ryz_status json_parse(json_doc *d, char *text, size_t len);
void json_free(json_doc *d);
/* Index of member `key` of object node obj, or -1. */
int json_get(const json_doc *d, int obj, const char *key);
/* Type name for messages ("string"). */
const char *json_type_name(json_type t);
/* Reads member `key` of obj as an integer in [lo, hi] into *out; def when
 * absent and has_def, else EINVAL "PATH: KEY ...". */
ryz_status json_get_int(const json_doc *d, int obj, const char *key, const char *path, int64_t lo,
                        int64_t hi, const int64_t *def, int64_t *out);
/* Reads member `key` as a finite number (def when absent and non-NULL). */
ryz_status json_get_num(const json_doc *d, int obj, const char *key, const char *path,
                        const double *def, double *out);
/* Writes s as a JSON string literal (quotes and escapes) into f. */
void json_write_string(FILE *f, const char *s);
/* Shortest decimal text that reads back as exactly x. */
void ckpt_format_float(float x, char *buf, size_t n);

/* =========================================================== SHA-256 */

/* Lower-case hex of a digest. */
void ckpt_hex(const uint8_t *d, size_t n, char *hex);

/* ========================================================== safetensors */

typedef struct {
    const char *name;
    const char *dtype; /* as written */
    int ndim;
    int64_t shape[8];
    uint64_t begin, end; /* absolute file offsets of the data */
} st_tensor;

typedef struct {
    json_doc doc;
    st_tensor *t; /* sorted by name */
    int n;
    int meta; /* node of __metadata__, or -1 */
} st_header;

/* Parses a safetensors JSON header (owning `json`, len bytes, NUL at
 * json[len]) for a file of file_size bytes whose data starts at data_start:
 * dtypes and shapes well-formed, sizes without overflow, offsets inside the
 * data and non-overlapping, names unique. EINVAL naming PATH and field. */
ryz_status st_parse(st_header *h, const char *path, char *json, size_t len, uint64_t data_start,
                    uint64_t file_size);
/* Reads and parses the header of an open file (<= 100 MB). */
ryz_status st_read(st_header *h, const ckpt_file *f);
void st_free(st_header *h);
const st_tensor *st_find(const st_header *h, const char *name);
/* String value of __metadata__[key], or NULL. */
const char *st_meta(const st_header *h, const char *key);
/* Fills table slot e from safetensors tensor s of file index `file`,
 * checking a supported dtype and the shape (rows, cols) (a 1-D shape
 * [cols] is accepted for rows == 1). */
ryz_status st_to_slot(ckpt_tensor *e, const st_tensor *s, int file, const char *path, int64_t rows,
                      int64_t cols);

/* ======================================================= streamed output */

/* A file being written under PATH.tmp, renamed to PATH on commit; every
 * byte is optionally hashed. */
typedef struct {
    FILE *f;
    char *path, *tmp;
    int hash;
    uint64_t written;
    ryz_sha256 sha;
} ckpt_out;

ryz_status ckpt_out_open(ckpt_out *o, const char *path, int hash);
ryz_status ckpt_out_write(ckpt_out *o, const void *p, size_t n);
/* Flushes, fsyncs and renames into place; frees o. hex (if hashing and
 * non-NULL) receives the SHA-256. */
ryz_status ckpt_out_commit(ckpt_out *o, char hex[65]);
/* Removes the temporary file and frees o; safe after commit. */
void ckpt_out_abort(ckpt_out *o);
/* Streams a block of tensor t from w as float32 rows, in chunks of a few MiB
 * (never the whole tensor); perm_hd > 0 writes rows in Hugging Face rotary
 * order within heads of perm_hd rows (nrows a multiple of perm_hd). */
ryz_status ckpt_out_block(ckpt_out *o, ryz_weights *w, uint32_t t, int64_t row0, int64_t nrows,
                          int64_t col0, int ncols, int perm_hd);

/* One tensor of a safetensors file being written (float32). */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
} st_entry;

/* Writes the 8-byte length and the JSON header (padded to 8 bytes) for
 * float32 tensors laid out back to back in the given order, with optional
 * string metadata (nmeta key/value pairs). */
ryz_status st_write_header(ckpt_out *o, const st_entry *e, int n, const char *const *meta,
                           int nmeta);

/* ======================================================== the formats */

/* llama2.c header: version (0 or 1), shared classifier, header bytes, the
 * exact file size it implies. */
typedef struct {
    int version, shared;
    uint64_t header, total;
} l2c_layout;

/* Parses a llama2.c header from the first n bytes of a file of file_size
 * bytes, checking the dims and that the file size matches exactly. */
ryz_status l2c_parse_header(const char *path, const uint8_t *buf, size_t n, uint64_t file_size,
                            ryz_model_config *cfg, l2c_layout *lay);
ryz_status l2c_open(const char *path, ryz_model_config *cfg, ryz_weights **out);

/* Hugging Face config.json (doc parsed) into cfg; *tied: shared LM head. */
ryz_status hf_parse_config(const char *path, const json_doc *d, ryz_model_config *cfg, int *tied);
ryz_status hf_open(const char *dir, const json_doc *config, ryz_model_config *cfg,
                   ryz_weights **out);

/* A sharded directory's config.json. */
typedef struct {
    int tp;
    ryz_model_config cfg;
    char sha[CKPT_MAX_FILES][65]; /* per rank file */
} shard_config;

ryz_status shard_parse_config(const char *path, const json_doc *d, shard_config *sc);
ryz_status shard_open(const char *dir, const json_doc *config, int tp, int rank,
                      ryz_model_config *cfg, ryz_weights **out);

#endif
