#include "moda_loss.h"

#include <dnnl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

#define MODA_NORM_EPS 1e-12f

moda_status moda_scratch_init(moda_scratch *sc, int max_b, int max_c) {
    if (!sc) return MODA_ERR_NULL;
    if (max_b <= 0 || max_c <= 0) return MODA_ERR_ARG;
    memset(sc, 0, sizeof(*sc));
    size_t bc = (size_t)max_b * max_c, bb = (size_t)max_b * max_b;
    sc->z = malloc(bc * sizeof(float));
    sc->zn = malloc(bc * sizeof(float));
    sc->gz = malloc(bc * sizeof(float));
    sc->s = malloc(bb * sizeof(float));
    sc->w = malloc(bb * sizeof(float));
    sc->norm = malloc((size_t)max_b * sizeof(float));
    sc->max_b = max_b;
    sc->max_c = max_c;
    if (!sc->z || !sc->zn || !sc->gz || !sc->s || !sc->w || !sc->norm) {
        moda_scratch_free(sc);
        return MODA_ERR_NOMEM;
    }
    return MODA_OK;
}

void moda_scratch_free(moda_scratch *sc) {
    if (!sc) return;
    free(sc->z);
    free(sc->zn);
    free(sc->gz);
    free(sc->s);
    free(sc->w);
    free(sc->norm);
    memset(sc, 0, sizeof(*sc));
}

/* The terms from z (B x C, in sc->z); with want_grad, dL/dz in sc->gz. */
static moda_status terms_from_z(moda_scratch *sc, int b, int c, const int32_t *labels, float w_aff, float w_dis,
                                float w_com, bool want_grad, moda_layer_terms *out) {
    float *z = sc->z, *zn = sc->zn, *gz = sc->gz, *s = sc->s, *w = sc->w, *norm = sc->norm;
    /* zn: rows scaled to unit norm. */
    double com = 0;
#pragma omp parallel for reduction(+ : com) schedule(static) if ((long)b * c > 16384)
    for (int i = 0; i < b; i++) {
        double sq = 0;
        for (int k = 0; k < c; k++) {
            float m = z[(size_t)i * c + k];
            sq += (double)m * m;
            com += m;
        }
        norm[i] = fmaxf((float)sqrt(sq), MODA_NORM_EPS);
        for (int k = 0; k < c; k++) zn[(size_t)i * c + k] = z[(size_t)i * c + k] / norm[i];
    }

    /* S = Zn Zn^T, one GEMM (row-major B x C times its transpose). */
    if (dnnl_sgemm('N', 'T', b, b, c, 1.0f, zn, c, zn, c, 0.0f, s, b) != dnnl_success) return MODA_ERR_BACKEND;

    double sum_same = 0, sum_diff = 0;
    long n_same = 0, n_diff = 0;
    for (int i = 0; i < b; i++)
        for (int j = i + 1; j < b; j++) {
            if (labels[i] == labels[j]) {
                sum_same += s[(size_t)i * b + j];
                n_same++;
            } else {
                sum_diff += s[(size_t)i * b + j];
                n_diff++;
            }
        }
    out->has_same = n_same > 0;
    out->has_diff = n_diff > 0;
    out->aff = n_same ? sum_same / n_same : 0;
    out->dis = n_diff ? sum_diff / n_diff : 0;
    out->com = com / ((double)b * c);
    if (!want_grad) return MODA_OK;

    /* dL/dS_ij for i != j (symmetric, zero diagonal), then dL/dZn = W Zn. */
    float ws = n_same ? w_aff / (float)n_same : 0.0f, wd = n_diff ? w_dis / (float)n_diff : 0.0f;
    for (int i = 0; i < b; i++)
        for (int j = 0; j < b; j++) w[(size_t)i * b + j] = i == j ? 0.0f : labels[i] == labels[j] ? ws : wd;
    if (dnnl_sgemm('N', 'N', b, c, b, 1.0f, w, b, zn, c, 0.0f, gz, c) != dnnl_success) return MODA_ERR_BACKEND;

    /* Through the normalisation: dz = (g - zn <zn, g>) / |z|, or g / eps
     * where the norm was clamped; plus compactness. */
    const float gc = w_com / ((float)b * c);
#pragma omp parallel for schedule(static) if ((long)b * c > 16384)
    for (int i = 0; i < b; i++) {
        float *g = gz + (size_t)i * c;
        const float *u = zn + (size_t)i * c;
        float dot = 0;
        bool clamped = norm[i] <= MODA_NORM_EPS;
        if (!clamped)
            for (int k = 0; k < c; k++) dot += u[k] * g[k];
        for (int k = 0; k < c; k++) g[k] = (g[k] - (clamped ? 0.0f : u[k] * dot)) / norm[i] + gc;
    }
    return MODA_OK;
}

