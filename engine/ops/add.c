#include "ops.h"

moda_status add_fwd(moda_backend *be, tensor *y, const tensor *a, const tensor *b) {
    (void)be; (void)y; (void)a; (void)b;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}

moda_status add_bwd(moda_backend *be, tensor *da, tensor *db, const tensor *dy) {
    (void)be; (void)da; (void)db; (void)dy;
    return MODA_ERR_UNSUPPORTED; /* placeholder */
}
