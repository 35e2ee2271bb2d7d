#include "compose.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- channel spaces ---------------------------------------------------- */

static int uf_find(int *parent, int i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

static void uf_union(int *parent, int a, int b) {
    a = uf_find(parent, a);
    b = uf_find(parent, b);
    if (a != b) parent[a < b ? b : a] = a < b ? a : b;
}

static bool is_depthwise(const graph *g, const graph_node *n) {
    const graph_node *in = &g->nodes[n->in[0]];
    return n->p.conv.groups > 1 && n->p.conv.groups == in->c && n->p.conv.groups == n->c;
}

/* Flatten of a 1x1 map is the identity on channels and shares the space. */
static bool flatten_is_identity(const graph *g, const graph_node *n) {
    const graph_node *in = &g->nodes[n->in[0]];
    return in->h * in->w == 1;
}

const char *compose_mode_name(compose_mode m) { return m == COMPOSE_PER_LAYER ? "per-layer" : "tied"; }

bool compose_mode_parse(const char *s, compose_mode *out) {
    if (!s || !out) return false;
    if (!strcmp(s, "tied")) *out = COMPOSE_TIED;
    else if (!strcmp(s, "per-layer")) *out = COMPOSE_PER_LAYER;
    else return false;
    return true;
}

static moda_status tie_spaces(const graph *g, int *parent) {
    for (int i = 0; i < g->n_nodes; i++) parent[i] = i;
    for (int i = 1; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        switch (n->kind) {
        case NODE_CONV2D:
            if (is_depthwise(g, n)) uf_union(parent, i, n->in[0]);
            else if (n->p.conv.groups != 1) return MODA_ERR_UNSUPPORTED; /* grouped, not depthwise */
            break;
        case NODE_BATCHNORM2D:
        case NODE_RELU:
        case NODE_MAXPOOL2D:
        case NODE_GLOBAL_AVGPOOL:
            uf_union(parent, i, n->in[0]);
            break;
        case NODE_ADD:
            uf_union(parent, i, n->in[0]);
            uf_union(parent, i, n->in[1]);
            break;
        case NODE_FLATTEN:
            if (flatten_is_identity(g, n)) uf_union(parent, i, n->in[0]);
            break;
        case NODE_INPUT:
        case NODE_LINEAR:
            break;
        }
    }
    /* A flatten's expanded space, the input and the logits must not be tied
     * to anything else: their masks are not unions of ReLU masks. */
    for (int i = 1; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->kind == NODE_FLATTEN && !flatten_is_identity(g, n))
            for (int j = 0; j < g->n_nodes; j++)
                if (j != i && uf_find(parent, j) == uf_find(parent, i)) return MODA_ERR_UNSUPPORTED;
    }
    for (int j = 1; j < g->n_nodes; j++)
        if (uf_find(parent, j) == uf_find(parent, g->output) && j != g->output) return MODA_ERR_UNSUPPORTED;
    return MODA_OK;
}

/* ---- plans ------------------------------------------------------------- */

void compose_plan_free(compose_plan *p) {
    if (!p) return;
    for (int i = 0; p->keep && i < p->n_nodes; i++) free(p->keep[i]);
    free(p->keep);
    free(p->kept);
    free(p->space);
    free(p->classes);
    memset(p, 0, sizeof(*p));
}

static moda_status check_classes(const graph *g, const int *classes, int n_classes) {
    int k = g->nodes[g->output].c;
    if (!classes) return MODA_ERR_NULL;
    if (n_classes <= 0 || n_classes > k) return MODA_ERR_ARG;
    for (int i = 0; i < n_classes; i++) {
        if (classes[i] < 0 || classes[i] >= k) return MODA_ERR_ARG;
        for (int j = 0; j < i; j++)
            if (classes[j] == classes[i]) return MODA_ERR_ARG;
    }
    return MODA_OK;
}

/* ---- per-layer keep sets (compose.h) ----------------------------------- */

/* Nodes that act on each channel alone, reading channel c for channel c. */
static bool per_channel(const graph *g, const graph_node *n) {
    switch (n->kind) {
    case NODE_BATCHNORM2D:
    case NODE_RELU:
    case NODE_MAXPOOL2D:
    case NODE_GLOBAL_AVGPOOL: return true;
    case NODE_CONV2D: return is_depthwise(g, n);
    case NODE_FLATTEN: return flatten_is_identity(g, n);
    default: return false;
    }
}

