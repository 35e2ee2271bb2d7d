#include "cpu_internal.h"

moda_status cpu_relu_fwd(moda_backend *be, tensor *y, const tensor *x) {
    (void)be; (void)y; (void)x;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

moda_status cpu_relu_bwd(moda_backend *be, tensor *dx, const tensor *dy, const tensor *y) {
    (void)be; (void)dx; (void)dy; (void)y;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

