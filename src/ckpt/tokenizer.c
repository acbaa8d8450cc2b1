/* llama2.c's tokenizer.bin and its encode()/decode(): int32
 * max_token_length, then per token float32 score, int32 length, bytes.
 * The encoder follows run.c exactly (same sort and search, so equal pieces
 * resolve the same way); the reader refuses what run.c would overrun on. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

#define TOK_MAX_LEN 65536 /* longest piece accepted */

typedef struct {
    const char *str;
    int id;
} tok_index; /* run.c's TokenIndex */

struct ryz_tokenizer {
    int vocab;
    int max_len;
    char **pieces;     /* (vocab) NUL-terminated, in arena */
    float *scores;     /* (vocab) */
    tok_index *sorted; /* (vocab) by piece */
    char *arena;
    unsigned char bytes[512]; /* single-byte strings for <0xXX> pieces */
};

void ryz_tokenizer_free(ryz_tokenizer *t) {
    if (!t)
        return;
    free(t->pieces);
    free(t->scores);
    free(t->sorted);
    free(t->arena);
    free(t);
}

/* run.c's compare_tokens: strcmp of the pieces. */
static int compare_tokens(const void *a, const void *b) {
    return strcmp(((const tok_index *)a)->str, ((const tok_index *)b)->str);
}

/* Little-endian int32 at p (any alignment). */
static int32_t rd32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Reads the n entries after the header into t (arena sized by the caller). */
static ryz_status read_pieces(ryz_tokenizer *t, const char *path, const uint8_t *p, size_t n) {
    size_t at = 4, used = 0;
    for (int i = 0; i < t->vocab; i++) {
        if (n - at < 8)
            return ryz_error(RYZ_EINVAL, "%s: token %d: truncated at byte %zu", path, i, at);
        float score;
        memcpy(&score, p + at, sizeof score);
        int32_t len = rd32(p + at + 4);
        at += 8;
        if (!isfinite(score))
            return ryz_error(RYZ_EINVAL, "%s: token %d: score is not finite", path, i);
        if (len < 0 || len > t->max_len || (size_t)len > n - at)
            return ryz_error(RYZ_EINVAL,
                             "%s: token %d: length %d outside [0, %d] or past the "
                             "end of the file",
                             path, i, len, t->max_len);
        t->scores[i] = score;
        t->pieces[i] = t->arena + used;
        memcpy(t->arena + used, p + at, (size_t)len);
        t->arena[used + (size_t)len] = '\0';
        used += (size_t)len + 1, at += (size_t)len;
        t->sorted[i] = (tok_index){t->pieces[i], i};
    }
    return RYZ_OK;
}

ryz_status ryz_tokenizer_parse(const char *path, const void *data, size_t n, int vocab,
                               ryz_tokenizer **out) {
    const uint8_t *p = data;
    *out = NULL;
    if (vocab < 1 || vocab > CKPT_MAX_DIM)
        return ryz_error(RYZ_EINVAL, "%s: vocab %d out of range", path, vocab);
    if (n < 4)
        return ryz_error(RYZ_EINVAL, "%s: max_token_length: truncated", path);
    int32_t max_len = rd32(p);
    if (max_len < 1 || max_len > TOK_MAX_LEN)
        return ryz_error(RYZ_EINVAL, "%s: max_token_length %d out of range [1, %d]", path, max_len,
                         TOK_MAX_LEN);
    if ((n - 4) / 8 < (size_t)vocab)
        return ryz_error(RYZ_EINVAL, "%s: %zu bytes cannot hold %d tokens (truncated?)", path, n,
                         vocab);
    ryz_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return ryz_error(RYZ_ENOMEM, "out of memory for %s", path);
    t->vocab = vocab, t->max_len = max_len;
    t->pieces = malloc((size_t)vocab * sizeof *t->pieces);
    t->scores = malloc((size_t)vocab * sizeof *t->scores);
    t->sorted = malloc((size_t)vocab * sizeof *t->sorted);
    t->arena = malloc(n + (size_t)vocab);
    ryz_status st = t->pieces && t->scores && t->sorted && t->arena
                        ? read_pieces(t, path, p, n)
                        : ryz_error(RYZ_ENOMEM, "out of memory for %s", path);
    if (st != RYZ_OK) {
        ryz_tokenizer_free(t);
        return st;
    }
    for (int i = 0; i < 256; i++)
        t->bytes[2 * i] = (unsigned char)i, t->bytes[2 * i + 1] = 0;
    qsort(t->sorted, (size_t)vocab, sizeof *t->sorted, compare_tokens);
    *out = t;
    return RYZ_OK;
}

ryz_status ryz_tokenizer_load(const char *path, int vocab, ryz_tokenizer **out) {
    char *data;
    size_t n;
    *out = NULL;
    ryz_status st = ckpt_slurp(path, (size_t)1 << 30, &data, &n);
    if (st != RYZ_OK)
        return st;
    st = ryz_tokenizer_parse(path, data, n, vocab, out);
    free(data);
    return st;
}

/* run.c's str_lookup: id of piece s, or -1. */
static int lookup(const ryz_tokenizer *t, const char *s) {
    tok_index key = {s, 0};
    const tok_index *r = bsearch(&key, t->sorted, (size_t)t->vocab, sizeof key, compare_tokens);
    return r ? r->id : -1;
}

