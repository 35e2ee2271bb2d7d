/* Softmax cross-entropy: one row per sample, stable via the row max. */
#include <math.h>

#include "cpu_internal.h"

moda_status cpu_softmax_ce_fwd(moda_backend *be, float *loss, tensor *probs, const tensor *logits,
                               const int32_t *labels) {
    (void)be;
    int n = logits->shape[0], k = logits->shape[1];
    const float *pl = logits->data;
    float *pp = probs->data;
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) schedule(static) if ((long)n * k > 65536)
    for (int i = 0; i < n; i++) {
        const float *row = pl + (size_t)i * k;
        float *prow = pp + (size_t)i * k;
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
        /* -log p_label = log(sum) - (z_label - max); exact even when p underflows. */
        total += log(sum) - (double)zl;
    }
    *loss = (float)(total / n);
    return MODA_OK;
}

moda_status cpu_softmax_ce_bwd(moda_backend *be, tensor *dlogits, const tensor *probs, const int32_t *labels,
                               float scale) {
    (void)be;
    int n = probs->shape[0], k = probs->shape[1];
    float s = scale / (float)n;
    const float *pp = probs->data;
    float *pd = dlogits->data;
#pragma omp parallel for schedule(static) if ((long)n * k > 65536)
    for (int i = 0; i < n; i++) {
        const float *prow = pp + (size_t)i * k;
        float *drow = pd + (size_t)i * k;
        for (int j = 0; j < k; j++) drow[j] = s * prow[j];
        drow[labels[i]] -= s;
    }
    return MODA_OK;
}
