#include "ops.h"

int conv_out_size(int in, int k, int stride, int pad) {
    (void)in; (void)k; (void)stride; (void)pad;
    return 0; /* placeholder */
}

moda_status conv2d_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b, const conv2d_params *p) {
    (void)be; (void)y; (void)x; (void)w; (void)b; (void)p;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

moda_status conv2d_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy, const tensor *x, const tensor *w, const conv2d_params *p) {
    (void)be; (void)dx; (void)dw; (void)db; (void)dy; (void)x; (void)w; (void)p;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}