moda_status moda_layer_loss(moda_scratch *sc, const float *act, int b, int c, int hw, const int32_t *labels,
                            float w_aff, float w_dis, float w_com, float *dact, moda_layer_terms *out) {
    if (!sc || !act || !labels || !out) return MODA_ERR_NULL;
    if (b <= 0 || c <= 0 || hw <= 0) return MODA_ERR_ARG;
    if (b > sc->max_b || c > sc->max_c) return MODA_ERR_SHAPE;
    const float inv_hw = 1.0f / (float)hw;
    float *z = sc->z;
    /* z: spatial means. */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < b; i++)
        for (int k = 0; k < c; k++) {
            const float *a = act + ((size_t)i * c + k) * hw;
            float m = 0;
            for (int p = 0; p < hw; p++) m += a[p];
            z[(size_t)i * c + k] = m * inv_hw;
        }
    MODA_TRY(terms_from_z(sc, b, c, labels, w_aff, w_dis, w_com, dact != NULL, out));
    if (!dact) return MODA_OK;
    /* dz spread evenly over the h x w positions it averaged. */
    const float *gz = sc->gz;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < b; i++)
        for (int k = 0; k < c; k++) {
            float *d = dact + ((size_t)i * c + k) * hw;
            float v = gz[(size_t)i * c + k] * inv_hw;
            for (int p = 0; p < hw; p++) d[p] += v;
        }
    return MODA_OK;
}

/* The same for a backend that keeps activations in its own memory: only
 * z (B x C) comes to the host, and only dL/dz goes back, spread by the
 * backend's global average pool backward and summed into dact with axpy. */
static moda_status device_layer_loss(moda_loss *m, graph *g, graph_node *n, float w_aff, float w_dis,
                                     float w_com, bool want_grad, moda_layer_terms *out) {
    moda_backend *be = g->be;
    int b = g->batch, c = n->c, hw = n->h * n->w;
    size_t bc = (size_t)b * c;
    if (b > m->scratch.max_b || c > m->scratch.max_c) return MODA_ERR_SHAPE;
    const float *zsrc = n->out.data;
    if (hw > 1) {
        tensor z = tensor_2d(m->dev_z, b, c);
        MODA_TRY(global_avgpool_fwd(be, &z, &n->out));
        zsrc = m->dev_z;
    }
    if (backend_supports_op(be, BACKEND_OP_MODA_TERMS)) {
        /* Terms on the backend: nothing comes back until the last layer. */
        memset(out, 0, sizeof(*out));
        if (!m->begun) MODA_TRY(moda_terms_begin(be, m->labels, b));
        m->begun = true;
        MODA_TRY(moda_terms_layer(be, want_grad ? m->dev_gz : NULL, zsrc, b, c, w_aff, w_dis, w_com));
    } else {
        MODA_TRY(backend_copy_to_host(be, m->scratch.z, zsrc, bc * sizeof(float)));
        MODA_TRY(terms_from_z(&m->scratch, b, c, m->labels, w_aff, w_dis, w_com, want_grad, out));
        if (want_grad) MODA_TRY(backend_copy_to_device(be, m->dev_gz, m->scratch.gz, bc * sizeof(float)));
    }
    if (want_grad) {
        if (hw == 1) {
            MODA_TRY(backend_axpy(be, n->grad.data, m->dev_gz, bc, 1.0f));
        } else {
            tensor dz = tensor_2d(m->dev_gz, b, c), spread = tensor_4d(m->dev_spread, b, c, n->h, n->w);
            MODA_TRY(global_avgpool_bwd(be, &spread, &dz));
            MODA_TRY(backend_axpy(be, n->grad.data, m->dev_spread, bc * hw, 1.0f));
        }
    }
    return MODA_OK;
}

