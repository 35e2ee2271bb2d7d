#include "optim.h"

#include <math.h>
#include <stdlib.h>

#include "ops.h"

moda_status sgd_init(sgd *opt, graph *g, float momentum, float weight_decay, bool nesterov) {
    if (!opt || !g) return MODA_ERR_NULL;
    if (!g->finalized) return MODA_ERR_STATE;
    if (!(momentum >= 0.0f && momentum < 1.0f) || !(weight_decay >= 0.0f)) return MODA_ERR_ARG;
    if (nesterov && momentum == 0.0f) return MODA_ERR_ARG; /* as PyTorch: needs momentum */
    MODA_TRY(graph_alloc_grads(g));
    *opt = (sgd){.momentum = momentum, .weight_decay = weight_decay, .nesterov = nesterov};
    size_t bytes = 0;
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].trainable) bytes += arena_bytes_for(graph_param_numel(&g->params[i]));
    opt->velocity = calloc((size_t)g->n_params, sizeof(float *));
    if (!opt->velocity) return MODA_ERR_NOMEM;
    opt->n_params = g->n_params;
    moda_status s = arena_init_on(&opt->velocity_slab, g->be, bytes);
    if (s != MODA_OK) {
        sgd_free(opt);
        return s;
    }
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].trainable)
            opt->velocity[i] = arena_alloc(&opt->velocity_slab, graph_param_numel(&g->params[i]));
    return MODA_OK;
}

void sgd_free(sgd *opt) {
    if (!opt) return;
    arena_free(&opt->velocity_slab);
    free(opt->velocity);
    opt->velocity = NULL;
    opt->n_params = 0;
}

moda_status sgd_step(sgd *opt, graph *g, float lr) {
    if (!opt || !g) return MODA_ERR_NULL;
    if (opt->n_params != g->n_params) return MODA_ERR_STATE;
    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        if (!p->trainable) continue;
        MODA_TRY(sgd_update(g->be, p->data, opt->velocity[i], p->grad, graph_param_numel(p), lr,
                                   opt->momentum, opt->weight_decay, opt->nesterov));
    }
    /* Host code (checkpoints, composition) may read the parameters next. */
    return backend_sync_for_host(g->be);
}

float cosine_lr(float base_lr, int epoch, int epochs) {
    if (epochs <= 0) return base_lr;
    return (float)(0.5 * base_lr * (1.0 + cos(3.14159265358979323846 * (double)epoch / (double)epochs)));
}
