#include "graph.h"

#include <stdlib.h>
#include <string.h>

#include "backend_impl.h"
#include "ops.h"

const char *node_kind_name(node_kind k) {
    switch (k) {
    case NODE_INPUT: return "input";
    case NODE_CONV2D: return "conv2d";
    case NODE_BATCHNORM2D: return "batchnorm2d";
    case NODE_RELU: return "relu";
    case NODE_MAXPOOL2D: return "maxpool2d";
    case NODE_GLOBAL_AVGPOOL: return "global_avgpool";
    case NODE_FLATTEN: return "flatten";
    case NODE_LINEAR: return "linear";
    case NODE_ADD: return "add";
    }
    return "unknown";
}

size_t graph_param_numel(const graph_param *p) {
    size_t n = 1;
    for (int i = 0; i < p->ndim; i++) n *= (size_t)p->shape[i];
    return n;
}

static size_t node_numel(const graph_node *n) { return (size_t)n->c * n->h * n->w; }

/* The node's output as a tensor for a batch of `batch` samples. */
static tensor node_tensor(const graph_node *n, float *data, int batch) {
    if (n->ndim == 2) return tensor_2d(data, batch, n->c);
    return tensor_4d(data, batch, n->c, n->h, n->w);
}

static tensor param_tensor(const graph *g, int idx, bool grad) {
    const graph_param *p = &g->params[idx];
    return tensor_make(grad ? p->grad : p->data, p->ndim, p->shape);
}

/* ---- building ---------------------------------------------------------- */

static int fail(graph *g, moda_status s) {
    if (g && g->err == MODA_OK) g->err = s;
    return -1;
}

static bool valid_input(graph *g, int x) {
    if (!g) return false;
    if (g->finalized) {
        fail(g, MODA_ERR_STATE);
        return false;
    }
    if (g->err != MODA_OK) return false;
    if (x < 0 || x >= g->n_nodes) {
        fail(g, MODA_ERR_ARG);
        return false;
    }
    return true;
}

static int add_node(graph *g, node_kind kind, const char *name, int a, int b) {
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? 2 * g->cap_nodes : 32;
        graph_node *nodes = realloc(g->nodes, (size_t)cap * sizeof(*nodes));
        if (!nodes) return fail(g, MODA_ERR_NOMEM);
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    int idx = g->n_nodes++;
    graph_node *n = &g->nodes[idx];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    if (name) snprintf(n->name, sizeof(n->name), "%s", name);
    n->in[0] = a;
    n->in[1] = b;
    n->n_in = (a >= 0) + (b >= 0);
    g->output = idx;
    return idx;
}

static int add_param(graph *g, int node, const char *prefix, const char *suffix, int ndim, const int *shape,
                     bool trainable) {
    if (g->n_params == g->cap_params) {
        int cap = g->cap_params ? 2 * g->cap_params : 64;
        graph_param *params = realloc(g->params, (size_t)cap * sizeof(*params));
        if (!params) return fail(g, MODA_ERR_NOMEM);
        g->params = params;
        g->cap_params = cap;
    }
    int idx = g->n_params++;
    graph_param *p = &g->params[idx];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s.%s", prefix ? prefix : "", suffix);
    p->ndim = ndim;
    for (int i = 0; i < ndim; i++) p->shape[i] = shape[i];
    p->trainable = trainable;
    graph_node *n = &g->nodes[node];
    n->param[n->n_param++] = idx;
    return idx;
}

graph *graph_new(moda_backend *be, int in_c, int in_h, int in_w) {
    if (!be || in_c <= 0 || in_h <= 0 || in_w <= 0) return NULL;
    graph *g = calloc(1, sizeof(*g));
    if (!g) return NULL;
    g->be = be;
    g->in_c = in_c;
    g->in_h = in_h;
    g->in_w = in_w;
    int x = add_node(g, NODE_INPUT, "input", -1, -1);
    if (x != 0) {
        graph_free(g);
        return NULL;
    }
    g->nodes[0].ndim = 4;
    g->nodes[0].c = in_c;
    g->nodes[0].h = in_h;
    g->nodes[0].w = in_w;
    return g;
}

