/* Reading hostile files (exact preads, bounded whole-file reads), dtype
 * conversion, and writing under a temporary name renamed on commit. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

ryz_status ckpt_file_open(const char *path, ckpt_file *f) {
    struct stat sb;
    *f = (ckpt_file){.fd = -1};
    int fd;
    ryz_status st = ryz_open_regular(path, &fd);
    if (st != RYZ_OK) return st;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return ryz_error(RYZ_EIO, "%s: cannot stat: %s", path, strerror(errno));
    }
    f->path = strdup(path);
    if (!f->path) {
        close(fd);
        return ryz_error(RYZ_ENOMEM, "out of memory opening %s", path);
    }
    f->fd = fd;
    f->size = (uint64_t)sb.st_size;
    return RYZ_OK;
}

void ckpt_file_close(ckpt_file *f) {
    if (f->fd >= 0)
        close(f->fd);
    free(f->path);
    *f = (ckpt_file){.fd = -1};
}

ryz_status ckpt_pread(const ckpt_file *f, void *buf, size_t n, uint64_t off, const char *what) {
    char *p = buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
        ssize_t r = pread(f->fd, p, chunk, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return ryz_error(RYZ_EIO, "%s: %s: read error at byte %llu: %s", f->path, what,
                             (unsigned long long)off, strerror(errno));
        if (r == 0)
            return ryz_error(RYZ_EIO, "%s: %s: truncated at byte %llu", f->path, what,
                             (unsigned long long)off);
        p += r, n -= (size_t)r, off += (uint64_t)r;
    }
    return RYZ_OK;
}

ryz_status ckpt_slurp(const char *path, size_t max, char **text, size_t *len) {
    ckpt_file f;
    *text = NULL;
    ryz_status st = ckpt_file_open(path, &f);
    if (st != RYZ_OK)
        return st;
    if (f.size > max) {
        st = ryz_error(RYZ_EINVAL, "%s: size %llu bytes exceeds the limit of %zu", path,
                       (unsigned long long)f.size, max);
        goto cleanup;
    }
    *text = malloc((size_t)f.size + 1);
    if (!*text) {
        st = ryz_error(RYZ_ENOMEM, "out of memory reading %s", path);
        goto cleanup;
    }
    st = ckpt_pread(&f, *text, (size_t)f.size, 0, "contents");
    (*text)[f.size] = '\0';
    *len = (size_t)f.size;
cleanup:
    if (st != RYZ_OK)
        free(*text), *text = NULL;
    ckpt_file_close(&f);
    return st;
}

char *ckpt_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

ryz_status ckpt_mkdir(const char *dir) {
    struct stat sb;
    if (mkdir(dir, 0777) == 0)
        return RYZ_OK;
    if (errno == EEXIST && stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
        return RYZ_OK;
    return ryz_error(RYZ_EIO, "%s: cannot create directory: %s", dir,
                     errno == EEXIST ? "exists and is not a directory" : strerror(errno));
}

ryz_status ckpt_sha256_file(const ckpt_file *f, char hex[65]) {
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK), digest[32];
    if (!buf)
        return ryz_error(RYZ_ENOMEM, "out of memory hashing %s", f->path);
    ryz_sha256 s;
    ryz_sha256_init(&s);
    ryz_status st = RYZ_OK;
    for (uint64_t off = 0; st == RYZ_OK && off < f->size; off += CHUNK) {
        size_t n = f->size - off < CHUNK ? (size_t)(f->size - off) : CHUNK;
        st = ckpt_pread(f, buf, n, off, "sha256");
        ryz_sha256_update(&s, buf, n);
    }
    ryz_sha256_final(&s, digest);
    ckpt_hex(digest, sizeof digest, hex);
    free(buf);
    return st;
}

/* ================================================================ dtypes */

size_t ckpt_dtype_size(ckpt_dtype d) {
    return d == CKPT_F32 ? 4 : 2;
}

const char *ckpt_dtype_name(ckpt_dtype d) {
    return d == CKPT_F32 ? "F32" : d == CKPT_F16 ? "F16" : "BF16";
}

int ckpt_dtype_parse(const char *s, ckpt_dtype *out) {
    static const ckpt_dtype all[] = {CKPT_F32, CKPT_F16, CKPT_BF16};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, ckpt_dtype_name(all[i])) == 0)
            return *out = all[i], 1;
    return 0;
}

/* The float with bit pattern u. */
static float bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

float ckpt_bf16_to_f32(uint16_t h) {
    return bits_f32((uint32_t)h << 16);
}

/* IEEE half to single: normals and subnormals exactly, inf and NaN kept. */
float ckpt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp != 0)
        return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
    float x = (float)man * (1.0f / 16777216.0f); /* man * 2^-24 */
    return sign ? -x : x;
}

