/* Fully connected layer on oneDNN's sgemm (row-major). With plain (N,I) and
 * (O,I) layouts the inner-product primitive runs the same GEMM kernels
 * ("gemm:jit"), but needs per-shape primitives and memory objects; sgemm
 * needs no cache and measured the same at 512->512 and 2048->512 (batch
 * 128) and about 3x faster for a 10-class head, where setup dominates. */
#include <string.h>

#include "cpu_internal.h"

moda_status cpu_linear_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b) {
    (void)be;
    dnnl_dim_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
    float beta = 0.0f;
    if (b) {
        /* Seed y with the bias rows so the GEMM adds onto them (beta = 1). */
        for (dnnl_dim_t r = 0; r < n; r++) memcpy(y->data + r * out, b->data, (size_t)out * sizeof(float));
        beta = 1.0f;
    }
    DNNL_TRY(dnnl_sgemm('N', 'T', n, out, in, 1.0f, x->data, in, w->data, in, beta, y->data, out));
    return MODA_OK;
}

moda_status cpu_linear_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                           const tensor *x, const tensor *w) {
    (void)be;
    dnnl_dim_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
    if (dx) /* dx (N,I) = dy (N,O) * w (O,I) */
        DNNL_TRY(dnnl_sgemm('N', 'N', n, in, out, 1.0f, dy->data, out, w->data, in, 0.0f, dx->data, in));
    if (dw) /* dw (O,I) = dy^T (O,N) * x (N,I) */
        DNNL_TRY(dnnl_sgemm('T', 'N', out, in, n, 1.0f, dy->data, out, x->data, in, 0.0f, dw->data, in));
    if (db) {
        float *pdb = db->data;
        const float *pdy = dy->data;
        for (dnnl_dim_t o = 0; o < out; o++) pdb[o] = 0.0f;
        for (dnnl_dim_t r = 0; r < n; r++) {
            const float *row = pdy + r * out;
#pragma omp simd
            for (dnnl_dim_t o = 0; o < out; o++) pdb[o] += row[o];
        }
    }
    return MODA_OK;
}