void graph_free(graph *g) {
    if (!g) return;
    arena_free(&g->param_slab);
    arena_free(&g->grad_slab);
    arena_free(&g->act_slab);
    free(g->grad_ready);
    free(g->nodes);
    free(g->params);
    free(g);
}

int graph_input(graph *g) { return g ? 0 : -1; }

int graph_conv2d(graph *g, const char *name, int x, int out_c, int k, int stride, int pad, int groups,
                 bool bias) {
    if (!valid_input(g, x)) return -1;
    const graph_node in = g->nodes[x];
    if (in.ndim != 4) return fail(g, MODA_ERR_SHAPE);
    if (out_c <= 0 || k <= 0 || stride <= 0 || pad < 0 || groups <= 0 || in.c % groups || out_c % groups)
        return fail(g, MODA_ERR_ARG);
    int ho = conv_out_size(in.h, k, stride, pad), wo = conv_out_size(in.w, k, stride, pad);
    if (ho <= 0 || wo <= 0) return fail(g, MODA_ERR_SHAPE);
    int idx = add_node(g, NODE_CONV2D, name, x, -1);
    if (idx < 0) return -1;
    graph_node *n = &g->nodes[idx];
    n->ndim = 4;
    n->c = out_c;
    n->h = ho;
    n->w = wo;
    n->p.conv = (conv2d_params){k, k, stride, stride, pad, pad, groups};
    n->has_bias = bias;
    int wshape[4] = {out_c, in.c / groups, k, k};
    add_param(g, idx, name, "weight", 4, wshape, true);
    if (bias) add_param(g, idx, name, "bias", 1, &out_c, true);
    return g->err == MODA_OK ? idx : -1;
}

int graph_batchnorm2d(graph *g, const char *name, int x) {
    if (!valid_input(g, x)) return -1;
    const graph_node in = g->nodes[x];
    if (in.ndim != 4) return fail(g, MODA_ERR_SHAPE);
    int idx = add_node(g, NODE_BATCHNORM2D, name, x, -1);
    if (idx < 0) return -1;
    graph_node *n = &g->nodes[idx];
    n->ndim = 4;
    n->c = in.c;
    n->h = in.h;
    n->w = in.w;
    n->p.bn = (batchnorm_params){1e-5f, 0.1f};
    add_param(g, idx, name, "weight", 1, &in.c, true);
    add_param(g, idx, name, "bias", 1, &in.c, true);
    add_param(g, idx, name, "running_mean", 1, &in.c, false);
    add_param(g, idx, name, "running_var", 1, &in.c, false);
    return g->err == MODA_OK ? idx : -1;
}

/* A node whose output has the input's shape. */
static int add_same_shape(graph *g, node_kind kind, int a, int b) {
    int idx = add_node(g, kind, NULL, a, b);
    if (idx < 0) return -1;
    graph_node *n = &g->nodes[idx];
    const graph_node *in = &g->nodes[a];
    n->ndim = in->ndim;
    n->c = in->c;
    n->h = in->h;
    n->w = in->w;
    return idx;
}

int graph_relu(graph *g, int x) {
    if (!valid_input(g, x)) return -1;
    return add_same_shape(g, NODE_RELU, x, -1);
}

int graph_maxpool2d(graph *g, int x, int k, int stride, int pad) {
    if (!valid_input(g, x)) return -1;
    const graph_node in = g->nodes[x];
    if (in.ndim != 4) return fail(g, MODA_ERR_SHAPE);
    if (k <= 0 || stride <= 0 || pad < 0 || pad >= k) return fail(g, MODA_ERR_ARG);
    int ho = conv_out_size(in.h, k, stride, pad), wo = conv_out_size(in.w, k, stride, pad);
    if (ho <= 0 || wo <= 0) return fail(g, MODA_ERR_SHAPE);
    int idx = add_node(g, NODE_MAXPOOL2D, NULL, x, -1);
    if (idx < 0) return -1;
    graph_node *n = &g->nodes[idx];
    n->ndim = 4;
    n->c = in.c;
    n->h = ho;
    n->w = wo;
    n->p.pool = (pool2d_params){k, k, stride, stride, pad, pad};
    return idx;
}

