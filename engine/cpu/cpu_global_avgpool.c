/* Global average pooling over each (n, c) plane; memory-bound loops. */
#include "cpu_internal.h"

moda_status cpu_global_avgpool_fwd(moda_backend *be, tensor *y, const tensor *x) {
    (void)be;
    long planes = (long)x->shape[0] * x->shape[1];
    size_t hw = (size_t)x->shape[2] * x->shape[3];
    float inv = 1.0f / (float)hw;
    const float *px = x->data;
    float *py = y->data;
#pragma omp parallel for schedule(static) if (planes * (long)hw > 65536)
    for (long p = 0; p < planes; p++) {
        const float *src = px + (size_t)p * hw;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (size_t i = 0; i < hw; i++) s += src[i];
        py[p] = s * inv;
    }
    return MODA_OK;
}

moda_status cpu_global_avgpool_bwd(moda_backend *be, tensor *dx, const tensor *dy) {
    (void)be;
    long planes = (long)dx->shape[0] * dx->shape[1];
    size_t hw = (size_t)dx->shape[2] * dx->shape[3];
    float inv = 1.0f / (float)hw;
    const float *pdy = dy->data;
    float *pdx = dx->data;
#pragma omp parallel for schedule(static) if (planes * (long)hw > 65536)
    for (long p = 0; p < planes; p++) {
        float g = pdy[p] * inv;
        float *dst = pdx + (size_t)p * hw;
#pragma omp simd
        for (size_t i = 0; i < hw; i++) dst[i] = g;
    }
    return MODA_OK;
}
