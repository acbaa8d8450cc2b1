/* Every checkpoint parser run over an in-memory file: the entry point of the
 * libFuzzer harnesses (tests/fuzz/) and of the corpus tests. File-based
 * parsers get the bytes through a temporary file, so the real open and
 * pread paths run. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

const char *const ryz_ckpt_parsers[] = {"json",         "safetensors", "llama2c", "hf_config",
                                        "shard_config", "tokenizer",   NULL};

/* JSON, then optionally a config reader over it. */
static ryz_status run_json(const char *name, const void *data, size_t n) {
    char *text = malloc(n + 1);
    json_doc d = {0};
    ryz_model_config cfg;
    int tied;
    if (!text)
        return ryz_error(RYZ_ENOMEM, "out of memory");
    memcpy(text, data, n);
    text[n] = '\0';
    ryz_status st = json_parse(&d, text, n);
    if (st == RYZ_OK && strcmp(name, "hf_config") == 0)
        st = hf_parse_config("config.json", &d, &cfg, &tied);
    if (st == RYZ_OK && strcmp(name, "shard_config") == 0) {
        shard_config *sc = malloc(sizeof *sc);
        st = sc ? shard_parse_config("config.json", &d, sc) : RYZ_ENOMEM;
        free(sc);
    }
    json_free(&d);
    return st;
}

/* Writes the bytes to a new temporary file (path: 64 bytes). */
static ryz_status temp_file(const void *data, size_t n, char *path) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, 64, "%s/ryz-parse-XXXXXX", dir && strlen(dir) < 40 ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return ryz_error(RYZ_EIO, "%s: cannot create a temporary file", path);
    int ok = write(fd, data, n) == (ssize_t)n;
    ok &= close(fd) == 0;
    if (!ok)
        unlink(path);
    return ok ? RYZ_OK : ryz_error(RYZ_EIO, "%s: cannot write", path);
}

/* Reads the first row and a corner block of every tensor of a source. */
static ryz_status touch_tensors(const ryz_model_config *c, ryz_weights *w) {
    float *buf = malloc((size_t)(c->dim > c->hidden ? c->dim : c->hidden) * sizeof(float));
    ryz_status st = buf ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory");
    for (int i = 0; st == RYZ_OK && i < ckpt_tensor_count(c); i++) {
        uint32_t t = ckpt_tensor_id(c, i);
        int64_t rows, cols;
        ckpt_tensor_shape(c, t, &rows, &cols);
        st = ryz_weights_fill(w, t, 0, 1, 0, (int)cols, (int)cols, buf);
        if (st == RYZ_OK)
            st = ryz_weights_fill(w, t, rows - 1, 1, cols - 1, 1, 1, buf);
    }
    free(buf);
    return st;
}

/* A file-based parser over the bytes. */
static ryz_status run_file(const char *name, const void *data, size_t n) {
    char path[64];
    ryz_model_config cfg;
    ryz_weights *w = NULL;
    ryz_status st = temp_file(data, n, path);
    if (st != RYZ_OK)
        return st;
    if (strcmp(name, "safetensors") == 0) {
        ckpt_file f;
        st_header h;
        st = ckpt_file_open(path, &f);
        if (st == RYZ_OK)
            st = st_read(&h, &f), st_free(&h);
        ckpt_file_close(&f);
    } else {
        st = ryz_ckpt_open(path, 1, 0, &cfg, &w);
        if (st == RYZ_OK)
            st = touch_tensors(&cfg, w);
        ryz_weights_close(w);
    }
    unlink(path);
    return st;
}

/* The tokenizer for a vocabulary of 300, then an encode and decodes. */
static ryz_status run_tokenizer(const void *data, size_t n) {
    ryz_tokenizer *t;
    int *ids = NULL, m = 0;
    ryz_status st = ryz_tokenizer_parse("tokenizer.bin", data, n, 300, &t);
    if (st != RYZ_OK)
        return st;
    st = ryz_tokenizer_encode(t, "Hello w\xc3\xb6rld \xe4\xbd\xa0 \x80 zz", 1, 1, &ids, &m);
    for (int i = 0; st == RYZ_OK && i < m; i++)
        (void)ryz_tokenizer_decode(t, i ? ids[i - 1] : 1, ids[i]);
    free(ids);
    ryz_tokenizer_free(t);
    return st;
}

ryz_status ryz_ckpt_parse_buffer(const char *name, const void *data, size_t n) {
    if (!strcmp(name, "json") || !strcmp(name, "hf_config") || !strcmp(name, "shard_config"))
        return run_json(name, data, n);
    if (!strcmp(name, "safetensors") || !strcmp(name, "llama2c"))
        return run_file(name, data, n);
    if (!strcmp(name, "tokenizer"))
        return run_tokenizer(data, n);
    return ryz_error(RYZ_EINVAL, "unknown parser '%s'", name);
}
