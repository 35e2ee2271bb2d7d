#include "cpu_internal.h"

moda_status cpu_conv2d_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b, const conv2d_params *p) {
    (void)be; (void)y; (void)x; (void)w; (void)b; (void)p;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

moda_status cpu_conv2d_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy, const tensor *x, const tensor *w, const conv2d_params *p) {
    (void)be; (void)dx; (void)dw; (void)db; (void)dy; (void)x; (void)w; (void)p;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

