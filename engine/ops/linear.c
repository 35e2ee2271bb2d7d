#include "ops.h"

moda_status linear_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b) {
    (void)be; (void)y; (void)x; (void)w; (void)b;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

moda_status linear_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy, const tensor *x, const tensor *w) {
    (void)be; (void)dx; (void)dw; (void)db; (void)dy; (void)x; (void)w;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}
