/* ReLU as plain OpenMP SIMD loops: it is memory-bound, so a oneDNN eltwise
 * primitive would add setup and caching without moving bytes any faster. */
#include "cpu_internal.h"

moda_status cpu_relu_fwd(moda_backend *be, tensor *y, const tensor *x) {
    (void)be;
    size_t n = tensor_numel(x);
    float *py = y->data;
    const float *px = x->data;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) py[i] = px[i] > 0.0f ? px[i] : 0.0f;
    return MODA_OK;
}

moda_status cpu_relu_bwd(moda_backend *be, tensor *dx, const tensor *dy, const tensor *y) {
    (void)be;
    size_t n = tensor_numel(y);
    float *pdx = dx->data;
    const float *pdy = dy->data, *py = y->data;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) pdx[i] = py[i] > 0.0f ? pdy[i] : 0.0f;
    return MODA_OK;
}
