#include "decompose.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

moda_status rates_alloc(rates *r, const graph *g, int num_classes) {
    if (!r || !g) return MODA_ERR_NULL;
    if (num_classes <= 0) return MODA_ERR_ARG;
    memset(r, 0, sizeof(*r));
    r->num_classes = num_classes;
    for (int i = 0; i < g->n_nodes; i++) r->n_layers += g->nodes[i].kind == NODE_RELU;
    r->node = calloc((size_t)r->n_layers + 1, sizeof(int));
    r->units = calloc((size_t)r->n_layers + 1, sizeof(int));
    r->rate = calloc((size_t)r->n_layers + 1, sizeof(float *));
    r->class_count = calloc((size_t)num_classes, sizeof(int));
    if (!r->node || !r->units || !r->rate || !r->class_count) {
        rates_free(r);
        return MODA_ERR_NOMEM;
    }
    for (int i = 0, l = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].kind != NODE_RELU) continue;
        r->node[l] = i;
        r->units[l] = g->nodes[i].c;
        r->rate[l] = calloc((size_t)num_classes * (size_t)g->nodes[i].c, sizeof(float));
        if (!r->rate[l]) {
            rates_free(r);
            return MODA_ERR_NOMEM;
        }
        l++;
    }
    return MODA_OK;
}

void rates_free(rates *r) {
    if (!r) return;
    for (int l = 0; r->rate && l < r->n_layers; l++) free(r->rate[l]);
    free(r->rate);
    free(r->node);
    free(r->units);
    free(r->class_count);
    memset(r, 0, sizeof(*r));
}

moda_status decompose_rates(graph *g, const dataset *ds, int batch_size, rates *r, decompose_progress_fn progress,
                            void *ctx) {
    if (!g || !ds || !r) return MODA_ERR_NULL;
    if (batch_size <= 0 || batch_size > g->max_batch) return MODA_ERR_ARG;
    if (ds->num_classes != r->num_classes || graph_output(g)->c != r->num_classes) return MODA_ERR_SHAPE;
    size_t per = (size_t)ds->c * ds->h * ds->w;
    if (ds->c != g->in_c || ds->h != g->in_h || ds->w != g->in_w) return MODA_ERR_SHAPE;
    float *x = malloc((size_t)batch_size * per * sizeof(float));
    int32_t *y = malloc((size_t)batch_size * sizeof(int32_t));
    dataset_iter it;
    moda_status s = (!x || !y) ? MODA_ERR_NOMEM : dataset_iter_init(&it, ds, batch_size, 0, NULL, 0);
    if (s != MODA_OK) {
        free(x);
        free(y);
        return s;
    }
    /* Counts accumulate in the rate arrays, divided at the end. */
    for (int l = 0; l < r->n_layers; l++)
        memset(r->rate[l], 0, (size_t)r->num_classes * r->units[l] * sizeof(float));
    memset(r->class_count, 0, (size_t)r->num_classes * sizeof(int));
    dataset_iter_begin_epoch(&it, 0);
    int n, done = 0;
    while ((n = dataset_iter_next(&it, x, y)) > 0) {
        if ((s = graph_forward(g, x, n, false)) != MODA_OK) break;
        for (int i = 0; i < n; i++) r->class_count[y[i]]++;
        for (int l = 0; l < r->n_layers; l++) {
            const graph_node *nd = &g->nodes[r->node[l]];
            int c = nd->c, hw = nd->h * nd->w;
            float *rate = r->rate[l];
            /* ReLU outputs are >= 0, so "spatial mean > 0" is "any > 0". */
#pragma omp parallel for schedule(static)
            for (int k = 0; k < c; k++)
                for (int i = 0; i < n; i++) {
                    const float *a = nd->out.data + ((size_t)i * c + k) * hw;
                    int on = 0;
                    for (int p = 0; p < hw && !on; p++) on = a[p] > 0.0f;
                    rate[(size_t)y[i] * c + k] += (float)on;
                }
        }
        done += n;
        if (progress) progress(done, ds->n, ctx);
    }
    dataset_iter_free(&it);
    free(x);
    free(y);
    if (s != MODA_OK) return s;
    for (int l = 0; l < r->n_layers; l++)
        for (int cl = 0; cl < r->num_classes; cl++) {
            float inv = r->class_count[cl] ? 1.0f / (float)r->class_count[cl] : 0.0f;
            for (int k = 0; k < r->units[l]; k++) r->rate[l][(size_t)cl * r->units[l] + k] *= inv;
        }
    return MODA_OK;
}

int decompose_min_units(int n) {
    int m = (int)floor(0.005 * n);
    return m < 1 ? 1 : m;
}

int decompose_mask(const rates *r, int l, int c, float tau, bool *mask) {
    int n = r->units[l];
    const float *rate = r->rate[l] + (size_t)c * n;
    int kept = 0;
    for (int k = 0; k < n; k++) kept += (mask[k] = rate[k] >= tau);
    int m = decompose_min_units(n);
    if (kept >= m) return kept;
    /* Fallback: the m highest rates, lower index first on ties. */
    for (int k = 0; k < n; k++) mask[k] = false;
    for (int j = 0; j < m; j++) {
        int best = -1;
        for (int k = 0; k < n; k++)
            if (!mask[k] && (best < 0 || rate[k] > rate[best])) best = k;
        mask[best] = true;
    }
    return m;
}