int graph_global_avgpool(graph *g, int x) {
    if (!valid_input(g, x)) return -1;
    const graph_node in = g->nodes[x];
    if (in.ndim != 4) return fail(g, MODA_ERR_SHAPE);
    int idx = add_node(g, NODE_GLOBAL_AVGPOOL, NULL, x, -1);
    if (idx < 0) return -1;
    graph_node *n = &g->nodes[idx];
    n->ndim = 2;
    n->c = in.c;
    n->h = n->w = 1;
    return idx;
}

int graph_flatten(graph *g, int x) {
    if (!valid_input(g, x)) return -1;
    const graph_node in = g->nodes[x];
    if (in.ndim != 4) return fail(g, MODA_ERR_SHAPE);
    int idx = add_node(g, NODE_FLATTEN, NULL, x, -1);
    if (idx < 0) return -1;
    graph_node *n = &g->nodes[idx];
    n->ndim = 2;
    n->c = in.c * in.h * in.w;
    n->h = n->w = 1;
    return idx;
}

int graph_linear(graph *g, const char *name, int x, int out_features, bool bias) {
    if (!valid_input(g, x)) return -1;
    const graph_node in = g->nodes[x];
    if (in.ndim != 2) return fail(g, MODA_ERR_SHAPE);
    if (out_features <= 0) return fail(g, MODA_ERR_ARG);
    int idx = add_node(g, NODE_LINEAR, name, x, -1);
    if (idx < 0) return -1;
    graph_node *n = &g->nodes[idx];
    n->ndim = 2;
    n->c = out_features;
    n->h = n->w = 1;
    n->has_bias = bias;
    int wshape[2] = {out_features, in.c};
    add_param(g, idx, name, "weight", 2, wshape, true);
    if (bias) add_param(g, idx, name, "bias", 1, &out_features, true);
    return g->err == MODA_OK ? idx : -1;
}

int graph_add(graph *g, int a, int b) {
    if (!valid_input(g, a) || !valid_input(g, b)) return -1;
    const graph_node *na = &g->nodes[a], *nb = &g->nodes[b];
    if (na->ndim != nb->ndim || na->c != nb->c || na->h != nb->h || na->w != nb->w)
        return fail(g, MODA_ERR_SHAPE);
    return add_same_shape(g, NODE_ADD, a, b);
}

int graph_add_mapped(graph *g, const char *name, int a, int b, int out_c) {
    if (!valid_input(g, a) || !valid_input(g, b)) return -1;
    const graph_node *na = &g->nodes[a], *nb = &g->nodes[b];
    if (!name || !name[0] || out_c <= 0 || na->ndim != nb->ndim || na->h != nb->h || na->w != nb->w)
        return fail(g, MODA_ERR_SHAPE);
    int ndim = na->ndim, h = na->h, w = na->w;
    int idx = add_node(g, NODE_ADD, name, a, b);
    if (idx < 0) return -1;
    graph_node *n = &g->nodes[idx];
    n->ndim = ndim;
    n->c = out_c;
    n->h = h;
    n->w = w;
    add_param(g, idx, name, "map_a", 1, &out_c, false);
    add_param(g, idx, name, "map_b", 1, &out_c, false);
    return g->err == MODA_OK ? idx : -1;
}

bool graph_add_is_mapped(const graph_node *n) { return n && n->kind == NODE_ADD && n->n_param == 2; }

