/* Tests of ckpt/: SHA-256 vectors; round trips synthetic -> llama2.c /
 * Hugging Face export -> load with bit-identical logits; files written here
 * independently (llama2.c version 1, shared classifier, Hugging Face with
 * several files, BF16/F16, tied head) read back exactly; `ryz shard` at
 * tp 2 and 4 serving every rank exactly the synthetic blocks the model asks
 * for; one test per kind of bad input (EINVAL/EIO, one line naming file and
 * field); every parser over the seed corpus (tests/corpus/<parser>/); the
 * CLI (generate from a checkpoint at tp 1 and 2, truncated file). A plain
 * process: never calls MPI (the --tp 2 run is a separate `ryz` launch). */
#define _POSIX_C_SOURCE 200809L

#include "ryz/backend.h"
#include "ryz/ckpt.h"
#include "ryz/cli.h"
#include "ryz/comm.h"
#include "ryz/model.h"

#include <check.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define TINY "synthetic:tiny,kv_heads=2" /* dim 64, 4 heads, 2 KV heads, vocab 512 */

/* ================================================================ helpers */

/* A new temporary directory (static buffer per call site is not needed:
 * the caller owns the returned malloc'd path). */
static char *temp_dir(void) {
    char *d = strdup("/tmp/ryz_test_ckpt_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(d));
    return d;
}

/* Removes a temporary directory and frees its path. */
static void temp_dir_free(char *d) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    ck_assert_int_eq(system(cmd), 0);
    free(d);
}

