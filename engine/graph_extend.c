/* One graph's layers replayed inside another: how a patched model (a weak
 * model and a strong model's module side by side on one input) becomes a
 * single graph that every inference path runs as it runs any model. */
#include <stdio.h>
#include <string.h>

#include "graph.h"

int graph_extend(graph *dst, const graph *src, int at, const char *prefix, int *map) {
    if (!dst || !src || !map || at < 0 || at >= dst->n_nodes || dst->finalized) return -1;
    const graph_node *in = &dst->nodes[at];
    if (in->c != src->in_c || in->h != src->in_h || in->w != src->in_w) return -1;
    map[0] = at;
    for (int i = 1; i < src->n_nodes; i++) {
        const graph_node *n = &src->nodes[i];
        char name[GRAPH_NAME_MAX];
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", n->name);
        const char *nm = n->name[0] ? name : NULL;
        const int x = map[n->in[0]];
        int idx = -1;
        switch (n->kind) {
        case NODE_CONV2D:
            idx = graph_conv2d(dst, nm, x, n->c, n->p.conv.kh, n->p.conv.stride_h, n->p.conv.pad_h, n->p.conv.groups,
                               n->has_bias);
            break;
        case NODE_BATCHNORM2D:
            idx = graph_batchnorm2d(dst, nm, x);
            if (idx >= 0) dst->nodes[idx].p.bn = n->p.bn;
            break;
        case NODE_RELU: idx = graph_relu(dst, x); break;
        case NODE_MAXPOOL2D: idx = graph_maxpool2d(dst, x, n->p.pool.kh, n->p.pool.stride_h, n->p.pool.pad_h); break;
        case NODE_GLOBAL_AVGPOOL: idx = graph_global_avgpool(dst, x); break;
        case NODE_FLATTEN: idx = graph_flatten(dst, x); break;
        case NODE_LINEAR: idx = graph_linear(dst, nm, x, n->c, n->has_bias); break;
        case NODE_ADD:
            idx = graph_add_is_mapped(n) ? graph_add_mapped(dst, nm, x, map[n->in[1]], n->c)
                                         : graph_add(dst, x, map[n->in[1]]);
            break;
        case NODE_INPUT: idx = -1; break;
        }
        if (idx < 0) return -1;
        map[i] = idx;
    }
    return map[src->output];
}

moda_status graph_copy_params(graph *dst, const graph *src, const char *prefix) {
    if (!dst || !src) return MODA_ERR_NULL;
    if (!dst->finalized || !src->finalized) return MODA_ERR_STATE;
    for (int i = 0; i < src->n_params; i++) {
        const graph_param *p = &src->params[i];
        char name[GRAPH_NAME_MAX];
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", p->name);
        int j = graph_find_param(dst, name);
        if (j < 0) return MODA_ERR_NOT_FOUND;
        graph_param *q = &dst->params[j];
        if (q->ndim != p->ndim || memcmp(q->shape, p->shape, sizeof(int) * (size_t)p->ndim) != 0) return MODA_ERR_SHAPE;
        /* Parameter slabs are host-visible on every backend (the registry
         * reads weights into them directly). */
        memcpy(q->data, p->data, graph_param_numel(p) * sizeof(float));
    }
    return MODA_OK;
}
