/* Rebuilding a composed model's graph from its manifest's node list.
 *
 * Each node is replayed through the graph builders from the fields that
 * define it (kind, inputs, output channels, kernel, stride, padding,
 * groups, bias); everything derived from them (spatial shapes, parameter
 * names and shapes, the parameter count) must then equal what the
 * manifest stores, exactly as for a model built from its architecture
 * fields. Values are range-checked before any builder sees them, and the
 * parameter total is bounded before anything is allocated, so a hostile
 * node list fails with a message instead of overflowing or exhausting
 * memory. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "json_check.h"
#include "registry_internal.h"

#define REPLAY_MAX_CHANNELS (1 << 20)
#define REPLAY_MAX_KERNEL (1 << 10) /* also bounds stride and padding */
#define REPLAY_MAX_MAP (1 << 20)    /* height and width of a node's input */
#define REPLAY_MAX_FEATURES (1 << 30)

static bool kind_from_name(const char *s, node_kind *out) {
    for (int k = NODE_INPUT; k <= NODE_ADD; k++)
        if (!strcmp(node_kind_name((node_kind)k), s)) {
            *out = (node_kind)k;
            return true;
        }
    return false;
}

/* Element i of the integer array at where.key, within [lo, hi]. */
static bool int_at(jcheck *c, json_t *arr, const char *where, const char *key, size_t i, long long lo, long long hi,
                   int *out) {
    char path[96];
    snprintf(path, sizeof path, "%s.%s", where, key);
    json_t *v = jc_at(c, arr, path, i, JK_INT);
    if (!v) return false;
    long long x = (long long)json_integer_value(v);
    if (x < lo || x > hi)
        return jc_fail(c, MODA_ERR_FORMAT, "\"%s[%zu]\" is %lld, outside [%lld, %lld]", path, i, x, lo, hi);
    *out = (int)x;
    return true;
}

/* The first of a [h, w] pair; a non-square pair is caught by the final
 * comparison, since the builders make square kernels only. */
static int pair_first(jcheck *c, json_t *node, const char *where, const char *key, long long lo, long long hi) {
    json_t *a = jc_array(c, node, where, key, 2);
    int v = 0, second = 0;
    if (int_at(c, a, where, key, 0, lo, hi, &v)) int_at(c, a, where, key, 1, lo, hi, &second);
    return v;
}

static int out_channels(jcheck *c, json_t *node, const char *where) {
    json_t *shape = jc_get(c, node, where, "shape", JK_ARRAY);
    int ch = 0;
    int_at(c, shape, where, "shape", 0, 1, REPLAY_MAX_CHANNELS, &ch);
    return ch;
}

static bool bias_of(jcheck *c, json_t *node, const char *where) {
    return json_is_true(jc_get(c, node, where, "bias", JK_BOOL));
}

/* Add node i of the list to g as node i; c records why not. */
static void replay_node(jcheck *c, graph *g, json_t *node, size_t i) {
    char where[48];
    snprintf(where, sizeof where, "architecture.graph[%zu]", i);
    const char *kind_name = jc_string(c, node, where, "kind");
    const char *name = jc_string(c, node, where, "name");
    node_kind kind = NODE_INPUT;
    if (kind_name && (!kind_from_name(kind_name, &kind) || kind == NODE_INPUT)) {
        jc_fail(c, MODA_ERR_FORMAT, "\"%s.kind\" is \"%s\", not a layer kind", where, kind_name);
        return;
    }
    json_t *inputs = jc_array(c, node, where, "inputs", kind == NODE_ADD ? 2 : 1);
    int in[2] = {0, 0};
    for (size_t j = 0; jc_ok(c) && j < json_array_size(inputs); j++)
        int_at(c, inputs, where, "inputs", j, 0, (long long)i - 1, &in[j]);
    if (!jc_ok(c)) return;
    const graph_node *x = &g->nodes[in[0]];
    if (x->h > REPLAY_MAX_MAP || x->w > REPLAY_MAX_MAP) {
        jc_fail(c, MODA_ERR_FORMAT, "\"%s\": its input is %dx%d, larger than %d", where, x->h, x->w, REPLAY_MAX_MAP);
        return;
    }
    const char *prefix = name && name[0] ? name : NULL;
    int idx = -1;
    switch (kind) {
    case NODE_CONV2D: {
        int out_c = out_channels(c, node, where);
        int k = pair_first(c, node, where, "kernel", 1, REPLAY_MAX_KERNEL);
        int stride = pair_first(c, node, where, "stride", 1, REPLAY_MAX_KERNEL);
        int pad = pair_first(c, node, where, "pad", 0, REPLAY_MAX_KERNEL);
        long long groups = 0;
        jc_int(c, node, where, "groups", 1, REPLAY_MAX_CHANNELS, &groups);
        bool bias = bias_of(c, node, where);
        if (jc_ok(c)) idx = graph_conv2d(g, prefix, in[0], out_c, k, stride, pad, (int)groups, bias);
        break;
    }
    case NODE_MAXPOOL2D: {
        int k = pair_first(c, node, where, "kernel", 1, REPLAY_MAX_KERNEL);
        int stride = pair_first(c, node, where, "stride", 1, REPLAY_MAX_KERNEL);
        int pad = pair_first(c, node, where, "pad", 0, REPLAY_MAX_KERNEL);
        if (jc_ok(c)) idx = graph_maxpool2d(g, in[0], k, stride, pad);
        break;
    }
    case NODE_LINEAR: {
        int out_f = out_channels(c, node, where);
        bool bias = bias_of(c, node, where);
        if (jc_ok(c)) idx = graph_linear(g, prefix, in[0], out_f, bias);
        break;
    }
    case NODE_FLATTEN:
        if ((long long)x->c * x->h * x->w > REPLAY_MAX_FEATURES) {
            jc_fail(c, MODA_ERR_FORMAT, "\"%s\": flattening %dx%dx%d gives more than %d features", where, x->c, x->h,
                    x->w, REPLAY_MAX_FEATURES);
            return;
        }
        idx = graph_flatten(g, in[0]);
        break;
    case NODE_BATCHNORM2D: idx = graph_batchnorm2d(g, prefix, in[0]); break;
    case NODE_RELU: idx = graph_relu(g, in[0]); break;
    case NODE_GLOBAL_AVGPOOL: idx = graph_global_avgpool(g, in[0]); break;
    case NODE_ADD: /* a named add selects channels (graph_add_mapped) */
        if (prefix) {
            int out_c = out_channels(c, node, where);
            if (jc_ok(c)) idx = graph_add_mapped(g, prefix, in[0], in[1], out_c);
        } else {
            idx = graph_add(g, in[0], in[1]);
        }
        break;
    case NODE_INPUT: break;
    }
    if (jc_ok(c) && idx != (int)i)
        jc_fail(c, MODA_ERR_FORMAT, "\"%s\": cannot build this %s node from its inputs (%s)", where, kind_name,
                moda_status_string(g->err != MODA_OK ? g->err : MODA_ERR_STATE));
}

