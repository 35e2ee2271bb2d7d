#include "ops.h"

#include "backend_impl.h"

moda_status moda_terms_begin(moda_backend *be, const int32_t *labels, int n) {
    if (!be || !labels) return MODA_ERR_NULL;
    if (n < 1) return MODA_ERR_ARG;
    if (!be->moda_begin) return MODA_ERR_UNSUPPORTED;
    return be->moda_begin(be, labels, n);
}

moda_status moda_terms_layer(moda_backend *be, float *gz, const float *z, int b, int c, float w_aff, float w_dis,
                             float w_com) {
    if (!be || !z) return MODA_ERR_NULL;
    if (b < 1 || c < 1) return MODA_ERR_ARG;
    if (!be->moda_layer) return MODA_ERR_UNSUPPORTED;
    return be->moda_layer(be, gz, z, b, c, w_aff, w_dis, w_com);
}

moda_status moda_terms_end(moda_backend *be, double sums[3]) {
    if (!be || !sums) return MODA_ERR_NULL;
    if (!be->moda_end) return MODA_ERR_UNSUPPORTED;
    return be->moda_end(be, sums);
}
