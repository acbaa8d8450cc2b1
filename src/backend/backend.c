/* What every backend shares: choosing one by name, freeing it through its
 * destroy op, memory figures, the dtype-dispatching matmul, dtype names
 * and the host argmax. */
#include <string.h>

#include "ryz/backend.h"
#include "ryz/cuda.h"

static const char *const kind_names[] = {"cpu", "cuda"};

ryz_status ryz_backend_kind_parse(const char *name, ryz_backend_kind *out) {
    for (int k = 0; k < 2; k++)
        if (!strcmp(name, kind_names[k])) {
            *out = (ryz_backend_kind)k;
            return RYZ_OK;
        }
    return ryz_error(RYZ_EINVAL, "backend '%s' unknown (known: cpu, cuda)", name);
}

const char *ryz_backend_kind_name(ryz_backend_kind k) {
    return (unsigned)k < 2 ? kind_names[k] : "unknown";
}

ryz_status ryz_backend_available(ryz_backend_kind kind) {
    if (kind == RYZ_BACKEND_CPU) return RYZ_OK;
    int devices = 0;
    ryz_status st = ryz_cuda_device_count(&devices);
    return st == RYZ_OK ? RYZ_OK : ryz_error_wrap(RYZ_EINVAL, "no CUDA device");
}

ryz_status ryz_backend_init_opts(ryz_backend_kind kind, const ryz_backend_opts *o,
                                 ryz_backend *out) {
    *out = (ryz_backend){0};
    if (kind == RYZ_BACKEND_CPU && o->tf32)
        return ryz_error(RYZ_EINVAL, "tf32 needs backend cuda (the cpu backend's GEMMs are "
                         "IEEE fp32 only)");
    if (kind == RYZ_BACKEND_CPU) return ryz_backend_init_cpu(o->threads, out);
    ryz_status st = ryz_backend_available(kind);
    if (st != RYZ_OK) return st;
    ryz_cuda_opts c = ryz_cuda_opts_default();
    c.tf32 = o->tf32;
    return ryz_backend_init_cuda(&c, out);
}

ryz_status ryz_backend_init(ryz_backend_kind kind, int threads, ryz_backend *out) {
    ryz_backend_opts o = {.threads = threads};
    return ryz_backend_init_opts(kind, &o, out);
}

void ryz_backend_free(ryz_backend *b) {
    if (!b) return;
    if (b->iface && b->ctx) b->iface->destroy(b->ctx);
    *b = (ryz_backend){0};
}

/* b's live (want_peak 0) or peak bytes of kind. */
static size_t mem_figure(const ryz_backend *b, ryz_mem_kind kind, int want_peak) {
    size_t live = 0, peak = 0;
    if ((unsigned)kind < RYZ_MEM_NKINDS) b->iface->mem_usage(b->ctx, kind, &live, &peak);
    return want_peak ? peak : live;
}

size_t ryz_backend_mem_bytes(const ryz_backend *b, ryz_mem_kind kind) {
    return mem_figure(b, kind, 0);
}

size_t ryz_backend_mem_peak(const ryz_backend *b, ryz_mem_kind kind) {
    return mem_figure(b, kind, 1);
}

void ryz_backend_matmul(ryz_backend *b, float *y, const float *x, ryz_matrix w, int n, int in,
                        int out) {
    if (w.dtype == RYZ_DTYPE_BF16) b->iface->matmul_bf16(b->ctx, y, x, w.data, n, in, out);
    else b->iface->matmul(b->ctx, y, x, w.data, n, in, out);
}

void ryz_backend_matmul_multi(ryz_backend *b, int count, float *const *y, const float *x,
                              const ryz_matrix *w, const int *out, int n, int in) {
    const void *data[RYZ_MULTI_MAX];
    int one = b->iface->matmul_multi && count >= 1 && count <= RYZ_MULTI_MAX;
    for (int i = 0; one && i < count; i++) {
        one = w[i].dtype == w[0].dtype;
        data[i] = w[i].data;
    }
    if (one) b->iface->matmul_multi(b->ctx, count, y, data, out, w[0].dtype, x, n, in);
    else ryz_backend_matmul_multi_separate(b, count, y, x, w, out, n, in);
}

void ryz_backend_matmul_multi_separate(ryz_backend *b, int count, float *const *y,
                                       const float *x, const ryz_matrix *w, const int *out,
                                       int n, int in) {
    for (int i = 0; i < count; i++) ryz_backend_matmul(b, y[i], x, w[i], n, in, out[i]);
}

void ryz_backend_matmul_pair(ryz_backend *b, float *y1, float *y2, const float *x, ryz_matrix w1,
                             ryz_matrix w2, int n, int in, int out) {
    if (b->iface->matmul_pair && w1.dtype == w2.dtype)
        b->iface->matmul_pair(b->ctx, y1, y2, x, w1.data, w2.data, w1.dtype, n, in, out);
    else
        ryz_backend_matmul_pair_separate(b, y1, y2, x, w1, w2, n, in, out);
}

void ryz_backend_matmul_pair_separate(ryz_backend *b, float *y1, float *y2, const float *x,
                                      ryz_matrix w1, ryz_matrix w2, int n, int in, int out) {
    ryz_backend_matmul(b, y1, x, w1, n, in, out);
    ryz_backend_matmul(b, y2, x, w2, n, in, out);
    b->iface->silu_mul(b->ctx, y1, y2, (size_t)n * out);
}