/* Parameter values the graph would allocate, capped so the sum cannot
 * overflow. */
static size_t param_numel_total(const graph *g) {
    const size_t cap = (size_t)(REGISTRY_DATA_MAX_BYTES / sizeof(float)) + 1;
    size_t total = 0;
    for (int i = 0; i < g->n_params; i++) {
        size_t n = graph_param_numel(&g->params[i]);
        if (n >= cap - total) return cap;
        total += n;
    }
    return total;
}

moda_status registry_graph_replay(json_t *arch, const model_info *mi, moda_backend *be, const char *file,
                                  graph **out, char *err, size_t errlen) {
    *out = NULL;
    jcheck c;
    jc_init(&c, file, err, errlen);
    json_t *nodes = jc_get(&c, arch, "architecture", "graph", JK_ARRAY);
    size_t n = json_array_size(nodes);
    if (jc_ok(&c) && (n < 2 || n > INT_MAX))
        jc_fail(&c, MODA_ERR_FORMAT, "\"architecture.graph\" has %zu nodes; a model needs an input and a layer", n);
    json_t *first = jc_at(&c, nodes, "architecture.graph", 0, JK_OBJECT);
    const char *kind0 = jc_string(&c, first, "architecture.graph[0]", "kind");
    if (kind0 && strcmp(kind0, node_kind_name(NODE_INPUT)) != 0)
        jc_fail(&c, MODA_ERR_FORMAT, "\"architecture.graph[0].kind\" is \"%s\", not the input", kind0);
    if (!jc_ok(&c)) return c.status;
    int size = mi->model.input_size;
    graph *g = graph_new(be, mi->model.in_channels, size, size);
    if (!g) {
        jc_fail(&c, MODA_ERR_NOMEM, "cannot start the graph (out of memory)");
        return c.status;
    }
    for (size_t i = 1; jc_ok(&c) && i < n; i++) {
        json_t *node = jc_at(&c, nodes, "architecture.graph", i, JK_OBJECT);
        if (node) replay_node(&c, g, node, i);
    }
    if (jc_ok(&c)) {
        const graph_node *last = &g->nodes[g->output];
        if (last->ndim != 2 || last->c != mi->model.num_classes)
            jc_fail(&c, MODA_ERR_FORMAT, "the last node of \"architecture.graph\" gives %d %s, not the %d classes of "
                    "\"architecture.num_classes\"", last->c, last->ndim == 2 ? "outputs" : "feature maps",
                    mi->model.num_classes);
    }
    if (jc_ok(&c) && param_numel_total(g) > REGISTRY_DATA_MAX_BYTES / sizeof(float))
        jc_fail(&c, MODA_ERR_FORMAT, "\"architecture.graph\" describes more than %llu parameter values",
                (unsigned long long)(REGISTRY_DATA_MAX_BYTES / sizeof(float)));
    /* Compared before finalizing: nothing large is allocated for a list
     * that does not hold together. */
    moda_status s = c.status;
    if (s == MODA_OK) s = registry_manifest_check_graph(arch, g, "its node list", file, err, errlen);
    if (s == MODA_OK && (s = graph_finalize(g)) != MODA_OK)
        jc_fail(&c, s, "cannot allocate the model: %s", moda_status_string(s));
    if (s != MODA_OK) {
        graph_free(g);
        return s;
    }
    *out = g;
    return MODA_OK;
}