moda_status graph_check_maps(const graph *g) {
    if (!g) return MODA_ERR_NULL;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (!graph_add_is_mapped(n)) continue;
        for (int k = 0; k < 2; k++) {
            const float *m = g->params[n->param[k]].data;
            int in_c = g->nodes[n->in[k]].c;
            bool *seen = calloc((size_t)in_c, sizeof(bool));
            if (!seen) return MODA_ERR_NOMEM;
            moda_status s = MODA_OK;
            for (int j = 0; j < n->c && s == MODA_OK; j++) {
                float v = m[j];
                if (v == -1.0f) continue;
                if (!(v >= 0.0f && v < (float)in_c) || v != (float)(int)v || seen[(int)v]) s = MODA_ERR_FORMAT;
                else seen[(int)v] = true;
            }
            free(seen);
            if (s != MODA_OK) return s;
        }
    }
    return MODA_OK;
}

moda_status graph_finalize(graph *g) {
    if (!g) return MODA_ERR_NULL;
    if (g->err != MODA_OK) return g->err;
    if (g->finalized) return MODA_ERR_STATE;
    if (g->n_nodes < 2) return MODA_ERR_STATE;
    size_t pbytes = 0;
    for (int i = 0; i < g->n_params; i++) pbytes += arena_bytes_for(graph_param_numel(&g->params[i]));
    MODA_TRY(arena_init_on(&g->param_slab, g->be, pbytes));
    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        p->data = arena_alloc(&g->param_slab, graph_param_numel(p));
        p->grad = NULL;
        MODA_ASSERT(p->data);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        graph_node *n = &g->nodes[i];
        for (int j = 0; j < n->n_in; j++) g->nodes[n->in[j]].n_consumers++;
        if (n->kind == NODE_BATCHNORM2D) {
            /* gamma = 1, running var = 1 (PyTorch's defaults). */
            for (int k = 0; k < n->c; k++) {
                g->params[n->param[0]].data[k] = 1.0f;
                g->params[n->param[3]].data[k] = 1.0f;
            }
        }
    }
    g->finalized = true;
    return MODA_OK;
}

moda_status graph_alloc_grads(graph *g) {
    if (!g) return MODA_ERR_NULL;
    if (!g->finalized) return MODA_ERR_STATE;
    if (g->grad_slab.base) return MODA_OK;
    if (g->shares_params) return MODA_ERR_STATE;
    size_t gbytes = 0;
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].trainable) gbytes += arena_bytes_for(graph_param_numel(&g->params[i]));
    MODA_TRY(arena_init_on(&g->grad_slab, g->be, gbytes));
    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        p->grad = p->trainable ? arena_alloc(&g->grad_slab, graph_param_numel(p)) : NULL;
        MODA_ASSERT(p->grad || !p->trainable);
    }
    return MODA_OK;
}

/* Activations for up to max_batch samples, and with `grads` their
 * gradients and the fan-in scratch buffer. */
