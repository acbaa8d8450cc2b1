/* The OpenBLAS core type for this CPU, where OpenBLAS took it for a
 * generic one (`ryz` runs itself again with OPENBLAS_CORETYPE set). */
#include <stdlib.h>
#include <string.h>

#include "ryz/info.h"

char *openblas_get_config(void);
char *openblas_get_corename(void);

/* Cores without AVX2 kernels that OpenBLAS may report (its dynamic.c):
 * Prescott, its fallback for an x86-64 CPU it does not know in 0.3.21's
 * time, and the older cores it names where a build or the OS lacks newer
 * ones. */
static int core_is_generic(const char *core) {
    static const char *const generic[] = {"Prescott", "Core2",   "Penryn",  "Dunnington",
                                          "Nehalem",  "Atom",    "Barcelona", "Opteron",
                                          "Opteron_SSE3", "Bobcat"};
    for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++)
        if (!strcmp(core, generic[i])) return 1;
    return 0;
}

const char *ryz_blas_core_for(const char *chosen, const char *env, int avx2_fma, int avx512) {
    if ((env && *env) || !chosen || !core_is_generic(chosen)) return NULL;
    return avx512 ? "SkylakeX" : avx2_fma ? "Haswell" : NULL;
}

const char *ryz_blas_core_advice(void) {
#if defined(__x86_64__)
    if (!strstr(openblas_get_config(), "DYNAMIC_ARCH")) return NULL; /* one core, built in */
    __builtin_cpu_init();
    int avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
                 __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                 __builtin_cpu_supports("avx512vl");
    return ryz_blas_core_for(openblas_get_corename(), getenv("OPENBLAS_CORETYPE"), avx2_fma,
                             avx512);
#else
    return NULL;
#endif
}

const char *ryz_blas_core(void) {
    return openblas_get_corename();
}