/* Channel f of a flatten's output comes from channel f / hw of its input;
 * for every other node src_channel is the identity. */
static int src_channel(const graph *g, const graph_node *n, int f) {
    if (n->kind != NODE_FLATTEN || flatten_is_identity(g, n)) return f;
    const graph_node *in = &g->nodes[n->in[0]];
    return f / (in->h * in->w);
}

/* The channel of add node n's addend `side` that its output channel f
 * reads: f for a plain add, the map's entry (-1: none) for a mapped one. */
static int add_source(const graph *g, const graph_node *n, int side, int f) {
    if (!graph_add_is_mapped(n)) return f;
    float m = g->params[n->param[side]].data[f];
    return m >= 0.0f && m < (float)g->nodes[n->in[side]].c ? (int)m : -1;
}

/* keep[i] for every node from the tracked ReLUs' masks (tmask[i], NULL for
 * other nodes). zero[i]: channels that are zero in the masked full model,
 * assumed[i]: those of them that are only taken as zero, being a dropped
 * channel carried through batch norm or a biased depthwise conv (their
 * values are constants there, which the next tracked ReLU drops).
 * need[i]: channels a later node reads. */
/* Forward pass of plan_per_layer: zero[i] and assumed[i] from the
 * tracked ReLUs' masks tmask (NULL for other nodes). */
static moda_status forward_zero(const graph *g, bool *const *tmask, bool **zero, bool **assumed) {
    const int n = g->n_nodes;
    for (int i = 0; i < n; i++) {
        memset(zero[i], 0, (size_t)g->nodes[i].c * sizeof(bool));
        memset(assumed[i], 0, (size_t)g->nodes[i].c * sizeof(bool));
    }
    for (int i = 1; i < n; i++) {
        const graph_node *nd = &g->nodes[i];
        const int in = nd->in[0];
        bool any_assumed = false;
        for (int k = 0; k < g->nodes[in].c; k++) any_assumed |= assumed[in][k];
        if (nd->kind == NODE_ADD)
            for (int k = 0; k < g->nodes[nd->in[1]].c; k++) any_assumed |= assumed[nd->in[1]][k];
        if (any_assumed && !per_channel(g, nd) && nd->kind != NODE_FLATTEN) {
            return MODA_ERR_UNSUPPORTED; /* a dropped constant channel would reach a mixing layer */
        }
        for (int f = 0; f < nd->c; f++) {
            int k = src_channel(g, nd, f);
            switch (nd->kind) {
            case NODE_CONV2D:
                if (!is_depthwise(g, nd)) break;
                zero[i][f] = zero[in][k];
                assumed[i][f] = zero[in][k] && (nd->has_bias || assumed[in][k]);
                break;
            case NODE_BATCHNORM2D:
                zero[i][f] = assumed[i][f] = zero[in][k];
                break;
            case NODE_RELU:
                if (tmask[i]) {
                    zero[i][f] = zero[in][k] || !tmask[i][f];
                    break;
                }
                /* fall through */
            case NODE_MAXPOOL2D:
            case NODE_GLOBAL_AVGPOOL:
            case NODE_FLATTEN:
                zero[i][f] = zero[in][k];
                assumed[i][f] = assumed[in][k];
                break;
            case NODE_ADD: {
                int fa = add_source(g, nd, 0, f), fb = add_source(g, nd, 1, f);
                zero[i][f] = (fa < 0 || zero[in][fa]) && (fb < 0 || zero[nd->in[1]][fb]);
                break;
            }
            case NODE_LINEAR:
            case NODE_INPUT: break;
            }
        }
    }
    return MODA_OK;
}

/* The tracked ReLU that tracked ReLU i's depthwise chain starts from: up
 * its first inputs through per-channel nodes; -1 when there is none. */
static int chain_source(const graph *g, bool *const *tmask, int i) {
    for (int j = g->nodes[i].in[0]; j > 0 && per_channel(g, &g->nodes[j]); j = g->nodes[j].in[0])
        if (g->nodes[j].kind == NODE_RELU && tmask[j]) return j;
    return -1;
}