static moda_status plan_slab(graph *g, int max_batch, bool grads) {
    if (!g) return MODA_ERR_NULL;
    if (!g->finalized) return MODA_ERR_STATE;
    if (max_batch <= 0) return MODA_ERR_ARG;
    if (grads && g->shares_params) return MODA_ERR_STATE;
    arena_free(&g->act_slab);
    free(g->grad_ready);
    g->grad_ready = calloc((size_t)g->n_nodes, sizeof(bool));
    if (!g->grad_ready) return MODA_ERR_NOMEM;
    g->max_batch = 0;
    g->inference_only = !grads;

    /* Two passes over the same sequence: size, then carve. */
    size_t largest = 0, in_numel = (size_t)max_batch * node_numel(&g->nodes[0]);
    for (int pass = 0; pass < 2; pass++) {
        size_t bytes = 0;
        for (int i = 1; i < g->n_nodes; i++) {
            graph_node *n = &g->nodes[i];
            size_t numel = (size_t)max_batch * node_numel(n);
            if (numel > largest) largest = numel;
            size_t ws_floats = 0;
            if (n->kind == NODE_MAXPOOL2D) {
                /* Sized before any data exists, so not through the op
                 * wrapper, which wants a complete tensor; the shape is the
                 * node's own, checked when the node was added. */
                tensor y = node_tensor(n, NULL, max_batch);
                ws_floats = (g->be->maxpool2d_ws_bytes(g->be, &y) + sizeof(float) - 1) / sizeof(float);
            }
            size_t stats = n->kind == NODE_BATCHNORM2D ? (size_t)n->c : 0;
            if (pass == 0) {
                bytes += (n->kind == NODE_FLATTEN ? 0 : arena_bytes_for(numel)) + (grads ? arena_bytes_for(numel) : 0);
                if (stats) bytes += 2 * arena_bytes_for(stats);
                if (ws_floats) bytes += arena_bytes_for(ws_floats);
            } else {
                /* Flatten only reinterprets its input's NCHW memory. */
                n->out.data = n->kind == NODE_FLATTEN ? NULL : arena_alloc(&g->act_slab, numel);
                n->grad.data = grads ? arena_alloc(&g->act_slab, numel) : NULL;
                if (stats) {
                    n->save_a = arena_alloc(&g->act_slab, stats);
                    n->save_b = arena_alloc(&g->act_slab, stats);
                }
                n->ws = ws_floats ? arena_alloc(&g->act_slab, ws_floats) : NULL;
            }
        }
        if (pass == 0) {
            if (grads) bytes += arena_bytes_for(largest);
            if (!backend_host_memory(g->be)) bytes += arena_bytes_for(in_numel);
            MODA_TRY(arena_init_on(&g->act_slab, g->be, bytes));
        }
    }
    g->scratch = grads ? arena_alloc(&g->act_slab, largest) : NULL;
    /* A backend that cannot read host memory gets the input copied in. */
    g->input_buf = backend_host_memory(g->be) ? NULL : arena_alloc(&g->act_slab, in_numel);
    MODA_ASSERT(g->scratch || !grads);
    g->max_batch = max_batch;
    /* Planning comes after the parameters are written and before the
     * first pass: the moment to move both to where the ops run. */
    backend_prefetch(g->be, g->act_slab.base, g->act_slab.capacity);
    backend_prefetch(g->be, g->param_slab.base, g->param_slab.capacity);
    backend_prefetch(g->be, g->grad_slab.base, g->grad_slab.capacity);
    return MODA_OK;
}

moda_status graph_plan(graph *g, int max_batch) { return plan_slab(g, max_batch, true); }
moda_status graph_plan_inference(graph *g, int max_batch) { return plan_slab(g, max_batch, false); }

size_t graph_activation_bytes(const graph *g) { return g ? g->act_slab.capacity : 0; }
size_t graph_param_bytes(const graph *g) { return g ? g->param_slab.capacity + g->grad_slab.capacity : 0; }

graph *graph_share(const graph *g, moda_backend *be) {
    if (!g || !be || !g->finalized) return NULL;
    graph *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    s->in_c = g->in_c;
    s->in_h = g->in_h;
    s->in_w = g->in_w;
    s->n_nodes = s->cap_nodes = g->n_nodes;
    s->n_params = s->cap_params = g->n_params;
    s->nodes = malloc((size_t)g->n_nodes * sizeof(*s->nodes));
    s->params = malloc((size_t)(g->n_params ? g->n_params : 1) * sizeof(*s->params));
    if (!s->nodes || !s->params) {
        graph_free(s);
        return NULL;
    }
    memcpy(s->nodes, g->nodes, (size_t)g->n_nodes * sizeof(*s->nodes));
    memcpy(s->params, g->params, (size_t)g->n_params * sizeof(*s->params));
    for (int i = 0; i < s->n_nodes; i++) { /* activations are planned anew */
        graph_node *n = &s->nodes[i];
        n->out.data = n->grad.data = NULL;
        n->save_a = n->save_b = NULL;
        n->ws = NULL;
    }
    for (int i = 0; i < s->n_params; i++) s->params[i].grad = NULL;
    s->output = g->output;
    s->finalized = true;
    s->shares_params = true; /* param_slab stays empty: g owns the values */
    s->be = be;
    return s;
}

