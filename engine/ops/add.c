#include "ops.h"

#include "backend_impl.h"

moda_status add_fwd(moda_backend *be, tensor *y, const tensor *a, const tensor *b) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(tensor_check(y));
    MODA_TRY(tensor_check(a));
    MODA_TRY(tensor_check(b));
    if (!tensor_same_shape(y, a) || !tensor_same_shape(y, b)) return MODA_ERR_SHAPE;
    if (!be->add_fwd) return MODA_ERR_UNSUPPORTED;
    return be->add_fwd(be, y, a, b);
}

moda_status add_mapped_fwd(moda_backend *be, tensor *y, const tensor *a, const tensor *b, const tensor *map_a,
                           const tensor *map_b) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(tensor_check(y));
    MODA_TRY(tensor_check(a));
    MODA_TRY(tensor_check(b));
    MODA_TRY(tensor_check(map_a));
    MODA_TRY(tensor_check(map_b));
    if (y->ndim < 2 || a->ndim != y->ndim || b->ndim != y->ndim || map_a->ndim != 1 || map_b->ndim != 1 ||
        map_a->shape[0] != y->shape[1] || map_b->shape[0] != y->shape[1])
        return MODA_ERR_SHAPE;
    for (int d = 0; d < y->ndim; d++)
        if (d != 1 && (a->shape[d] != y->shape[d] || b->shape[d] != y->shape[d])) return MODA_ERR_SHAPE;
    if (!be->add_mapped_fwd) return MODA_ERR_UNSUPPORTED;
    return be->add_mapped_fwd(be, y, a, b, map_a, map_b);
}

moda_status add_bwd(moda_backend *be, tensor *da, tensor *db, const tensor *dy) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(tensor_check(dy));
    if (da) {
        MODA_TRY(tensor_check(da));
        if (!tensor_same_shape(da, dy)) return MODA_ERR_SHAPE;
    }
    if (db) {
        MODA_TRY(tensor_check(db));
        if (!tensor_same_shape(db, dy)) return MODA_ERR_SHAPE;
    }
    if ((da || db) && !be->copy_to_device) return MODA_ERR_UNSUPPORTED;
    size_t bytes = tensor_numel(dy) * sizeof(float);
    if (da) MODA_TRY(be->copy_to_device(be, da->data, dy->data, bytes));
    if (db) MODA_TRY(be->copy_to_device(be, db->data, dy->data, bytes));
    return MODA_OK;
}
