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