graph_node *graph_output(graph *g) { return g ? &g->nodes[g->output] : NULL; }

/* ---- running ----------------------------------------------------------- */

static moda_status forward_node(graph *g, graph_node *n, bool train) {
    moda_backend *be = g->be;
    tensor x = g->nodes[n->in[0]].out;
    switch (n->kind) {
    case NODE_INPUT: return MODA_OK;
    case NODE_CONV2D: {
        tensor w = param_tensor(g, n->param[0], false), b;
        if (n->has_bias) b = param_tensor(g, n->param[1], false);
        return conv2d_fwd(be, &n->out, &x, &w, n->has_bias ? &b : NULL, &n->p.conv);
    }
    case NODE_BATCHNORM2D: {
        tensor gamma = param_tensor(g, n->param[0], false), beta = param_tensor(g, n->param[1], false);
        tensor rmean = param_tensor(g, n->param[2], false), rvar = param_tensor(g, n->param[3], false);
        if (!train) return batchnorm2d_fwd_eval(be, &n->out, &x, &gamma, &beta, &rmean, &rvar, &n->p.bn);
        tensor sm = tensor_1d(n->save_a, n->c), sv = tensor_1d(n->save_b, n->c);
        return batchnorm2d_fwd_train(be, &n->out, &sm, &sv, &rmean, &rvar, &x, &gamma, &beta, &n->p.bn);
    }
    case NODE_RELU: return relu_fwd(be, &n->out, &x);
    case NODE_MAXPOOL2D: return maxpool2d_fwd(be, &n->out, n->ws, &x, &n->p.pool);
    case NODE_GLOBAL_AVGPOOL: return global_avgpool_fwd(be, &n->out, &x);
    case NODE_FLATTEN: return flatten_fwd(be, &n->out, &x);
    case NODE_LINEAR: {
        tensor w = param_tensor(g, n->param[0], false), b;
        if (n->has_bias) b = param_tensor(g, n->param[1], false);
        return linear_fwd(be, &n->out, &x, &w, n->has_bias ? &b : NULL);
    }
    case NODE_ADD: {
        tensor y = g->nodes[n->in[1]].out;
        if (graph_add_is_mapped(n)) {
            tensor ma = param_tensor(g, n->param[0], false), mb = param_tensor(g, n->param[1], false);
            return add_mapped_fwd(be, &n->out, &x, &y, &ma, &mb);
        }
        return add_fwd(be, &n->out, &x, &y);
    }
    }
    return MODA_ERR_ARG;
}

/* Nodes first.. in order, at the batch size set in g->batch; hook (may be
 * NULL) after each. */
static moda_status forward_nodes_hooked(graph *g, int first, bool train, graph_fwd_hook hook, void *ctx) {
    backend_bind_threads(g->be);
    for (int i = first; i < g->n_nodes; i++) {
        graph_node *nd = &g->nodes[i];
        /* A flatten owns no buffer: its activations sit in its input's. */
        float *data = nd->kind == NODE_FLATTEN ? g->nodes[nd->in[0]].out.data : nd->out.data;
        nd->out = node_tensor(nd, data, g->batch);
        nd->grad = node_tensor(nd, nd->grad.data, g->batch);
        MODA_TRY(forward_node(g, nd, train));
        if (hook) {
            MODA_TRY(backend_sync_for_host(g->be));
            MODA_TRY(hook(g, i, ctx));
        }
    }
    g->trained_forward = train;
    return backend_sync_for_host(g->be);
}

static moda_status forward_nodes(graph *g, int first, bool train) {
    return forward_nodes_hooked(g, first, train, NULL, NULL);
}

