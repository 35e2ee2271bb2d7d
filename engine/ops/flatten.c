#include "ops.h"

moda_status flatten_fwd(moda_backend *be, tensor *y, const tensor *x) {
    (void)be; (void)y; (void)x;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

moda_status flatten_bwd(moda_backend *be, tensor *dx, const tensor *dy) {
    (void)be; (void)dx; (void)dy;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}
