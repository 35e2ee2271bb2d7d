#include "evaluate.h"

#include <stdlib.h>
#include <string.h>

#include "ops.h"

void eval_result_free(eval_result *r) {
    if (!r) return;
    free(r->correct);
    free(r->total);
    r->correct = r->total = NULL;
}

int logits_argmax(const float *v, int k) {
    int best = 0;
    for (int i = 1; i < k; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

moda_status evaluate_outputs(graph *g, const dataset *ds, int batch, float *out, int node, float *capture) {
    if (!g || !ds || !out) return MODA_ERR_NULL;
    if (batch < 1 || batch > g->max_batch || node < 0 || node >= g->n_nodes) return MODA_ERR_ARG;
    const graph_node *cn = &g->nodes[node];
    size_t per = (size_t)ds->c * ds->h * ds->w, cap = (size_t)cn->c * cn->h * cn->w;
    int k = graph_output(g)->c;
    for (int off = 0; off < ds->n; off += batch) {
        int b = ds->n - off < batch ? ds->n - off : batch;
        MODA_TRY(graph_forward(g, ds->images + (size_t)off * per, b, false));
        MODA_TRY(backend_copy_to_host(g->be, out + (size_t)off * k, graph_output(g)->out.data,
                                      (size_t)b * k * sizeof(float)));
        if (capture)
            MODA_TRY(backend_copy_to_device(g->be, capture + (size_t)off * cap, cn->out.data,
                                            (size_t)b * cap * sizeof(float)));
    }
    return MODA_OK;
}

moda_status evaluate(graph *g, const dataset *ds, int batch_size, eval_result *r) {
    if (!g || !ds || !r) return MODA_ERR_NULL;
    if (batch_size > g->max_batch) return MODA_ERR_ARG;
    int k = graph_output(g)->c;
    if (k != ds->num_classes) return MODA_ERR_SHAPE;
    memset(r, 0, sizeof(*r));
    r->correct = calloc((size_t)k, sizeof(int));
    r->total = calloc((size_t)k, sizeof(int));
    size_t per = (size_t)ds->c * ds->h * ds->w;
    float *x = malloc((size_t)batch_size * per * sizeof(float));
    float *logits = malloc((size_t)batch_size * k * sizeof(float));
    float *probs = backend_alloc(g->be, (size_t)batch_size * k * sizeof(float)); /* an op's output */
    int32_t *y = malloc((size_t)batch_size * sizeof(int32_t));
    dataset_iter it;
    moda_status s = (!r->correct || !r->total || !x || !logits || !probs || !y) ? MODA_ERR_NOMEM
                    : dataset_iter_init(&it, ds, batch_size, 0, NULL, 0);
    if (s == MODA_OK) {
        double loss_sum = 0;
        long right = 0;
        dataset_iter_begin_epoch(&it, 0);
        int n;
        while (s == MODA_OK && (n = dataset_iter_next(&it, x, y)) > 0) {
            float loss;
            tensor tp = tensor_2d(probs, n, k);
            s = graph_forward(g, x, n, false);
            if (s == MODA_OK) s = softmax_ce_fwd(g->be, &loss, &tp, &graph_output(g)->out, y);
            if (s == MODA_OK)
                s = backend_copy_to_host(g->be, logits, graph_output(g)->out.data, (size_t)n * k * sizeof(float));
            if (s != MODA_OK) break;
            loss_sum += (double)loss * n;
            for (int i = 0; i < n; i++) {
                int ok = logits_argmax(logits + (size_t)i * k, k) == y[i];
                right += ok;
                r->correct[y[i]] += ok;
                r->total[y[i]]++;
            }
        }
        r->loss = loss_sum / ds->n;
        r->acc = (double)right / ds->n;
        dataset_iter_free(&it);
    }
    free(x);
    free(logits);
    if (probs) backend_dealloc(g->be, probs);
    free(y);
    if (s != MODA_OK) eval_result_free(r);
    return s;
}
