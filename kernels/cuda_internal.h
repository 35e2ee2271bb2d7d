/* Private to the CUDA backend: its context (cuDNN and cuBLAS handles,
 * device scratch, the convolution algorithm cache) and the launchers of the
 * kernels in cuda_kernels.cu, which are plain C functions so that the
 * backend itself stays C11. */
#ifndef MODA_CUDA_INTERNAL_H
#define MODA_CUDA_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Managed memory with freed blocks kept for reuse (cuda_pool.c), up to
 * keep_max bytes of them. Thread-safe. */
typedef struct cuda_pool cuda_pool;
cuda_pool *cuda_pool_new(size_t keep_max);
void *cuda_pool_alloc(cuda_pool *p, size_t bytes); /* NULL when out of memory */
void cuda_pool_free(cuda_pool *p, void *ptr);
void cuda_pool_destroy(cuda_pool *p); /* frees every block */

/* Kernels, all on the legacy default stream. Each returns the launch
 * status; sizes are element counts. */
cudaError_t cuda_k_fill(float *y, size_t n, float v);
cudaError_t cuda_k_relu_fwd(float *y, const float *x, size_t n);
cudaError_t cuda_k_relu_bwd(float *dx, const float *dy, const float *y, size_t n);
cudaError_t cuda_k_add(float *y, const float *a, const float *b, size_t n);
cudaError_t cuda_k_add_mapped(float *y, const float *a, const float *b, const float *map_a, const float *map_b, int n,
                              int c, int ca, int cb, size_t plane);
/* y (rows, cols) += b (cols) broadcast over rows. */
cudaError_t cuda_k_add_row_bias(float *y, const float *b, int rows, int cols);
/* One output per (n, c) plane of hw values: its mean, and back. */
cudaError_t cuda_k_gap_fwd(float *y, const float *x, int planes, int hw);
cudaError_t cuda_k_gap_bwd(float *dx, const float *dy, int planes, int hw);
/* Max pooling over planes of h x w; idx holds the argmax inside the plane. */
cudaError_t cuda_k_maxpool_fwd(float *y, int32_t *idx, const float *x, int planes, int h, int w, int oh, int ow,
                               int kh, int kw, int sh, int sw, int ph, int pw);
/* dx must be zeroed first; windows may overlap. */
cudaError_t cuda_k_maxpool_bwd(float *dx, const float *dy, const int32_t *idx, int planes, int hw, int ohw);
/* Softmax rows of logits into probs and each row's -log p(label) into
 * row_loss (n). */
cudaError_t cuda_k_softmax_ce_fwd(float *probs, float *row_loss, const float *logits, const int32_t *labels,
                                  int n, int k);
cudaError_t cuda_k_softmax_ce_bwd(float *dlogits, const float *probs, const int32_t *labels, int n, int k,
                                  float s);
cudaError_t cuda_k_sgd(float *p, float *v, const float *g, size_t n, float lr, float mu, float wd, int nesterov);
/* invstd = 1/sqrt(var + eps) and back (cuDNN keeps the former, the
 * engine's interface the biased variance). */
cudaError_t cuda_k_var_to_invstd(float *out, const float *var, int n, float eps);
cudaError_t cuda_k_invstd_to_var(float *out, const float *invstd, int n, float eps);

/* MODA's terms on z (B x C rows): rows to unit norm (zn, norm) while
 * adding mean(z) * com_scale into acc[2]; the pairs of S (B x B, from a
 * GEMM) into acc[0] (same label, times inv_same) and acc[1] (different,
 * times inv_diff), and with w non-NULL the pair weights W (same: ws,
 * different: wd, diagonal 0); and dL/dz from g = W zn, in place. */
cudaError_t cuda_k_moda_rows(float *zn, float *norm, double *acc, const float *z, int b, int c, double com_scale);
cudaError_t cuda_k_moda_pairs(float *w, double *acc, const float *s, const int32_t *labels, int b, float ws,
                              float wd, double inv_same, double inv_diff);
cudaError_t cuda_k_moda_dz(float *g, const float *zn, const float *norm, int b, int c, float gc);

#ifdef __cplusplus
}
#endif

#endif
