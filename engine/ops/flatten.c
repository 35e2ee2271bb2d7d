#include "ops.h"

#include "backend_impl.h"

/* flat must be (N, C*H*W) for the 4-D map. */
static moda_status flatten_check(const tensor *flat, const tensor *map) {
    MODA_TRY(tensor_check(flat));
    MODA_TRY(tensor_check(map));
    if (map->ndim != 4 || flat->ndim != 2 || flat->shape[0] != map->shape[0]) return MODA_ERR_SHAPE;
    if ((size_t)flat->shape[1] != tensor_numel(map) / (size_t)map->shape[0]) return MODA_ERR_SHAPE;
    return MODA_OK;
}

static moda_status flatten_copy(moda_backend *be, float *dst, const float *src, size_t n) {
    if (dst == src) return MODA_OK; /* a view over the same buffer: nothing moves */
    if (!be->copy_to_device) return MODA_ERR_UNSUPPORTED;
    return be->copy_to_device(be, dst, src, n * sizeof(float));
}

moda_status flatten_fwd(moda_backend *be, tensor *y, const tensor *x) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(flatten_check(y, x));
    return flatten_copy(be, y->data, x->data, tensor_numel(x));
}

moda_status flatten_bwd(moda_backend *be, tensor *dx, const tensor *dy) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(flatten_check(dy, dx));
    return flatten_copy(be, dx->data, dy->data, tensor_numel(dx));
}
