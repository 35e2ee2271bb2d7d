/* Batch normalisation over NCHW as plain OpenMP loops. oneDNN 2.6 runs NCHW
 * batch norm through its generic ncsp_bnorm implementation, which measured
 * 3-10x slower than these loops here (batch 128, 16x16 and 32x32 maps,
 * forward and backward); its fast kernels want blocked or NHWC data, and
 * reordering to them costs two extra passes over the tensor.
 *
 * Every pass walks contiguous (n, c) planes: per-plane partial statistics
 * are computed while the plane is in cache, then combined per channel in
 * double, so the tensor is read from memory once for the statistics and
 * once for the output. */
#include <math.h>

#include "cpu_internal.h"

typedef struct bn_dims {
    int n, c;
    size_t hw;
} bn_dims;

static bn_dims bn_dims_of(const tensor *x) {
    return (bn_dims){x->shape[0], x->shape[1], (size_t)x->shape[2] * x->shape[3]};
}

/* Mean and biased variance per channel. Each plane gives its mean and sum
 * of squared deviations (two sweeps over an L1/L2-resident plane); planes
 * of equal size combine exactly as M2 = sum M2_p + hw * sum (m_p - m)^2. */
static moda_status bn_stats(cpu_ctx *ctx, float *mean, float *var, const float *x, bn_dims d) {
    long planes = (long)d.n * d.c;
    double *ps = cpu_scratch(ctx, (2 * (size_t)planes + 3 * (size_t)d.c) * sizeof(double));
    if (!ps) return MODA_ERR_NOMEM;
    double *pm = ps, *pm2 = ps + planes, *cm = ps + 2 * planes, *cm2 = cm + d.c, *spread = cm2 + d.c;
#pragma omp parallel for schedule(static) if (planes * (long)d.hw > 65536)
    for (long p = 0; p < planes; p++) {
        const float *src = x + (size_t)p * d.hw;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (size_t j = 0; j < d.hw; j++) s += src[j];
        float m = s / (float)d.hw, q = 0.0f;
#pragma omp simd reduction(+ : q)
        for (size_t j = 0; j < d.hw; j++) q += (src[j] - m) * (src[j] - m);
        pm[p] = m;
        pm2[p] = q;
    }
    /* Reduce over the batch row by row, so the reads stay contiguous. */
    for (int k = 0; k < d.c; k++) cm[k] = cm2[k] = spread[k] = 0.0;
    for (int i = 0; i < d.n; i++)
        for (int k = 0; k < d.c; k++) {
            cm[k] += pm[(size_t)i * d.c + k];
            cm2[k] += pm2[(size_t)i * d.c + k];
        }
    for (int k = 0; k < d.c; k++) cm[k] /= d.n;
    for (int i = 0; i < d.n; i++)
        for (int k = 0; k < d.c; k++) {
            double dm = pm[(size_t)i * d.c + k] - cm[k];
            spread[k] += dm * dm;
        }
    for (int k = 0; k < d.c; k++) {
        mean[k] = (float)cm[k];
        var[k] = (float)((cm2[k] + (double)d.hw * spread[k]) / ((double)d.n * (double)d.hw));
    }
    return MODA_OK;
}

/* y = x * scale[c] + shift[c], with scale = gamma/sqrt(var+eps) and
 * shift = beta - mean*scale. */
static void bn_apply(float *y, const float *x, const float *gamma, const float *beta, const float *mean,
                     const float *var, float eps, bn_dims d) {
    long planes = (long)d.n * d.c;
#pragma omp parallel for schedule(static) if (planes * (long)d.hw > 65536)
    for (long p = 0; p < planes; p++) {
        int k = (int)(p % d.c);
        float sc = gamma[k] / sqrtf(var[k] + eps), sh = beta[k] - mean[k] * sc;
        const float *src = x + (size_t)p * d.hw;
        float *dst = y + (size_t)p * d.hw;
#pragma omp simd
        for (size_t j = 0; j < d.hw; j++) dst[j] = src[j] * sc + sh;
    }
}

