#include "ops.h"

#include "backend_impl.h"

/* pooled must be (N, C) for the 4-D map. */
static moda_status gap_check(const tensor *pooled, const tensor *map) {
    MODA_TRY(tensor_check(pooled));
    MODA_TRY(tensor_check(map));
    if (map->ndim != 4 || pooled->ndim != 2) return MODA_ERR_SHAPE;
    if (pooled->shape[0] != map->shape[0] || pooled->shape[1] != map->shape[1]) return MODA_ERR_SHAPE;
    return MODA_OK;
}

moda_status global_avgpool_fwd(moda_backend *be, tensor *y, const tensor *x) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(gap_check(y, x));
    if (!be->global_avgpool_fwd) return MODA_ERR_UNSUPPORTED;
    return be->global_avgpool_fwd(be, y, x);
}

moda_status global_avgpool_bwd(moda_backend *be, tensor *dx, const tensor *dy) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(gap_check(dy, dx));
    if (!be->global_avgpool_bwd) return MODA_ERR_UNSUPPORTED;
    return be->global_avgpool_bwd(be, dx, dy);
}