moda_status moda_loss_init(moda_loss *m, const graph *g, int max_batch, float alpha, float beta, float gamma) {
    if (!m || !g) return MODA_ERR_NULL;
    if (!(alpha >= 0) || !(beta >= 0) || !(gamma >= 0) || max_batch <= 0) return MODA_ERR_ARG;
    memset(m, 0, sizeof(*m));
    m->alpha = alpha;
    m->beta = beta;
    m->gamma = gamma;
    m->layer_of_node = malloc((size_t)g->n_nodes * sizeof(int));
    if (!m->layer_of_node) return MODA_ERR_NOMEM;
    /* ReLUs whose gradient reaches the output (graph_backward skips the
     * others): consumers come after producers, so one pass backwards. */
    bool *reach = calloc((size_t)g->n_nodes, sizeof(bool));
    if (!reach) {
        moda_loss_free(m);
        return MODA_ERR_NOMEM;
    }
    reach[g->output] = true;
    for (int i = g->output; i > 0; i--)
        if (reach[i])
            for (int j = 0; j < g->nodes[i].n_in; j++) reach[g->nodes[i].in[j]] = true;
    for (int i = 0; i < g->n_nodes; i++) m->n_reaching += g->nodes[i].kind == NODE_RELU && reach[i];
    free(reach);
    int max_c = 1;
    size_t max_numel = 1;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        m->layer_of_node[i] = n->kind == NODE_RELU ? m->n_layers++ : -1;
        if (n->kind != NODE_RELU) continue;
        if (n->c > max_c) max_c = n->c;
        if ((size_t)n->c * n->h * n->w > max_numel) max_numel = (size_t)n->c * n->h * n->w;
    }
    moda_status s = moda_scratch_init(&m->scratch, max_batch, max_c);
    if (s == MODA_OK && !backend_host_memory(g->be)) {
        m->be = g->be;
        m->dev_z = backend_alloc(m->be, (size_t)max_batch * max_c * sizeof(float));
        m->dev_gz = backend_alloc(m->be, (size_t)max_batch * max_c * sizeof(float));
        m->dev_spread = backend_alloc(m->be, (size_t)max_batch * max_numel * sizeof(float));
        if (!m->dev_z || !m->dev_gz || !m->dev_spread) s = MODA_ERR_NOMEM;
    }
    if (s != MODA_OK) moda_loss_free(m);
    return s;
}

void moda_loss_free(moda_loss *m) {
    if (!m) return;
    free(m->layer_of_node);
    m->layer_of_node = NULL;
    moda_scratch_free(&m->scratch);
    if (m->be) {
        backend_dealloc(m->be, m->dev_z);
        backend_dealloc(m->be, m->dev_gz);
        backend_dealloc(m->be, m->dev_spread);
    }
    m->be = NULL;
    m->dev_z = m->dev_gz = m->dev_spread = NULL;
}

void moda_loss_begin(moda_loss *m, const int32_t *labels, int n) {
    m->labels = labels;
    m->sum_aff = m->sum_dis = m->sum_com = 0;
    m->batch_has_same = m->batch_has_diff = false;
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (labels[i] == labels[j])
                m->batch_has_same = true;
            else
                m->batch_has_diff = true;
        }
    m->seen = 0;
    m->begun = false;
}

moda_status moda_loss_hook(graph *g, int node, void *ctx) {
    moda_loss *m = ctx;
    if (!m || !m->layer_of_node || node >= g->n_nodes) return MODA_ERR_STATE;
    if (m->layer_of_node[node] < 0) return MODA_OK;
    if (!m->labels) return MODA_ERR_STATE;
    graph_node *n = &g->nodes[node];
    float inv_l = 1.0f / (float)m->n_layers;
    moda_layer_terms t;
    /* d/d(act) of alpha(1 - a)/L + beta d/L + gamma c/L. */
    /* With every weight 0 (standard training) the terms are only measured. */
    bool active = m->alpha > 0 || m->beta > 0 || m->gamma > 0;
    if (backend_host_memory(g->be))
        MODA_TRY(moda_layer_loss(&m->scratch, n->out.data, g->batch, n->c, n->h * n->w, m->labels,
                                 -m->alpha * inv_l, m->beta * inv_l, m->gamma * inv_l, active ? n->grad.data : NULL,
                                 &t));
    else
        MODA_TRY(device_layer_loss(m, g, n, -m->alpha * inv_l, m->beta * inv_l, m->gamma * inv_l, active, &t));
    m->sum_aff += t.aff;
    m->sum_dis += t.dis;
    m->sum_com += t.com;
    if (m->begun && ++m->seen == m->n_reaching) {
        double sums[3];
        MODA_TRY(moda_terms_end(g->be, sums));
        m->sum_aff = sums[0];
        m->sum_dis = sums[1];
        m->sum_com = sums[2];
    }
    return MODA_OK;
}

void moda_loss_result(const moda_loss *m, double *aff, double *dis, double *com, double *total) {
    double l = m->n_layers ? m->n_layers : 1;
    double a = m->sum_aff / l, d = m->sum_dis / l, c = m->sum_com / l;
    if (aff) *aff = a;
    if (dis) *dis = d;
    if (com) *com = c;
    if (total)
        *total = (m->batch_has_same ? m->alpha * (1 - a) : 0) + (m->batch_has_diff ? m->beta * d : 0) +
                 m->gamma * c;
}
