#include "cpu_internal.h"

moda_status cpu_maxpool2d_fwd(moda_backend *be, tensor *y, void *ws, const tensor *x, const pool2d_params *p) {
    (void)be; (void)y; (void)ws; (void)x; (void)p;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

moda_status cpu_maxpool2d_bwd(moda_backend *be, tensor *dx, const tensor *dy, const void *ws, const pool2d_params *p) {
    (void)be; (void)dx; (void)dy; (void)ws; (void)p;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

size_t cpu_maxpool2d_ws_bytes(moda_backend *be, const tensor *y) { (void)be; (void)y; return 0; }
