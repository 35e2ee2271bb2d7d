/* The CUDA backend's own kernels: everything cuDNN and cuBLAS do not cover
 * with the engine's exact semantics (max pooling with a recorded argmax,
 * softmax cross-entropy, PyTorch's SGD, elementwise ops). Grid-stride loops
 * with 256-thread blocks; none of these is near the cost of a convolution. */
#include <math.h>

#include "cuda_internal.h"

#define THREADS 256

static unsigned blocks_for(size_t n) {
    size_t b = (n + THREADS - 1) / THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b > 65535u * 8 ? 65535u * 8 : b);
}

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

static __global__ void k_fill(float *y, size_t n, float v) {
    GRID_STRIDE(i, n) y[i] = v;
}

static __global__ void k_relu_fwd(float *y, const float *x, size_t n) {
    GRID_STRIDE(i, n) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static __global__ void k_relu_bwd(float *dx, const float *dy, const float *y, size_t n) {
    GRID_STRIDE(i, n) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

static __global__ void k_add(float *y, const float *a, const float *b, size_t n) {
    GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}

static __global__ void k_add_row_bias(float *y, const float *b, size_t n, int cols) {
    GRID_STRIDE(i, n) y[i] += b[i % cols];
}

/* One warp per plane. */
static __global__ void k_gap_fwd(float *y, const float *x, int planes, int hw) {
    int warp = (blockIdx.x * blockDim.x + threadIdx.x) / 32, lane = threadIdx.x % 32;
    if (warp >= planes) return;
    const float *p = x + (size_t)warp * hw;
    float s = 0.0f;
    for (int i = lane; i < hw; i += 32) s += p[i];
    for (int o = 16; o > 0; o /= 2) s += __shfl_down_sync(0xffffffffu, s, o);
    if (lane == 0) y[warp] = s / (float)hw;
}

static __global__ void k_gap_bwd(float *dx, const float *dy, size_t n, int hw) {
    GRID_STRIDE(i, n) dx[i] = dy[i / hw] / (float)hw;
}

/* Windows visited in row-major order; only a strictly larger value (or a
 * NaN) replaces the first maximum, and positions outside the input are
 * skipped, which is padding with -inf. */
static __global__ void k_maxpool_fwd(float *y, int32_t *idx, const float *x, int planes, int h, int w, int oh,
                                     int ow, int kh, int kw, int sh, int sw, int ph, int pw) {
    size_t n = (size_t)planes * oh * ow;
    GRID_STRIDE(i, n) {
        int j = (int)(i % ow), r = (int)((i / ow) % oh);
        size_t plane = i / ((size_t)oh * ow);
        const float *xp = x + plane * h * w;
        int h0 = r * sh - ph, w0 = j * sw - pw;
        float best = -INFINITY;
        int at = -1;
        for (int a = 0; a < kh; a++) {
            int rr = h0 + a;
            if (rr < 0 || rr >= h) continue;
            for (int b = 0; b < kw; b++) {
                int cc = w0 + b;
                if (cc < 0 || cc >= w) continue;
                float v = xp[rr * w + cc];
                if (at < 0 || v > best || v != v) {
                    best = v;
                    at = rr * w + cc;
                }
            }
        }
        y[i] = best;
        idx[i] = at < 0 ? 0 : at;
    }
}

static __global__ void k_maxpool_bwd(float *dx, const float *dy, const int32_t *idx, size_t n, int hw, int ohw) {
    GRID_STRIDE(i, n) atomicAdd(dx + (i / ohw) * hw + idx[i], dy[i]);
}

/* One thread per row: the class counts here are small (10 or 100). */
static __global__ void k_softmax_ce_fwd(float *probs, float *row_loss, const float *logits, const int32_t *labels,
                                        int n, int k) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float *row = logits + (size_t)i * k;
    float *prow = probs + (size_t)i * k;
    float m = row[0];
    for (int j = 1; j < k; j++) m = row[j] > m ? row[j] : m;
    float zl = row[labels[i]] - m; /* read before probs may overwrite logits */
    double sum = 0.0;
    for (int j = 0; j < k; j++) {
        float e = expf(row[j] - m);
        prow[j] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < k; j++) prow[j] *= inv;
    row_loss[i] = (float)(log(sum) - (double)zl);
}

static __global__ void k_softmax_ce_bwd(float *d, const float *probs, const int32_t *labels, size_t n, int k,
                                        float s) {
    GRID_STRIDE(i, n) d[i] = s * probs[i] - ((int)(i % k) == labels[i / k] ? s : 0.0f);
}

static __global__ void k_sgd(float *p, float *v, const float *g, size_t n, float lr, float mu, float wd,
                             int nesterov) {
    GRID_STRIDE(i, n) {
        float gi = g[i] + wd * p[i];
        float vi = mu * v[i] + gi;
        v[i] = vi;
        p[i] -= lr * (nesterov ? gi + mu * vi : vi);
    }
}

static __global__ void k_var_to_invstd(float *out, const float *var, int n, float eps) {
    GRID_STRIDE(i, (size_t)n) out[i] = 1.0f / sqrtf(var[i] + eps);
}

static __global__ void k_invstd_to_var(float *out, const float *invstd, int n, float eps) {
    GRID_STRIDE(i, (size_t)n) out[i] = 1.0f / (invstd[i] * invstd[i]) - eps;
}

#define LAUNCH(n, kernel, ...)                                   \
    do {                                                         \
        if ((n) == 0) return cudaSuccess;                        \
        kernel<<<blocks_for(n), THREADS>>>(__VA_ARGS__);         \
        return cudaGetLastError();                               \
    } while (0)

extern "C" {

cudaError_t cuda_k_fill(float *y, size_t n, float v) { LAUNCH(n, k_fill, y, n, v); }
cudaError_t cuda_k_relu_fwd(float *y, const float *x, size_t n) { LAUNCH(n, k_relu_fwd, y, x, n); }
cudaError_t cuda_k_relu_bwd(float *dx, const float *dy, const float *y, size_t n) {
    LAUNCH(n, k_relu_bwd, dx, dy, y, n);
}
cudaError_t cuda_k_add(float *y, const float *a, const float *b, size_t n) { LAUNCH(n, k_add, y, a, b, n); }
cudaError_t cuda_k_add_row_bias(float *y, const float *b, int rows, int cols) {
    size_t n = (size_t)rows * cols;
    LAUNCH(n, k_add_row_bias, y, b, n, cols);
}
cudaError_t cuda_k_gap_fwd(float *y, const float *x, int planes, int hw) {
    if (planes <= 0) return cudaSuccess;
    unsigned blocks = (unsigned)(((size_t)planes * 32 + THREADS - 1) / THREADS);
    k_gap_fwd<<<blocks, THREADS>>>(y, x, planes, hw);
    return cudaGetLastError();
}
cudaError_t cuda_k_gap_bwd(float *dx, const float *dy, int planes, int hw) {
    size_t n = (size_t)planes * hw;
    LAUNCH(n, k_gap_bwd, dx, dy, n, hw);
}
cudaError_t cuda_k_maxpool_fwd(float *y, int32_t *idx, const float *x, int planes, int h, int w, int oh, int ow,
                               int kh, int kw, int sh, int sw, int ph, int pw) {
    size_t n = (size_t)planes * oh * ow;
    LAUNCH(n, k_maxpool_fwd, y, idx, x, planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw);
}
cudaError_t cuda_k_maxpool_bwd(float *dx, const float *dy, const int32_t *idx, int planes, int hw, int ohw) {
    size_t n = (size_t)planes * ohw;
    LAUNCH(n, k_maxpool_bwd, dx, dy, idx, n, hw, ohw);
}
cudaError_t cuda_k_softmax_ce_fwd(float *probs, float *row_loss, const float *logits, const int32_t *labels,
                                  int n, int k) {
    if (n <= 0) return cudaSuccess;
    k_softmax_ce_fwd<<<(unsigned)((n + THREADS - 1) / THREADS), THREADS>>>(probs, row_loss, logits, labels, n, k);
    return cudaGetLastError();
}
cudaError_t cuda_k_softmax_ce_bwd(float *dlogits, const float *probs, const int32_t *labels, int n, int k,
                                  float s) {
    size_t total = (size_t)n * k;
    LAUNCH(total, k_softmax_ce_bwd, dlogits, probs, labels, total, k, s);
}
cudaError_t cuda_k_sgd(float *p, float *v, const float *g, size_t n, float lr, float mu, float wd, int nesterov) {
    LAUNCH(n, k_sgd, p, v, g, n, lr, mu, wd, nesterov);
}
cudaError_t cuda_k_var_to_invstd(float *out, const float *var, int n, float eps) {
    LAUNCH((size_t)n, k_var_to_invstd, out, var, n, eps);
}
cudaError_t cuda_k_invstd_to_var(float *out, const float *invstd, int n, float eps) {
    LAUNCH((size_t)n, k_invstd_to_var, out, invstd, n, eps);
}

} /* extern "C" */