moda_status graph_forward(graph *g, const float *x, int n, bool train) {
    return graph_forward_hooked(g, x, n, train, NULL, NULL);
}

moda_status graph_forward_hooked(graph *g, const float *x, int n, bool train, graph_fwd_hook hook, void *ctx) {
    if (!g || !x) return MODA_ERR_NULL;
    if (!g->max_batch) return MODA_ERR_STATE;
    if (n <= 0 || n > g->max_batch) return MODA_ERR_ARG;
    if (train && g->shares_params) return MODA_ERR_STATE; /* would update shared running stats */
    g->batch = n;
    /* The input node reads the caller's buffer in place (nothing writes it),
     * or a copy where the backend cannot read host memory. */
    if (g->input_buf) {
        MODA_TRY(backend_copy_to_device(g->be, g->input_buf, x, (size_t)n * node_numel(&g->nodes[0]) * sizeof(float)));
        x = g->input_buf;
    }
    g->nodes[0].out = node_tensor(&g->nodes[0], (float *)x, n);
    return forward_nodes_hooked(g, 1, train, hook, ctx);
}

bool graph_is_cut(const graph *g, int node) {
    if (!g || node < 0 || node >= g->n_nodes || node == g->output) return false;
    /* A flatten of the input has no buffer of its own to start from. */
    if (g->nodes[node].kind == NODE_FLATTEN && g->nodes[node].in[0] == 0) return false;
    for (int i = node + 1; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++)
            if (g->nodes[i].in[j] < node) return false;
    return true;
}

moda_status graph_forward_from(graph *g, int node, const float *act, int n) {
    if (!g || !act) return MODA_ERR_NULL;
    if (!g->max_batch) return MODA_ERR_STATE;
    if (n <= 0 || n > g->max_batch || !graph_is_cut(g, node)) return MODA_ERR_ARG;
    if (node == 0) return graph_forward(g, act, n, false);
    g->batch = n;
    graph_node *from = &g->nodes[node];
    float *data = from->kind == NODE_FLATTEN ? g->nodes[from->in[0]].out.data : from->out.data;
    from->out = node_tensor(from, data, n);
    MODA_TRY(backend_copy_to_device(g->be, data, act, (size_t)n * node_numel(from) * sizeof(float)));
    return forward_nodes(g, node + 1, false);
}

/* Where input j of a node receives its gradient: straight into the input's
 * grad buffer the first time, into scratch (then summed) after that. */
static tensor grad_target(graph *g, int j) {
    graph_node *in = &g->nodes[j];
    return node_tensor(in, g->grad_ready[j] ? g->scratch : in->grad.data, g->batch);
}

static moda_status grad_commit(graph *g, int j) {
    graph_node *in = &g->nodes[j];
    if (g->grad_ready[j]) return backend_axpy(g->be, in->grad.data, g->scratch, tensor_numel(&in->grad), 1.0f);
    g->grad_ready[j] = true;
    return MODA_OK;
}