static moda_status plan_per_layer(const graph *g, bool *const *tmask, bool **keep) {
    const int n = g->n_nodes;
    bool **zero = calloc((size_t)n, sizeof(bool *)), **assumed = calloc((size_t)n, sizeof(bool *));
    bool **need = calloc((size_t)n, sizeof(bool *));
    moda_status s = zero && assumed && need ? MODA_OK : MODA_ERR_NOMEM;
    for (int i = 0; s == MODA_OK && i < n; i++) {
        size_t c = (size_t)g->nodes[i].c;
        zero[i] = calloc(c, sizeof(bool));
        assumed[i] = calloc(c, sizeof(bool));
        need[i] = calloc(c, sizeof(bool));
        if (!zero[i] || !assumed[i] || !need[i]) s = MODA_ERR_NOMEM;
    }
    /* Forward: what is zero. Where the intersection would leave a tracked
     * ReLU no unit, its units are kept in the ReLU its depthwise chain
     * starts from as well (a union there), and the pass runs again. */
    bool **own = calloc((size_t)n, sizeof(bool *));
    if (!own) s = MODA_ERR_NOMEM;
    for (int i = 0; s == MODA_OK && i < n; i++) {
        if (!tmask[i]) continue;
        if (!(own[i] = malloc((size_t)g->nodes[i].c * sizeof(bool)))) s = MODA_ERR_NOMEM;
        else memcpy(own[i], tmask[i], (size_t)g->nodes[i].c * sizeof(bool));
    }
    while (s == MODA_OK && (s = forward_zero(g, own, zero, assumed)) == MODA_OK) {
        int empty = -1;
        for (int i = 1; i < n && empty < 0; i++) {
            if (!own[i]) continue;
            bool any = false;
            for (int f = 0; f < g->nodes[i].c && !any; f++) any = !zero[i][f];
            if (!any) empty = i;
        }
        if (empty < 0) break;
        int src = chain_source(g, own, empty);
        bool grew = false;
        for (int f = 0; src >= 0 && f < g->nodes[empty].c; f++)
            if (own[empty][f] && !own[src][f]) own[src][f] = grew = true;
        if (!grew) s = MODA_ERR_ARG; /* an empty layer cannot be composed */
    }
    /* Backward: what is read; a node keeps what is read and not zero. */
    for (int i = n - 1; s == MODA_OK && i >= 1; i--) {
        const graph_node *nd = &g->nodes[i];
        const int in = nd->in[0];
        if (i == g->output) memcpy(need[i], keep[i], (size_t)nd->c * sizeof(bool)); /* the classes of T */
        for (int f = 0; f < nd->c; f++) keep[i][f] = need[i][f] && !zero[i][f];
        if (nd->kind == NODE_ADD) {
            for (int j = 0; j < 2; j++)
                for (int f = 0; f < nd->c; f++) {
                    int k = add_source(g, nd, j, f);
                    if (k >= 0) need[nd->in[j]][k] |= keep[i][f] && !zero[nd->in[j]][k];
                }
        } else if (per_channel(g, nd) || nd->kind == NODE_FLATTEN) {
            for (int f = 0; f < nd->c; f++) need[in][src_channel(g, nd, f)] |= keep[i][f];
        } else { /* conv, linear: every channel that is not zero */
            for (int k = 0; k < g->nodes[in].c; k++) need[in][k] |= !zero[in][k];
        }
    }
    for (int k = 0; s == MODA_OK && k < g->nodes[0].c; k++) keep[0][k] = true; /* the image comes whole */
    /* A per-channel node must keep exactly its input's channels: slicing
     * has no way to drop channels between them. */
    for (int i = 1; s == MODA_OK && i < n; i++) {
        const graph_node *nd = &g->nodes[i];
        if (!per_channel(g, nd) && nd->kind != NODE_FLATTEN) continue;
        for (int f = 0; f < nd->c; f++)
            if (keep[i][f] != keep[nd->in[0]][src_channel(g, nd, f)]) s = MODA_ERR_UNSUPPORTED;
    }
    for (int i = 0; i < n; i++) {
        if (zero) free(zero[i]);
        if (assumed) free(assumed[i]);
        if (need) free(need[i]);
    }
    for (int i = 0; own && i < n; i++) free(own[i]);
    free(own);
    free(zero);
    free(assumed);
    free(need);
    return s;
}

