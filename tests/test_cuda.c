/* Tests of the cuda backend and the nccl communicator (docs/gpu.md).
 *
 * Every vtable op of the cuda backend is run on random inputs at several
 * shapes and compared with the cpu backend within float32 tolerance; the
 * device embedding, vocab mask and argmax with host versions; then memory
 * accounting, the kept-error rule, timers, the nccl collectives on the
 * MPI world this process has (one rank as a plain process; run it under
 * `mpirun -np N` on N GPUs for more), and the whole model on the device:
 * at TP=1 against the cpu backend, and at TP=N over nccl (device buffers)
 * and over mpi (staged through the host) against the cpu backend at TP=1;
 * and the suite runner with cases on cuda over mpi and nccl (the checks of
 * suite files against the device, and a run against a cpu case).
 *
 * Without CUDA in the build, or without a device, it prints one
 * "test_cuda: SKIP: ..." line and exits 0. Tests do not fork (CK_NOFORK):
 * the device check already initialised CUDA, which a forked child cannot
 * use, and MPI does not allow forking either. */
#define _POSIX_C_SOURCE 200809L

#include "ryz/backend.h"
#include "ryz/comm.h"
#include "ryz/cuda.h"
#include "ryz/model.h"
#include "ryz/suite.h"

#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static ryz_backend g_cpu, g_gpu;
static ryz_comm *g_world; /* nccl over the MPI world */
static ryz_comm *g_mpi;   /* mpi over the same world (host buffers) */
static ryz_comm *g_self;  /* one rank: the TP=1 runs */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

/* ---- helpers --------------------------------------------------------- */

