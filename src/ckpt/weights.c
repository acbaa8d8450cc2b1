/* The weight-source handle: a table of functions plus its context. */
#include <stdlib.h>

#include "ryz/ckpt.h"

struct ryz_weights {
    const ryz_weights_iface *iface;
    void *ctx;
};

ryz_status ryz_weights_create(const ryz_weights_iface *iface, void *ctx, ryz_weights **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) {
        iface->close(ctx);
        return ryz_error(RYZ_ENOMEM, "out of memory for weight source %s", iface->name);
    }
    (*out)->iface = iface;
    (*out)->ctx = ctx;
    return RYZ_OK;
}

ryz_status ryz_weights_fill(ryz_weights *w, uint32_t t, int64_t row0, int nrows, int64_t col0,
                            int ncols, int ld, float *out) {
    return w->iface->fill(w->ctx, t, row0, nrows, col0, ncols, ld, out);
}

const char *ryz_weights_name(const ryz_weights *w) {
    return w->iface->name;
}

void ryz_weights_close(ryz_weights *w) {
    if (!w)
        return;
    w->iface->close(w->ctx);
    free(w);
}
