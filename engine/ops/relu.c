#include "ops.h"

#include "backend_impl.h"

moda_status relu_fwd(moda_backend *be, tensor *y, const tensor *x) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(tensor_check(y));
    MODA_TRY(tensor_check(x));
    if (!tensor_same_shape(y, x)) return MODA_ERR_SHAPE;
    if (!be->relu_fwd) return MODA_ERR_UNSUPPORTED;
    return be->relu_fwd(be, y, x);
}

moda_status relu_bwd(moda_backend *be, tensor *dx, const tensor *dy, const tensor *y) {
    if (!be) return MODA_ERR_NULL;
    MODA_TRY(tensor_check(dx));
    MODA_TRY(tensor_check(dy));
    MODA_TRY(tensor_check(y));
    if (!tensor_same_shape(dx, y) || !tensor_same_shape(dy, y)) return MODA_ERR_SHAPE;
    if (!be->relu_bwd) return MODA_ERR_UNSUPPORTED;
    return be->relu_bwd(be, dx, dy, y);
}