/* Uniform in [-1, 1) (xorshift64*: reproducible, no libc state). */
static float frand(void) {
    g_rng ^= g_rng >> 12, g_rng ^= g_rng << 25, g_rng ^= g_rng >> 27;
    uint64_t r = g_rng * 0x2545f4914f6cdd1dull;
    return (float)((double)(r >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

/* n floats uniform in [-scale, scale) (malloc'd). */
static float *host_rand(size_t n, float scale) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * frand();
    return x;
}

/* A copy of h (n floats) in host memory. */
static float *host_copy(const float *h, size_t n) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    ck_assert_ptr_nonnull(x);
    memcpy(x, h, n * sizeof *x);
    return x;
}

/* Device memory of `bytes` from the cuda backend's alloc. */
static void *dev_alloc(size_t bytes) {
    void *d = g_gpu.iface->alloc(g_gpu.ctx, RYZ_MEM_SCRATCH, bytes);
    ck_assert_msg(d != NULL, "cuda alloc of %zu bytes: %s", bytes, ryz_last_error());
    return d;
}

/* A device copy of h (n floats). */
static float *dev_from(const float *h, size_t n) {
    float *d = dev_alloc(n * sizeof *d);
    ck_assert_msg(ryz_cuda_upload(&g_gpu, d, h, n * sizeof *d) == RYZ_OK, "%s", ryz_last_error());
    return d;
}

static void dev_free(void *d) {
    g_gpu.iface->free(g_gpu.ctx, d);
}

/* A device int holding pos: where rope, rope_cache and attention read
 * their position. */
static int *dev_pos(int pos) {
    int *d = dev_alloc(sizeof *d);
    ck_assert_msg(ryz_cuda_upload(&g_gpu, d, &pos, sizeof pos) == RYZ_OK, "%s", ryz_last_error());
    return d;
}

/* Waits for the device, fails on a kept error, copies d (n floats) to h. */
static void to_host(float *h, const float *d, size_t n) {
    ck_assert_msg(ryz_cuda_sync(&g_gpu) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_msg(ryz_cuda_download(&g_gpu, h, d, n * sizeof *h) == RYZ_OK, "%s", ryz_last_error());
}

/* |got - want| <= atol + rtol * |want| elementwise (both infinite alike
 * counts as equal), naming the first element that is not. */
static void assert_close(const float *got, const float *want, size_t n, float atol, float rtol,
                         const char *what) {
    for (size_t i = 0; i < n; i++) {
        if (isinf(want[i]) && got[i] == want[i])
            continue;
        float err = fabsf(got[i] - want[i]);
        ck_assert_msg(err <= atol + rtol * fabsf(want[i]),
                      "%s: element %zu is %.9g on cuda, %.9g on cpu (|diff| %.3g)", what, i,
                      (double)got[i], (double)want[i], (double)err);
    }
}

/* ---- the vtable against the cpu backend --------------------------------- */

/* W (out, in) as backend b stores it for dtype: w itself for f32, or
 * packed by ryz_bf16_pack_rows in b's layout into a new host buffer for
 * bf16 (the cpu backend's is row-major, cuda's tiled). */
static const void *host_matrix(const ryz_backend *b, const float *w, ryz_dtype dt, int in,
                               int out) {
    if (dt == RYZ_DTYPE_F32)
        return w;
    uint16_t *h = malloc((size_t)out * in * sizeof *h);
    ck_assert_ptr_nonnull(h);
    ryz_bf16_pack_rows(b->iface->bf16_layout, h, w, 0, out, in, out);
    return h;
}

/* A random matrix (out, in) scaled like the model's (1/sqrt(in), so
 * products are O(1)), on the device in gpu's layout for dt (*dev) and on
 * the host in the cpu backend's (*cw, w itself for fp32, to free with
 * free_matrix). */
static float *dev_matrix(ryz_backend *gpu, ryz_dtype dt, int in, int out, void **dev,
                         const void **cw) {
    size_t nw = (size_t)out * in;
    float *w = host_rand(nw, 1 / sqrtf(in));
    const void *hw = host_matrix(gpu, w, dt, in, out);
    *cw = host_matrix(&g_cpu, w, dt, in, out);
    *dev = dev_alloc(nw * ryz_dtype_size(dt));
    ck_assert_msg(ryz_cuda_upload(gpu, *dev, hw, nw * ryz_dtype_size(dt)) == RYZ_OK, "%s",
                  ryz_last_error());
    if (hw != w)
        free((void *)hw);
    return w;
}

static void free_matrix(float *w, const void *cw) {
    if (cw != w)
        free((void *)cw);
    free(w);
}

/* y (n, out) = x (n, in) . W^T on both backends with W stored as dt (the
 * cpu backend's matmul for dt is the reference; W from dev_matrix). x
 * starts x_off floats into its device buffer: 1 makes it not 16-byte
 * aligned. */
static void check_matmul(ryz_backend *gpu, ryz_dtype dt, int n, int in, int out, int x_off,
                         float atol, float rtol) {
    size_t nx = (size_t)n * in, ny = (size_t)n * out;
    float *x = host_rand(nx, 1.0f);
    void *dw;
    const void *cw;
    float *w = dev_matrix(gpu, dt, in, out, &dw, &cw);
    float *want = host_rand(ny, 1.0f), *got = host_rand(ny, 1.0f);
    float *dx = dev_alloc((nx + x_off) * sizeof *dx), *dy = dev_alloc(ny * sizeof *dy);
    ck_assert_msg(ryz_cuda_upload(gpu, dx + x_off, x, nx * sizeof *x) == RYZ_OK, "%s",
                  ryz_last_error());
    ryz_backend_matmul(&g_cpu, want, x, (ryz_matrix){cw, dt}, n, in, out);
    ryz_backend_matmul(gpu, dy, dx + x_off, (ryz_matrix){dw, dt}, n, in, out);
    ck_assert_msg(ryz_cuda_sync(gpu) == RYZ_OK, "%s", ryz_last_error());
    to_host(got, dy, ny);
    char what[96];
    snprintf(what, sizeof what, "%s matmul n %d in %d out %d (x offset %d)", ryz_dtype_name(dt),
             n, in, out, x_off);
    assert_close(got, want, ny, atol, rtol, what);
    dev_free(dx), dev_free(dw), dev_free(dy);
    free_matrix(w, cw);
    free(x), free(want), free(got);
}

/* matmul_pair on the device against the cpu backend's two matmuls and
 * silu_mul: the one-launch kernels (decode n, aligned, bf16 whole row
 * groups) and the fallback of separate ops otherwise. Only y1 is
 * compared: y2 is scratch. */
static void check_pair(ryz_dtype dt, int n, int in, int out) {
    size_t nx = (size_t)n * in, ny = (size_t)n * out;
    float *x = host_rand(nx, 1.0f), *want1 = host_rand(ny, 1.0f), *want2 = host_rand(ny, 1.0f);
    float *got = host_rand(ny, 1.0f);
    void *dw1, *dw2;
    const void *cw1, *cw2;
    float *w1 = dev_matrix(&g_gpu, dt, in, out, &dw1, &cw1);
    float *w2 = dev_matrix(&g_gpu, dt, in, out, &dw2, &cw2);
    float *dx = dev_from(x, nx), *dy1 = dev_alloc(ny * sizeof *dy1);
    float *dy2 = dev_alloc(ny * sizeof *dy2);
    ryz_backend_matmul(&g_cpu, want1, x, (ryz_matrix){cw1, dt}, n, in, out);
    ryz_backend_matmul(&g_cpu, want2, x, (ryz_matrix){cw2, dt}, n, in, out);
    g_cpu.iface->silu_mul(g_cpu.ctx, want1, want2, ny);
    ryz_backend_matmul_pair(&g_gpu, dy1, dy2, dx, (ryz_matrix){dw1, dt}, (ryz_matrix){dw2, dt}, n,
                            in, out);
    ck_assert_msg(ryz_cuda_sync(&g_gpu) == RYZ_OK, "%s", ryz_last_error());
    char what[112];
    snprintf(what, sizeof what, "%s matmul_pair n %d in %d out %d", ryz_dtype_name(dt), n, in, out);
    to_host(got, dy1, ny);
    assert_close(got, want1, ny, 5e-5f, 1e-4f, what);
    dev_free(dx), dev_free(dy1), dev_free(dy2), dev_free(dw1), dev_free(dw2);
    free_matrix(w1, cw1), free_matrix(w2, cw2);
    free(x), free(want1), free(want2), free(got);
}

/* Both dtypes: 1b's w1/w3 shape and a product of few rows (1b's k/v
 * shape), n 1 to 8, and the shapes that fall back to separate ops
 * (in % 4 != 0; bf16 out % 4 != 0 or in % 16 != 0; a prefill's n). */
START_TEST(test_matmul_pair) {
    static const int shapes[][3] = {{1, 2048, 256}, {1, 2048, 5632}, {3, 64, 48}, {8, 96, 132},
                                    {1, 3, 5},      {1, 64, 50},     {2, 40, 48}, {9, 64, 48}};
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            check_pair(dt ? RYZ_DTYPE_BF16 : RYZ_DTYPE_F32, shapes[i][0], shapes[i][1],
                       shapes[i][2]);
}
END_TEST

/* matmul_multi on the device against the cpu backend's matmuls: count
 * products of one x (n, in), W[i] (out[i], in). Each y[i] has MULTI_GUARD
 * floats past its end that must stay as they were (a product's rows
 * written into its neighbour's output would pass the comparison). */
#define MULTI_GUARD 64
static void check_multi(ryz_dtype dt, int n, int in, int count, const int *out) {
    float *x = host_rand((size_t)n * in, 1.0f), *w[RYZ_MULTI_MAX], *dy[RYZ_MULTI_MAX];
    float *before[RYZ_MULTI_MAX];
    void *dw[RYZ_MULTI_MAX];
    const void *cw[RYZ_MULTI_MAX];
    ryz_matrix wm[RYZ_MULTI_MAX];
    float *dx = dev_from(x, (size_t)n * in);
    for (int i = 0; i < count; i++) {
        w[i] = dev_matrix(&g_gpu, dt, in, out[i], &dw[i], &cw[i]);
        before[i] = host_rand((size_t)n * out[i] + MULTI_GUARD, 1.0f);
        dy[i] = dev_from(before[i], (size_t)n * out[i] + MULTI_GUARD);
        wm[i] = (ryz_matrix){dw[i], dt};
    }
    ryz_backend_matmul_multi(&g_gpu, count, dy, dx, wm, out, n, in);
    ck_assert_msg(ryz_cuda_sync(&g_gpu) == RYZ_OK, "%s", ryz_last_error());
    for (int i = 0; i < count; i++) {
        size_t ny = (size_t)n * out[i];
        float *want = host_rand(ny, 1.0f), *got = host_rand(ny + MULTI_GUARD, 1.0f);
        ryz_backend_matmul(&g_cpu, want, x, (ryz_matrix){cw[i], dt}, n, in, out[i]);
        to_host(got, dy[i], ny + MULTI_GUARD);
        char what[112];
        snprintf(what, sizeof what, "%s matmul_multi n %d in %d, product %d of %d (out %d)",
                 ryz_dtype_name(dt), n, in, i + 1, count, out[i]);
        assert_close(got, want, ny, 5e-5f, 1e-4f, what);
        ck_assert_msg(memcmp(got + ny, before[i] + ny, MULTI_GUARD * sizeof *got) == 0,
                      "%s: wrote past its output", what);
        free(want), free(got), free(before[i]);
        dev_free(dy[i]), dev_free(dw[i]);
        free_matrix(w[i], cw[i]);
    }
    dev_free(dx);
    free(x);
}

/* Both dtypes: 1b's q, k and v (n 1 and 8); products whose rows split
 * the fp32 kernel's blocks (8 rows a block at most; in 512 gives 4 warps
 * a row, 2 rows a block) and bf16's row groups (12 rows = 3 groups); one
 * and two products; and the shapes that fall back to separate matmuls
 * (bf16 out % 4 != 0, at n 3, or in % 16 != 0; fp32 in % 4 != 0; a
 * prefill's n). */
START_TEST(test_matmul_multi) {
    static const struct {
        int n, in, count, out[RYZ_MULTI_MAX];
    } cases[] = {
        {1, 2048, 3, {2048, 256, 256}}, {8, 2048, 3, {2048, 256, 256}}, {1, 64, 3, {12, 4, 20}},
        {3, 96, 3, {4, 8, 132}},        {2, 64, 2, {36, 12}},           {5, 128, 1, {44}},
        {3, 64, 2, {48, 6}},            {1, 40, 3, {8, 4, 12}},         {1, 36, 2, {8, 4}},
        {2, 66, 3, {5, 3, 7}},          {9, 64, 3, {12, 4, 20}}};
    static const struct {
        int in, out[3];
    } f32_rows[] = {{64, {5, 3, 7}}, {64, {1, 1, 1}}, {64, {9, 17, 2}}, {512, {5, 3, 7}}};
    for (int dt = 0; dt < 2; dt++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            check_multi(dt ? RYZ_DTYPE_BF16 : RYZ_DTYPE_F32, cases[i].n, cases[i].in,
                        cases[i].count, cases[i].out);
    for (size_t i = 0; i < sizeof f32_rows / sizeof f32_rows[0]; i++)
        check_multi(RYZ_DTYPE_F32, 2, f32_rows[i].in, 3, f32_rows[i].out);
}
END_TEST

/* fp32: the GEMV kernel (n <= 8, in % 4 == 0, aligned; 1b's shapes, one
 * with fewer rows than a block has warps, one longer than a lane's
 * unrolled step), cuBLAS's gemv (in % 4 != 0, an unaligned x) and GEMM. */
START_TEST(test_matmul) {
    static const int shapes[][3] = {
        {1, 64, 48},    {1, 288, 768},   {1, 3, 5},     {2, 64, 48},      {7, 96, 130},
        {8, 2048, 256}, {1, 2048, 2048}, {1, 5632, 3},  {3, 2048, 5632},  {1, 36, 10},
        {1, 37, 10},    {1, 512, 1001},  {9, 64, 48},   {32, 288, 288},   {64, 512, 1000}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_matmul(&g_gpu, RYZ_DTYPE_F32, shapes[i][0], shapes[i][1], shapes[i][2], 0, 2e-5f,
                     1e-4f);
    check_matmul(&g_gpu, RYZ_DTYPE_F32, 1, 64, 48, 1, 2e-5f, 1e-4f); /* x not 16-byte aligned */
}
END_TEST

/* bf16 weights against the cpu backend's bf16 matmul (the same rounded
 * weights, so fp32 tolerance): the GEMV (n 1, 3, 8) and the widening
 * prefill (n 9, 64), on the tiled layout (in % 16 == 0) with and without
 * row-major tail rows (out % 4), and row-major throughout (in % 16 != 0,
 * in % 8 == 0 or odd); x not 16-byte aligned (the prefill path at any n);
 * issue 7's decode shapes (128 to 512 threads a row group); and more rows
 * than one 64 MiB widening block. */
START_TEST(test_matmul_bf16) {
    static const int ns[] = {1, 3, 8, 9, 64};
    static const int shapes[][2] = {{64, 48}, {64, 50}, {40, 48}, {37, 51}, {288, 1003}};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t j = 0; j < sizeof shapes / sizeof shapes[0]; j++)
            check_matmul(&g_gpu, RYZ_DTYPE_BF16, ns[i], shapes[j][0], shapes[j][1], 0, 2e-5f,
                         1e-4f);
    check_matmul(&g_gpu, RYZ_DTYPE_BF16, 1, 64, 50, 1, 2e-5f, 1e-4f);
    check_matmul(&g_gpu, RYZ_DTYPE_BF16, 3, 288, 1003, 1, 2e-5f, 1e-4f);
    check_matmul(&g_gpu, RYZ_DTYPE_BF16, 1, 2048, 5632, 0, 2e-5f, 1e-4f);
    check_matmul(&g_gpu, RYZ_DTYPE_BF16, 4, 5632, 2048, 0, 2e-5f, 1e-4f);
    check_matmul(&g_gpu, RYZ_DTYPE_BF16, 8, 2048, 256, 0, 2e-5f, 1e-4f); /* 512-thread groups */
    check_matmul(&g_gpu, RYZ_DTYPE_BF16, 64, 4096, 4102, 0, 4e-5f, 1e-4f);
}
END_TEST

/* The bf16 prefill's widening buffer: none for decode, allocated at the
 * first prefill (counted as scratch), kept for a smaller matrix, grown for
 * a larger one, given back by destroy. A backend of its own, so the
 * figures are its alone. */
START_TEST(test_matmul_bf16_scratch) {
    ryz_backend b;
    ck_assert_msg(ryz_backend_init_cuda(NULL, &b) == RYZ_OK, "%s", ryz_last_error());
    size_t base = ryz_cuda_mem_bytes(&b, RYZ_MEM_SCRATCH); /* cuBLAS's workspace */
    check_matmul(&b, RYZ_DTYPE_BF16, 1, 64, 48, 0, 2e-5f, 1e-4f);
    ck_assert_uint_eq(ryz_cuda_mem_bytes(&b, RYZ_MEM_SCRATCH), base);
    check_matmul(&b, RYZ_DTYPE_BF16, 16, 64, 48, 0, 2e-5f, 1e-4f);
    ck_assert_uint_eq(ryz_cuda_mem_bytes(&b, RYZ_MEM_SCRATCH), base + 64 * 48 * sizeof(float));
    check_matmul(&b, RYZ_DTYPE_BF16, 16, 40, 48, 0, 2e-5f, 1e-4f);
    ck_assert_uint_eq(ryz_cuda_mem_bytes(&b, RYZ_MEM_SCRATCH), base + 64 * 48 * sizeof(float));
    check_matmul(&b, RYZ_DTYPE_BF16, 16, 288, 1003, 0, 2e-5f, 1e-4f);
    ck_assert_uint_eq(ryz_cuda_mem_bytes(&b, RYZ_MEM_SCRATCH), base + 288 * 1003 * sizeof(float));
    ryz_backend_free_cuda(&b);
}
END_TEST

/* TF32 keeps 10 mantissa bits: the option works, and is only that close. */
START_TEST(test_matmul_tf32) {
    ryz_backend tf32;
    ryz_cuda_opts o = ryz_cuda_opts_default();
    o.tf32 = 1;
    ck_assert_msg(ryz_backend_init_cuda(&o, &tf32) == RYZ_OK, "%s", ryz_last_error());
    /* Buffers come from g_gpu's alloc; any device memory of the device works. */
    check_matmul(&tf32, RYZ_DTYPE_F32, 16, 512, 256, 0, 2e-2f, 2e-2f);
    ryz_backend_free_cuda(&tf32);
}
END_TEST

static void check_rmsnorm(int n, int dim, int in_place) {
    size_t len = (size_t)n * dim;
    float *x = host_rand(len, 3.0f), *w = host_rand((size_t)dim, 1.0f), *want = host_rand(len, 1);
    float *got = host_rand(len, 1.0f);
    float *dx = dev_from(x, len), *dw = dev_from(w, (size_t)dim);
    float *dy = in_place ? dx : dev_alloc(len * sizeof *dy);
    g_cpu.iface->rmsnorm(g_cpu.ctx, want, x, w, n, dim, 1e-5f);
    g_gpu.iface->rmsnorm(g_gpu.ctx, dy, dx, dw, n, dim, 1e-5f);
    to_host(got, dy, len);
    char what[96];
    snprintf(what, sizeof what, "rmsnorm n %d dim %d%s", n, dim, in_place ? " in place" : "");
    assert_close(got, want, len, 1e-5f, 1e-5f, what);
    if (!in_place)
        dev_free(dy);
    dev_free(dx), dev_free(dw);
    free(x), free(w), free(want), free(got);
}

/* add_rmsnorm against the cpu's: both the sum left in x and the norm. */
static void check_add_rmsnorm(int n, int dim) {
    size_t len = (size_t)n * dim;
    float *x = host_rand(len, 3.0f), *r = host_rand(len, 1.0f), *w = host_rand((size_t)dim, 1.0f);
    float *want = host_rand(len, 1.0f), *got = host_rand(len, 1.0f), *gotx = host_rand(len, 1);
    float *dx = dev_from(x, len), *dr = dev_from(r, len), *dw = dev_from(w, (size_t)dim);
    float *dy = dev_alloc(len * sizeof *dy);
    g_cpu.iface->add_rmsnorm(g_cpu.ctx, want, x, r, w, n, dim, 1e-5f);
    g_gpu.iface->add_rmsnorm(g_gpu.ctx, dy, dx, dr, dw, n, dim, 1e-5f);
    to_host(got, dy, len);
    to_host(gotx, dx, len);
    char what[96];
    snprintf(what, sizeof what, "add_rmsnorm n %d dim %d: x", n, dim);
    assert_close(gotx, x, len, 0, 0, what);
    snprintf(what, sizeof what, "add_rmsnorm n %d dim %d: y", n, dim);
    assert_close(got, want, len, 1e-5f, 1e-5f, what);
    dev_free(dx), dev_free(dr), dev_free(dw), dev_free(dy);
    free(x), free(r), free(w), free(want), free(got), free(gotx);
}

/* One row (decode, 2048 and 4096 wide: the widest blocks), several rows,
 * a width under one warp's two elements a thread, in place (rmsnorm). */
START_TEST(test_rmsnorm) {
    check_rmsnorm(1, 288, 0);
    check_rmsnorm(1, 2048, 0);
    check_rmsnorm(5, 4096, 0);
    check_rmsnorm(3, 7, 0);
    check_rmsnorm(4, 1000, 1);
    check_add_rmsnorm(1, 2048);
    check_add_rmsnorm(3, 4100);
    check_add_rmsnorm(2, 7);
}
END_TEST

static void check_rope(int n, int heads, int hd, int pos0) {
    size_t len = (size_t)n * heads * hd;
    float *want = host_rand(len, 1.0f), *got = host_rand(len, 1.0f);
    float *dx = dev_from(want, len);
    int *dpos = dev_pos(pos0);
    g_cpu.iface->rope(g_cpu.ctx, want, n, heads, hd, &pos0, 10000.0f);
    g_gpu.iface->rope(g_gpu.ctx, dx, n, heads, hd, dpos, 10000.0f);
    to_host(got, dx, len);
    dev_free(dpos);
    char what[96];
    snprintf(what, sizeof what, "rope n %d heads %d head_dim %d pos0 %d", n, heads, hd, pos0);
    assert_close(got, want, len, 1e-5f, 1e-5f, what);
    dev_free(dx);
    free(want), free(got);
}

/* Host arrays and their device copies, for ops that touch several. */
typedef struct {
    size_t n;
    float *h, *d;
} mirrored;

static mirrored mirror(size_t n, float scale) {
    mirrored m = {n, host_rand(n, scale), NULL};
    m.d = dev_from(m.h, n);
    return m;
}

/* The device copy of m against its host array (the cpu's result). */
static void assert_mirrored(const mirrored *m, float atol, float rtol, const char *what) {
    float *got = host_rand(m->n, 1.0f);
    to_host(got, m->d, m->n);
    assert_close(got, m->h, m->n, atol, rtol, what);
    free(got);
}

static void mirror_free(mirrored *m) {
    dev_free(m->d), free(m->h);
}

/* rope_cache of T rows at pos0 (heads over kv_heads, caches of seq rows)
 * on both backends: q and k rotated, k and v at their cache rows, every
 * other cache row untouched. */
static void check_rope_cache(int T, int heads, int kv_heads, int hd, int pos0, int seq) {
    size_t kvd = (size_t)kv_heads * hd;
    mirrored q = mirror((size_t)T * heads * hd, 1), k = mirror((size_t)T * kvd, 1);
    mirrored v = mirror((size_t)T * kvd, 1), kc = mirror((size_t)seq * kvd, 1);
    mirrored vc = mirror((size_t)seq * kvd, 1);
    int *dpos = dev_pos(pos0);
    g_cpu.iface->rope_cache(g_cpu.ctx, q.h, k.h, v.h, kc.h, vc.h, T, heads, kv_heads, hd, &pos0,
                            10000.0f);
    g_gpu.iface->rope_cache(g_gpu.ctx, q.d, k.d, v.d, kc.d, vc.d, T, heads, kv_heads, hd, dpos,
                            10000.0f);
    char what[128];
    snprintf(what, sizeof what, "rope_cache T %d heads %d/%d head_dim %d pos0 %d", T, heads,
             kv_heads, hd, pos0);
    assert_mirrored(&q, 1e-5f, 1e-5f, what);
    assert_mirrored(&k, 1e-5f, 1e-5f, what);
    assert_mirrored(&kc, 1e-5f, 1e-5f, what);
    assert_mirrored(&vc, 0, 0, what);
    dev_free(dpos);
    mirror_free(&q), mirror_free(&k), mirror_free(&v), mirror_free(&kc), mirror_free(&vc);
}

START_TEST(test_rope) {
    check_rope(1, 6, 48, 0);
    check_rope(1, 6, 48, 77);
    check_rope(9, 4, 64, 100);
    check_rope(3, 2, 128, 4000);
    check_rope_cache(1, 32, 4, 64, 37, 64); /* 1b's decode */
    check_rope_cache(5, 6, 6, 48, 0, 9);
    check_rope_cache(3, 8, 2, 128, 4000, 4010);
}
END_TEST

static void check_elementwise(size_t n) {
    float *a = host_rand(n, 6.0f), *b = host_rand(n, 2.0f), *got = host_rand(n, 1.0f);
    float *want = host_copy(a, n), *da = dev_from(a, n), *db = dev_from(b, n);
    g_cpu.iface->silu_mul(g_cpu.ctx, want, b, n);
    g_gpu.iface->silu_mul(g_gpu.ctx, da, db, n);
    to_host(got, da, n);
    assert_close(got, want, n, 1e-6f, 1e-5f, "silu_mul");
    g_cpu.iface->add(g_cpu.ctx, want, b, n);
    g_gpu.iface->add(g_gpu.ctx, da, db, n);
    to_host(got, da, n);
    assert_close(got, want, n, 1e-6f, 1e-5f, "add");
    dev_free(da), dev_free(db);
    free(a), free(b), free(got), free(want);
}

START_TEST(test_silu_mul_add) {
    check_elementwise(1);
    check_elementwise(1000);
    check_elementwise((1u << 20) + 3); /* beyond one grid: the stride loop */
}
END_TEST

/* Attention of T rows at pos0 with geometry g on both backends. Cache rows
 * past pos0 + T hold NaN: reading one would show in the output. */
static void check_attention(ryz_attn_geom g, int T, int pos0) {
    int hd = g.head_dim, qdim = g.heads * hd, kvdim = g.kv_heads * hd, L = pos0 + T;
    int seq_len = L + 5;
    size_t cache = (size_t)seq_len * kvdim, qlen = (size_t)T * qdim;
    float *q = host_rand(qlen, 3.0f), *kc = host_rand(cache, 1.0f), *vc = host_rand(cache, 1.0f);
    for (size_t i = (size_t)L * kvdim; i < cache; i++)
        kc[i] = vc[i] = NAN;
    float *want = host_rand(qlen, 1.0f), *got = host_rand(qlen, 1.0f);
    float *scratch = host_rand((size_t)ryz_attention_scratch_rows(T, g.heads) * L, 1.0f);
    float *dq = dev_from(q, qlen), *dk = dev_from(kc, cache), *dv = dev_from(vc, cache);
    float *dout = dev_alloc(qlen * sizeof *dout);
    int *dpos = dev_pos(pos0);
    g_cpu.iface->attention(g_cpu.ctx, want, q, kc, vc, T, &pos0, &g, scratch);
    g_gpu.iface->attention(g_gpu.ctx, dout, dq, dk, dv, T, dpos, &g, NULL);
    to_host(got, dout, qlen);
    dev_free(dpos);
    char what[160];
    snprintf(what, sizeof what,
             "attention T %d pos0 %d heads %d (from %d) head_dim %d kv_heads %d (from %d) "
             "kv_mul %d",
             T, pos0, g.heads, g.head_start, hd, g.kv_heads, g.kv_start, g.kv_mul);
    assert_close(got, want, qlen, 1e-5f, 1e-4f, what);
    dev_free(dq), dev_free(dk), dev_free(dv), dev_free(dout);
    free(q), free(kc), free(vc), free(want), free(got), free(scratch);
}

START_TEST(test_attention_decode) {
    ryz_attn_geom mha = {.heads = 4, .head_dim = 32, .kv_heads = 4, .kv_mul = 1};
    ryz_attn_geom gqa = {.heads = 8, .head_dim = 64, .kv_heads = 2, .kv_mul = 4};
    check_attention(mha, 1, 0); /* one key */
    check_attention(mha, 1, 37);
    check_attention(gqa, 1, 127); /* exactly one tile of keys */
    check_attention(gqa, 1, 200); /* two tiles */
    check_attention(gqa, 1, 1000);
    ryz_attn_geom odd = {.heads = 3, .head_dim = 6, .kv_heads = 3, .kv_mul = 1};
    check_attention(odd, 1, 40); /* head_dim % 4 != 0: K read a float at a time */
    check_attention(odd, 5, 3);
}
END_TEST

START_TEST(test_attention_prefill) {
    ryz_attn_geom gqa = {.heads = 8, .head_dim = 64, .kv_heads = 2, .kv_mul = 4};
    ryz_attn_geom wide = {.heads = 2, .head_dim = 128, .kv_heads = 1, .kv_mul = 2};
    check_attention(gqa, 17, 0);
    check_attention(gqa, 13, 150); /* a chunk after earlier ones */
    check_attention(wide, 130, 0); /* the tile boundary inside the chunk */
}
END_TEST

/* The geometries a TP rank sees: its heads start at head_start, and its
 * KV heads are a slice (or one replicated head) of the global ones. */
START_TEST(test_attention_tp_geometry) {
    /* 8 heads, 2 KV heads, tp 2, rank 1: heads 4..7 read KV head 1. */
    ryz_attn_geom r1 = {
        .heads = 4, .head_dim = 48, .kv_heads = 1, .head_start = 4, .kv_start = 1, .kv_mul = 4};
    /* 8 heads, 2 KV heads, tp 4, rank 1: heads 2..3 read (replicated) KV head 0. */
    ryz_attn_geom rep = {
        .heads = 2, .head_dim = 48, .kv_heads = 1, .head_start = 2, .kv_start = 0, .kv_mul = 4};
    /* 12 heads, 4 KV heads, tp 2, rank 1: heads 6..11 read KV heads 2..3. */
    ryz_attn_geom mid = {
        .heads = 6, .head_dim = 32, .kv_heads = 2, .head_start = 6, .kv_start = 2, .kv_mul = 3};
    check_attention(r1, 1, 50);
    check_attention(r1, 9, 0);
    check_attention(rep, 1, 300);
    check_attention(rep, 6, 20);
    check_attention(mid, 4, 10);
}
END_TEST

/* ---- device helpers against host versions ------------------------------- */

START_TEST(test_argmax) {
    enum { ROWS = 5, N = 32000, LD = N + 3 };
    float *x = host_rand((size_t)ROWS * LD, 10.0f);
    x[1 * LD + 100] = x[1 * LD + 31000] = 50.0f; /* a tie: the first wins */
    for (int i = 0; i < N; i++)
        x[2 * LD + i] = -INFINITY;
    x[3 * LD + N - 1] = 99.0f; /* the last column */
    x[3 * LD + N] = 1000.0f;   /* past n, inside ld: must not count */
    x[4 * LD + 0] = 99.0f;     /* the first column */
    float *dx = dev_from(x, (size_t)ROWS * LD);
    int *didx = dev_alloc(ROWS * sizeof(int)), idx[ROWS];
    ck_assert_msg(ryz_cuda_argmax(&g_gpu, didx, dx, ROWS, N, LD) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_msg(ryz_cuda_sync(&g_gpu) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_int_eq(ryz_cuda_download(&g_gpu, idx, didx, sizeof idx), RYZ_OK);
    for (int r = 0; r < ROWS; r++)
        ck_assert_msg(idx[r] == ryz_argmax(x + (size_t)r * LD, N), "row %d: cuda %d, host %d", r,
                      idx[r], ryz_argmax(x + (size_t)r * LD, N));
    ck_assert_int_eq(idx[1], 100);
    ck_assert_int_eq(idx[2], 0);
    dev_free(dx), dev_free(didx);
    free(x);
}
END_TEST

/* Rows shorter than a warp (the kernel's block shrinks to one warp) with
 * NaNs, which never win, and a row of NaNs only, which answers 0 as the
 * host does. */
START_TEST(test_argmax_short) {
    enum { ROWS = 3, N = 7, LD = 8 };
    float x[ROWS * LD];
    for (int i = 0; i < ROWS * LD; i++)
        x[i] = (float)(i % 5);
    x[1] = NAN, x[6] = 9.0f; /* row 0: the last column, past a NaN */
    x[LD + 2] = 4.0f;        /* row 1: 3 4 4 1 2 3 4, a tie of 4s: column 1 wins */
    for (int i = 0; i < N; i++)
        x[2 * LD + i] = NAN;
    float *dx = dev_from(x, ROWS * LD);
    int *didx = dev_alloc(ROWS * sizeof(int)), idx[ROWS];
    ck_assert_msg(ryz_cuda_argmax(&g_gpu, didx, dx, ROWS, N, LD) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_msg(ryz_cuda_sync(&g_gpu) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_int_eq(ryz_cuda_download(&g_gpu, idx, didx, sizeof idx), RYZ_OK);
    for (int r = 0; r < ROWS; r++)
        ck_assert_msg(idx[r] == ryz_argmax(x + r * LD, N), "row %d: cuda %d, host %d", r, idx[r],
                      ryz_argmax(x + r * LD, N));
    ck_assert_int_eq(idx[0], 6);
    ck_assert_int_eq(idx[1], 1);
    ck_assert_int_eq(idx[2], 0);
    dev_free(dx), dev_free(didx);
}
END_TEST

START_TEST(test_embedding) {
    enum { N = 6, DIM = 64, START = 100, LOCAL = 50 };
    const int tokens[N] = {99, 100, 149, 150, 120, 0}; /* both edges, inside, outside */
    float *emb = host_rand((size_t)LOCAL * DIM, 1.0f), want[N * DIM], got[N * DIM];
    for (int r = 0; r < N; r++)
        for (int c = 0; c < DIM; c++) {
            int l = tokens[r] - START;
            want[r * DIM + c] = l >= 0 && l < LOCAL ? emb[l * DIM + c] : 0.0f;
        }
    float *demb = dev_from(emb, (size_t)LOCAL * DIM), *dx = dev_alloc(sizeof got);
    int *dtok = dev_alloc(sizeof tokens);
    ck_assert_int_eq(ryz_cuda_upload(&g_gpu, dtok, tokens, sizeof tokens), RYZ_OK);
    ck_assert_msg(ryz_cuda_embedding(&g_gpu, dx, dtok, N, demb, START, LOCAL, DIM) == RYZ_OK, "%s",
                  ryz_last_error());
    to_host(got, dx, N * DIM);
    assert_close(got, want, N * DIM, 0, 0, "embedding");
    dev_free(demb), dev_free(dx), dev_free(dtok);
    free(emb);
}
END_TEST

START_TEST(test_mask_vocab) {
    enum { N = 3, VOCAB = 1000, VPAD = 1004 };
    float *x = host_rand((size_t)N * VPAD, 1.0f), *got = host_rand((size_t)N * VPAD, 1.0f);
    float *dx = dev_from(x, (size_t)N * VPAD);
    for (int r = 0; r < N; r++)
        for (int v = VOCAB; v < VPAD; v++)
            x[r * VPAD + v] = -INFINITY;
    ck_assert_int_eq(ryz_cuda_mask_vocab(&g_gpu, dx, N, VOCAB, VPAD), RYZ_OK);
    to_host(got, dx, (size_t)N * VPAD);
    assert_close(got, x, (size_t)N * VPAD, 0, 0, "mask_vocab");
    dev_free(dx);
    free(x), free(got);
}
END_TEST

/* ---- memory, errors, timers ------------------------------------------- */

START_TEST(test_alloc_accounting) {
    size_t before = ryz_cuda_mem_bytes(&g_gpu, RYZ_MEM_KV), bytes = (size_t)3 << 20;
    float *p = g_gpu.iface->alloc(g_gpu.ctx, RYZ_MEM_KV, bytes);
    ck_assert_msg(p != NULL, "%s", ryz_last_error());
    ck_assert_uint_eq(ryz_cuda_mem_bytes(&g_gpu, RYZ_MEM_KV), before + bytes);
    ck_assert_uint_ge(ryz_cuda_mem_peak(&g_gpu, RYZ_MEM_KV), before + bytes);
    ck_assert_uint_ge(ryz_cuda_mem_bytes(&g_gpu, RYZ_MEM_SCRATCH), (size_t)1 << 20); /* cuBLAS */
    float *h = malloc(bytes);
    ck_assert_ptr_nonnull(h);
    to_host(h, p, bytes / sizeof *h);
    for (size_t i = 0; i < bytes / sizeof *h; i++)
        ck_assert_msg(h[i] == 0.0f, "alloc not zeroed at float %zu", i);
    g_gpu.iface->free(g_gpu.ctx, p);
    ck_assert_uint_eq(ryz_cuda_mem_bytes(&g_gpu, RYZ_MEM_KV), before);
    size_t free_b = 0, total = 0;
    ck_assert_msg(ryz_cuda_mem_info(&g_gpu, &free_b, &total) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_uint_gt(total, 0);
    ck_assert_uint_le(free_b, total);
    free(h);
}
END_TEST

/* Host memory the backend page-locks carries uploads and downloads like
 * pageable memory, can be unlocked and locked again, and the cpu backend
 * has no pinning (NULL ops). */
START_TEST(test_pin_host) {
    ck_assert_ptr_null(g_cpu.iface->pin_host);
    size_t n = (size_t)1 << 20;
    float *h = ryz_mem_alloc(RYZ_MEM_SCRATCH, n, sizeof *h), *d;
    ck_assert_ptr_nonnull(h);
    d = g_gpu.iface->alloc(g_gpu.ctx, RYZ_MEM_SCRATCH, n * sizeof *d);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(ryz_cuda_host_pinned(h), 0);
    for (int round = 0; round < 2; round++) {
        ck_assert_msg(g_gpu.iface->pin_host(g_gpu.ctx, h, n * sizeof *h) == RYZ_OK, "%s",
                      ryz_last_error());
        ck_assert_int_eq(ryz_cuda_host_pinned(h), 1);
        ck_assert_int_eq(ryz_cuda_host_pinned(h + n - 1), 1);
        for (size_t i = 0; i < n; i++) h[i] = (float)(i % 977) + round;
        ck_assert_int_eq(g_gpu.iface->upload(g_gpu.ctx, d, h, n * sizeof *h), RYZ_OK);
        memset(h, 0, n * sizeof *h);
        ck_assert_int_eq(g_gpu.iface->download(g_gpu.ctx, h, d, n * sizeof *h), RYZ_OK);
        for (size_t i = 0; i < n; i += 4099)
            ck_assert_float_eq(h[i], (float)(i % 977) + round);
        g_gpu.iface->unpin_host(g_gpu.ctx, h);
        ck_assert_int_eq(ryz_cuda_host_pinned(h), 0);
    }
    ck_assert_int_eq(ryz_cuda_sync(&g_gpu), RYZ_OK);
    g_gpu.iface->free(g_gpu.ctx, d);
    ryz_mem_free(h);
}
END_TEST

/* An op that cannot run keeps its error; later ops do nothing; sync says
 * what went wrong. A separate backend: the error stays for good. */
START_TEST(test_kept_error) {
    ryz_backend b;
    ck_assert_msg(ryz_backend_init_cuda(NULL, &b) == RYZ_OK, "%s", ryz_last_error());
    float *x = b.iface->alloc(b.ctx, RYZ_MEM_SCRATCH, 64 * sizeof *x);
    ck_assert_ptr_nonnull(x);
    b.iface->rope(b.ctx, x, 1, 2, 7, (const int *)x, 10000.0f); /* odd head_dim */
    b.iface->add(b.ctx, x, x, 64);
    ck_assert_int_eq(ryz_cuda_sync(&b), RYZ_EINVAL);
    ck_assert_msg(strstr(ryz_last_error(), "rope") && strstr(ryz_last_error(), "even"),
                  "message: %s", ryz_last_error());
    ck_assert_int_eq(ryz_cuda_sync(&b), RYZ_EINVAL); /* stays */
    b.iface->free(b.ctx, x);
    ryz_backend_free_cuda(&b);
    ck_assert_ptr_null(b.ctx);
    ck_assert_int_eq(ryz_cuda_sync(&g_cpu), RYZ_EINVAL); /* not a cuda backend */
    ck_assert_msg(strstr(ryz_last_error(), "'cpu'"), "message: %s", ryz_last_error());
}
END_TEST

/* Recording: ops between record_begin and record_end do not run; each
 * replay runs them, reading the position as it is then. An add and a
 * rope_cache (positions from the last cache row down, so each replay must
 * write its own rows) replayed against the same ops run directly on the
 * cpu; after it, ops run directly again. No allocation while recording;
 * an op that fails while recording fails only the recording. */
START_TEST(test_recording) {
    enum { HD = 64, HEADS = 4, KVH = 2, ROWS = 5 };
    const ryz_backend_iface *f = g_gpu.iface;
    size_t kvd = (size_t)KVH * HD;
    mirrored q = mirror((size_t)HEADS * HD, 1), k = mirror(kvd, 1), v = mirror(kvd, 1);
    mirrored dv = mirror(kvd, 1), kc = mirror(ROWS * kvd, 1), vc = mirror(ROWS * kvd, 1);
    int *dpos = dev_pos(0);
    void *graph = NULL;
    ck_assert_msg(f->record_begin(g_gpu.ctx) == RYZ_OK, "%s", ryz_last_error());
    f->add(g_gpu.ctx, v.d, dv.d, kvd);
    f->rope_cache(g_gpu.ctx, q.d, k.d, v.d, kc.d, vc.d, 1, HEADS, KVH, HD, dpos, 10000.0f);
    ck_assert_msg(f->record_end(g_gpu.ctx, &graph) == RYZ_OK, "%s", ryz_last_error());
    ck_assert_ptr_nonnull(graph);
    assert_mirrored(&v, 0, 0, "v after recording (nothing ran)");
    for (int p = ROWS - 1; p >= 0; p--) {
        ck_assert_int_eq(ryz_cuda_upload(&g_gpu, dpos, &p, sizeof p), RYZ_OK);
        f->replay(g_gpu.ctx, graph);
        g_cpu.iface->add(g_cpu.ctx, v.h, dv.h, kvd);
        g_cpu.iface->rope_cache(g_cpu.ctx, q.h, k.h, v.h, kc.h, vc.h, 1, HEADS, KVH, HD, &p,
                                10000.0f);
    }
    assert_mirrored(&v, 0, 0, "v after the replays");
    assert_mirrored(&vc, 0, 0, "v cache after the replays");
    assert_mirrored(&kc, 1e-5f, 1e-5f, "k cache after the replays");
    assert_mirrored(&q, 1e-5f, 1e-5f, "q after the replays");
    f->graph_free(g_gpu.ctx, graph);
    ck_assert_int_eq(f->record_end(g_gpu.ctx, &graph), RYZ_EINVAL); /* not recording */
    ck_assert_ptr_null(graph);
    f->add(g_gpu.ctx, v.d, dv.d, kvd); /* ops run directly again */
    g_cpu.iface->add(g_cpu.ctx, v.h, dv.h, kvd);
    assert_mirrored(&v, 0, 0, "v after a direct add");
    /* No allocation while recording (the capture would fail on it). */
    ck_assert_int_eq(f->record_begin(g_gpu.ctx), RYZ_OK);
    ck_assert_ptr_null(f->alloc(g_gpu.ctx, RYZ_MEM_SCRATCH, 64));
    ck_assert_msg(strstr(ryz_last_error(), "while recording"), "%s", ryz_last_error());
    f->add(g_gpu.ctx, v.d, dv.d, kvd);
    ck_assert_msg(f->record_end(g_gpu.ctx, &graph) == RYZ_OK, "%s", ryz_last_error());
    f->graph_free(g_gpu.ctx, graph);
    /* An op that fails while recording fails the recording, not the
     * backend: nothing ran, and the ops run directly after it. */
    ck_assert_int_eq(f->record_begin(g_gpu.ctx), RYZ_OK);
    f->add(g_gpu.ctx, v.d, dv.d, kvd);
    f->rope(g_gpu.ctx, q.d, 1, HEADS, 7, dpos, 10000.0f); /* odd head_dim */
    ck_assert_int_eq(f->record_end(g_gpu.ctx, &graph), RYZ_EINVAL);
    ck_assert_msg(strstr(ryz_last_error(), "recording") && strstr(ryz_last_error(), "even"), "%s",
                  ryz_last_error());
    ck_assert_ptr_null(graph);
    f->add(g_gpu.ctx, v.d, dv.d, kvd);
    g_cpu.iface->add(g_cpu.ctx, v.h, dv.h, kvd);
    assert_mirrored(&v, 0, 0, "v after a failed recording and a direct add");
    dev_free(dpos);
    mirror_free(&q), mirror_free(&k), mirror_free(&v), mirror_free(&dv), mirror_free(&kc);
    mirror_free(&vc);
}
END_TEST

START_TEST(test_timer) {
    ryz_cuda_timer *t = NULL;
    ck_assert_msg(ryz_cuda_timer_create(&t) == RYZ_OK, "%s", ryz_last_error());
    size_t n = (size_t)1 << 22;
    float *d = dev_alloc(n * sizeof *d);
    ck_assert_int_eq(ryz_cuda_timer_start(t), RYZ_OK);
    g_gpu.iface->add(g_gpu.ctx, d, d, n);
    ck_assert_int_eq(ryz_cuda_timer_stop(t), RYZ_OK);
    double s = -1;
    ck_assert_msg(ryz_cuda_timer_seconds(t, &s) == RYZ_OK, "%s", ryz_last_error());
    ck_assert(s >= 0 && s < 10);
    dev_free(d);
    ryz_cuda_timer_free(t);
}
END_TEST

/* The copy probe: a positive, finite rate (its size is the hardware's
 * business: printed, not asserted), its buffers given back, and its
 * refusals: under 1 MiB, no repetitions, a cpu backend, more bytes than
 * the device has (ENOMEM naming the free memory). */
START_TEST(test_copy_bandwidth) {
    size_t before = ryz_cuda_mem_bytes(&g_gpu, RYZ_MEM_SCRATCH), free_b = 0, total = 0;
    double rate = 0;
    ck_assert_msg(ryz_cuda_copy_bandwidth(&g_gpu, (size_t)64 << 20, 5, &rate) == RYZ_OK, "%s",
                  ryz_last_error());
    ck_assert_msg(rate > 0 && isfinite(rate), "rate %g", rate);
    printf("test_cuda: copy bandwidth %.1f GB/s (read + write, 64 MiB, best of 5)\n", rate / 1e9);
    ck_assert_msg(ryz_cuda_copy_bandwidth(&g_gpu, ((size_t)1 << 20) + 3, 1, &rate) == RYZ_OK,
                  "%s", ryz_last_error());
    ck_assert_uint_eq(ryz_cuda_mem_bytes(&g_gpu, RYZ_MEM_SCRATCH), before);
    ck_assert_int_eq(ryz_cuda_copy_bandwidth(&g_gpu, ((size_t)1 << 20) - 1, 5, &rate), RYZ_EINVAL);
    ck_assert_msg(rate == 0 && strstr(ryz_last_error(), "1 MiB"), "%s", ryz_last_error());
    ck_assert_int_eq(ryz_cuda_copy_bandwidth(&g_gpu, (size_t)1 << 20, 0, &rate), RYZ_EINVAL);
    ck_assert_int_eq(ryz_cuda_copy_bandwidth(&g_cpu, (size_t)1 << 20, 1, &rate), RYZ_EINVAL);
    ck_assert_int_eq(ryz_cuda_mem_info(&g_gpu, &free_b, &total), RYZ_OK);
    ck_assert_int_eq(ryz_cuda_copy_bandwidth(&g_gpu, total, 1, &rate), RYZ_ENOMEM);
    ck_assert_msg(strstr(ryz_last_error(), "bytes free"), "%s", ryz_last_error());
    ck_assert_uint_eq(ryz_cuda_mem_bytes(&g_gpu, RYZ_MEM_SCRATCH), before);
    ck_assert_msg(ryz_cuda_sync(&g_gpu) == RYZ_OK, "after ENOMEM: %s", ryz_last_error());
}
END_TEST

/* ---- nccl ------------------------------------------------------------ */

/* all_reduce of rank-dependent values, on device and on host buffers. */
START_TEST(test_nccl_all_reduce) {
    int rank = ryz_comm_rank(g_world), k = ryz_comm_size(g_world);
    enum { N = 1000 };
    float h[N], want[N];
    for (int i = 0; i < N; i++) {
        h[i] = (float)(rank + 1) + 0.5f * (float)i;
        want[i] = (float)(k * (k + 1) / 2) + 0.5f * (float)(i * k);
    }
    float *d = dev_from(h, N), *dr = dev_alloc(sizeof h), got[N];
    ck_assert_msg(ryz_comm_all_reduce_sum(g_world, d, dr, N) == RYZ_OK, "%s", ryz_last_error());
    to_host(got, dr, N);
    assert_close(got, want, N, 0, 0, "all_reduce on the device");
    ck_assert_msg(ryz_comm_all_reduce_sum(g_world, d, d, N) == RYZ_OK, "%s", ryz_last_error());
    to_host(got, d, N);
    assert_close(got, want, N, 0, 0, "all_reduce in place on the device");
    ck_assert_msg(ryz_comm_all_reduce_sum(g_world, h, h, N) == RYZ_OK, "%s", ryz_last_error());
    assert_close(h, want, N, 0, 0, "all_reduce in place on the host (staged)");
    dev_free(d), dev_free(dr);
}
END_TEST

/* all_gather from the device into the host, reduce_scatter host to host,
 * broadcast and barrier. */
START_TEST(test_nccl_gather_scatter_bcast) {
    int rank = ryz_comm_rank(g_world), k = ryz_comm_size(g_world);
    enum { N = 37 };
    float mine[N], *all = malloc((size_t)k * N * sizeof *all), *sc = malloc(sizeof mine * k);
    ck_assert(all && sc);
    for (int i = 0; i < N; i++)
        mine[i] = (float)(100 * rank + i);
    float *d = dev_from(mine, N);
    ck_assert_msg(ryz_comm_all_gather(g_world, d, all, N) == RYZ_OK, "%s", ryz_last_error());
    for (int r = 0; r < k; r++)
        for (int i = 0; i < N; i++)
            ck_assert(all[r * N + i] == (float)(100 * r + i));
    for (int i = 0; i < k * N; i++)
        sc[i] = (float)i;
    ck_assert_msg(ryz_comm_reduce_scatter(g_world, sc, mine, N) == RYZ_OK, "%s", ryz_last_error());
    for (int i = 0; i < N; i++)
        ck_assert(mine[i] == (float)(k * (rank * N + i)));
    char msg[16];
    snprintf(msg, sizeof msg, "%s", rank == 0 ? "from rank 0" : "unset");
    ck_assert_msg(ryz_comm_broadcast(g_world, msg, sizeof msg, 0) == RYZ_OK, "%s",
                  ryz_last_error());
    ck_assert_str_eq(msg, "from rank 0");
    ck_assert_msg(ryz_comm_barrier(g_world) == RYZ_OK, "%s", ryz_last_error());
    dev_free(d);
    free(all), free(sc);
}
END_TEST

/* The first rank alone gets a new communicator that works. */
START_TEST(test_nccl_split_first) {
    ryz_comm *sub = NULL;
    ck_assert_msg(ryz_comm_split_first(g_world, 1, &sub) == RYZ_OK, "%s", ryz_last_error());
    ck_assert((sub != NULL) == (ryz_comm_rank(g_world) == 0));
    if (sub) {
        float x[4] = {1, 2, 3, 4};
        ck_assert_msg(ryz_comm_all_reduce_sum(sub, x, x, 4) == RYZ_OK, "%s", ryz_last_error());
        ck_assert(x[3] == 4.0f);
        ck_assert_str_eq(ryz_comm_name(sub), "nccl");
        ryz_comm_free(sub);
    }
}
END_TEST

/* On two or more ranks: rank 0 enters an all_reduce nobody else does on a
 * fresh communicator; it must time out, name the call and abort that
 * communicator (later calls fail at once), leaving the world usable. */
START_TEST(test_nccl_timeout) {
    int k = ryz_comm_size(g_world), rank = ryz_comm_rank(g_world);
    if (k < 2)
        return; /* needs a peer that does not come */
    ryz_comm *c = NULL;
    ck_assert_msg(ryz_comm_split_first(g_world, k, &c) == RYZ_OK, "%s", ryz_last_error());
    double old = ryz_comm_timeout();
    int check = ryz_comm_check_enabled();
    ryz_comm_set_check(0); /* the agreement check would stop it first */
    ryz_comm_set_timeout(2.0);
    if (rank == 0) {
        float x[8] = {0};
        ck_assert_int_eq(ryz_comm_all_reduce_sum(c, x, x, 8), RYZ_ETIMEOUT);
        ck_assert_msg(strstr(ryz_last_error(), "all_reduce #") &&
                          strstr(ryz_last_error(), "RYZ_TIMEOUT"),
                      "message: %s", ryz_last_error());
        ck_assert_int_eq(ryz_comm_barrier(c), RYZ_ECOMM);
        ck_assert_msg(strstr(ryz_last_error(), "aborted"), "message: %s", ryz_last_error());
    }
    ryz_comm_free(c); /* the others' finalize waits for rank 0: bounded by the timeout */
    ryz_comm_set_timeout(old);
    ryz_comm_set_check(check);
    ck_assert_msg(ryz_comm_barrier(g_world) == RYZ_OK, "%s", ryz_last_error());
}
END_TEST

/* ---- the whole model ------------------------------------------------ */

/* A whole-model case: source, batch, prompt length, new tokens, the
 * prefill chunk (chunk < prompt: chunked prefill) and the weights' dtype.
 * bf16 runs are compared with bf16 on the cpu: the same rounded weights,
 * so the fp32 gate holds. */
typedef struct {
    const char *src;
    int batch, prompt, new_tokens, chunk;
    ryz_dtype dtype;
} model_case;

static const model_case model_cases[] = {
    {"synthetic:tiny", 1, 8, 24, 8, RYZ_DTYPE_F32},
    {"synthetic:tiny,heads=8,kv_heads=2,vocab=1003,seed=5", 2, 7, 12, 3, RYZ_DTYPE_F32},
    {"synthetic:15m", 1, 16, 32, 16, RYZ_DTYPE_F32},
    {"synthetic:15m,seed=2", 2, 9, 16, 4, RYZ_DTYPE_F32},
    /* bf16: prefill of 8 rows (the GEMV) and of 14 and 16 (widened W);
     * tail rows (hidden 170, vocab 1003) and w2's in % 16 != 0 */
    {"synthetic:tiny", 1, 8, 24, 8, RYZ_DTYPE_BF16},
    {"synthetic:tiny,hidden=170,vocab=1003,seed=3", 2, 7, 12, 7, RYZ_DTYPE_BF16},
    {"synthetic:15m", 1, 16, 32, 16, RYZ_DTYPE_BF16},
    /* batch 9: a decode step's matmuls are GEMMs (cuBLAS; bf16 widened
     * first) between the recorded kernels, which start early (PDL) */
    {"synthetic:tiny", 9, 5, 6, 5, RYZ_DTYPE_F32},
    {"synthetic:tiny", 9, 5, 6, 5, RYZ_DTYPE_BF16},
};
#define N_MODEL_CASES ((int)(sizeof model_cases / sizeof model_cases[0]))


/* The case's prompt (B, P), spanning the vocab (its last id included). */
static int *case_prompt(const model_case *mc, int vocab) {
    int n = mc->batch * mc->prompt, *p = malloc((size_t)n * sizeof *p);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < n; i++)
        p[i] = (1 + 97 * i) % vocab;
    p[n - 1] = vocab - 1;
    return p;
}

/* Builds case mc on backend b over comm, generates (teacher forced by
 * `forced` when non-NULL; greedy with last-only prefill and no logits
 * when `last_only`), frees the model and returns the run. */
static test_gen run_case(ryz_backend *b, ryz_comm *comm, const model_case *mc, const int *prompt,
                        const int *forced, int last_only) {
    ryz_model_config cfg;
    ck_assert_msg(ryz_model_source_parse(mc->src, &cfg) == RYZ_OK, "%s", ryz_last_error());
    int len = mc->prompt + mc->new_tokens;
    test_gen g = {
        .ids = malloc((size_t)mc->batch * len * sizeof(int)),
        .logits = last_only ? NULL : host_rand((size_t)mc->batch * (len - 1) * cfg.vocab, 1.0f)};
    ck_assert_ptr_nonnull(g.ids);
    ryz_model_opts o = {.max_batch = mc->batch, .max_chunk = mc->chunk, .dtype = mc->dtype};
    ryz_model *m = NULL;
    ryz_status st = ryz_model_build(&cfg, comm, b, &o, &m);
    ck_assert_msg(st == RYZ_OK, "%s (%s) on %s: %s", mc->src, ryz_dtype_name(mc->dtype),
                  b->iface->name, ryz_last_error());
    ryz_model_set_last_only_prefill(m, last_only);
    st = ryz_model_generate(m, prompt, mc->batch, mc->prompt, mc->new_tokens, forced, g.ids,
                            g.logits, NULL);
    g.recorded = ryz_model_recording(m);
    ryz_model_free(m);
    ck_assert_msg(st == RYZ_OK, "%s on %s (%s comm of %d): %s", mc->src, b->iface->name,
                  ryz_comm_name(comm), ryz_comm_size(comm), ryz_last_error());
    return g;
}

/* A model whose KV cache is twice the device's memory is refused before
 * anything is allocated, with the device's figures in the message. */
START_TEST(test_model_too_large_for_device) {
    size_t free_b = 0, total = 0, weights, kv;
    ck_assert_int_eq(ryz_cuda_mem_info(&g_gpu, &free_b, &total), RYZ_OK);
    ryz_model_config cfg;
    ck_assert_int_eq(ryz_model_source_parse("synthetic:110m", &cfg), RYZ_OK);
    ryz_shard sh;
    ryz_shard_plan(&cfg, 1, 0, &sh);
    ryz_model_shard_bytes(&cfg, &sh, RYZ_DTYPE_F32, 1, &weights, &kv);
    /* sequences, not positions: seq_len stops at 2^24 */
    ryz_model_opts o = {.max_batch = (int)(2 * total / kv) + 1, .max_chunk = 4};
    size_t before[RYZ_MEM_NKINDS];
    for (int k = 0; k < RYZ_MEM_NKINDS; k++) before[k] = ryz_cuda_mem_bytes(&g_gpu, k);
    ryz_model *m = (ryz_model *)1;
    ck_assert_int_eq(ryz_model_build(&cfg, g_self, &g_gpu, &o, &m), RYZ_EINVAL);
    ck_assert_ptr_null(m);
    const char *e = ryz_last_error();
    ck_assert_msg(strstr(e, "KV cache (") && strstr(e, "free on its cuda device"), "%s", e);
    printf("test_cuda: batch %d refused: %s\n", o.max_batch, e);
    for (int k = 0; k < RYZ_MEM_NKINDS; k++)
        ck_assert_uint_eq(ryz_cuda_mem_bytes(&g_gpu, k), before[k]);
    ck_assert_msg(ryz_cuda_sync(&g_gpu) == RYZ_OK, "%s", ryz_last_error());
}
END_TEST

/* The logits of `cand` pass the suite's fp32 gate against `base` (atol
 * 1e-4 of the logit range, rtol 1e-4) and the greedy ids are identical. */
static void assert_same_run(const test_gen *base, const test_gen *cand, const model_case *mc,
                            const char *what) {
    ryz_model_config cfg;
    ck_assert_int_eq(ryz_model_source_parse(mc->src, &cfg), RYZ_OK);
    int len = mc->prompt + mc->new_tokens;
    for (int i = 0; i < mc->batch * len; i++)
        ck_assert_msg(base->ids[i] == cand->ids[i], "%s, %s: greedy id [%d] is %d on cpu, %d here",
                      mc->src, what, i, base->ids[i], cand->ids[i]);
    if (!base->logits || !cand->logits)
        return;
    ryz_compare cmp;
    ryz_compare_logits(base->logits, cand->logits, mc->batch * (len - 1), cfg.vocab, 1e-4, 1e-4,
                       &cmp);
    ck_assert_msg(cmp.pass,
                  "%s, %s: logits fail the fp32 gate: %d out of tolerance, %d real top-1 "
                  "mismatches, max abs error %g at row %d col %d (cpu %.9g, here %.9g)",
                  mc->src, what, cmp.out_of_tol, cmp.top1_real_mismatch, cmp.max_abs,
                  cmp.worst_row, cmp.worst_col, cmp.worst_base, cmp.worst_cand);
}

/* TP=1 on the device against the cpu backend: every position's logits
 * within fp32 tolerance, greedy ids identical, also with last-only prefill
 * and with recording off (RYZ_CUDA_GRAPHS=0: every op launched, where by
 * default one-row steps replay a CUDA graph); the device memory a model
 * took is given back. The figures before are
 * taken after the first model on the device: the backend's bf16 widening
 * buffer, allocated at its first bf16 prefill, stays with the backend. */
START_TEST(test_model_cuda_vs_cpu) {
    const model_case *mc = &model_cases[_i];
    ryz_model_config cfg;
    ck_assert_int_eq(ryz_model_source_parse(mc->src, &cfg), RYZ_OK);
    int *prompt = case_prompt(mc, cfg.vocab);
    size_t before[RYZ_MEM_NKINDS];
    test_gen cpu = run_case(&g_cpu, g_self, mc, prompt, NULL, 0);
    test_gen gpu = run_case(&g_gpu, g_self, mc, prompt, NULL, 0);
    for (int k = 0; k < RYZ_MEM_NKINDS; k++)
        before[k] = ryz_cuda_mem_bytes(&g_gpu, (ryz_mem_kind)k);
    test_gen last = run_case(&g_gpu, g_self, mc, prompt, NULL, 1);
    setenv("RYZ_CUDA_GRAPHS", "0", 1);
    test_gen direct = run_case(&g_gpu, g_self, mc, prompt, NULL, 0);
    unsetenv("RYZ_CUDA_GRAPHS");
    assert_same_run(&cpu, &gpu, mc, "cuda at TP=1");
    assert_same_run(&cpu, &last, mc, "cuda at TP=1, last-only prefill");
    assert_same_run(&cpu, &direct, mc, "cuda at TP=1, no CUDA graphs");
    /* A capture that fails (a launch the graph refuses, say) falls back
     * to direct launches with only a warning: the runs above would pass
     * without any recorded step. */
    ck_assert_msg(gpu.recorded && last.recorded && !direct.recorded,
                  "%s: decode steps recorded: %d, with last-only prefill %d, with "
                  "RYZ_CUDA_GRAPHS=0 %d (want 1, 1, 0)",
                  mc->src, gpu.recorded, last.recorded, direct.recorded);
    for (int k = 0; k < RYZ_MEM_NKINDS; k++) {
        size_t now = ryz_cuda_mem_bytes(&g_gpu, (ryz_mem_kind)k);
        ck_assert_msg(now == before[k], "%s device bytes after the models: %zu, before %zu",
                      ryz_mem_kind_name((ryz_mem_kind)k), now, before[k]);
    }
    ck_assert_msg(ryz_cuda_sync(&g_gpu) == RYZ_OK, "%s", ryz_last_error());
    test_gen_free(&cpu), test_gen_free(&gpu), test_gen_free(&last), test_gen_free(&direct);
    free(prompt);
}
END_TEST

/* TP=N (the world) on the device, teacher forced by the cpu's TP=1 ids:
 * over nccl (device buffers in place) and over mpi (staged through host
 * buffers), both within fp32 tolerance of the cpu at TP=1. On one rank
 * both are TP=1 runs on a one-rank communicator. */
START_TEST(test_model_tp_on_device) {
    const model_case *mc = &model_cases[_i];
    ryz_model_config cfg;
    ck_assert_int_eq(ryz_model_source_parse(mc->src, &cfg), RYZ_OK);
    int *prompt = case_prompt(mc, cfg.vocab);
    test_gen cpu = run_case(&g_cpu, g_self, mc, prompt, NULL, 0);
    test_gen nccl = run_case(&g_gpu, g_world, mc, prompt, cpu.ids, 0);
    test_gen mpi = run_case(&g_gpu, g_mpi, mc, prompt, cpu.ids, 0);
    ck_assert_int_eq(ryz_tp_staged(&g_gpu, g_world), 0);
    ck_assert_int_eq(ryz_tp_staged(&g_gpu, g_mpi), ryz_comm_size(g_mpi) > 1);
    assert_same_run(&cpu, &nccl, mc, "cuda over nccl");
    assert_same_run(&cpu, &mpi, mc, "cuda over mpi (staged)");
    test_gen_free(&cpu), test_gen_free(&nccl), test_gen_free(&mpi), free(prompt);
}
END_TEST

/* ---- the suite runner on the device ----------------------------------- */

/* Validates a one-case suite (case "g", synthetic:tiny) with `lines`, as
 * if `node_ranks` ranks ran on this node (what mpirun would say). */
static ryz_status validate_as(const char *lines, int node_ranks) {
    char text[256], ranks[16];
    snprintf(text, sizeof text, "[case g]\nmodel = synthetic:tiny\nprompt = 1 2\n%s\n", lines);
    snprintf(ranks, sizeof ranks, "%d", node_ranks);
    const char *was = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    char *saved = was ? strdup(was) : NULL;
    setenv("OMPI_COMM_WORLD_LOCAL_SIZE", ranks, 1);
    ryz_suite s = {0};
    ck_assert_msg(ryz_suite_parse(text, "g.ini", &s) == RYZ_OK, "%s", ryz_last_error());
    ryz_status st = ryz_suite_validate(&s);
    ryz_suite_free(&s);
    if (saved) setenv("OMPI_COMM_WORLD_LOCAL_SIZE", saved, 1);
    else unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    free(saved);
    return st;
}

/* With a device, a cuda case validates, bf16 too; nccl wants one GPU per
 * rank on the node (refused with a message naming comm = mpi when there
 * are more ranks). */
START_TEST(test_suite_validate_on_device) {
    int devices = 0;
    ck_assert_int_eq(ryz_cuda_device_count(&devices), RYZ_OK);
    ryz_status st = validate_as("backend = cuda", devices + 1);
    ck_assert_msg(st == RYZ_OK, "staged cuda refused: %s", ryz_last_error());
    st = validate_as("backend = cuda\ncomm = nccl", devices);
    ck_assert_msg(st == RYZ_OK, "nccl on %d devices refused: %s", devices, ryz_last_error());
    st = validate_as("backend = cuda\ncomm = nccl", devices + 1);
    ck_assert_msg(st == RYZ_EINVAL && strstr(ryz_last_error(), "one GPU per rank") &&
                      strstr(ryz_last_error(), "comm = mpi"),
                  "%d ranks on %d devices: %d %s", devices + 1, devices, st, ryz_last_error());
    st = validate_as("backend = cuda\ndtype = bf16", 1);
    ck_assert_msg(st == RYZ_OK, "bf16 on cuda refused: %s", ryz_last_error());
}
END_TEST

static const ryz_row_memory *memory_row(const ryz_results *r, const char *name, int tp,
                                        int rank) {
    for (size_t i = 0; i < r->n_memory; i++)
        if (r->memory[i].tp == tp && r->memory[i].rank == rank &&
            !strcmp(r->memory[i].case_name, name))
            return &r->memory[i];
    ck_abort_msg("no memory row %s tp %d rank %d", name, tp, rank);
    return NULL;
}

/* Rank 0's checks of the run: every correctness row passes (the cuda cases
 * against the cpu's f32 TP=1 reference), the device's weight and KV bytes
 * equal the cpu's for the same shard, and the isolated collective
 * reference is measured over mpi only. */
static void assert_suite_results(const ryz_results *r, const ryz_suite *s) {
    for (size_t i = 0; i < r->n_correctness; i++)
        ck_assert_msg(r->correctness[i].pass, "%s tp %d failed: max_abs %g",
                      r->correctness[i].case_name, r->correctness[i].tp,
                      r->correctness[i].max_abs);
    for (int c = 1; c < s->n_cases; c++)
        for (int i = 0; i < s->cases[c].n_tp; i++)
            for (int rank = 0; rank < s->cases[c].tp[i]; rank++) {
                int tp = s->cases[c].tp[i];
                const ryz_row_memory *dev = memory_row(r, s->cases[c].name, tp, rank);
                const ryz_row_memory *cpu = memory_row(r, "cpu", tp, rank);
                ck_assert_msg(dev->weights == cpu->weights && dev->kv_cache == cpu->kv_cache,
                              "%s tp %d rank %d: device weights %llu kv %llu, cpu %llu %llu",
                              s->cases[c].name, tp, rank, (unsigned long long)dev->weights,
                              (unsigned long long)dev->kv_cache,
                              (unsigned long long)cpu->weights, (unsigned long long)cpu->kv_cache);
            }
    for (size_t i = 0; i < r->n_collectives; i++) {
        const ryz_row_collective *c = &r->collectives[i];
        int nccl = !strcmp(c->case_name, "cuda-nccl");
        ck_assert_msg(nccl == (c->isolated_p50_us == 0), "%s %s: isolated %g", c->case_name,
                      c->op, c->isolated_p50_us);
    }
}

/* `ryz suite`'s runner with a cpu case and the same model on cuda over mpi
 * (staged) and over nccl, at TP up to the world size: everything passes. */
START_TEST(test_suite_on_device) {
    int k = ryz_comm_size(g_mpi);
    const char *tps = k >= 4 ? "1 2 4" : k >= 2 ? "1 2" : "1";
    const char *model = "synthetic:15m,heads=8,kv_heads=2,vocab=1003";
    char text[1024];
    snprintf(text, sizeof text,
             "[suite]\nname = gpu\nrepeat = 3\n"
             "[case cpu]\nmodel = %s\ntp = %s\nbatch = 2\nprompt = 5 6 7 8\nnew_tokens = 8\n"
             "[case cuda-mpi]\nmodel = %s\ntp = %s\nbatch = 2\nprompt = 5 6 7 8\n"
             "new_tokens = 8\nbackend = cuda\n"
             "[case cuda-nccl]\nmodel = %s\ntp = %s\nbatch = 2\nprompt = 5 6 7 8\n"
             "new_tokens = 8\nbackend = cuda\ncomm = nccl\n",
             model, tps, model, tps, model, tps);
    ryz_suite s = {0};
    ck_assert_msg(ryz_suite_parse(text, "gpu.ini", &s) == RYZ_OK, "%s", ryz_last_error());
    ryz_results res;
    ryz_results_init(&res);
    ryz_run_opts o = {.quiet = 1, .nccl = g_world};
    int failed = -1;
    ryz_status st = ryz_suite_run(&s, g_mpi, &o, &res, &failed);
    ck_assert_msg(st == RYZ_OK && failed == 0, "suite run: %d, %d failed: %s", st, failed,
                  ryz_last_error());
    if (ryz_comm_rank(g_mpi) == 0) assert_suite_results(&res, &s);
    ryz_results_free(&res);
    ryz_suite_free(&s);
}
END_TEST

/* ---- main --------------------------------------------------------------- */

static Suite *cuda_suite(void) {
    Suite *s = suite_create("cuda");
    TCase *ops = tcase_create("ops");
    tcase_set_timeout(ops, 120);
    tcase_add_test(ops, test_matmul);
    tcase_add_test(ops, test_matmul_tf32);
    tcase_add_test(ops, test_matmul_bf16);
    tcase_add_test(ops, test_matmul_bf16_scratch);
    tcase_add_test(ops, test_matmul_pair);
    tcase_add_test(ops, test_matmul_multi);
    tcase_add_test(ops, test_rmsnorm);
    tcase_add_test(ops, test_rope);
    tcase_add_test(ops, test_silu_mul_add);
    tcase_add_test(ops, test_attention_decode);
    tcase_add_test(ops, test_attention_prefill);
    tcase_add_test(ops, test_attention_tp_geometry);
    tcase_add_test(ops, test_argmax);
    tcase_add_test(ops, test_argmax_short);
    tcase_add_test(ops, test_embedding);
    tcase_add_test(ops, test_mask_vocab);
    tcase_add_test(ops, test_alloc_accounting);
    tcase_add_test(ops, test_pin_host);
    tcase_add_test(ops, test_kept_error);
    tcase_add_test(ops, test_recording);
    tcase_add_test(ops, test_timer);
    tcase_add_test(ops, test_copy_bandwidth);
    suite_add_tcase(s, ops);
    TCase *nccl = tcase_create("nccl");
    tcase_set_timeout(nccl, 120);
    tcase_add_test(nccl, test_nccl_all_reduce);
    tcase_add_test(nccl, test_nccl_gather_scatter_bcast);
    tcase_add_test(nccl, test_nccl_split_first);
    tcase_add_test(nccl, test_nccl_timeout);
    suite_add_tcase(s, nccl);
    TCase *model = tcase_create("model");
    tcase_set_timeout(model, 300);
    tcase_add_loop_test(model, test_model_cuda_vs_cpu, 0, N_MODEL_CASES);
    tcase_add_loop_test(model, test_model_tp_on_device, 0, N_MODEL_CASES);
    tcase_add_test(model, test_model_too_large_for_device);
    suite_add_tcase(s, model);
    TCase *runner = tcase_create("suite");
    tcase_set_timeout(runner, 300);
    tcase_add_test(runner, test_suite_validate_on_device);
    tcase_add_test(runner, test_suite_on_device);
    suite_add_tcase(s, runner);
    return s;
}

/* Sets up both backends and the nccl, mpi and one-rank comms; 0 or 1 with
 * a message. */
static int setup(int *argc, char ***argv) {
    if (ryz_backend_init_cpu(1, &g_cpu) != RYZ_OK ||
        ryz_backend_init_cuda(NULL, &g_gpu) != RYZ_OK || ryz_mpi_init(argc, argv) != RYZ_OK ||
        ryz_comm_init_nccl_world(&g_world) != RYZ_OK ||
        ryz_comm_init_mpi_world(&g_mpi) != RYZ_OK || ryz_comm_init_self(&g_self) != RYZ_OK) {
        fprintf(stderr, "test_cuda: set-up failed: %s\n", ryz_last_error());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    int devices = 0;
    if (!ryz_cuda_built() || ryz_cuda_device_count(&devices) != RYZ_OK) {
        if (ryz_cuda_built())
            printf("test_cuda: SKIP: no CUDA device (%s)\n", ryz_last_error());
        else
            printf("test_cuda: SKIP: built without CUDA (make CUDA=1 BUILD=build-cuda)\n");
        return 0;
    }
    printf("test_cuda: %d CUDA device(s)\n", devices);
    int failed = setup(&argc, &argv);
    if (!failed) {
        SRunner *sr = srunner_create(cuda_suite());
        srunner_set_fork_status(sr, CK_NOFORK);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr) > 0;
        srunner_free(sr);
    }
    ryz_comm_free(g_self);
    ryz_comm_free(g_mpi);
    ryz_comm_free(g_world);
    ryz_backend_free(&g_gpu);
    ryz_backend_free(&g_cpu);
    ryz_mpi_finalize();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
