/* Vector helpers the graph uses for gradient fan-in and zeroing. */
#include "cpu_internal.h"

moda_status cpu_fill(moda_backend *be, float *y, size_t n, float value) {
    (void)be;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] = value;
    return MODA_OK;
}

moda_status cpu_axpy(moda_backend *be, float *y, const float *x, size_t n, float alpha) {
    (void)be;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) y[i] += alpha * x[i];
    return MODA_OK;
}