static bool has_mapped_add(const graph *g) {
    for (int i = 0; i < g->n_nodes; i++)
        if (graph_add_is_mapped(&g->nodes[i])) return true;
    return false;
}

moda_status compose_plan_from_masks(const graph *g, const rates *r, bool *const *masks, const int *classes,
                                    int n_classes, compose_plan *p) {
    return compose_plan_from_masks_mode(g, r, masks, classes, n_classes, COMPOSE_TIED, p);
}

moda_status compose_plan_from_masks_mode(const graph *g, const rates *r, bool *const *masks, const int *classes,
                                         int n_classes, compose_mode mode, compose_plan *p) {
    if (!g || !r || !masks || !p) return MODA_ERR_NULL;
    memset(p, 0, sizeof(*p));
    MODA_TRY(check_classes(g, classes, n_classes));
    if (mode != COMPOSE_TIED && mode != COMPOSE_PER_LAYER) return MODA_ERR_ARG;
    /* Tied spaces cannot follow a mapped add's channel maps. */
    if (g->nodes[g->output].kind != NODE_LINEAR || (mode == COMPOSE_TIED && has_mapped_add(g)))
        return MODA_ERR_UNSUPPORTED;
    int n = g->n_nodes;
    p->n_nodes = n;
    p->space = malloc((size_t)n * sizeof(int));
    p->keep = calloc((size_t)n, sizeof(bool *));
    p->kept = calloc((size_t)n, sizeof(int));
    p->classes = malloc((size_t)n_classes * sizeof(int));
    p->mode = mode;
    bool *tracked = calloc((size_t)n, sizeof(bool));
    bool **tmask = calloc((size_t)n, sizeof(bool *)); /* per node: its mask if a tracked ReLU */
    moda_status s = (!p->space || !p->keep || !p->kept || !p->classes || !tracked || !tmask) ? MODA_ERR_NOMEM : MODA_OK;
    if (s == MODA_OK) s = tie_spaces(g, p->space);
    if (s == MODA_OK) {
        memcpy(p->classes, classes, (size_t)n_classes * sizeof(int));
        p->n_classes = n_classes;
        for (int i = 0; i < n; i++) p->space[i] = uf_find(p->space, i);
        for (int i = 0; i < n && s == MODA_OK; i++)
            if (!(p->keep[i] = calloc((size_t)g->nodes[i].c, sizeof(bool)))) s = MODA_ERR_NOMEM;
    }
    for (int l = 0; s == MODA_OK && l < r->n_layers; l++) {
        int node = r->node[l];
        if (node <= 0 || node >= n || g->nodes[node].kind != NODE_RELU || g->nodes[node].c != r->units[l]) {
            s = MODA_ERR_SHAPE;
            break;
        }
        tmask[node] = masks[l];
    }
    if (s == MODA_OK && mode == COMPOSE_PER_LAYER) {
        for (int c = 0; c < n_classes; c++) p->keep[g->output][classes[c]] = true;
        s = plan_per_layer(g, tmask, p->keep);
        for (int i = 0; i < n; i++) p->space[i] = i;
    }
    /* Tied: the union of the tracked masks of each space, gathered at its root. */
    for (int l = 0; s == MODA_OK && mode == COMPOSE_TIED && l < r->n_layers; l++) {
        int node = r->node[l];
        int root = p->space[node];
        tracked[root] = true;
        for (int k = 0; k < r->units[l]; k++) p->keep[root][k] |= masks[l][k];
    }
    for (int i = 0; s == MODA_OK && mode == COMPOSE_TIED && i < n; i++) { /* in graph order: inputs first */
        const graph_node *nd = &g->nodes[i];
        bool *keep = p->keep[i];
        if (i == g->output) {
            for (int c = 0; c < n_classes; c++) keep[classes[c]] = true;
        } else if (nd->kind == NODE_FLATTEN && !flatten_is_identity(g, nd)) {
            const graph_node *in = &g->nodes[nd->in[0]];
            int hw = in->h * in->w;
            for (int f = 0; f < nd->c; f++) keep[f] = p->keep[nd->in[0]][f / hw];
        } else if (tracked[p->space[i]]) {
            if (i != p->space[i]) memcpy(keep, p->keep[p->space[i]], (size_t)nd->c * sizeof(bool));
        } else {
            for (int k = 0; k < nd->c; k++) keep[k] = true;
        }
    }
    for (int i = 0; s == MODA_OK && i < n; i++) {
        for (int k = 0; k < g->nodes[i].c; k++) p->kept[i] += p->keep[i][k];
        if (p->kept[i] == 0) s = MODA_ERR_ARG; /* an empty layer cannot be composed */
    }
    free(tracked);
    free(tmask);
    if (s != MODA_OK) compose_plan_free(p);
    return s;
}

