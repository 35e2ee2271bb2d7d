#include "calibration.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim.h"
#include "rng.h"

moda_status calibration_init(calibration *c, int k, uint64_t seed) {
    if (!c) return MODA_ERR_NULL;
    memset(c, 0, sizeof(*c));
    if (k < 1) return MODA_ERR_ARG;
    c->k = k;
    c->w = malloc((size_t)k * k * sizeof(float));
    c->b = calloc((size_t)k, sizeof(float));
    if (!c->w || !c->b) {
        calibration_free(c);
        return MODA_ERR_NOMEM;
    }
    rng r;
    rng_seed(&r, seed, 31);
    rng_fill_normal(&r, c->w, (uint64_t)k * k, 0.0f, 0.01f);
    return MODA_OK;
}

void calibration_free(calibration *c) {
    if (!c) return;
    free(c->w);
    free(c->b);
    memset(c, 0, sizeof(*c));
}

void calibration_apply(const calibration *c, const float *f, int n, float *z) {
    const int k = c->k;
    for (int i = 0; i < n; i++)
        for (int o = 0; o < k; o++) {
            double s = c->b[o];
            for (int j = 0; j < k; j++) s += (double)c->w[o * k + j] * f[(size_t)i * k + j];
            z[(size_t)i * k + o] = (float)s;
        }
}

/* Loss and gradient over the samples idx[0..n) (NULL: 0..n-1). */
static double loss_over(const calibration *c, const float *f, const int32_t *y, const int32_t *idx, int n, float *gw,
                        float *gb) {
    const int k = c->k;
    double total = 0, *p = malloc((size_t)k * sizeof(double));
    float *z = malloc((size_t)k * sizeof(float));
    if (!p || !z) {
        free(p);
        free(z);
        return NAN;
    }
    if (gw) memset(gw, 0, (size_t)k * k * sizeof(float));
    if (gb) memset(gb, 0, (size_t)k * sizeof(float));
    for (int s = 0; s < n; s++) {
        int i = idx ? idx[s] : s;
        const float *fi = f + (size_t)i * k;
        calibration_apply(c, fi, 1, z);
        double mx = z[0], sum = 0;
        for (int o = 1; o < k; o++) mx = z[o] > mx ? z[o] : mx;
        for (int o = 0; o < k; o++) sum += p[o] = exp((double)z[o] - mx);
        total += log(sum) + mx - z[y[i]];
        if (!gw && !gb) continue;
        for (int o = 0; o < k; o++) { /* dL/dz = softmax - onehot, averaged */
            double g = (p[o] / sum - (o == y[i])) / n;
            if (gb) gb[o] += (float)g;
            if (gw)
                for (int j = 0; j < k; j++) gw[o * k + j] += (float)(g * fi[j]);
        }
    }
    free(p);
    free(z);
    return n ? total / n : 0;
}

double calibration_loss(const calibration *c, const float *f, const int32_t *y, int n, float *gw, float *gb) {
    return loss_over(c, f, y, NULL, n, gw, gb);
}

bool calibration_optimizer_parse(const char *text, calibration_optimizer *out) {
    if (text && !strcmp(text, "adam")) *out = CALIBRATION_ADAM;
    else if (text && !strcmp(text, "sgd")) *out = CALIBRATION_SGD;
    else return false;
    return true;
}

const char *calibration_optimizer_name(calibration_optimizer o) { return o == CALIBRATION_SGD ? "sgd" : "adam"; }

calibration_options calibration_options_default(void) {
    return (calibration_options){.epochs = 3, .batch = 128, .lr = 0.01f, .seed = 0};
}

moda_status calibration_train(calibration *c, const float *f, const int32_t *y, int n, const calibration_options *o,
                              double *final_loss) {
    if (!c || !c->w || !f || !y || !o) return MODA_ERR_NULL;
    if (n < 1 || o->epochs < 1 || o->batch < 1 || !(o->lr > 0)) return MODA_ERR_ARG;
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= c->k) return MODA_ERR_ARG;
    const int k = c->k, np = k * k + k;
    /* Parameters, gradients and Adam's moments as one vector: w then b. */
    float *g = malloc((size_t)np * sizeof(float));
    double *m = calloc((size_t)np, sizeof(double)), *v = calloc((size_t)np, sizeof(double));
    int32_t *order = malloc((size_t)n * sizeof(int32_t));
    if (!g || !m || !v || !order) {
        free(g);
        free(m);
        free(v);
        free(order);
        return MODA_ERR_NOMEM;
    }
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8, mu = 0.9;
    const bool sgd = o->optimizer == CALIBRATION_SGD;
    long step = 0;
    double epoch_loss = 0;
    moda_status st = MODA_OK;
    for (int e = 0; e < o->epochs && st == MODA_OK; e++) {
        /* SGD's rate for the epoch: cosine from lr down towards 0, per epoch as in training. */
        const double lr = sgd ? cosine_lr(o->lr, e, o->epochs) : o->lr;
        rng r;
        rng_seed(&r, o->seed, 1000 + (uint64_t)e);
        for (int i = 0; i < n; i++) order[i] = i;
        rng_shuffle_i32(&r, order, (uint32_t)n);
        double sum = 0;
        int batches = 0;
        for (int off = 0; off < n; off += o->batch, batches++) {
            int bn = n - off < o->batch ? n - off : o->batch;
            sum += loss_over(c, f, y, order + off, bn, g, g + k * k);
            step++;
            double c1 = 1 - pow(b1, (double)step), c2 = 1 - pow(b2, (double)step);
            for (int j = 0; j < np; j++) {
                float *p = j < k * k ? &c->w[j] : &c->b[j - k * k];
                if (sgd) { /* m is the velocity: v = mu v + g; step g + mu v (Nesterov) */
                    m[j] = mu * m[j] + g[j];
                    *p -= (float)(lr * (g[j] + mu * m[j]));
                    continue;
                }
                m[j] = b1 * m[j] + (1 - b1) * g[j];
                v[j] = b2 * v[j] + (1 - b2) * (double)g[j] * g[j];
                *p -= (float)(lr * (m[j] / c1) / (sqrt(v[j] / c2) + eps));
            }
        }
        epoch_loss = sum / batches;
        if (o->on_epoch && !o->on_epoch(o->ctx, e, epoch_loss)) st = MODA_ERR_CANCELLED;
    }
    if (final_loss) *final_loss = epoch_loss;
    free(g);
    free(m);
    free(v);
    free(order);
    if (st != MODA_OK) return st;
    return isfinite(epoch_loss) ? MODA_OK : MODA_ERR_ARG; /* NaN or inf among the inputs */
}