static moda_status backward_node(graph *g, graph_node *n) {
    moda_backend *be = g->be;
    int j = n->in[0];
    /* The network input needs no gradient. */
    bool need_dx = g->nodes[j].kind != NODE_INPUT;
    tensor dx = grad_target(g, j);
    tensor *pdx = need_dx ? &dx : NULL;
    tensor x = g->nodes[j].out;
    moda_status s = MODA_OK;
    switch (n->kind) {
    case NODE_INPUT: return MODA_OK;
    case NODE_CONV2D: {
        tensor w = param_tensor(g, n->param[0], false), dw = param_tensor(g, n->param[0], true), db;
        if (n->has_bias) db = param_tensor(g, n->param[1], true);
        s = conv2d_bwd(be, pdx, &dw, n->has_bias ? &db : NULL, &n->grad, &x, &w, &n->p.conv);
        break;
    }
    case NODE_BATCHNORM2D: {
        tensor gamma = param_tensor(g, n->param[0], false);
        tensor dgamma = param_tensor(g, n->param[0], true), dbeta = param_tensor(g, n->param[1], true);
        tensor sm = tensor_1d(n->save_a, n->c), sv = tensor_1d(n->save_b, n->c);
        s = batchnorm2d_bwd(be, pdx, &dgamma, &dbeta, &n->grad, &x, &gamma, &sm, &sv, &n->p.bn);
        break;
    }
    case NODE_RELU:
        if (need_dx) s = relu_bwd(be, pdx, &n->grad, &n->out);
        break;
    case NODE_MAXPOOL2D:
        if (need_dx) s = maxpool2d_bwd(be, pdx, &n->grad, n->ws, &n->p.pool);
        break;
    case NODE_GLOBAL_AVGPOOL:
        if (need_dx) s = global_avgpool_bwd(be, pdx, &n->grad);
        break;
    case NODE_FLATTEN:
        if (need_dx) s = flatten_bwd(be, pdx, &n->grad);
        break;
    case NODE_LINEAR: {
        tensor w = param_tensor(g, n->param[0], false), dw = param_tensor(g, n->param[0], true), db;
        if (n->has_bias) db = param_tensor(g, n->param[1], true);
        s = linear_bwd(be, pdx, &dw, n->has_bias ? &db : NULL, &n->grad, &x, &w);
        break;
    }
    case NODE_ADD:
        if (graph_add_is_mapped(n)) return MODA_ERR_UNSUPPORTED; /* composed models are not trained */
        if (need_dx) s = add_bwd(be, pdx, NULL, &n->grad);
        if (s == MODA_OK && need_dx) s = grad_commit(g, j);
        j = n->in[1];
        need_dx = g->nodes[j].kind != NODE_INPUT;
        if (s == MODA_OK && need_dx) {
            tensor db = grad_target(g, j);
            s = add_bwd(be, NULL, &db, &n->grad);
            if (s == MODA_OK) s = grad_commit(g, j);
        }
        return s;
    }
    if (s == MODA_OK && need_dx) s = grad_commit(g, j);
    return s;
}

moda_status graph_backward(graph *g, graph_grad_hook hook, void *ctx) {
    if (!g) return MODA_ERR_NULL;
    if (!g->batch || !g->trained_forward || g->inference_only) return MODA_ERR_STATE;
    MODA_TRY(graph_alloc_grads(g));
    backend_bind_threads(g->be);
    memset(g->grad_ready, 0, (size_t)g->n_nodes * sizeof(bool));
    g->grad_ready[g->output] = true;
    for (int i = g->n_nodes - 1; i >= 1; i--) {
        if (!g->grad_ready[i]) continue; /* does not reach the output */
        if (hook) MODA_TRY(hook(g, i, ctx));
        MODA_TRY(backward_node(g, &g->nodes[i]));
    }
    return backend_sync_for_host(g->be);
}

/* ---- queries ----------------------------------------------------------- */

int graph_find_param(const graph *g, const char *name) {
    if (!g || !name) return -1;
    for (int i = 0; i < g->n_params; i++)
        if (strcmp(g->params[i].name, name) == 0) return i;
    return -1;
}

size_t graph_param_count(const graph *g) {
    size_t total = 0;
    if (!g) return 0;
    for (int i = 0; i < g->n_params; i++)
        if (g->params[i].trainable) total += graph_param_numel(&g->params[i]);
    return total;
}

double graph_macs(const graph *g) {
    double total = 0;
    if (!g) return 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->kind == NODE_CONV2D) {
            const conv2d_params *p = &n->p.conv;
            int in_c = g->nodes[n->in[0]].c;
            total += (double)n->c * n->h * n->w * (in_c / p->groups) * p->kh * p->kw;
        } else if (n->kind == NODE_LINEAR) {
            total += (double)n->c * g->nodes[n->in[0]].c;
        }
    }
    return total;
}