moda_status compose_plan_make(const graph *g, const rates *r, const int *classes, int n_classes, float tau,
                              compose_plan *p) {
    return compose_plan_make_mode(g, r, classes, n_classes, tau, COMPOSE_TIED, p);
}

moda_status compose_plan_make_mode(const graph *g, const rates *r, const int *classes, int n_classes, float tau,
                                   compose_mode mode, compose_plan *p) {
    if (!g || !r || !p) return MODA_ERR_NULL;
    memset(p, 0, sizeof(*p)); /* safe to free whatever happens next */
    MODA_TRY(check_classes(g, classes, n_classes));
    if (!(tau >= 0.0f && tau <= 1.0f)) return MODA_ERR_ARG;
    bool **masks = calloc((size_t)r->n_layers + 1, sizeof(bool *));
    bool *tmp = NULL;
    moda_status s = masks ? MODA_OK : MODA_ERR_NOMEM;
    for (int l = 0; s == MODA_OK && l < r->n_layers; l++) {
        masks[l] = calloc((size_t)r->units[l], sizeof(bool));
        free(tmp);
        tmp = calloc((size_t)r->units[l], sizeof(bool));
        if (!masks[l] || !tmp) {
            s = MODA_ERR_NOMEM;
            break;
        }
        for (int c = 0; c < n_classes; c++) {
            decompose_mask(r, l, classes[c], tau, tmp);
            for (int k = 0; k < r->units[l]; k++) masks[l][k] |= tmp[k];
        }
    }
    if (s == MODA_OK) s = compose_plan_from_masks_mode(g, r, masks, classes, n_classes, mode, p);
    for (int l = 0; masks && l < r->n_layers; l++) free(masks[l]);
    free(masks);
    free(tmp);
    return s;
}

/* ---- counting ---------------------------------------------------------- */

/* Trainable parameters and MACs of node i when its output keeps kept_out
 * channels and its input kept_in. */
static void node_cost(const graph *g, int i, int kept_out, int kept_in, double *params, double *macs) {
    const graph_node *n = &g->nodes[i];
    *params = *macs = 0;
    if (n->kind == NODE_CONV2D) {
        double k = (double)n->p.conv.kh * n->p.conv.kw;
        double per_out = is_depthwise(g, n) ? k : k * kept_in;
        *params = kept_out * per_out + (n->has_bias ? kept_out : 0);
        *macs = (double)kept_out * n->h * n->w * per_out;
    } else if (n->kind == NODE_LINEAR) {
        *params = (double)kept_out * kept_in + (n->has_bias ? kept_out : 0);
        *macs = (double)kept_out * kept_in;
    } else if (n->kind == NODE_BATCHNORM2D) {
        *params = 2.0 * kept_out;
    }
}

static double plan_total(const graph *g, const int *kept, bool want_macs) {
    double total = 0;
    for (int i = 1; i < g->n_nodes; i++) {
        double params, macs;
        node_cost(g, i, kept[i], kept[g->nodes[i].in[0]], &params, &macs);
        total += want_macs ? macs : params;
    }
    return total;
}

size_t compose_plan_params(const graph *g, const compose_plan *p) {
    return g && p ? (size_t)plan_total(g, p->kept, false) : 0;
}

double compose_plan_macs(const graph *g, const compose_plan *p) { return g && p ? plan_total(g, p->kept, true) : 0; }

