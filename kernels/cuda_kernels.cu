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

/* y (n, c, plane): channel j = a[map_a[j]] + b[map_b[j]], an index outside
 * an addend's channels reading zero (a composed model's residual add). */
static __global__ void k_add_mapped(float *y, const float *a, const float *b, const float *map_a, const float *map_b,
                                    size_t total, int c, int ca, int cb, size_t plane) {
    GRID_STRIDE(i, total) {
        size_t p = i % plane, sj = i / plane;
        int j = (int)(sj % (size_t)c);
        size_t s = sj / (size_t)c;
        float ma = map_a[j], mb = map_b[j], v = 0.0f;
        if (ma >= 0.0f && ma < (float)ca) v += a[(s * ca + (size_t)(int)ma) * plane + p];
        if (mb >= 0.0f && mb < (float)cb) v += b[(s * cb + (size_t)(int)mb) * plane + p];
        y[i] = v;
    }
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

/* Sum over a block of 256 threads (8 warps), in double; every thread
 * gets the total. */
static __device__ double block_sum(double v) {
    __shared__ double part[THREADS / 32];
    __syncthreads(); /* part may still be read from a previous call */
    for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
    __syncthreads();
    double t = 0;
    for (int i = 0; i < THREADS / 32; i++) t += part[i];
    return t;
}

#define MODA_NORM_EPS 1e-12f

/* One block per row. */
static __global__ void k_moda_rows(float *zn, float *norm, double *acc, const float *z, int c, double com_scale) {
    const float *zr = z + (size_t)blockIdx.x * c;
    double sq = 0, sum = 0;
    for (int k = threadIdx.x; k < c; k += blockDim.x) {
        double v = zr[k];
        sq += v * v;
        sum += v;
    }
    sq = block_sum(sq);
    sum = block_sum(sum);
    float nrm = fmaxf((float)sqrt(sq), MODA_NORM_EPS);
    for (int k = threadIdx.x; k < c; k += blockDim.x) zn[(size_t)blockIdx.x * c + k] = zr[k] / nrm;
    if (threadIdx.x == 0) {
        norm[blockIdx.x] = nrm;
        atomicAdd(acc + 2, sum * com_scale);
    }
}

/* One thread per (i, j); a block's pairs are summed before one atomic. */
static __global__ void k_moda_pairs(float *w, double *acc, const float *s, const int32_t *labels, int b, float ws,
                                    float wd, double inv_same, double inv_diff) {
    size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    double same = 0, diff = 0;
    if (t < (size_t)b * b) {
        int i = (int)(t / b), j = (int)(t % b);
        bool eq = labels[i] == labels[j];
        if (i < j) {
            if (eq)
                same = s[t];
            else
                diff = s[t];
        }
        if (w) w[t] = i == j ? 0.0f : eq ? ws : wd;
    }
    same = block_sum(same);
    diff = block_sum(diff);
    if (threadIdx.x == 0) {
        if (same != 0) atomicAdd(acc, same * inv_same);
        if (diff != 0) atomicAdd(acc + 1, diff * inv_diff);
    }
}

/* One block per row: through the normalisation, plus compactness. */
static __global__ void k_moda_dz(float *g, const float *zn, const float *norm, int c, float gc) {
    float *gr = g + (size_t)blockIdx.x * c;
    const float *u = zn + (size_t)blockIdx.x * c;
    float nrm = norm[blockIdx.x];
    bool clamped = nrm <= MODA_NORM_EPS;
    double dot = 0;
    if (!clamped)
        for (int k = threadIdx.x; k < c; k += blockDim.x) dot += (double)u[k] * gr[k];
    float d = (float)block_sum(dot);
    for (int k = threadIdx.x; k < c; k += blockDim.x) gr[k] = (gr[k] - (clamped ? 0.0f : u[k] * d)) / nrm + gc;
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
cudaError_t cuda_k_add_mapped(float *y, const float *a, const float *b, const float *map_a, const float *map_b, int n,
                              int c, int ca, int cb, size_t plane) {
    size_t total = (size_t)n * c * plane;
    LAUNCH(total, k_add_mapped, y, a, b, map_a, map_b, total, c, ca, cb, plane);
}
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

cudaError_t cuda_k_moda_rows(float *zn, float *norm, double *acc, const float *z, int b, int c, double com_scale) {
    if (b <= 0) return cudaSuccess;
    k_moda_rows<<<b, THREADS>>>(zn, norm, acc, z, c, com_scale);
    return cudaGetLastError();
}
cudaError_t cuda_k_moda_pairs(float *w, double *acc, const float *s, const int32_t *labels, int b, float ws,
                              float wd, double inv_same, double inv_diff) {
    size_t n = (size_t)b * b;
    if (n == 0) return cudaSuccess;
    k_moda_pairs<<<(unsigned)((n + THREADS - 1) / THREADS), THREADS>>>(w, acc, s, labels, b, ws, wd, inv_same,
                                                                        inv_diff);
    return cudaGetLastError();
}
cudaError_t cuda_k_moda_dz(float *g, const float *zn, const float *norm, int b, int c, float gc) {
    if (b <= 0) return cudaSuccess;
    k_moda_dz<<<b, THREADS>>>(g, zn, norm, c, gc);
    return cudaGetLastError();
}

} /* extern "C" */