/* dir/name into out (512 bytes). */
static const char *path_in(char *out, const char *dir, const char *name) {
    int n = snprintf(out, 512, "%s/%s", dir, name);
    ck_assert(n > 0 && n < 512);
    return out;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* The whole file (malloc'd, NUL-terminated); *n its size. */
static uint8_t *read_bytes(const char *path, size_t *n) {
    return (uint8_t *)test_slurp(path, n);
}

/* Asserts st == want and that the last error is one line holding every
 * needle (NULL-terminated). */
static void expect_error(ryz_status st, ryz_status want, const char *const *needles) {
    const char *msg = ryz_last_error();
    ck_assert_msg(st == want, "status %s, expected %s (%s)", ryz_status_name(st),
                  ryz_status_name(want), msg);
    ck_assert_msg(!strchr(msg, '\n'), "message is not one line: %s", msg);
    for (int i = 0; needles[i]; i++)
        ck_assert_msg(strstr(msg, needles[i]), "'%s' not in '%s'", needles[i], msg);
}

#define EXPECT_ERROR(st, want, ...)                                                                \
    do {                                                                                           \
        const char *const needles_[] = {__VA_ARGS__, NULL};                                        \
        expect_error(st, want, needles_);                                                          \
    } while (0)

/* Opens a checkpoint expecting failure; returns the status. */
static ryz_status open_fails(const char *path, int tp, int rank) {
    ryz_model_config cfg;
    ryz_weights *w = NULL;
    ryz_error_clear();
    ryz_status st = ryz_ckpt_open(path, tp, rank, &cfg, &w);
    ck_assert_msg(st != RYZ_OK || w != NULL, "OK without a source");
    ryz_weights_close(w);
    return st;
}

/* Runs a command function in-process with a NULL-terminated argument list,
 * its stdout discarded. */
static int run_cmd(int (*cmd)(int, char **), ...) {
    char *argv[16];
    int argc = 0;
    va_list ap;
    va_start(ap, cmd);
    for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 15;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    int saved = dup(1);
    FILE *null = freopen("/dev/null", "w", stdout);
    ck_assert_ptr_nonnull(null);
    int code = cmd(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    return code;
}

static ryz_model_config tiny_config(void) {
    ryz_model_config c;
    ck_assert_int_eq(ryz_model_source_parse(TINY, &c), RYZ_OK);
    return c;
}

/* Global shape of tensor t of cfg (W (out, in); norms one row of dim). */
static void shape_of(const ryz_model_config *c, uint32_t t, int *rows, int *cols) {
    int hd = c->dim / c->n_heads, kind = t < RYZ_T_EMBED ? (int)(t % RYZ_T_PER_LAYER) : -1;
    *rows = c->dim, *cols = c->dim;
    if (kind == RYZ_T_WK || kind == RYZ_T_WV)
        *rows = hd * c->n_kv_heads;
    if (kind == RYZ_T_W1 || kind == RYZ_T_W3)
        *rows = c->hidden;
    if (kind == RYZ_T_W2)
        *cols = c->hidden;
    if (kind == RYZ_T_ATT_NORM || kind == RYZ_T_FFN_NORM || t == RYZ_T_FINAL_NORM)
        *rows = 1;
    if (t == RYZ_T_EMBED || t == RYZ_T_CLS)
        *rows = c->vocab;
}

/* The whole tensor t from a source (malloc'd). */
static float *whole(ryz_weights *w, const ryz_model_config *c, uint32_t t) {
    int rows, cols;
    shape_of(c, t, &rows, &cols);
    float *x = malloc((size_t)rows * cols * sizeof(float));
    ck_assert_ptr_nonnull(x);
    ryz_status st = ryz_weights_fill(w, t, 0, rows, 0, cols, cols, x);
    ck_assert_msg(st == RYZ_OK, "fill of tensor 0x%x: %s", t, ryz_last_error());
    return x;
}

/* Every tensor id of cfg, in llama2.c's per-kind order: layers, then the
 * embedding, final norm and head. */
static int all_tensors(const ryz_model_config *c, uint32_t *ids) {
    int n = 0;
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < RYZ_T_PER_LAYER; k++)
            ids[n++] = RYZ_T_LAYER(l, k);
    ids[n++] = RYZ_T_EMBED;
    ids[n++] = RYZ_T_FINAL_NORM;
    ids[n++] = RYZ_T_CLS;
    return n;
}

/* Logits (T, vocab_padded) of src at TP=1 for a fixed prompt (malloc'd). */
static float *logits_of(const char *src, size_t *n) {
    static const int tokens[] = {1, 7, 42, 3, 500, 9};
    enum { T = sizeof tokens / sizeof tokens[0] };
    ryz_comm *c = NULL;
    ryz_backend be;
    ryz_model *m = NULL;
    const float *lg;
    ryz_model_opts o = {.max_batch = 1, .max_chunk = T};
    ck_assert_int_eq(ryz_comm_init_self(&c), RYZ_OK);
    ck_assert_int_eq(ryz_backend_init_cpu(1, &be), RYZ_OK);
    ryz_status st = ryz_model_open(src, c, &be, &o, &m);
    ck_assert_msg(st == RYZ_OK, "open %s: %s", src, ryz_last_error());
    ck_assert_int_eq(ryz_model_forward(m, tokens, 1, T, 0, &lg), RYZ_OK);
    *n = (size_t)T * ryz_model_shard(m)->vocab_padded;
    float *out = malloc(*n * sizeof(float));
    ck_assert_ptr_nonnull(out);
    memcpy(out, lg, *n * sizeof(float));
    ryz_model_free(m);
    ryz_backend_free(&be);
    ryz_comm_free(c);
    return out;
}

/* Asserts src1 and src2 give bit-identical logits. */
static void assert_same_logits(const char *a, const char *b) {
    size_t na, nb;
    float *la = logits_of(a, &na), *lb = logits_of(b, &nb);
    ck_assert_uint_eq(na, nb);
    size_t i = 0;
    while (i < na && memcmp(&la[i], &lb[i], sizeof(float)) == 0)
        i++;
    ck_assert_msg(i == na, "%s vs %s: logit %zu is %.9g vs %.9g", a, b, i,
                  (double)(i < na ? la[i] : 0), (double)(i < na ? lb[i] : 0));
    free(la);
    free(lb);
}

/* ============================================================== SHA-256 */

/* SHA-256 of n bytes fed in pieces of `step` bytes. */
static void sha_hex_steps(const void *p, size_t n, size_t step, char hex[65]) {
    ryz_sha256 s;
    uint8_t d[32];
    ryz_sha256_init(&s);
    for (size_t i = 0; i < n; i += step)
        ryz_sha256_update(&s, (const char *)p + i, n - i < step ? n - i : step);
    ryz_sha256_final(&s, d);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* The FIPS 180 vectors, whole and streamed in odd pieces. */
static void check_sha_vectors(void) {
    static const struct {
        const char *in, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopq"
         "rlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        ryz_sha256_hex(v[i].in, strlen(v[i].in), hex);
        ck_assert_str_eq(hex, v[i].hex);
        sha_hex_steps(v[i].in, strlen(v[i].in), 7, hex);
        ck_assert_str_eq(hex, v[i].hex);
    }
    size_t n = 1000000;
    char *a = malloc(n);
    memset(a, 'a', n);
    sha_hex_steps(a, n, 65537, hex);
    ck_assert_str_eq(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(a);
}

/* A checkpoint path, or an HF directory's config.json, that is a FIFO is
 * refused at once: a plain open would wait for a writer. */
START_TEST(test_fifo_refused) {
    char dir[256], fifo[256];
    test_mkfifo(dir, fifo, sizeof fifo, "config.json");
    EXPECT_ERROR(open_fails(fifo, 1, 0), RYZ_EIO, fifo, "not a regular file");
    EXPECT_ERROR(open_fails(dir, 1, 0), RYZ_EIO, "config.json", "not a regular file");
    test_rmfifo(dir, fifo);
}
END_TEST

START_TEST(test_sha256_vectors) {
    check_sha_vectors();
    setenv("RYZ_SHA256_PORTABLE", "1", 1); /* the portable code as well */
    check_sha_vectors();
    unsetenv("RYZ_SHA256_PORTABLE");
}
END_TEST

/* Hardware and portable code agree at every length around block edges. */
START_TEST(test_sha256_paths_agree) {
    uint8_t buf[300];
    char a[65], b[65];
    for (int i = 0; i < 300; i++)
        buf[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof buf; n++) {
        ryz_sha256_hex(buf, n, a);
        setenv("RYZ_SHA256_PORTABLE", "1", 1);
        ryz_sha256_hex(buf, n, b);
        unsetenv("RYZ_SHA256_PORTABLE");
        ck_assert_msg(strcmp(a, b) == 0, "length %zu: %s vs %s", n, a, b);
    }
}
END_TEST

/* ========================================================== round trips */

START_TEST(test_export_llama2c_roundtrip) {
    char *d = temp_dir(), p[512];
    path_in(p, d, "m.bin");
    ck_assert_int_eq(
        run_cmd(ryz_cmd_export, "export", "--model", TINY, "--format", "llama2c", "--out", p, NULL),
        0);
    size_t n;
    uint8_t *b = read_bytes(p, &n);
    int32_t head[7];
    memcpy(head, b, sizeof head);
    ck_assert_int_eq(head[0], 64);
    ck_assert_int_eq(head[4], 2);
    ck_assert_int_eq(head[5], -512); /* separate classifier */
    free(b);
    ryz_model_config cfg;
    ryz_weights *w;
    ck_assert_int_eq(ryz_ckpt_open(p, 1, 0, &cfg, &w), RYZ_OK);
    ryz_model_config want = tiny_config();
    ck_assert_int_eq(cfg.vocab, want.vocab);
    ck_assert_int_eq(cfg.n_kv_heads, want.n_kv_heads);
    ck_assert_str_eq(ryz_weights_name(w), "llama2c");
    ryz_weights_close(w);
    assert_same_logits(TINY, p);
    temp_dir_free(d);
}
END_TEST

START_TEST(test_export_hf_roundtrip) {
    char *d = temp_dir(), p[512], cfgp[512];
    path_in(p, d, "hf");
    ck_assert_int_eq(
        run_cmd(ryz_cmd_export, "export", "--model", TINY, "--format", "hf", "--out", p, NULL), 0);
    size_t n;
    char *text = (char *)read_bytes(path_in(cfgp, p, "config.json"), &n);
    ck_assert_ptr_nonnull(strstr(text, "\"num_key_value_heads\": 2"));
    ck_assert_ptr_nonnull(strstr(text, "\"tie_word_embeddings\": false"));
    free(text);
    assert_same_logits(TINY, p);
    /* A llama2.c export of the Hugging Face directory is the same model. */
    path_in(cfgp, d, "again.bin");
    ck_assert_int_eq(
        run_cmd(ryz_cmd_export, "export", "--model", p, "--format", "llama2c", "--out", cfgp, NULL),
        0);
    assert_same_logits(TINY, cfgp);
    temp_dir_free(d);
}
END_TEST

/* ================================================ independent llama2.c files */

/* Appends tensor t of the synthetic source to f. */
static void put_tensor(FILE *f, ryz_weights *syn, const ryz_model_config *c, uint32_t t) {
    int rows, cols;
    shape_of(c, t, &rows, &cols);
    float *x = whole(syn, c, t);
    ck_assert_uint_eq(fwrite(x, sizeof(float), (size_t)rows * cols, f), (size_t)rows * cols);
    free(x);
}

/* Appends tensor kind k of every layer. */
static void put_layers(FILE *f, ryz_weights *syn, const ryz_model_config *c, int k) {
    for (int l = 0; l < c->n_layers; l++)
        put_tensor(f, syn, c, RYZ_T_LAYER(l, k));
}

/* A version-1 file (export.py version1_export) with a shared classifier. */
static void write_v1_shared(const char *path, const ryz_model_config *c, ryz_weights *syn) {
    FILE *f = fopen(path, "wb");
    uint8_t head[256] = {0};
    int32_t ints[9] = {0x616b3432,    1,        c->dim,    c->hidden, c->n_layers, c->n_heads,
                       c->n_kv_heads, c->vocab, c->seq_len};
    memcpy(head, ints, sizeof ints);
    head[36] = 1;
    fwrite(head, 1, sizeof head, f);
    put_layers(f, syn, c, RYZ_T_ATT_NORM);
    put_layers(f, syn, c, RYZ_T_FFN_NORM);
    put_tensor(f, syn, c, RYZ_T_FINAL_NORM);
    put_tensor(f, syn, c, RYZ_T_EMBED);
    const int order[] = {RYZ_T_WQ, RYZ_T_WK, RYZ_T_WV, RYZ_T_WO, RYZ_T_W1, RYZ_T_W2, RYZ_T_W3};
    for (int i = 0; i < 7; i++)
        put_layers(f, syn, c, order[i]);
    fclose(f);
}

/* A legacy version-0 file with a shared classifier (positive vocab). */
static void write_v0_shared(const char *path, const ryz_model_config *c, ryz_weights *syn) {
    FILE *f = fopen(path, "wb");
    int32_t ints[7] = {c->dim,        c->hidden, c->n_layers, c->n_heads,
                       c->n_kv_heads, c->vocab,  c->seq_len};
    fwrite(ints, sizeof ints, 1, f);
    put_tensor(f, syn, c, RYZ_T_EMBED);
    const int order[] = {RYZ_T_ATT_NORM, RYZ_T_WQ, RYZ_T_WK, RYZ_T_WV, RYZ_T_WO,
                         RYZ_T_FFN_NORM, RYZ_T_W1, RYZ_T_W2, RYZ_T_W3};
    for (int i = 0; i < 9; i++)
        put_layers(f, syn, c, order[i]);
    put_tensor(f, syn, c, RYZ_T_FINAL_NORM);
    float *freq = calloc((size_t)c->seq_len * c->dim / c->n_heads, sizeof(float));
    fwrite(freq, sizeof(float), (size_t)c->seq_len * c->dim / c->n_heads, f);
    free(freq);
    fclose(f);
}

/* Every tensor of `got` equals the synthetic one (CLS: the embedding when
 * shared). */
static void assert_tensors_equal(ryz_weights *got, ryz_weights *syn, const ryz_model_config *c,
                                 int shared) {
    uint32_t ids[RYZ_T_PER_LAYER * 64 + 3];
    int n = all_tensors(c, ids);
    for (int i = 0; i < n; i++) {
        int rows, cols;
        shape_of(c, ids[i], &rows, &cols);
        float *a = whole(got, c, ids[i]);
        float *b = whole(syn, c, shared && ids[i] == RYZ_T_CLS ? RYZ_T_EMBED : ids[i]);
        ck_assert_msg(memcmp(a, b, (size_t)rows * cols * sizeof(float)) == 0, "tensor 0x%x differs",
                      ids[i]);
        free(a);
        free(b);
    }
}

START_TEST(test_llama2c_versions_shared) {
    char *d = temp_dir(), p[512];
    ryz_model_config c = tiny_config(), got;
    ryz_weights *syn, *w;
    ck_assert_int_eq(ryz_weights_synthetic(&c, &syn), RYZ_OK);
    void (*writers[2])(const char *, const ryz_model_config *, ryz_weights *) = {write_v1_shared,
                                                                                 write_v0_shared};
    for (int i = 0; i < 2; i++) {
        writers[i](path_in(p, d, i ? "v0.bin" : "v1.bin"), &c, syn);
        ck_assert_msg(ryz_ckpt_open(p, 1, 0, &got, &w) == RYZ_OK, "%s", ryz_last_error());
        ck_assert_int_eq(got.dim, c.dim);
        ck_assert_int_eq(got.vocab, c.vocab);
        assert_tensors_equal(w, syn, &c, 1);
        /* Padding rows past the vocab come back zero. */
        float pad[2 * 64];
        memset(pad, 0xff, sizeof pad);
        ck_assert_int_eq(ryz_weights_fill(w, RYZ_T_CLS, c.vocab - 1, 2, 0, 64, 64, pad), RYZ_OK);
        ck_assert(pad[64] == 0.0f && pad[127] == 0.0f);
        ryz_weights_close(w);
    }
    ryz_weights_close(syn);
    temp_dir_free(d);
}
END_TEST

/* ================================================ independent HF directory */

/* One tensor of a hand-written safetensors file. */
typedef struct {
    char name[80];
    const char *dtype;
    int rows, cols, ndim;
    void *data;
    size_t bytes;
} st_item;

/* Writes a safetensors file of items (in order). */
static void write_st(const char *path, const st_item *it, int n) {
    char *h = malloc(65536);
    size_t len = 0, off = 0;
    len += (size_t)sprintf(h + len, "{");
    for (int i = 0; i < n; i++) {
        len += (size_t)sprintf(h + len, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i ? "," : "",
                               it[i].name, it[i].dtype);
        if (it[i].ndim == 2)
            len += (size_t)sprintf(h + len, "%d,", it[i].rows);
        len += (size_t)sprintf(h + len, "%d],\"data_offsets\":[%zu,%zu]}", it[i].cols, off,
                               off + it[i].bytes);
        off += it[i].bytes;
    }
    len += (size_t)sprintf(h + len, "}");
    FILE *f = fopen(path, "wb");
    uint64_t n64 = len;
    fwrite(&n64, 8, 1, f);
    fwrite(h, 1, len, f);
    for (int i = 0; i < n; i++)
        fwrite(it[i].data, 1, it[i].bytes, f);
    fclose(f);
    free(h);
}

/* bf16 by truncation, and back. */
static uint16_t to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* Hugging Face row order of q/k (export.py permute_original): the rows of
 * each head viewed as (hd/2, 2) and transposed to (2, hd/2). */
static void hf_permute(float *dst, const float *src, int rows, int cols, int hd) {
    for (int h = 0; h < rows / hd; h++)
        for (int i = 0; i < hd / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(dst + ((size_t)h * hd + j * hd / 2 + i) * cols,
                       src + ((size_t)h * hd + 2 * i + j) * cols, (size_t)cols * sizeof(float));
}

/* The HF item of tensor t (q/k permuted; BF16 for layer 1, F32 else). */
static st_item hf_item(ryz_weights *syn, const ryz_model_config *c, uint32_t t) {
    static const char *names[] = {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
        "self_attn.o_proj", "mlp.gate_proj",    "mlp.down_proj",
        "mlp.up_proj",      "input_layernorm",  "post_attention_layernorm"};
    st_item it = {.dtype = "F32", .ndim = 2};
    shape_of(c, t, &it.rows, &it.cols);
    float *x = whole(syn, c, t);
    if (t == RYZ_T_EMBED)
        snprintf(it.name, sizeof it.name, "model.embed_tokens.weight");
    else if (t == RYZ_T_FINAL_NORM)
        snprintf(it.name, sizeof it.name, "model.norm.weight");
    else
        snprintf(it.name, sizeof it.name, "model.layers.%u.%s.weight", t / RYZ_T_PER_LAYER,
                 names[t % RYZ_T_PER_LAYER]);
    uint32_t k = t < RYZ_T_EMBED ? t % RYZ_T_PER_LAYER : t;
    if (k == RYZ_T_ATT_NORM || k == RYZ_T_FFN_NORM || k == RYZ_T_FINAL_NORM)
        it.ndim = 1;
    size_t n = (size_t)it.rows * it.cols;
    if (k == RYZ_T_WQ || k == RYZ_T_WK) {
        float *y = malloc(n * sizeof(float));
        hf_permute(y, x, it.rows, it.cols, c->dim / c->n_heads);
        free(x);
        x = y;
    }
    if (t < RYZ_T_EMBED && t / RYZ_T_PER_LAYER == 1) {
        uint16_t *h = malloc(n * 2);
        for (size_t i = 0; i < n; i++)
            h[i] = to_bf16(x[i]);
        free(x);
        it.dtype = "BF16", it.data = h, it.bytes = n * 2;
    } else {
        it.data = x, it.bytes = n * 4;
    }
    return it;
}

/* Writes an HF directory by hand: tied head, two files and an index. */
static void write_hf_dir(const char *dir, const ryz_model_config *c, ryz_weights *syn) {
    char p[512];
    FILE *f = fopen(path_in(p, dir, "config.json"), "w");
    fprintf(f,
            "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": %d, "
            "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": "
            "%d, \"num_key_value_heads\": %d, \"vocab_size\": %d, "
            "\"max_position_embeddings\": %d, \"rms_norm_eps\": 1e-05, \"rope_theta\": "
            "10000.0, \"tie_word_embeddings\": true, \"rope_scaling\": null}",
            c->dim, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->vocab, c->seq_len);
    fclose(f);
    uint32_t ids[RYZ_T_PER_LAYER * 2 + 3];
    int n = all_tensors(c, ids) - 1; /* no lm_head: tied */
    st_item items[RYZ_T_PER_LAYER * 2 + 2];
    for (int i = 0; i < n; i++)
        items[i] = hf_item(syn, c, ids[i]);
    int half = RYZ_T_PER_LAYER; /* layer 0 in file 1, the rest in file 2 */
    write_st(path_in(p, dir, "model-00001-of-00002.safetensors"), items, half);
    write_st(path_in(p, dir, "model-00002-of-00002.safetensors"), items + half, n - half);
    f = fopen(path_in(p, dir, "model.safetensors.index.json"), "w");
    fprintf(f, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", i ? ", " : "", items[i].name,
                i < half ? 1 : 2);
    fprintf(f, "}}");
    fclose(f);
    for (int i = 0; i < n; i++)
        free(items[i].data);
}

START_TEST(test_hf_independent_files) {
    char *d = temp_dir();
    ryz_model_config c = tiny_config(), got;
    ryz_weights *syn, *w;
    ck_assert_int_eq(ryz_weights_synthetic(&c, &syn), RYZ_OK);
    write_hf_dir(d, &c, syn);
    ck_assert_msg(ryz_ckpt_open(d, 1, 0, &got, &w) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_str_eq(ryz_weights_name(w), "hf");
    ck_assert_int_eq(got.n_kv_heads, 2);
    uint32_t ids[RYZ_T_PER_LAYER * 2 + 3];
    int n = all_tensors(&c, ids);
    for (int i = 0; i < n; i++) {
        int rows, cols;
        shape_of(&c, ids[i], &rows, &cols);
        float *a = whole(w, &c, ids[i]),
              *b = whole(syn, &c, ids[i] == RYZ_T_CLS ? RYZ_T_EMBED : ids[i]);
        int bf16 = ids[i] < RYZ_T_EMBED && ids[i] / RYZ_T_PER_LAYER == 1;
        for (size_t k = 0; bf16 && k < (size_t)rows * cols; k++)
            b[k] = from_bf16(to_bf16(b[k]));
        ck_assert_msg(memcmp(a, b, (size_t)rows * cols * 4) == 0, "tensor 0x%x differs", ids[i]);
        free(a);
        free(b);
    }
    /* A block of whole heads in the middle of wk (rank 1 of 2). */
    float blk[32 * 64], ref[32 * 64];
    ck_assert_int_eq(ryz_weights_fill(w, RYZ_T_LAYER(0, RYZ_T_WK), 16, 16, 0, 64, 64, blk), RYZ_OK);
    ryz_weights_fill(syn, RYZ_T_LAYER(0, RYZ_T_WK), 16, 16, 0, 64, 64, ref);
    ck_assert_int_eq(memcmp(blk, ref, 16 * 64 * 4), 0);
    ryz_weights_close(w);
    ryz_weights_close(syn);
    temp_dir_free(d);
}
END_TEST

/* F16 values, subnormal and extreme ones included, convert exactly. */
START_TEST(test_hf_f16_values) {
    char *d = temp_dir(), p[512];
    ck_assert_int_eq(
        run_cmd(ryz_cmd_export, "export", "--model", TINY, "--format", "hf", "--out", d, NULL), 0);
    /* Replace model.norm.weight (F32, 64 floats) by an F16 tensor in a
     * single-tensor file listed by an index. */
    ryz_model_config c = tiny_config();
    ryz_weights *syn;
    ck_assert_int_eq(ryz_weights_synthetic(&c, &syn), RYZ_OK);
    uint16_t h[64];
    const uint16_t special[] = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x8000, 0x3555};
    const float want[] = {1.0f, -2.0f, 5.9604645e-8f, 6.0975552e-5f, 65504.0f, -0.0f, 0.33325195f};
    for (int i = 0; i < 64; i++)
        h[i] = special[i % 7];
    st_item it = {"model.norm.weight", "F16", 1, 64, 1, h, sizeof h};
    write_st(path_in(p, d, "norm.safetensors"), &it, 1);
    /* Index: everything in model.safetensors except the norm. */
    FILE *f = fopen(path_in(p, d, "model.safetensors.index.json"), "w");
    fprintf(f, "{\"weight_map\": {\"model.norm.weight\": \"norm.safetensors\"");
    uint32_t ids[RYZ_T_PER_LAYER * 2 + 3];
    int n = all_tensors(&c, ids);
    static const char *names[] = {
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
        "self_attn.o_proj", "mlp.gate_proj",    "mlp.down_proj",
        "mlp.up_proj",      "input_layernorm",  "post_attention_layernorm"};
    for (int i = 0; i < n; i++)
        if (ids[i] < RYZ_T_EMBED)
            fprintf(f, ", \"model.layers.%u.%s.weight\": \"model.safetensors\"",
                    ids[i] / RYZ_T_PER_LAYER, names[ids[i] % RYZ_T_PER_LAYER]);
    fprintf(f, ", \"model.embed_tokens.weight\": \"model.safetensors\", \"lm_head.weight\": "
               "\"model.safetensors\"}}");
    fclose(f);
    ryz_model_config got;
    ryz_weights *w;
    ck_assert_msg(ryz_ckpt_open(d, 1, 0, &got, &w) == RYZ_OK, "%s", ryz_last_error());
    float x[64];
    ck_assert_int_eq(ryz_weights_fill(w, RYZ_T_FINAL_NORM, 0, 1, 0, 64, 64, x), RYZ_OK);
    for (int i = 0; i < 64; i++)
        ck_assert_msg(memcmp(&x[i], &want[i % 7], 4) == 0, "f16 %04x -> %.9g, want %.9g",
                      special[i % 7], (double)x[i], (double)want[i % 7]);
    ryz_weights_close(w);
    ryz_weights_close(syn);
    temp_dir_free(d);
}
END_TEST

/* ================================================================ shards */

/* A source that serves from `got`, compares every block with `want`, and
 * counts blocks and mismatches. */
typedef struct {
    ryz_weights *got, *want;
    int blocks, bad;
    char first_bad[160];
} compare_source;

static ryz_status compare_fill(void *ctx, uint32_t t, int64_t row0, int nrows, int64_t col0,
                               int ncols, int ld, float *out) {
    compare_source *s = ctx;
    ryz_status st = ryz_weights_fill(s->got, t, row0, nrows, col0, ncols, ld, out);
    if (st != RYZ_OK)
        return st;
    float *ref = malloc((size_t)nrows * ld * sizeof(float) + 4);
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(ryz_weights_fill(s->want, t, row0, nrows, col0, ncols, ld, ref), RYZ_OK);
    s->blocks++;
    for (int r = 0; r < nrows; r++)
        if (memcmp(out + (size_t)r * ld, ref + (size_t)r * ld, (size_t)ncols * 4) != 0) {
            if (!s->bad++)
                snprintf(s->first_bad, sizeof s->first_bad, "tensor 0x%x row %lld", t,
                         (long long)(row0 + r));
            break;
        }
    free(ref);
    return RYZ_OK;
}

static void compare_close(void *ctx) {
    (void)ctx;
}

static void fake_comm_free(void *ctx) {
    (void)ctx;
}

/* A comm claiming to be `rank` of `size` (a build performs no collective). */
static ryz_comm *rank_comm(int rank, int size) {
    static const ryz_comm_iface iface = {.name = "rank", .free = fake_comm_free};
    ryz_comm *c = NULL;
    ck_assert_int_eq(ryz_comm_create(&iface, NULL, rank, size, &c), RYZ_OK);
    return c;
}

/* Builds every rank of a tp-K model of `dir` against the synthetic source
 * `src`: each block the model asks for must equal the synthetic one, and no
 * rank file may hold more than about 1/K of the model. */
static void check_shard_dir(const char *dir, const char *src, int k) {
    ryz_model_config c;
    ryz_backend be;
    ck_assert_int_eq(ryz_model_source_parse(src, &c), RYZ_OK);
    ck_assert_int_eq(ryz_backend_init_cpu(1, &be), RYZ_OK);
    for (int r = 0; r < k; r++) {
        compare_source cs = {0};
        ryz_model_config got;
        ck_assert_msg(ryz_ckpt_open(dir, k, r, &got, &cs.got) == RYZ_OK, "%s", ryz_last_error());
        ck_assert_int_eq(got.n_kv_heads, c.n_kv_heads);
        ck_assert_int_eq(ryz_weights_synthetic(&c, &cs.want), RYZ_OK);
        static const ryz_weights_iface iface = {"compare", compare_fill, compare_close};
        ryz_weights *w;
        ck_assert_int_eq(ryz_weights_create(&iface, &cs, &w), RYZ_OK);
        ryz_comm *comm = rank_comm(r, k);
        ryz_model *m = NULL;
        ryz_model_opts o = {.max_batch = 1, .max_chunk = 1};
        ryz_status st = ryz_model_build_from(&got, w, comm, &be, &o, &m);
        ck_assert_msg(st == RYZ_OK, "rank %d: %s", r, ryz_last_error());
        ck_assert_msg(cs.bad == 0, "rank %d of %d: %d blocks differ, first %s", r, k, cs.bad,
                      cs.first_bad);
        ck_assert_int_eq(cs.blocks, 3 + RYZ_T_PER_LAYER * c.n_layers);
        char p[512], name[32];
        snprintf(name, sizeof name, "rank%d.safetensors", r);
        size_t n;
        free(read_bytes(path_in(p, dir, name), &n));
        ck_assert_msg(n < ryz_model_weight_bytes(&c) / k * 5 / 4 + 65536,
                      "rank file of %zu bytes for 1/%d of %zu", n, k, ryz_model_weight_bytes(&c));
        ryz_model_free(m);
        ryz_comm_free(comm);
        ryz_weights_close(w);
        ryz_weights_close(cs.got);
        ryz_weights_close(cs.want);
    }
    ryz_backend_free(&be);
}

START_TEST(test_shard_serves_rank_blocks) {
    static const char *srcs[] = {TINY, "synthetic:tiny,hidden=170,vocab=509"};
    for (int s = 0; s < 2; s++)
        for (int k = 2; k <= 4; k += 2) {
            char *d = temp_dir(), kk[8];
            snprintf(kk, sizeof kk, "%d", k);
            ck_assert_int_eq(
                run_cmd(ryz_cmd_shard, "shard", "--model", srcs[s], "--tp", kk, "--out", d, NULL),
                0);
            check_shard_dir(d, srcs[s], k);
            temp_dir_free(d);
        }
}
END_TEST

/* A shard directory of a checkpoint file: the same blocks. */
START_TEST(test_shard_of_checkpoint) {
    char *d = temp_dir(), bin[512], sd[512];
    path_in(bin, d, "m.bin");
    path_in(sd, d, "shards");
    ck_assert_int_eq(run_cmd(ryz_cmd_export, "export", "--model", TINY, "--format", "llama2c",
                             "--out", bin, NULL),
                     0);
    ck_assert_int_eq(
        run_cmd(ryz_cmd_shard, "shard", "--model", bin, "--tp", "2", "--out", sd, NULL), 0);
    check_shard_dir(sd, TINY, 2);
    temp_dir_free(d);
}
END_TEST

/* Shards TINY at tp 2 into d/s; returns nothing (asserts). */
static void make_shards(const char *d, char *sd) {
    path_in(sd, d, "s");
    ck_assert_int_eq(
        run_cmd(ryz_cmd_shard, "shard", "--model", TINY, "--tp", "2", "--out", sd, NULL), 0);
}

START_TEST(test_shard_wrong_tp) {
    char *d = temp_dir(), sd[512];
    make_shards(d, sd);
    EXPECT_ERROR(open_fails(sd, 4, 0), RYZ_EINVAL, sd, "sharded for tp 2, asked for tp 4");
    EXPECT_ERROR(open_fails(sd, 1, 0), RYZ_EINVAL, "sharded for tp 2, asked for tp 1");
    int k = -1;
    ck_assert_int_eq(ryz_ckpt_sharded_tp(sd, &k), RYZ_OK);
    ck_assert_int_eq(k, 2);
    ck_assert_int_eq(ryz_ckpt_sharded_tp(TINY, &k), RYZ_OK);
    ck_assert_int_eq(k, 0);
    ck_assert_int_eq(ryz_ckpt_sharded_tp("/nonexistent/x.bin", &k), RYZ_OK);
    ck_assert_int_eq(k, 0);
    temp_dir_free(d);
}
END_TEST

START_TEST(test_shard_checksum_and_own_file) {
    char *d = temp_dir(), sd[512], p[512];
    make_shards(d, sd);
    size_t n;
    uint8_t *b = read_bytes(path_in(p, sd, "rank1.safetensors"), &n);
    b[n - 5] ^= 1; /* one bit of the last tensor */
    write_bytes(p, b, n);
    free(b);
    EXPECT_ERROR(open_fails(sd, 2, 1), RYZ_EINVAL, "rank1.safetensors", "sha256");
    /* Rank 0 reads only config.json and its own file. */
    unlink(p);
    ryz_model_config c;
    ryz_weights *w;
    ck_assert_msg(ryz_ckpt_open(sd, 2, 0, &c, &w) == RYZ_OK, "%s", ryz_last_error());
    ryz_weights_close(w);
    EXPECT_ERROR(open_fails(sd, 2, 1), RYZ_EIO, "rank1.safetensors", "cannot open");
    temp_dir_free(d);
}
END_TEST

/* Replaces the first `old` in a text file by `new`. */
static void patch_text(const char *path, const char *old, const char *new) {
    size_t n;
    char *t = (char *)read_bytes(path, &n), *at = strstr(t, old);
    ck_assert_msg(at != NULL, "'%s' not in %s", old, path);
    FILE *f = fopen(path, "wb");
    fwrite(t, 1, (size_t)(at - t), f);
    fputs(new, f);
    fputs(at + strlen(old), f);
    fclose(f);
    free(t);
}

START_TEST(test_shard_config_bad) {
    char *d = temp_dir(), sd[512], p[512];
    make_shards(d, sd);
    path_in(p, sd, "config.json");
    size_t n;
    char *orig = (char *)read_bytes(p, &n);
    /* Only one rank file listed for tp 2. */
    char *second = strstr(orig, ",\n    {\"file\": \"rank1");
    ck_assert_ptr_nonnull(second);
    FILE *f = fopen(p, "wb");
    fwrite(orig, 1, (size_t)(second - orig), f);
    fputs("\n  ]\n}\n", f);
    fclose(f);
    EXPECT_ERROR(open_fails(sd, 2, 0), RYZ_EINVAL, "config.json",
                 "files lists 1 rank files, tp is 2");
    write_bytes(p, orig, n);
    patch_text(p, "\"format_version\": 1", "\"format_version\": 9");
    EXPECT_ERROR(open_fails(sd, 2, 0), RYZ_EINVAL, "config.json", "format_version 9");
    write_bytes(p, orig, n);
    patch_text(p, "\"dim\": 64", "\"dim\": -64");
    EXPECT_ERROR(open_fails(sd, 2, 0), RYZ_EINVAL, "config.json", "dim -64 out of range");
    write_bytes(p, orig, n);
    patch_text(p, "\"n_layers\": 2", "\"n_layers\": 3");
    EXPECT_ERROR(open_fails(sd, 2, 0), RYZ_EINVAL, "rank0.safetensors",
                 "holds 21 tensors, the model has 30");
    write_bytes(p, orig, n);
    patch_text(p, "rank1.safetensors", "../rank1.safetensors");
    EXPECT_ERROR(open_fails(sd, 2, 0), RYZ_EINVAL, "config.json", "files[1].file");
    free(orig);
    temp_dir_free(d);
}
END_TEST

/* ====================================================== bad llama2.c files */

/* Writes a version-0 header (and nothing else) to d/name. */
static const char *v0_header(char *p, const char *d, const char *name, int32_t dim, int32_t hidden,
                             int32_t layers, int32_t heads, int32_t kv, int32_t vocab,
                             int32_t seq) {
    int32_t h[7] = {dim, hidden, layers, heads, kv, vocab, seq};
    write_bytes(path_in(p, d, name), h, sizeof h);
    return p;
}

START_TEST(test_llama2c_bad_input) {
    char *d = temp_dir(), p[512], bin[512];
    write_bytes(path_in(p, d, "empty.bin"), "", 0);
    EXPECT_ERROR(open_fails(p, 1, 0), RYZ_EINVAL, "empty.bin", "header: truncated");
    v0_header(p, d, "neg.bin", -5, 8, 1, 1, 1, 10, 4);
    EXPECT_ERROR(open_fails(p, 1, 0), RYZ_EINVAL, "neg.bin", "dim -5 out of range");
    v0_header(p, d, "huge.bin", 64, 1 << 30, 1, 4, 4, 10, 4);
    EXPECT_ERROR(open_fails(p, 1, 0), RYZ_EINVAL, "huge.bin", "hidden 1073741824 out of range");
    v0_header(p, d, "heads.bin", 64, 8, 1, 3, 3, 10, 4);
    EXPECT_ERROR(open_fails(p, 1, 0), RYZ_EINVAL, "heads.bin", "n_heads 3 does not divide dim 64");
    v0_header(p, d, "ovf.bin", 1 << 24, 1 << 24, 1 << 24, 1 << 23, 1 << 23, 1 << 24, 1 << 24);
    EXPECT_ERROR(open_fails(p, 1, 0), RYZ_EINVAL, "ovf.bin", "overflow");
    v0_header(p, d, "short.bin", 64, 176, 2, 4, 4, 512, 128);
    EXPECT_ERROR(open_fails(p, 1, 0), RYZ_EINVAL, "short.bin", "file size 28 does not match");
    int32_t v[9] = {0x616b3432, 7, 64, 176, 2, 4, 4, 512, 128};
    uint8_t head[256] = {0};
    memcpy(head, v, sizeof v);
    write_bytes(path_in(p, d, "v7.bin"), head, sizeof head);
    EXPECT_ERROR(open_fails(p, 1, 0), RYZ_EINVAL, "v7.bin", "version 7 not supported");
    head[4] = 2;
    write_bytes(path_in(p, d, "v2.bin"), head, sizeof head);
    EXPECT_ERROR(open_fails(p, 1, 0), RYZ_EINVAL, "v2.bin", "version 2 (int8 Q8_0)");
    char gguf[40] = "GGUF\3";
    write_bytes(path_in(p, d, "g.gguf"), gguf, sizeof gguf);
    EXPECT_ERROR(open_fails(p, 1, 0), RYZ_EINVAL, "g.gguf", "magic");
    /* A real export, truncated by 100 bytes. */
    path_in(bin, d, "m.bin");
    ck_assert_int_eq(run_cmd(ryz_cmd_export, "export", "--model", TINY, "--format", "llama2c",
                             "--out", bin, NULL),
                     0);
    size_t n;
    uint8_t *b = read_bytes(bin, &n);
    write_bytes(path_in(p, d, "trunc.bin"), b, n - 100);
    free(b);
    EXPECT_ERROR(open_fails(p, 1, 0), RYZ_EINVAL, "trunc.bin", "does not match");
    EXPECT_ERROR(open_fails(path_in(p, d, "missing.bin"), 1, 0), RYZ_EIO, "missing.bin");
    temp_dir_free(d);
}
END_TEST

/* ===================================================== bad safetensors */

/* Rewrites d/model.safetensors with its header text patched. */
static void patch_header(const char *dir, const char *old, const char *new) {
    char p[512];
    size_t n;
    uint8_t *b = read_bytes(path_in(p, dir, "model.safetensors"), &n);
    uint64_t len;
    memcpy(&len, b, 8);
    char *h = malloc(len + strlen(new) + 1);
    memcpy(h, b + 8, len);
    h[len] = 0;
    char *at = strstr(h, old);
    ck_assert_msg(at != NULL, "'%s' not in the header", old);
    char *out = malloc(len + strlen(new) + 1);
    size_t k = (size_t)(at - h);
    memcpy(out, h, k);
    strcpy(out + k, new);
    strcat(out, at + strlen(old));
    uint64_t nlen = strlen(out);
    FILE *f = fopen(p, "wb");
    fwrite(&nlen, 8, 1, f);
    fwrite(out, 1, nlen, f);
    fwrite(b + 8 + len, 1, n - 8 - len, f);
    fclose(f);
    free(b);
    free(h);
    free(out);
}

/* Exports TINY as HF to d/hf and keeps a pristine copy of the weights. */
static void hf_fresh(const char *d, char *hf) {
    path_in(hf, d, "hf");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", hf);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(
        run_cmd(ryz_cmd_export, "export", "--model", TINY, "--format", "hf", "--out", hf, NULL), 0);
}

START_TEST(test_safetensors_bad_input) {
    char *d = temp_dir(), hf[512], p[512];
    static const struct {
        const char *old, *new, *needles[3];
    } cases[] = {
        {"\"model.norm.weight\":{\"dtype\":\"F32\"",
         "\"model.norm.weight\":{\"dtype\":\"I32\"",
         {"model.norm.weight", "dtype I32 not supported"}},
        {"\"shape\":[64,64]", "\"shape\":[4294967296,4294967296]", {"shape overflows"}},
        {"\"shape\":[64,64]",
         "\"shape\":[32,128]",
         {"model.layers.0.self_attn.q_proj.weight", "does not match the config"}},
        {"[16384,24576]", "[16380,24572]", {"data_offsets overlap"}},
        {"[16384,24576]", "[16384,24572]", {"data_offsets span 8188 bytes"}},
        {"[16384,24576]", "[16384,999999999]", {"outside the"}},
        {"\"model.norm.weight\"", "\"model.norm.weighX\"", {"tensor model.norm.weight missing"}},
        {"\"model.norm.weight\"", "\"model.layers.0.self_attn.q_proj.weight\"", {"appears twice"}},
        {"{\"model.layers.0", "{\"model.layers.0\\u12", {"JSON syntax error"}},
        {"\"data_offsets\":[0,16384]", "\"data_offsets\":[0,-16384]", {"data_offsets is not"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hf_fresh(d, hf);
        patch_header(hf, cases[i].old, cases[i].new);
        ryz_status st = open_fails(hf, 1, 0);
        ck_assert_msg(strstr(ryz_last_error(), "model.safetensors"), "case %zu: %s", i,
                      ryz_last_error());
        const char *const needles[] = {cases[i].needles[0], cases[i].needles[1], NULL};
        expect_error(st, RYZ_EINVAL, needles);
    }
    /* Header length beyond 100 MB, past the end, and a file too short. */
    uint8_t b[16] = {0};
    uint64_t len = 200u << 20;
    memcpy(b, &len, 8);
    write_bytes(path_in(p, hf, "model.safetensors"), b, sizeof b);
    EXPECT_ERROR(open_fails(hf, 1, 0), RYZ_EINVAL, "model.safetensors",
                 "header length 209715200 exceeds the limit of 100 MB");
    len = 1000;
    memcpy(b, &len, 8);
    write_bytes(p, b, sizeof b);
    EXPECT_ERROR(open_fails(hf, 1, 0), RYZ_EINVAL, "header length 1000 runs past the end");
    write_bytes(p, b, 5);
    EXPECT_ERROR(open_fails(hf, 1, 0), RYZ_EINVAL, "model.safetensors", "truncated");
    temp_dir_free(d);
}
END_TEST

START_TEST(test_hf_config_bad_input) {
    char *d = temp_dir(), hf[512], p[512];
    static const struct {
        const char *old, *new, *needle;
    } cases[] = {
        {"\"hidden_size\": 64", "\"hidden_size\": \"64\"", "hidden_size: expected an integer"},
        {"\"hidden_size\": 64", "\"hidden_size\": 1e400", "number out of range"},
        {"\"vocab_size\": 512", "\"vocab_size\": 0", "vocab_size 0 out of range"},
        {"\"num_hidden_layers\": 2,", "", "num_hidden_layers missing"},
        {"\"model_type\": \"llama\"", "\"model_type\": \"mistral\"", "model_type must be"},
        {"\"tie_word_embeddings\": false",
         "\"tie_word_embeddings\": false, \"rope_scaling\": "
         "{\"type\": \"linear\"}",
         "rope_scaling is not supported"},
        {"\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3",
         "n_kv_heads 3 does not divide n_heads 4"},
        {"\"num_hidden_layers\": 2", "\"num_hidden_layers\": 16777216",
         "num_hidden_layers 16777216 needs 150994947 tensors, the weight files hold 21"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hf_fresh(d, hf);
        patch_text(path_in(p, hf, "config.json"), cases[i].old, cases[i].new);
        EXPECT_ERROR(open_fails(hf, 1, 0), RYZ_EINVAL, "config.json", cases[i].needle);
    }
    /* Larger than 1 MB. */
    char *big = malloc((2u << 20) + 3);
    memset(big, ' ', 2u << 20);
    memcpy(big, "{}", 2);
    write_bytes(p, big, 2u << 20);
    free(big);
    EXPECT_ERROR(open_fails(hf, 1, 0), RYZ_EINVAL, "config.json", "exceeds the limit");
    unlink(p);
    EXPECT_ERROR(open_fails(hf, 1, 0), RYZ_EIO, "config.json", "cannot open");
    /* lm_head missing while not tied. */
    hf_fresh(d, hf);
    patch_header(hf, "\"lm_head.weight\"", "\"lm_head.weigh\"");
    EXPECT_ERROR(open_fails(hf, 1, 0), RYZ_EINVAL, "tensor lm_head.weight missing");
    /* An index naming a file outside the directory. */
    hf_fresh(d, hf);
    const char *index = "{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}";
    write_bytes(path_in(p, hf, "model.safetensors.index.json"), index, strlen(index));
    EXPECT_ERROR(open_fails(hf, 1, 0), RYZ_EINVAL, "index.json", "not a plain");
    temp_dir_free(d);
}
END_TEST

/* ================================================================ corpus */

/* Every parser over every file of tests/corpus/<parser>/: OK, EINVAL or
 * EIO with a one-line message; ok-* files must parse, bad-* must not. */
START_TEST(test_corpus) {
    int files = 0;
    for (int i = 0; ryz_ckpt_parsers[i]; i++) {
        char dir[256], p[512];
        snprintf(dir, sizeof dir, "tests/corpus/%s", ryz_ckpt_parsers[i]);
        DIR *dh = opendir(dir);
        ck_assert_msg(dh != NULL, "%s missing (run from the repository root)", dir);
        for (struct dirent *e; (e = readdir(dh));) {
            if (e->d_name[0] == '.')
                continue;
            size_t n;
            uint8_t *b = read_bytes(path_in(p, dir, e->d_name), &n);
            ryz_error_clear();
            ryz_status st = ryz_ckpt_parse_buffer(ryz_ckpt_parsers[i], b, n);
            free(b);
            files++;
            ck_assert_msg(st == RYZ_OK || st == RYZ_EINVAL || st == RYZ_EIO, "%s: %s", p,
                          ryz_status_name(st));
            ck_assert_msg(st == RYZ_OK || (*ryz_last_error() && !strchr(ryz_last_error(), '\n')),
                          "%s: message '%s'", p, ryz_last_error());
            if (!strncmp(e->d_name, "ok-", 3))
                ck_assert_msg(st == RYZ_OK, "%s: %s", p, ryz_last_error());
            if (!strncmp(e->d_name, "bad-", 4))
                ck_assert_msg(st != RYZ_OK, "%s parsed", p);
        }
        closedir(dh);
    }
    ck_assert_int_ge(files, 12);
}
END_TEST

/* ============================================================ tokenizer */

typedef struct {
    int code;
    char *out, *err;
} run_result;

static const char *ryz_bin(void) {
    const char *b = getenv("RYZ_BIN");
    return b && *b ? b : "build/ryz";
}

/* Runs `ryz ARGS` through the shell, capturing stdout and stderr. */
static run_result run_ryz(const char *dir, const char *args) {
    ck_assert_msg(access(ryz_bin(), X_OK) == 0, "%s is not an executable (run make)", ryz_bin());
    char out[512], err[512], cmd[2048];
    path_in(out, dir, "stdout");
    path_in(err, dir, "stderr");
    snprintf(cmd, sizeof cmd, "timeout 120 %s %s >%s 2>%s </dev/null", ryz_bin(), args, out, err);
    int st = system(cmd);
    size_t n;
    run_result r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, (char *)read_bytes(out, &n),
                    (char *)read_bytes(err, &n)};
    return r;
}

static void run_free(run_result *r) {
    free(r->out);
    free(r->err);
}

START_TEST(test_tokenizer_encode) {
    enum { N = TEST_HELLO_VOCAB - 259 }; /* pieces after the bytes (testutil.h) */
    char *d = temp_dir(), p[512];
    test_write_hello_tokenizer(path_in(p, d, "tokenizer.bin"));
    ryz_tokenizer *t;
    ck_assert_msg(ryz_tokenizer_load(p, 259 + N, &t) == RYZ_OK, "%s", ryz_last_error());
    int *ids, n;
    /* " hello world": dummy prefix " " + letters, merged by best score. */
    ck_assert_int_eq(ryz_tokenizer_encode(t, "hello world", 1, 0, &ids, &n), RYZ_OK);
    int want1[] = {1, 259 + 9, 259 + 17};
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(memcmp(ids, want1, sizeof want1), 0);
    free(ids);
    /* é is a piece; ü is not: byte fallback <0xC3> <0xBC> = 0xC3 + 3, 0xBC + 3. */
    ck_assert_int_eq(ryz_tokenizer_encode(t, "\xc3\xa9\xc3\xbc", 1, 1, &ids, &n), RYZ_OK);
    int want2[] = {1, 259, 259 + 18, 0xC3 + 3, 0xBC + 3, 2};
    ck_assert_int_eq(n, 6);
    ck_assert_int_eq(memcmp(ids, want2, sizeof want2), 0);
    ck_assert_str_eq(ryz_tokenizer_decode(t, 1, 259 + 9), "hello");
    ck_assert_str_eq(ryz_tokenizer_decode(t, 5, 259 + 9), " hello");
    ck_assert_str_eq(ryz_tokenizer_decode(t, 5, 0xC3 + 3), "\xc3");
    free(ids);
    ck_assert_int_eq(ryz_tokenizer_encode(t, "", 1, 0, &ids, &n), RYZ_OK);
    ck_assert_int_eq(n, 1);
    free(ids);
    ryz_tokenizer_free(t);
    /* The CLI: --prompt TEXT encodes with --tokenizer, the same ids as given. */
    char args[1200];
    snprintf(args, sizeof args,
             "generate --model synthetic:tiny,vocab=%d --prompt 'hello world' --tokenizer %s "
             "--new-tokens 3", 259 + N, p);
    run_result text = run_ryz(d, args);
    snprintf(args, sizeof args,
             "generate --model synthetic:tiny,vocab=%d --prompt-ids '1 268 276' --new-tokens 3",
             259 + N);
    run_result idsr = run_ryz(d, args);
    const char *nl = strchr(text.out, '\n');
    ck_assert_msg(text.code == 0 && nl && !strncmp(text.out, idsr.out, (size_t)(nl - text.out + 1)),
                  "--prompt: %d %s %s vs %s", text.code, text.out, text.err, idsr.out);
    ck_assert_msg(!strncmp(nl + 1, "text: hello world", 17), "no decoded text line: %s", nl + 1);
    /* A checkpoint with tokenizer.bin beside it: --prompt finds it there. */
    char ckpt[512];
    snprintf(args, sizeof args, "synthetic:tiny,vocab=%d", 259 + N);
    ck_assert_int_eq(run_cmd(ryz_cmd_export, "export", "--model", args, "--format", "llama2c",
                             "--out", path_in(ckpt, d, "m.bin"), NULL),
                     0);
    snprintf(args, sizeof args, "generate --model %s --prompt 'hello world' --new-tokens 3", ckpt);
    run_result beside = run_ryz(d, args);
    ck_assert_msg(beside.code == 0 && !strcmp(beside.out, text.out), "beside: %d %s %s vs %s",
                  beside.code, beside.out, beside.err, text.out);
    run_free(&beside);
    run_free(&text), run_free(&idsr);
    /* A vocab larger than the file holds, and a piece longer than the max. */
    EXPECT_ERROR(ryz_tokenizer_load(p, 259 + N + 1, &t), RYZ_EINVAL, "tokenizer.bin", "token");
    size_t len;
    uint8_t *b = read_bytes(p, &len);
    int32_t one = 1;
    memcpy(b, &one, 4);
    write_bytes(p, b, len);
    free(b);
    EXPECT_ERROR(ryz_tokenizer_load(p, 259 + N, &t), RYZ_EINVAL, "tokenizer.bin", "length");
    /* A tokenizer that cannot encode: the message names its file. */
    static const char *const no_space[] = {"h", "i"};
    static const float two[] = {-1, -1};
    test_write_tokenizer(p, no_space, two, 2);
    int *got = NULL, ng = 0;
    EXPECT_ERROR(ryz_tokenizer_prompt(p, 261, "hi", &got, &ng), RYZ_EINVAL, p, "no ' ' piece");
    ck_assert_ptr_null(got);
    temp_dir_free(d);
}
END_TEST

/* =================================================================== CLI */

START_TEST(test_cli_generate_checkpoint) {
    char *d = temp_dir(), bin[512], args[1200], p[512];
    path_in(bin, d, "m.bin");
    ck_assert_int_eq(run_cmd(ryz_cmd_export, "export", "--model", "synthetic:tiny,vocab=32000",
                             "--format", "llama2c", "--out", bin, NULL),
                     0);
    snprintf(args, sizeof args, "generate --model %s --prompt-ids \"1 9038 2501\" --new-tokens 8",
             bin);
    run_result one = run_ryz(d, args);
    ck_assert_msg(one.code == 0, "tp 1: exit %d: %.400s", one.code, one.err);
    ck_assert_ptr_nonnull(strstr(one.out, "ids: 1 9038 2501 "));
    strcat(args, " --tp 2");
    run_result two = run_ryz(d, args);
    ck_assert_msg(two.code == 0, "tp 2: exit %d: %.400s", two.code, two.err);
    ck_assert_str_eq(one.out, two.out);
    /* The synthetic model it came from prints the same ids. */
    run_result syn = run_ryz(d, "generate --model synthetic:tiny,vocab=32000 --prompt-ids "
                                "\"1 9038 2501\" --new-tokens 8");
    ck_assert_str_eq(one.out, syn.out);
    run_free(&one);
    run_free(&two);
    run_free(&syn);
    /* A truncated copy: exit 2 and one line naming the file. */
    size_t n;
    uint8_t *b = read_bytes(bin, &n);
    write_bytes(path_in(p, d, "trunc.bin"), b, n / 2);
    free(b);
    snprintf(args, sizeof args, "generate --model %s --prompt-ids \"1 2\" --new-tokens 2", p);
    run_result bad = run_ryz(d, args);
    ck_assert_int_eq(bad.code, 2);
    ck_assert_msg(strstr(bad.err, "trunc.bin") && strchr(bad.err, '\n') == strrchr(bad.err, '\n'),
                  "stderr: %.400s", bad.err);
    run_free(&bad);
    temp_dir_free(d);
}
END_TEST

/* A shard directory runs at its own tp by default; a corrupted rank file
 * fails that rank and the others are told, with no hang. */
START_TEST(test_cli_shard_dir_and_bad_rank) {
    char *d = temp_dir(), dir[512], args[1200], rank1[512];
    path_in(dir, d, "s");
    ck_assert_int_eq(run_cmd(ryz_cmd_shard, "shard", "--model", "synthetic:tiny", "--tp", "2",
                             "--out", dir, NULL),
                     0);
    snprintf(args, sizeof args, "generate --model %s --prompt-ids \"1 2 3\" --new-tokens 4", dir);
    run_result ok = run_ryz(d, args);
    run_result syn = run_ryz(d, "generate --model synthetic:tiny --prompt-ids \"1 2 3\" "
                                "--new-tokens 4");
    ck_assert_msg(ok.code == 0 && !strcmp(ok.out, syn.out), "shard dir: exit %d: %.400s %.400s",
                  ok.code, ok.out, ok.err);
    /* A suite's TP=1 baseline needs the whole model: refused before launch. */
    char ini[512], text[700], sargs[1200];
    snprintf(text, sizeof text, "[suite]\n[case c]\nmodel = %s\nprompt = 1 2\ntp = 2\n", dir);
    write_bytes(path_in(ini, d, "shard.ini"), text, strlen(text));
    snprintf(sargs, sizeof sargs, "suite %s -o %s/r.h5", ini, d);
    run_result suite = run_ryz(d, sargs);
    ck_assert_msg(suite.code == 2 && strstr(suite.err, "is a shard directory for tp 2") &&
                      !strstr(suite.err, "rank 0"),
                  "suite: exit %d: %.600s", suite.code, suite.err);
    run_free(&suite);
    size_t n;
    uint8_t *b = read_bytes(path_in(rank1, dir, "rank1.safetensors"), &n);
    b[n - 5] ^= 1; /* one bit of rank 1's weights */
    write_bytes(rank1, b, n);
    free(b);
    run_result bad = run_ryz(d, args); /* the same command: now rank 1 cannot load */
    ck_assert_msg(bad.code == 2, "corrupted rank 1: exit %d (124 = hang): %.400s", bad.code,
                  bad.err);
    ck_assert_msg(strstr(bad.err, "sha256") && strstr(bad.err, "failed to load"), "stderr: %.600s",
                  bad.err);
    run_free(&ok), run_free(&syn), run_free(&bad);
    temp_dir_free(d);
}
END_TEST

static Suite *ckpt_suite(void) {
    Suite *s = suite_create("ckpt");
    TCase *tc = tcase_create("sha256");
    tcase_add_test(tc, test_sha256_vectors);
    tcase_add_test(tc, test_fifo_refused);
    tcase_add_test(tc, test_sha256_paths_agree);
    suite_add_tcase(s, tc);
    tc = tcase_create("formats");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_export_llama2c_roundtrip);
    tcase_add_test(tc, test_export_hf_roundtrip);
    tcase_add_test(tc, test_llama2c_versions_shared);
    tcase_add_test(tc, test_hf_independent_files);
    tcase_add_test(tc, test_hf_f16_values);
    suite_add_tcase(s, tc);
    tc = tcase_create("shards");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_shard_serves_rank_blocks);
    tcase_add_test(tc, test_shard_of_checkpoint);
    tcase_add_test(tc, test_shard_wrong_tp);
    tcase_add_test(tc, test_shard_checksum_and_own_file);
    tcase_add_test(tc, test_shard_config_bad);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_llama2c_bad_input);
    tcase_add_test(tc, test_safetensors_bad_input);
    tcase_add_test(tc, test_hf_config_bad_input);
    tcase_add_test(tc, test_corpus);
    tcase_add_test(tc, test_tokenizer_encode);
    suite_add_tcase(s, tc);
    tc = tcase_create("cli");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_cli_generate_checkpoint);
    tcase_add_test(tc, test_cli_shard_dir_and_bad_rank);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    SRunner *sr = srunner_create(ckpt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