/* ---- building ---------------------------------------------------------- */

/* Kept indices of node i, ascending; for the logits, the classes in order. */
static int *kept_index(const graph *g, const compose_plan *p, int i) {
    int *idx = malloc((size_t)(p->kept[i] ? p->kept[i] : 1) * sizeof(int));
    if (!idx) return NULL;
    if (i == g->output) {
        memcpy(idx, p->classes, (size_t)p->n_classes * sizeof(int));
        return idx;
    }
    for (int k = 0, j = 0; k < g->nodes[i].c; k++)
        if (p->keep[i][k]) idx[j++] = k;
    return idx;
}

static void slice_param(const graph_param *src, graph_param *dst, const int *out_idx, const int *in_idx) {
    size_t inner = 1; /* kernel elements per (out, in) pair */
    for (int d = 2; d < src->ndim; d++) inner *= (size_t)src->shape[d];
    int src_in = src->ndim >= 2 ? src->shape[1] : 1, dst_in = dst->ndim >= 2 ? dst->shape[1] : 1;
    /* in_idx ascends, so keeping every input is the identity: whole rows. */
    bool whole_rows = src->ndim < 2 || !in_idx || dst_in == src_in;
    for (int o = 0; o < dst->shape[0]; o++) {
        const float *s = src->data + (size_t)out_idx[o] * src_in * inner;
        float *d = dst->data + (size_t)o * dst_in * inner;
        if (whole_rows) memcpy(d, s, (size_t)dst_in * inner * sizeof(float));
        else if (inner == 1) /* linear layers: a gather, not a call per weight */
            for (int i = 0; i < dst_in; i++) d[i] = s[in_idx[i]];
        else
            for (int i = 0; i < dst_in; i++)
                memcpy(d + (size_t)i * inner, s + (size_t)in_idx[i] * inner, inner * sizeof(float));
    }
}

/* An add whose addends keep other channels than it does (per-layer mode). */
static bool add_needs_maps(const graph *g, const compose_plan *p, int i) {
    const graph_node *n = &g->nodes[i];
    if (graph_add_is_mapped(n)) return true;
    for (int j = 0; j < 2; j++)
        if (memcmp(p->keep[n->in[j]], p->keep[i], (size_t)n->c * sizeof(bool)) != 0) return true;
    return false;
}

/* Output channel j of the composed add reads each addend's composed
 * channel that holds the same parent channel, or zero. */
static moda_status fill_add_maps(const graph *g, const compose_plan *p, int i, graph *c, const graph_node *cn) {
    const graph_node *n = &g->nodes[i];
    int in_c = g->nodes[n->in[0]].c > g->nodes[n->in[1]].c ? g->nodes[n->in[0]].c : g->nodes[n->in[1]].c;
    int *pos = malloc((size_t)in_c * sizeof(int));
    if (!pos) return MODA_ERR_NOMEM;
    for (int j = 0; j < 2; j++) {
        const bool *kin = p->keep[n->in[j]];
        for (int k = 0, at = 0; k < g->nodes[n->in[j]].c; k++) pos[k] = kin[k] ? at++ : -1;
        float *m = c->params[cn->param[j]].data;
        for (int k = 0, o = 0; k < n->c; k++) {
            if (!p->keep[i][k]) continue;
            int src = add_source(g, n, j, k);
            m[o++] = src >= 0 ? (float)pos[src] : -1.0f;
        }
    }
    free(pos);
    return MODA_OK;
}