ryz_status ryz_backend_read_probe(ryz_backend *b, const void *p, size_t bytes, double *seconds,
                                  uint64_t *sum) {
    if (!b->iface->read_probe)
        return ryz_error(RYZ_EINVAL, "the %s backend has no read probe (its bandwidth is a copy "
                         "kernel's)", b->iface->name);
    if (bytes == 0 || bytes % RYZ_PROBE_ROW_BYTES)
        return ryz_error(RYZ_EINVAL, "read probe of %zu bytes: must be a positive multiple of %d",
                         bytes, RYZ_PROBE_ROW_BYTES);
    double t0 = ryz_time_now();
    ryz_status st = b->iface->read_probe(b->ctx, p, bytes, sum);
    *seconds = ryz_time_now() - t0;
    return st;
}

ryz_status ryz_probe_slices_open(ryz_backend *b, size_t bytes, size_t slice,
                                 ryz_probe_slices *p) {
    *p = (ryz_probe_slices){.be = b, .bytes = bytes, .slice = slice};
    if (slice == 0 || slice % RYZ_PROBE_ROW_BYTES || slice > bytes)
        return ryz_error(RYZ_EINVAL, "probe slice of %zu bytes: must be a positive multiple of "
                         "%d, at most the buffer's %zu", slice, RYZ_PROBE_ROW_BYTES, bytes);
    uint64_t *w = b->iface->alloc(b->ctx, RYZ_MEM_SCRATCH, bytes);
    if (!w) return ryz_error_wrap(RYZ_ENOMEM, "no memory for a %zu MiB probe", bytes >> 20);
    for (size_t i = 0; i < bytes / sizeof *w; i++) w[i] = i;
    p->buf = (char *)w;
    double sec;
    ryz_status st = ryz_probe_slices_read(p, &sec); /* what the first read would allocate */
    if (st != RYZ_OK) ryz_probe_slices_free(p);
    return st;
}

ryz_status ryz_probe_slices_read(ryz_probe_slices *p, double *seconds) {
    uint64_t sum = 0;
    if (p->at + p->slice > p->bytes) p->at = 0;
    ryz_status st = ryz_backend_read_probe(p->be, p->buf + p->at, p->slice, seconds, &sum);
    p->at += p->slice, p->sink += sum;
    return st;
}

void ryz_probe_slices_free(ryz_probe_slices *p) {
    if (p->buf) p->be->iface->free(p->be->ctx, p->buf);
    p->buf = NULL;
}

const char *ryz_dtype_name(ryz_dtype d) {
    return d == RYZ_DTYPE_BF16 ? "bf16" : "f32";
}

size_t ryz_dtype_size(ryz_dtype d) {
    return d == RYZ_DTYPE_BF16 ? 2 : 4;
}

ryz_status ryz_dtype_parse(const char *text, ryz_dtype *out) {
    static const char *const names[] = {"f32", "fp32", "float32", "bf16", "bfloat16"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(text, names[i])) {
            *out = i < 3 ? RYZ_DTYPE_F32 : RYZ_DTYPE_BF16;
            return RYZ_OK;
        }
    return ryz_error(RYZ_EINVAL, "dtype '%s' unknown (known: f32, bf16)", text);
}

/* ryz_argmax from index `from` on, best so far at `best`. */
static int argmax_from(const float *x, int n, int from, int best) {
    for (int i = from; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

#if defined(__x86_64__)
#include <immintrin.h>

/* ryz_argmax over 8 lanes: each lane keeps the first of its largest values
 * above x[0] and where it was, then the largest lane wins, the lowest
 * index among equals. Like the plain loop, NaN never beats anything (and
 * nothing beats a NaN in x[0]). A decode step's greedy pick scans the
 * whole vocab (32000 floats for 110m): the plain loop took about 1 % of a
 * bf16 token. */
__attribute__((target("avx2"))) static int argmax_avx2(const float *x, int n) {
    __m256 best = _mm256_set1_ps(x[0]);
    __m256i at = _mm256_setzero_si256(), cur = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i eight = _mm256_set1_epi32(8);
    int i = 0;
    for (; i + 8 <= n; i += 8, cur = _mm256_add_epi32(cur, eight)) {
        __m256 v = _mm256_loadu_ps(x + i), gt = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
        best = _mm256_blendv_ps(best, v, gt);
        at = _mm256_blendv_epi8(at, cur, _mm256_castps_si256(gt));
    }
    float bv[8];
    int bi[8], b = 0;
    _mm256_storeu_ps(bv, best);
    _mm256_storeu_si256((__m256i *)(void *)bi, at);
    for (int k = 1; k < 8; k++)
        if (bv[k] > bv[b] || (bv[k] == bv[b] && bi[k] < bi[b])) b = k;
    return argmax_from(x, n, i, bi[b]);
}
#endif

int ryz_argmax(const float *x, int n) {
#if defined(__x86_64__)
    if (n >= 8 && __builtin_cpu_supports("avx2")) return argmax_avx2(x, n);
#endif
    return argmax_from(x, n, 1, 0);
}