/* ======================================================= streamed output */

ryz_status ckpt_out_open(ckpt_out *o, const char *path, int hash) {
    memset(o, 0, sizeof *o);
    o->path = strdup(path);
    o->tmp = malloc(strlen(path) + 5);
    if (!o->path || !o->tmp) {
        ckpt_out_abort(o);
        return ryz_error(RYZ_ENOMEM, "out of memory writing %s", path);
    }
    strcat(strcpy(o->tmp, path), ".tmp");
    o->f = fopen(o->tmp, "wb");
    if (!o->f) {
        ryz_status st = ryz_error(RYZ_EIO, "%s: cannot write: %s", o->tmp, strerror(errno));
        ckpt_out_abort(o);
        return st;
    }
    o->hash = hash;
    ryz_sha256_init(&o->sha);
    return RYZ_OK;
}

ryz_status ckpt_out_write(ckpt_out *o, const void *p, size_t n) {
    if (n && fwrite(p, 1, n, o->f) != n)
        return ryz_error(RYZ_EIO, "%s: write failed: %s", o->tmp, strerror(errno));
    if (o->hash)
        ryz_sha256_update(&o->sha, p, n);
    o->written += n;
    return RYZ_OK;
}

ryz_status ckpt_out_commit(ckpt_out *o, char hex[65]) {
    ryz_status st = RYZ_OK;
    int bad = fflush(o->f) != 0 || fsync(fileno(o->f)) != 0;
    bad |= fclose(o->f) != 0;
    o->f = NULL;
    if (bad || rename(o->tmp, o->path) != 0)
        st = ryz_error(RYZ_EIO, "%s: cannot complete the write: %s", o->path, strerror(errno));
    if (st == RYZ_OK && o->hash && hex) {
        uint8_t d[32];
        ryz_sha256_final(&o->sha, d);
        ckpt_hex(d, sizeof d, hex);
    }
    ckpt_out_abort(o);
    return st;
}

void ckpt_out_abort(ckpt_out *o) {
    if (o->f)
        fclose(o->f);
    if (o->tmp)
        unlink(o->tmp);
    free(o->path);
    free(o->tmp);
    memset(o, 0, sizeof *o);
}

ryz_status ckpt_write_file(const char *path, const char *text, size_t len) {
    ckpt_out o;
    ryz_status st = ckpt_out_open(&o, path, 0);
    if (st == RYZ_OK)
        st = ckpt_out_write(&o, text, len);
    if (st == RYZ_OK)
        return ckpt_out_commit(&o, NULL);
    if (o.path)
        ckpt_out_abort(&o);
    return st;
}

/* Writes rows [0, n) of buf (ncols floats each) in rotary order within heads
 * of hd rows when hd > 0: stored row j*hd/2 + i of a head is row 2i + j. */
static ryz_status write_rows(ckpt_out *o, const float *buf, int64_t n, int ncols, int hd) {
    if (hd <= 0)
        return ckpt_out_write(o, buf, (size_t)n * ncols * sizeof(float));
    ryz_status st = RYZ_OK;
    for (int64_t k = 0; st == RYZ_OK && k < n; k++) {
        int64_t w = k % hd, half = hd / 2;
        int64_t src = k - w + 2 * (w % half) + w / half;
        st = ckpt_out_write(o, buf + src * ncols, (size_t)ncols * sizeof(float));
    }
    return st;
}

ryz_status ckpt_out_block(ckpt_out *o, ryz_weights *w, uint32_t t, int64_t row0, int64_t nrows,
                          int64_t col0, int ncols, int perm_hd) {
    int64_t chunk = ((int64_t)1 << 20) / (ncols > 0 ? ncols : 1);
    if (perm_hd > 0)
        chunk = (chunk / perm_hd + 1) * perm_hd;
    if (chunk < 1)
        chunk = 1;
    if (chunk > nrows)
        chunk = nrows;
    float *buf = malloc((size_t)(chunk > 0 ? chunk : 1) * (size_t)ncols * sizeof(float) + 1);
    if (!buf)
        return ryz_error(RYZ_ENOMEM, "out of memory writing %s", o->path);
    ryz_status st = RYZ_OK;
    for (int64_t r = 0; st == RYZ_OK && r < nrows; r += chunk) {
        int64_t n = nrows - r < chunk ? nrows - r : chunk;
        st = ryz_weights_fill(w, t, row0 + r, (int)n, col0, ncols, ncols, buf);
        if (st == RYZ_OK)
            st = write_rows(o, buf, n, ncols, perm_hd);
    }
    free(buf);
    return st;
}