moda_status compose_build(const graph *g, const compose_plan *p, moda_backend *be, graph **out) {
    if (!g || !p || !be || !out) return MODA_ERR_NULL;
    if (p->n_nodes != g->n_nodes) return MODA_ERR_ARG;
    *out = NULL;
    graph *c = graph_new(be, g->in_c, g->in_h, g->in_w);
    int *map = malloc((size_t)g->n_nodes * sizeof(int));
    if (!c || !map) {
        graph_free(c);
        free(map);
        return MODA_ERR_NOMEM;
    }
    map[0] = 0;
    for (int i = 1; i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        int x = map[n->in[0]];
        const char *name = n->name[0] ? n->name : NULL;
        switch (n->kind) {
        case NODE_CONV2D: {
            int groups = is_depthwise(g, n) ? p->kept[n->in[0]] : 1;
            map[i] = graph_conv2d(c, name, x, p->kept[i], n->p.conv.kh, n->p.conv.stride_h, n->p.conv.pad_h, groups,
                                  n->has_bias);
            break;
        }
        case NODE_BATCHNORM2D: map[i] = graph_batchnorm2d(c, name, x); break;
        case NODE_RELU: map[i] = graph_relu(c, x); break;
        case NODE_MAXPOOL2D: map[i] = graph_maxpool2d(c, x, n->p.pool.kh, n->p.pool.stride_h, n->p.pool.pad_h); break;
        case NODE_GLOBAL_AVGPOOL: map[i] = graph_global_avgpool(c, x); break;
        case NODE_FLATTEN: map[i] = graph_flatten(c, x); break;
        case NODE_LINEAR: map[i] = graph_linear(c, name, x, p->kept[i], n->has_bias); break;
        case NODE_ADD:
            if (add_needs_maps(g, p, i)) {
                char add_name[GRAPH_NAME_MAX];
                snprintf(add_name, sizeof add_name, "add%d", i); /* the parent's adds have no names */
                map[i] = graph_add_mapped(c, add_name, x, map[n->in[1]], p->kept[i]);
            } else {
                map[i] = graph_add(c, x, map[n->in[1]]);
            }
            break;
        case NODE_INPUT: map[i] = -1; break;
        }
        if (map[i] < 0) break;
        /* Keep the parent's BN settings. */
        if (n->kind == NODE_BATCHNORM2D) c->nodes[map[i]].p.bn = n->p.bn;
    }
    moda_status s = graph_finalize(c);
    for (int i = 1; s == MODA_OK && i < g->n_nodes; i++) {
        const graph_node *n = &g->nodes[i];
        if (n->kind == NODE_ADD && add_needs_maps(g, p, i)) {
            s = fill_add_maps(g, p, i, c, &c->nodes[map[i]]);
            continue;
        }
        if (!n->n_param) continue;
        int *out_idx = kept_index(g, p, i), *in_idx = kept_index(g, p, n->in[0]);
        if (!out_idx || !in_idx) s = MODA_ERR_NOMEM;
        bool dw = n->kind == NODE_CONV2D && is_depthwise(g, n);
        for (int j = 0; s == MODA_OK && j < n->n_param; j++) {
            const graph_param *src = &g->params[n->param[j]];
            graph_param *dst = &c->params[c->nodes[map[i]].param[j]];
            /* Weights slice (out, in); depthwise kernels and vectors by out only. */
            slice_param(src, dst, out_idx, dw ? NULL : in_idx);
        }
        free(out_idx);
        free(in_idx);
    }
    free(map);
    if (s != MODA_OK) {
        graph_free(c);
        return s;
    }
    *out = c;
    return MODA_OK;
}

/* ---- rates ------------------------------------------------------------- */

moda_status compose_rates(const graph *g, const rates *r, const compose_plan *p, const graph *composed, rates *out) {
    if (!g || !r || !p || !composed || !out) return MODA_ERR_NULL;
    memset(out, 0, sizeof(*out));
    if (p->n_nodes != g->n_nodes || composed->n_nodes != g->n_nodes || r->num_classes != g->nodes[g->output].c ||
        composed->nodes[composed->output].c != p->n_classes)
        return MODA_ERR_ARG;
    MODA_TRY(rates_alloc(out, composed, p->n_classes));
    /* compose_build keeps every node in place, so layer l tracks the same
     * node in both models, with the kept units of the parent's. */
    moda_status s = out->n_layers == r->n_layers ? MODA_OK : MODA_ERR_SHAPE;
    for (int l = 0; s == MODA_OK && l < r->n_layers; l++) {
        int node = r->node[l];
        if (out->node[l] != node || node < 0 || node >= g->n_nodes || r->units[l] != g->nodes[node].c ||
            out->units[l] != p->kept[node])
            s = MODA_ERR_SHAPE;
    }
    for (int l = 0; s == MODA_OK && l < r->n_layers; l++) {
        const bool *keep = p->keep[r->node[l]];
        int n = r->units[l], kept = out->units[l];
        for (int j = 0; j < p->n_classes; j++) {
            const float *src = r->rate[l] + (size_t)p->classes[j] * n;
            float *dst = out->rate[l] + (size_t)j * kept;
            for (int u = 0, v = 0; u < n; u++)
                if (keep[u]) dst[v++] = src[u];
        }
    }
    for (int j = 0; s == MODA_OK && j < p->n_classes; j++) out->class_count[j] = r->class_count[p->classes[j]];
    if (s != MODA_OK) rates_free(out);
    return s;
}