moda_status cpu_batchnorm2d_fwd_train(moda_backend *be, tensor *y, tensor *save_mean, tensor *save_var,
                                      tensor *running_mean, tensor *running_var, const tensor *x,
                                      const tensor *gamma, const tensor *beta, const batchnorm_params *p) {
    bn_dims d = bn_dims_of(x);
    MODA_TRY(bn_stats(cpu_ctx_of(be), save_mean->data, save_var->data, x->data, d));
    bn_apply(y->data, x->data, gamma->data, beta->data, save_mean->data, save_var->data, p->eps, d);
    /* Running statistics as PyTorch keeps them: the variance is unbiased. */
    double cnt = (double)d.n * (double)d.hw;
    float m = p->momentum, unbias = (float)(cnt / (cnt - 1.0));
    for (int k = 0; k < d.c; k++) {
        running_mean->data[k] = (1.0f - m) * running_mean->data[k] + m * save_mean->data[k];
        running_var->data[k] = (1.0f - m) * running_var->data[k] + m * save_var->data[k] * unbias;
    }
    return MODA_OK;
}

moda_status cpu_batchnorm2d_fwd_eval(moda_backend *be, tensor *y, const tensor *x, const tensor *gamma,
                                     const tensor *beta, const tensor *running_mean,
                                     const tensor *running_var, const batchnorm_params *p) {
    (void)be;
    bn_apply(y->data, x->data, gamma->data, beta->data, running_mean->data, running_var->data, p->eps,
             bn_dims_of(x));
    return MODA_OK;
}

/* With xhat = (x - mean) * inv and cnt = N*H*W:
 *   dbeta = sum dy, dgamma = sum dy * xhat,
 *   dx = gamma * inv * (dy - dbeta/cnt - xhat * dgamma/cnt). */
moda_status cpu_batchnorm2d_bwd(moda_backend *be, tensor *dx, tensor *dgamma, tensor *dbeta, const tensor *dy,
                                const tensor *x, const tensor *gamma, const tensor *save_mean,
                                const tensor *save_var, const batchnorm_params *p) {
    if (!dx && !dgamma && !dbeta) return MODA_OK;
    bn_dims d = bn_dims_of(x);
    long planes = (long)d.n * d.c;
    /* Per-plane sums first, then the per-channel reduction, then dx: the
     * first (N*C) doubles are sum dy, the next sum dy*(x-mean). */
    double *ps =
        cpu_scratch(cpu_ctx_of(be), 2 * (size_t)planes * sizeof(double) + 2 * (size_t)d.c * sizeof(float));
    if (!ps) return MODA_ERR_NOMEM;
    double *psb = ps, *psg = ps + planes;
    float *gb = (float *)(ps + 2 * planes), *gg = gb + d.c; /* per-channel dbeta, dgamma */
    const float *mean = save_mean->data, *var = save_var->data;
#pragma omp parallel for schedule(static) if (planes * (long)d.hw > 65536)
    for (long q = 0; q < planes; q++) {
        int k = (int)(q % d.c);
        const float *px = x->data + (size_t)q * d.hw, *pg = dy->data + (size_t)q * d.hw;
        float m = mean[k], sb = 0.0f, sg = 0.0f;
#pragma omp simd reduction(+ : sb, sg)
        for (size_t j = 0; j < d.hw; j++) {
            sb += pg[j];
            sg += pg[j] * (px[j] - m);
        }
        psb[q] = sb;
        psg[q] = sg;
    }
    /* Reduce over the batch row by row into the first row's slots. */
    for (int i = 1; i < d.n; i++)
        for (int k = 0; k < d.c; k++) {
            psb[k] += psb[(size_t)i * d.c + k];
            psg[k] += psg[(size_t)i * d.c + k];
        }
    for (int k = 0; k < d.c; k++) {
        gb[k] = (float)psb[k];
        gg[k] = (float)(psg[k] / sqrt((double)var[k] + p->eps));
    }
    if (dx) {
        float inv_cnt = (float)(1.0 / ((double)d.n * (double)d.hw));
#pragma omp parallel for schedule(static) if (planes * (long)d.hw > 65536)
        for (long q = 0; q < planes; q++) {
            int k = (int)(q % d.c);
            float inv = 1.0f / sqrtf(var[k] + p->eps), m = mean[k];
            float a = gamma->data[k] * inv, mb = gb[k] * inv_cnt, mg = gg[k] * inv * inv_cnt;
            const float *px = x->data + (size_t)q * d.hw, *pg = dy->data + (size_t)q * d.hw;
            float *pdx = dx->data + (size_t)q * d.hw;
#pragma omp simd
            for (size_t j = 0; j < d.hw; j++) pdx[j] = a * (pg[j] - mb - (px[j] - m) * mg);
        }
    }
    for (int k = 0; k < d.c; k++) {
        if (dgamma) dgamma->data[k] = gg[k];
        if (dbeta) dbeta->data[k] = gb[k];
    }
    return MODA_OK;
}