/* Appends the id of each code point of text (byte fallback: byte + 3). */
static ryz_status encode_points(const ryz_tokenizer *t, const char *text, char *buf, int *ids,
                                int *n) {
    size_t len = 0;
    for (const char *c = text; *c; c++) {
        if ((*c & 0xC0) != 0x80)
            len = 0; /* a new code point starts */
        buf[len++] = *c;
        buf[len] = '\0';
        if ((c[1] & 0xC0) == 0x80 && len < 4)
            continue;
        int id = lookup(t, buf);
        if (id != -1)
            ids[(*n)++] = id;
        for (size_t i = 0; id == -1 && i < len; i++) {
            int b = (unsigned char)buf[i] + 3;
            if (b >= t->vocab)
                return ryz_error(RYZ_EINVAL, "tokenizer: byte fallback id %d outside vocab %d", b,
                                 t->vocab);
            ids[(*n)++] = b;
        }
        len = 0;
    }
    return RYZ_OK;
}

/* Merges the best-scoring adjacent pair until none is in the vocabulary. */
static void merge_pairs(const ryz_tokenizer *t, char *buf, int *ids, int *n) {
    for (;;) {
        float best = -1e10f;
        int best_id = -1, best_i = -1;
        for (int i = 0; i + 1 < *n; i++) {
            strcpy(buf, t->pieces[ids[i]]);
            strcat(buf, t->pieces[ids[i + 1]]);
            int id = lookup(t, buf);
            if (id != -1 && t->scores[id] > best)
                best = t->scores[id], best_id = id, best_i = i;
        }
        if (best_i == -1)
            return;
        ids[best_i] = best_id;
        memmove(ids + best_i + 1, ids + best_i + 2, (size_t)(*n - best_i - 2) * sizeof *ids);
        (*n)--;
    }
}

ryz_status ryz_tokenizer_encode(const ryz_tokenizer *t, const char *text, int bos, int eos,
                                int **ids, int *n) {
    size_t tl = strlen(text);
    *n = 0;
    *ids = malloc((tl + 3) * sizeof **ids);
    char *buf = malloc((size_t)t->max_len * 2 + 8);
    ryz_status st = *ids && buf ? RYZ_OK : ryz_error(RYZ_ENOMEM, "out of memory encoding");
    if (st == RYZ_OK && bos && t->vocab > 1)
        (*ids)[(*n)++] = 1;
    if (st == RYZ_OK && text[0]) {
        int space = lookup(t, " ");
        if (space < 0)
            st = ryz_error(RYZ_EINVAL, "tokenizer: no ' ' piece for the dummy prefix");
        else
            (*ids)[(*n)++] = space;
    }
    if (st == RYZ_OK)
        st = encode_points(t, text, buf, *ids, n);
    if (st == RYZ_OK)
        merge_pairs(t, buf, *ids, n);
    if (st == RYZ_OK && eos && t->vocab > 2)
        (*ids)[(*n)++] = 2;
    free(buf);
    if (st != RYZ_OK)
        free(*ids), *ids = NULL, *n = 0;
    return st;
}

/* Value of a hex digit, -1 for anything else. */
static int hexval(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
}

const char *ryz_tokenizer_decode(const ryz_tokenizer *t, int prev, int id) {
    if (id < 0 || id >= t->vocab)
        return "";
    const char *p = t->pieces[id];
    if (prev == 1 && p[0] == ' ')
        p++;
    if (strncmp(p, "<0x", 3) == 0 && p[3] && p[4] && p[5] == '>' && p[6] == '\0' &&
        hexval(p[3]) >= 0 && hexval(p[4]) >= 0)
        return (const char *)t->bytes + 2 * (hexval(p[3]) * 16 + hexval(p[4]));
    return p;
}

ryz_status ryz_tokenizer_prompt(const char *path, int vocab, const char *text, int **ids, int *n) {
    ryz_tokenizer *t;
    *ids = NULL, *n = 0;
    ryz_status st = ryz_tokenizer_load(path, vocab, &t);
    if (st != RYZ_OK)
        return st;
    st = ryz_tokenizer_encode(t, text, 1, 0, ids, n);
    ryz_tokenizer_free(t);
    return st == RYZ_OK ? st : ryz_error_wrap(st, "%s", path); /* which tokenizer failed */
}

int ryz_tokenizer_default(const char *model, char *path, size_t cap) {
    struct stat sb;
    if (!path || cap == 0) return 0; /* nowhere to say it */
    if (strncmp(model, "synthetic:", 10) != 0) {
        int is_dir = stat(model, &sb) == 0 && S_ISDIR(sb.st_mode);
        const char *slash = strrchr(model, '/');
        int len = is_dir ? (int)strlen(model) : slash ? (int)(slash - model) : 1;
        snprintf(path, cap, "%.*s/tokenizer.bin", len, is_dir || slash ? model : ".");
        if (stat(path, &sb) == 0) return 1;
    }
    snprintf(path, cap, "tokenizer.bin");
    return stat(path, &sb) == 0;
}