/* ---- module metrics ---------------------------------------------------- */

void module_stats_free(module_stats *s) {
    if (!s) return;
    free(s->size);
    free(s->overlap);
    free(s->layer_node);
    free(s->layer_overlap);
    memset(s, 0, sizeof(*s));
}

moda_status module_stats_compute(const graph *g, const rates *r, float tau, module_stats *st) {
    return module_stats_compute_mode(g, r, tau, COMPOSE_TIED, st);
}

moda_status module_stats_compute_mode(const graph *g, const rates *r, float tau, compose_mode mode, module_stats *st) {
    if (!g || !r || !st) return MODA_ERR_NULL;
    memset(st, 0, sizeof(*st));
    int k = r->num_classes, n = g->n_nodes;
    if (k != g->nodes[g->output].c) return MODA_ERR_SHAPE;
    compose_plan *plans = calloc((size_t)k, sizeof(*plans));
    int *shared = calloc((size_t)n, sizeof(int));
    st->size = calloc((size_t)k, sizeof(double));
    st->overlap = calloc((size_t)k * k, sizeof(double));
    st->layer_node = calloc((size_t)n, sizeof(int));
    st->layer_overlap = calloc((size_t)n, sizeof(double));
    moda_status s = (!plans || !shared || !st->size || !st->overlap || !st->layer_node || !st->layer_overlap)
                        ? MODA_ERR_NOMEM
                        : MODA_OK;
    st->num_classes = k;
    st->tau = tau;
    double full = (double)graph_param_count(g);
    for (int c = 0; s == MODA_OK && c < k; c++) {
        s = compose_plan_make_mode(g, r, &c, 1, tau, mode, &plans[c]);
        if (s == MODA_OK) st->size[c] = (double)compose_plan_params(g, &plans[c]) / full;
    }
    for (int i = 1; s == MODA_OK && i < n; i++)
        if (g->nodes[i].kind == NODE_CONV2D || g->nodes[i].kind == NODE_LINEAR) st->layer_node[st->n_layers++] = i;
    int pairs = 0;
    for (int a = 0; s == MODA_OK && a < k; a++)
        for (int b = a + 1; b < k; b++) {
            /* Shared units: kept by both; no logits row is shared. */
            for (int i = 0; i < n; i++) {
                shared[i] = 0;
                if (i == g->output) continue;
                for (int u = 0; u < g->nodes[i].c; u++) shared[i] += plans[a].keep[i][u] && plans[b].keep[i][u];
            }
            double ov = plan_total(g, shared, false) / full;
            st->overlap[(size_t)a * k + b] = st->overlap[(size_t)b * k + a] = ov;
            st->mean_overlap += ov;
            for (int j = 0; j < st->n_layers; j++) {
                int i = st->layer_node[j];
                double sp, sm, fp, fm;
                node_cost(g, i, shared[i], shared[g->nodes[i].in[0]], &sp, &sm);
                node_cost(g, i, g->nodes[i].c, g->nodes[g->nodes[i].in[0]].c, &fp, &fm);
                st->layer_overlap[j] += sp / fp;
            }
            pairs++;
        }
    if (s == MODA_OK) {
        for (int c = 0; c < k; c++) {
            st->overlap[(size_t)c * k + c] = st->size[c];
            st->mean_size += st->size[c] / k;
        }
        if (pairs) {
            st->mean_overlap /= pairs;
            for (int j = 0; j < st->n_layers; j++) st->layer_overlap[j] /= pairs;
        }
    }
    for (int c = 0; plans && c < k; c++) compose_plan_free(&plans[c]);
    free(plans);
    free(shared);
    if (s != MODA_OK) module_stats_free(st);
    return s;
}
