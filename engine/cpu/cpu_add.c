#include "cpu_internal.h"

moda_status cpu_add_fwd(moda_backend *be, tensor *y, const tensor *a, const tensor *b) {
    (void)be;
    size_t n = tensor_numel(y);
    float *restrict py = y->data;
    const float *pa = a->data, *pb = b->data;
#pragma omp parallel for simd schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) py[i] = pa[i] + pb[i];
    return MODA_OK;
}

/* Channel j's plane in x of per-sample channels xc, or NULL where map value
 * m does not name one (-1, or anything a corrupt map could hold). */
static const float *mapped_plane(const float *x, int xc, size_t plane, int sample, float m) {
    if (!(m >= 0.0f && m < (float)xc)) return NULL;
    return x + ((size_t)sample * xc + (size_t)(int)m) * plane;
}

moda_status cpu_add_mapped_fwd(moda_backend *be, tensor *y, const tensor *a, const tensor *b, const tensor *map_a,
                               const tensor *map_b) {
    (void)be;
    const int n = y->shape[0], c = y->shape[1], ca = a->shape[1], cb = b->shape[1];
    size_t plane = 1;
    for (int d = 2; d < y->ndim; d++) plane *= (size_t)y->shape[d];
    const float *ma = map_a->data, *mb = map_b->data;
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * c * plane > 65536)
    for (int s = 0; s < n; s++)
        for (int j = 0; j < c; j++) {
            const float *pa = mapped_plane(a->data, ca, plane, s, ma[j]);
            const float *pb = mapped_plane(b->data, cb, plane, s, mb[j]);
            float *py = y->data + ((size_t)s * c + j) * plane;
            for (size_t i = 0; i < plane; i++) py[i] = (pa ? pa[i] : 0.0f) + (pb ? pb[i] : 0.0f);
        }
    return MODA_OK;
}
