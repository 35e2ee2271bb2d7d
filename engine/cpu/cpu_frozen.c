/* Frozen inference plans on oneDNN (engine/frozen.h).
 *
 * Freezing groups the graph's nodes into fused layers:
 *   conv [-> batch norm, folded into the weights and bias]
 *        [-> add of another activation, a `sum` post-op]
 *        [-> ReLU, an eltwise post-op]
 *   linear [-> ReLU]            (inner product; its input may be 4-D: a
 *                                flatten or a global average pool)
 *   max pool, global average pool (pooling primitives), and a ReLU or an
 *   add that no conv absorbed (eltwise, binary); a flatten is no layer.
 *   A mapped add (graph_add_mapped) reads an addend through a gather, a
 *   loop of ours that picks channels in the addend's own layout; the conv
 *   of its main path still absorbs it when that side's map is the identity.
 * A layer runs where the last node it absorbed stood, so a residual add
 * fuses into the conv of its main path once the shortcut is computed.
 *
 * Each batch size n gets an instance: forward_inference primitives whose
 * activations take the layout the primitive prefers (format `any`) and
 * pass it on, so activations stay blocked from the first conv to the
 * classifier; a reorder runs only where a primitive wants another layout
 * (the input image, usually) and the logits come out plain. Activations
 * live in one arena whose buffers are reused once their value is dead; a
 * residual add writes into the shortcut's buffer when nothing reads it
 * later. Weights are kept once per layout, reordered when a batch size
 * first asks for a layout (past two layouts, a kept one is preferred); the
 * plain copy made at freezing is dropped after the first batch size is
 * built if that did not use it, later layouts being reordered from a kept
 * one. Running an instance binds the caller's input and
 * logits and executes the primitives: nothing is created or allocated.
 * Batch 1 is by default built twice, on the backend's threads and on one,
 * and the faster of the two, timed in turns, is kept. */
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_internal.h"
#include "frozen.h"
#include "graph.h"

enum { L_CONV, L_IP, L_MAXPOOL, L_AVGPOOL, L_RELU, L_ADD, L_GATHER };

#define FZ_MAX_LAYOUTS 8 /* weight layouts per layer */
#define FZ_SOFT_LAYOUTS 2 /* beyond this many, a kept layout is preferred to a new one */
#define FZ_MAX_INST 10   /* batch sizes kept: every power of two to 256, and two more */
#define FZ_STEP_ARGS 8

typedef struct fz_layer {
    int kind;
    int in, other, out; /* value ids; other: summed in (conv) or second addend (add); -1 none */
    bool relu;          /* ReLU post-op (conv, linear) */
    conv2d_params conv;
    pool2d_params pool;
    int k;                       /* conv output channels, linear outputs */
    dnnl_memory_t w[FZ_MAX_LAYOUTS]; /* the weights in each layout in use; [0] the source of new ones */
    bool w_used[FZ_MAX_LAYOUTS];
    int n_w;
    dnnl_memory_t b; /* bias (k), plain; NULL when none */
    int *map;        /* gather: output channel j reads input channel map[j], -1 zero; (k), owned */
} fz_layer;

typedef struct fz_value {
    int ndim, c, h, w; /* per sample; ndim 2: (c) */
    int last_use;      /* last layer that reads it; INT_MAX for the logits */
} fz_value;

/* Where element (n, c, h, w) of a 4-D activation lies: plain, or with the
 * channels in blocks of blk (nChw8c, nChw16c, ...). */
typedef struct fz_layout {
    dnnl_dim_t stride[4];
    int blk;
    int padded_c; /* channels including a last block's padding, which stays zero */
} fz_layout;

typedef struct fz_step {
    dnnl_primitive_t prim; /* owned; NULL for a gather */
    int n_args;
    dnnl_exec_arg_t args[FZ_STEP_ARGS];
    bool reorder;
    /* A gather: the layer, its source and destination and their layouts,
     * and each destination channel's offsets within a pixel: where it
     * reads in the source (-1: zero) and where it writes; (2 * padded
     * channels), owned. */
    const fz_layer *gather;
    dnnl_memory_t src, dst;
    fz_layout src_at, dst_at;
    ptrdiff_t *off;
} fz_step;

enum { BIND_ARENA, BIND_SCRATCH, BIND_IN, BIND_OUT };

typedef struct fz_mem {
    dnnl_memory_t mem; /* owned */
    int bind;
    int buf; /* BIND_ARENA: the buffer */
} fz_mem;

typedef struct fz_buf {
    size_t bytes;
    int busy_until; /* last layer whose values use it */
    size_t off;
} fz_buf;

typedef struct fz_inst {
    int n, threads;
    fz_step *steps;
    int n_steps, cap_steps;
    fz_mem *mems;
    int n_mems, cap_mems;
    fz_buf *bufs;
    int n_bufs, cap_bufs;
    dnnl_memory_t in, out; /* the caller's input and logits, rebound per run */
    void *arena, *scratch; /* owned */
    size_t arena_bytes, scratch_bytes;
    int reorders;
    unsigned long last_use;
} fz_inst;

typedef struct fz_plan {
    moda_backend *be; /* not owned */
    cpu_ctx *c;
    int in_c, in_h, in_w;
    int classes;
    fz_layer *layers;
    int n_layers;
    fz_value *values;
    int n_values;
    fz_inst *inst[FZ_MAX_INST];
    unsigned long clock;
    int small_n, small_threads;
    bool plain_dropped;
} fz_plan;

/* ---- instances --------------------------------------------------------- */

static void inst_free(fz_inst *in) {
    if (!in) return;
    for (int i = 0; i < in->n_steps; i++) {
        if (in->steps[i].prim) dnnl_primitive_destroy(in->steps[i].prim);
        free(in->steps[i].off);
    }
    for (int i = 0; i < in->n_mems; i++) dnnl_memory_destroy(in->mems[i].mem);
    free(in->steps);
    free(in->mems);
    free(in->bufs);
    free(in->arena);
    free(in->scratch);
    free(in);
}

static bool grow(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return true;
    int nc = *cap ? 2 * *cap : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return false;
    *p = q;
    *cap = nc;
    return true;
}

/* A memory object of layout md, bound later (arena buffer, scratchpad) or
 * per run (the caller's input and logits). */
static moda_status inst_mem(fz_plan *pl, fz_inst *in, const dnnl_memory_desc_t *md, int bind, int buf,
                            dnnl_memory_t *out) {
    if (!grow((void **)&in->mems, &in->cap_mems, in->n_mems + 1, sizeof(*in->mems))) return MODA_ERR_NOMEM;
    DNNL_TRY(dnnl_memory_create(out, md, pl->c->engine, DNNL_MEMORY_NONE));
    in->mems[in->n_mems++] = (fz_mem){*out, bind, buf};
    return MODA_OK;
}

/* A buffer of `bytes` for a value live until layer `until`, made at layer
 * `now`: the smallest free one that fits, else the largest free one grown,
 * else a new one. */
static int inst_buf(fz_inst *in, size_t bytes, int now, int until) {
    int best = -1, largest = -1;
    for (int i = 0; i < in->n_bufs; i++) {
        fz_buf *b = &in->bufs[i];
        if (b->busy_until >= now) continue;
        if (b->bytes >= bytes && (best < 0 || b->bytes < in->bufs[best].bytes)) best = i;
        if (largest < 0 || b->bytes > in->bufs[largest].bytes) largest = i;
    }
    if (best < 0) best = largest;
    if (best < 0) {
        if (!grow((void **)&in->bufs, &in->cap_bufs, in->n_bufs + 1, sizeof(*in->bufs))) return -1;
        best = in->n_bufs++;
        in->bufs[best] = (fz_buf){0, 0, 0};
    }
    fz_buf *b = &in->bufs[best];
    if (b->bytes < bytes) b->bytes = bytes;
    b->busy_until = until;
    return best;
}

/* A new arena-backed value memory of layout md, live until `until`. */
static moda_status inst_value_mem(fz_plan *pl, fz_inst *in, const dnnl_memory_desc_t *md, int now, int until,
                                  dnnl_memory_t *out, int *buf_out) {
    int buf = inst_buf(in, dnnl_memory_desc_get_size(md), now, until);
    if (buf < 0) return MODA_ERR_NOMEM;
    if (buf_out) *buf_out = buf;
    return inst_mem(pl, in, md, BIND_ARENA, buf, out);
}

/* Append a primitive made from pd (destroyed here) with its arguments and,
 * when it wants one, the instance's scratchpad. */
static moda_status inst_step(fz_plan *pl, fz_inst *in, dnnl_primitive_desc_t pd, int n_args,
                             const dnnl_exec_arg_t *args, bool reorder) {
    moda_status s = MODA_OK;
    if (!grow((void **)&in->steps, &in->cap_steps, in->n_steps + 1, sizeof(*in->steps)) ||
        n_args > FZ_STEP_ARGS - 1) {
        dnnl_primitive_desc_destroy(pd);
        return MODA_ERR_NOMEM;
    }
    fz_step *st = &in->steps[in->n_steps];
    memset(st, 0, sizeof(*st));
    memcpy(st->args, args, (size_t)n_args * sizeof(*args));
    st->n_args = n_args;
    st->reorder = reorder;
    size_t sb = cpu_pd_scratch_bytes(pd);
    if (sb > 0) {
        dnnl_memory_t sm;
        s = inst_mem(pl, in, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0), BIND_SCRATCH, -1, &sm);
        if (s == MODA_OK) st->args[st->n_args++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, sm};
        if (sb > in->scratch_bytes) in->scratch_bytes = sb;
    }
    if (s == MODA_OK && dnnl_primitive_create(&st->prim, pd) != dnnl_success) s = MODA_ERR_BACKEND;
    dnnl_primitive_desc_destroy(pd);
    if (s == MODA_OK) {
        in->n_steps++;
        if (reorder) in->reorders++;
    }
    return s;
}

static moda_status inst_reorder(fz_plan *pl, fz_inst *in, dnnl_memory_t from, dnnl_memory_t to) {
    const dnnl_memory_desc_t *fmd, *tmd;
    DNNL_TRY(dnnl_memory_get_memory_desc(from, &fmd));
    DNNL_TRY(dnnl_memory_get_memory_desc(to, &tmd));
    dnnl_primitive_attr_t attr = cpu_attr_new();
    if (!attr) return MODA_ERR_BACKEND;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, fmd, pl->c->engine, tmd, pl->c->engine, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return MODA_ERR_BACKEND;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return inst_step(pl, in, pd, 2, args, true);
}

/* Value v in layout want, for layer li: v's own memory when the layouts
 * agree, else a reorder into a buffer that lives through the layer. */
static moda_status inst_input(fz_plan *pl, fz_inst *in, dnnl_memory_t *vmem, int v, int li,
                              const dnnl_memory_desc_t *want, dnnl_memory_t *out) {
    const dnnl_memory_desc_t *have;
    DNNL_TRY(dnnl_memory_get_memory_desc(vmem[v], &have));
    if (dnnl_memory_desc_equal(have, want)) {
        *out = vmem[v];
        return MODA_OK;
    }
    MODA_TRY(inst_value_mem(pl, in, want, li, li, out, NULL));
    return inst_reorder(pl, in, vmem[v], *out);
}

/* The layer's weights in layout want: a kept copy, or a new one reordered
 * from the first (done now, once). */
static moda_status layer_weights(fz_plan *pl, fz_layer *L, const dnnl_memory_desc_t *want, dnnl_memory_t *out) {
    for (int i = 0; i < L->n_w; i++) {
        const dnnl_memory_desc_t *md;
        DNNL_TRY(dnnl_memory_get_memory_desc(L->w[i], &md));
        if (dnnl_memory_desc_equal(md, want)) {
            L->w_used[i] = true;
            *out = L->w[i];
            return MODA_OK;
        }
    }
    if (L->n_w == FZ_MAX_LAYOUTS) return MODA_ERR_BACKEND;
    dnnl_memory_t m = NULL;
    DNNL_TRY(dnnl_memory_create(&m, want, pl->c->engine, DNNL_MEMORY_ALLOCATE));
    const dnnl_memory_desc_t *fmd;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_primitive_t r = NULL;
    dnnl_status_t st = dnnl_memory_get_memory_desc(L->w[0], &fmd);
    if (st == dnnl_success)
        st = dnnl_reorder_primitive_desc_create(&pd, fmd, pl->c->engine, want, pl->c->engine, NULL);
    if (st == dnnl_success) st = dnnl_primitive_create(&r, pd);
    if (st == dnnl_success) {
        dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, L->w[0]}, {DNNL_ARG_TO, m}};
        st = dnnl_primitive_execute(r, pl->c->stream, 2, args);
    }
    if (st == dnnl_success) st = dnnl_stream_wait(pl->c->stream);
    if (r) dnnl_primitive_destroy(r);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) {
        dnnl_memory_destroy(m);
        return MODA_ERR_BACKEND;
    }
    L->w[L->n_w] = m;
    L->w_used[L->n_w++] = true;
    *out = m;
    return MODA_OK;
}

static dnnl_primitive_attr_t post_ops_attr(bool sum, bool relu) {
    dnnl_primitive_attr_t attr = cpu_attr_new();
    if (!attr || (!sum && !relu)) return attr;
    dnnl_post_ops_t po = NULL;
    dnnl_status_t st = dnnl_post_ops_create(&po);
    if (st == dnnl_success && sum) st = dnnl_post_ops_append_sum(po, 1.0f);
    if (st == dnnl_success && relu) st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
    if (po) dnnl_post_ops_destroy(po);
    if (st != dnnl_success) {
        dnnl_primitive_attr_destroy(attr);
        return NULL;
    }
    return attr;
}

static dnnl_primitive_desc_t pd_make(fz_plan *pl, const void *op_desc, bool sum, bool relu) {
    dnnl_primitive_attr_t attr = post_ops_attr(sum, relu);
    if (!attr) return NULL;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_desc_create(&pd, op_desc, attr, pl->c->engine, NULL) != dnnl_success) pd = NULL;
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

static void value_dims(const fz_value *v, int n, dnnl_dims_t d) {
    d[0] = n;
    d[1] = v->c;
    d[2] = v->h;
    d[3] = v->w;
}

#define Q_MD(pd, what, i) dnnl_primitive_desc_query_md((pd), (what), (i))

/* A primitive descriptor for the layer with weights of layout wmd. */
typedef dnnl_primitive_desc_t (*pd_maker)(fz_plan *pl, const void *ctx, const dnnl_memory_desc_t *wmd);

static bool layer_has_layout(const fz_layer *L, const dnnl_memory_desc_t *want) {
    for (int i = 0; i < L->n_w; i++) {
        const dnnl_memory_desc_t *md;
        if (dnnl_memory_get_memory_desc(L->w[i], &md) == dnnl_success && dnnl_memory_desc_equal(md, want)) return true;
    }
    return false;
}

static bool pd_is_ref(const_dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    return dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl ||
           strstr(impl, "ref");
}

/* The primitive's own choice of weight layout, unless that would be a new
 * copy of the weights for a layer that keeps FZ_SOFT_LAYOUTS already (each
 * batch size may prefer another): then a kept layout, if a kernel other
 * than the reference one takes it with the same activation layouts. */
static dnnl_primitive_desc_t pd_prefer_kept(fz_plan *pl, const fz_layer *L, pd_maker make, const void *ctx,
                                            const dnnl_memory_desc_t *w_any) {
    dnnl_primitive_desc_t pd = make(pl, ctx, w_any);
    if (!pd || L->n_w < FZ_SOFT_LAYOUTS || layer_has_layout(L, Q_MD(pd, dnnl_query_weights_md, 0))) return pd;
    for (int i = L->n_w - 1; i >= 0; i--) {
        const dnnl_memory_desc_t *md;
        if (dnnl_memory_get_memory_desc(L->w[i], &md) != dnnl_success) continue;
        dnnl_primitive_desc_t kept = make(pl, ctx, md);
        /* Not at the price of a reorder of the activations. */
        if (kept && !pd_is_ref(kept) &&
            dnnl_memory_desc_equal(Q_MD(kept, dnnl_query_src_md, 0), Q_MD(pd, dnnl_query_src_md, 0)) &&
            dnnl_memory_desc_equal(Q_MD(kept, dnnl_query_dst_md, 0), Q_MD(pd, dnnl_query_dst_md, 0))) {
            dnnl_primitive_desc_destroy(pd);
            return kept;
        }
        if (kept) dnnl_primitive_desc_destroy(kept);
    }
    return pd;
}

typedef struct conv_ctx {
    dnnl_memory_desc_t x, b, y;
    dnnl_dims_t strides, pad;
    bool bias, sum, relu;
} conv_ctx;

static dnnl_primitive_desc_t conv_pd(fz_plan *pl, const void *ctx, const dnnl_memory_desc_t *wmd) {
    const conv_ctx *c = ctx;
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &c->x, wmd,
                                           c->bias ? &c->b : NULL, &c->y, c->strides, c->pad, c->pad) != dnnl_success)
        return NULL;
    return pd_make(pl, &cd, c->sum, c->relu);
}

typedef struct ip_ctx {
    const dnnl_memory_desc_t *src; /* the input as it is */
    dnnl_memory_desc_t x_any, b, y;
    bool bias, relu;
} ip_ctx;

/* The input as it is when the primitive takes it, else its choice. */
static dnnl_primitive_desc_t ip_pd(fz_plan *pl, const void *ctx, const dnnl_memory_desc_t *wmd) {
    const ip_ctx *c = ctx;
    dnnl_inner_product_desc_t d;
    dnnl_primitive_desc_t pd = NULL;
    for (int t = 0; t < 2 && !pd; t++)
        if (dnnl_inner_product_forward_desc_init(&d, dnnl_forward_inference, t ? &c->x_any : c->src, wmd,
                                                 c->bias ? &c->b : NULL, &c->y) == dnnl_success)
            pd = pd_make(pl, &d, false, c->relu);
    return pd;
}

static moda_status build_conv(fz_plan *pl, fz_inst *in, int li, dnnl_memory_t *vmem) {
    fz_layer *L = &pl->layers[li];
    const fz_value *vi = &pl->values[L->in], *vo = &pl->values[L->out];
    const int n = in->n;
    dnnl_dims_t xd, yd, wd, bd = {L->k};
    value_dims(vi, n, xd);
    value_dims(vo, n, yd);
    const conv2d_params *p = &L->conv;
    int wnd = 4;
    if (p->groups > 1) {
        wnd = 5;
        wd[0] = p->groups, wd[1] = L->k / p->groups, wd[2] = vi->c / p->groups, wd[3] = p->kh, wd[4] = p->kw;
    } else {
        wd[0] = L->k, wd[1] = vi->c, wd[2] = p->kh, wd[3] = p->kw;
    }
    conv_ctx cc = {.bias = L->b != NULL, .sum = L->other >= 0, .relu = L->relu};
    dnnl_memory_desc_t w_any;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&cc.x, 4, xd, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any, wnd, wd, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&cc.b, 1, bd, dnnl_f32, dnnl_x));
    /* With a residual, the output takes the shortcut's layout: the sum
     * post-op adds onto what dst holds. */
    const bool sum = cc.sum;
    if (sum && L->other != 0) {
        const dnnl_memory_desc_t *omd;
        DNNL_TRY(dnnl_memory_get_memory_desc(vmem[L->other], &omd));
        cc.y = *omd;
    } else {
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&cc.y, 4, yd, dnnl_f32, dnnl_format_tag_any));
    }
    cc.strides[0] = p->stride_h, cc.strides[1] = p->stride_w;
    cc.pad[0] = p->pad_h, cc.pad[1] = p->pad_w;
    dnnl_primitive_desc_t pd = pd_prefer_kept(pl, L, conv_pd, &cc, &w_any);
    if (!pd) return MODA_ERR_BACKEND;
    dnnl_exec_arg_t args[5];
    int na = 0;
    moda_status s;
    dnnl_memory_t m;
    if ((s = inst_input(pl, in, vmem, L->in, li, Q_MD(pd, dnnl_query_src_md, 0), &m))) goto fail;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, m};
    if ((s = layer_weights(pl, L, Q_MD(pd, dnnl_query_weights_md, 0), &m))) goto fail;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, m};
    if (L->b) args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, L->b};
    const dnnl_memory_desc_t *dst = Q_MD(pd, dnnl_query_dst_md, 0);
    if (sum) {
        /* In place on the shortcut's buffer when this is its last reader
         * and it is not also the conv's input; else a copy first. */
        const dnnl_memory_desc_t *omd;
        DNNL_TRY(dnnl_memory_get_memory_desc(vmem[L->other], &omd));
        int obuf = -1;
        for (int i = 0; i < in->n_mems; i++)
            if (in->mems[i].mem == vmem[L->other] && in->mems[i].bind == BIND_ARENA) obuf = in->mems[i].buf;
        if (obuf >= 0 && pl->values[L->other].last_use == li && L->other != L->in && dnnl_memory_desc_equal(omd, dst)) {
            fz_buf *b = &in->bufs[obuf];
            b->busy_until = vo->last_use;
            if ((s = inst_mem(pl, in, dst, BIND_ARENA, obuf, &vmem[L->out]))) goto fail;
        } else {
            if ((s = inst_value_mem(pl, in, dst, li, vo->last_use, &vmem[L->out], NULL))) goto fail;
            if ((s = inst_reorder(pl, in, vmem[L->other], vmem[L->out]))) goto fail;
        }
    } else if ((s = inst_value_mem(pl, in, dst, li, vo->last_use, &vmem[L->out], NULL))) {
        goto fail;
    }
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, vmem[L->out]};
    return inst_step(pl, in, pd, na, args, false);
fail:
    dnnl_primitive_desc_destroy(pd);
    return s;
}

static moda_status build_ip(fz_plan *pl, fz_inst *in, int li, dnnl_memory_t *vmem, bool last) {
    fz_layer *L = &pl->layers[li];
    const fz_value *vi = &pl->values[L->in], *vo = &pl->values[L->out];
    const int n = in->n;
    dnnl_dims_t xd, wd, yd = {n, L->k}, bd = {L->k};
    int nd = vi->ndim;
    value_dims(vi, n, xd);
    wd[0] = L->k, wd[1] = vi->c, wd[2] = vi->h, wd[3] = vi->w;
    ip_ctx ic = {.bias = L->b != NULL, .relu = L->relu};
    DNNL_TRY(dnnl_memory_get_memory_desc(vmem[L->in], &ic.src));
    dnnl_memory_desc_t w_any;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&ic.x_any, nd, xd, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&w_any, nd, wd, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&ic.b, 1, bd, dnnl_f32, dnnl_x));
    /* The logits come out plain, straight into the caller's buffer. */
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&ic.y, 2, yd, dnnl_f32, last ? dnnl_nc : dnnl_format_tag_any));
    dnnl_primitive_desc_t pd = pd_prefer_kept(pl, L, ip_pd, &ic, &w_any);
    if (!pd) return MODA_ERR_BACKEND;
    dnnl_exec_arg_t args[4];
    int na = 0;
    moda_status s;
    dnnl_memory_t m;
    if ((s = inst_input(pl, in, vmem, L->in, li, Q_MD(pd, dnnl_query_src_md, 0), &m))) goto fail;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, m};
    if ((s = layer_weights(pl, L, Q_MD(pd, dnnl_query_weights_md, 0), &m))) goto fail;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, m};
    if (L->b) args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, L->b};
    const dnnl_memory_desc_t *dst = Q_MD(pd, dnnl_query_dst_md, 0);
    if (last) s = inst_mem(pl, in, dst, BIND_OUT, -1, &vmem[L->out]);
    else s = inst_value_mem(pl, in, dst, li, vo->last_use, &vmem[L->out], NULL);
    if (s) goto fail;
    if (last) in->out = vmem[L->out];
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, vmem[L->out]};
    return inst_step(pl, in, pd, na, args, false);
fail:
    dnnl_primitive_desc_destroy(pd);
    return s;
}

/* The step of a one-input primitive pd (pooling, eltwise): its output in a
 * new value of the layout pd chose. pd is consumed. */
static moda_status src_dst_step(fz_plan *pl, fz_inst *in, int li, dnnl_memory_t *vmem, dnnl_primitive_desc_t pd) {
    fz_layer *L = &pl->layers[li];
    moda_status s = inst_value_mem(pl, in, Q_MD(pd, dnnl_query_dst_md, 0), li, pl->values[L->out].last_use,
                                   &vmem[L->out], NULL);
    if (s) {
        dnnl_primitive_desc_destroy(pd);
        return s;
    }
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_SRC, vmem[L->in]}, {DNNL_ARG_DST, vmem[L->out]}};
    return inst_step(pl, in, pd, 2, args, false);
}

static moda_status build_pool(fz_plan *pl, fz_inst *in, int li, dnnl_memory_t *vmem) {
    fz_layer *L = &pl->layers[li];
    const fz_value *vi = &pl->values[L->in], *vo = &pl->values[L->out];
    dnnl_dims_t yd;
    value_dims(vo, in->n, yd);
    const dnnl_memory_desc_t *src;
    DNNL_TRY(dnnl_memory_get_memory_desc(vmem[L->in], &src));
    dnnl_memory_desc_t y_any;
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&y_any, 4, yd, dnnl_f32, dnnl_format_tag_any));
    dnnl_dims_t strides, kernel, pad;
    dnnl_alg_kind_t alg;
    if (L->kind == L_MAXPOOL) {
        const pool2d_params *p = &L->pool;
        strides[0] = p->stride_h, strides[1] = p->stride_w;
        kernel[0] = p->kh, kernel[1] = p->kw;
        pad[0] = p->pad_h, pad[1] = p->pad_w;
        alg = dnnl_pooling_max;
    } else { /* global: one window over the whole map */
        strides[0] = strides[1] = 1;
        kernel[0] = vi->h, kernel[1] = vi->w;
        pad[0] = pad[1] = 0;
        alg = dnnl_pooling_avg_exclude_padding;
    }
    dnnl_pooling_desc_t d;
    DNNL_TRY(dnnl_pooling_forward_desc_init(&d, dnnl_forward_inference, alg, src, &y_any, strides, kernel, pad, pad));
    dnnl_primitive_desc_t pd = pd_make(pl, &d, false, false);
    if (!pd) return MODA_ERR_BACKEND;
    return src_dst_step(pl, in, li, vmem, pd);
}

static moda_status build_relu(fz_plan *pl, fz_inst *in, int li, dnnl_memory_t *vmem) {
    fz_layer *L = &pl->layers[li];
    const dnnl_memory_desc_t *src;
    DNNL_TRY(dnnl_memory_get_memory_desc(vmem[L->in], &src));
    dnnl_eltwise_desc_t d;
    DNNL_TRY(dnnl_eltwise_forward_desc_init(&d, dnnl_forward_inference, dnnl_eltwise_relu, src, 0.0f, 0.0f));
    dnnl_primitive_desc_t pd = pd_make(pl, &d, false, false);
    if (!pd) return MODA_ERR_BACKEND;
    return src_dst_step(pl, in, li, vmem, pd);
}

static moda_status build_add(fz_plan *pl, fz_inst *in, int li, dnnl_memory_t *vmem) {
    fz_layer *L = &pl->layers[li];
    const dnnl_memory_desc_t *a;
    DNNL_TRY(dnnl_memory_get_memory_desc(vmem[L->in], &a));
    dnnl_memory_t bm;
    MODA_TRY(inst_input(pl, in, vmem, L->other, li, a, &bm)); /* both addends in one layout */
    dnnl_binary_desc_t d;
    DNNL_TRY(dnnl_binary_desc_init(&d, dnnl_binary_add, a, a, a));
    dnnl_primitive_desc_t pd = pd_make(pl, &d, false, false);
    if (!pd) return MODA_ERR_BACKEND;
    moda_status s = inst_value_mem(pl, in, a, li, pl->values[L->out].last_use, &vmem[L->out], NULL);
    if (s) {
        dnnl_primitive_desc_destroy(pd);
        return s;
    }
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC_0, vmem[L->in]}, {DNNL_ARG_SRC_1, bm}, {DNNL_ARG_DST, vmem[L->out]}};
    return inst_step(pl, in, pd, 3, args, false);
}

/* The layout of md when it is one a gather reads and writes directly:
 * 4-D f32, plain or with one block of channels innermost. */
static bool layout_of(const dnnl_memory_desc_t *md, fz_layout *at) {
    if (md->ndims != 4 || md->data_type != dnnl_f32 || md->format_kind != dnnl_blocked || md->offset0 != 0)
        return false;
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
    if (b->inner_nblks > 1 || (b->inner_nblks == 1 && b->inner_idxs[0] != 1)) return false;
    at->blk = b->inner_nblks ? (int)b->inner_blks[0] : 1;
    for (int d = 0; d < 4; d++) at->stride[d] = b->strides[d];
    at->padded_c = (int)md->padded_dims[1];
    return true;
}

static inline size_t layout_off(const fz_layout *at, int n, int c, int h, int w) {
    return (size_t)(n * at->stride[0] + (c / at->blk) * at->stride[1] + h * at->stride[2] + w * at->stride[3] +
                    c % at->blk);
}

/* The same layout for k channels: a blocked source gives the nChw<blk>c of
 * k channels, a plain one nchw or nhwc. */
static moda_status layout_for(const dnnl_memory_desc_t *src, const fz_layout *at, dnnl_dim_t n, dnnl_dim_t k,
                              dnnl_memory_desc_t *out) {
    dnnl_dims_t d = {n, k, src->dims[2], src->dims[3]};
    dnnl_format_tag_t tag;
    switch (at->blk) {
    case 1: tag = at->stride[1] == 1 && src->dims[1] > 1 ? dnnl_nhwc : dnnl_nchw; break;
    case 4: tag = dnnl_nChw4c; break;
    case 8: tag = dnnl_nChw8c; break;
    case 16: tag = dnnl_nChw16c; break;
    default: return MODA_ERR_UNSUPPORTED;
    }
    DNNL_TRY(dnnl_memory_desc_init_by_tag(out, 4, d, dnnl_f32, tag));
    return MODA_OK;
}

static moda_status build_gather(fz_plan *pl, fz_inst *in, int li, dnnl_memory_t *vmem) {
    fz_layer *L = &pl->layers[li];
    const fz_value *vi = &pl->values[L->in];
    const dnnl_memory_desc_t *src;
    DNNL_TRY(dnnl_memory_get_memory_desc(vmem[L->in], &src));
    fz_step st = {.gather = L, .src = vmem[L->in]};
    dnnl_memory_desc_t dmd;
    if (!layout_of(src, &st.src_at) || layout_for(src, &st.src_at, in->n, L->k, &dmd) != MODA_OK) {
        /* An unusual layout: read it as plain nchw. */
        dnnl_dims_t d;
        value_dims(vi, in->n, d);
        dnnl_memory_desc_t plain;
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&plain, 4, d, dnnl_f32, dnnl_nchw));
        MODA_TRY(inst_input(pl, in, vmem, L->in, li, &plain, &st.src));
        if (!layout_of(&plain, &st.src_at)) return MODA_ERR_BACKEND;
        MODA_TRY(layout_for(&plain, &st.src_at, in->n, L->k, &dmd));
    }
    if (!layout_of(&dmd, &st.dst_at)) return MODA_ERR_BACKEND;
    MODA_TRY(inst_value_mem(pl, in, &dmd, li, pl->values[L->out].last_use, &vmem[L->out], NULL));
    st.dst = vmem[L->out];
    /* Then one pass over the pixels with the channels innermost, which in
     * nhwc reads and writes each pixel's channels where they lie together
     * instead of striding through the whole tensor once per channel. */
    const int kc = st.dst_at.padded_c;
    if (!(st.off = malloc(2 * (size_t)kc * sizeof(*st.off)))) return MODA_ERR_NOMEM;
    for (int j = 0; j < kc; j++) {
        const int from = j < L->k ? L->map[j] : -1;
        st.off[2 * j] = from < 0 || from >= vi->c ? -1 : (ptrdiff_t)layout_off(&st.src_at, 0, from, 0, 0);
        st.off[2 * j + 1] = (ptrdiff_t)layout_off(&st.dst_at, 0, j, 0, 0);
    }
    if (!grow((void **)&in->steps, &in->cap_steps, in->n_steps + 1, sizeof(*in->steps))) {
        free(st.off);
        return MODA_ERR_NOMEM;
    }
    in->steps[in->n_steps++] = st;
    return MODA_OK;
}

static moda_status run_gather(const fz_step *st, int n) {
    float *x, *y;
    DNNL_TRY(dnnl_memory_get_data_handle(st->src, (void **)&x));
    DNNL_TRY(dnnl_memory_get_data_handle(st->dst, (void **)&y));
    const dnnl_memory_desc_t *md;
    DNNL_TRY(dnnl_memory_get_memory_desc(st->dst, &md));
    const int h = (int)md->dims[2], w = (int)md->dims[3], kc = st->dst_at.padded_c;
    const fz_layout *sa = &st->src_at, *da = &st->dst_at;
    const ptrdiff_t *off = st->off;
#pragma omp parallel for collapse(2) schedule(static)
    for (int s = 0; s < n; s++)
        for (int r = 0; r < h; r++)
            for (int q = 0; q < w; q++) {
                const float *xp = x + layout_off(sa, s, 0, r, q);
                float *yp = y + layout_off(da, s, 0, r, q);
                for (int j = 0; j < kc; j++) yp[off[2 * j + 1]] = off[2 * j] < 0 ? 0.0f : xp[off[2 * j]];
            }
    return MODA_OK;
}

#define FZ_MEASURE FROZEN_THREADS_MEASURE
#define FZ_TUNE_RUNS 9

/* Threads for batch size n: the backend's, or for small batches a fixed
 * count or FZ_MEASURE (when the backend has more than one thread). */
static int inst_threads(const fz_plan *pl, int n) {
    if (n > pl->small_n || pl->small_threads == 0) return pl->be->threads;
    if (pl->small_threads > 0) return pl->small_threads;
    int many = pl->be->threads > 0 ? pl->be->threads : omp_get_max_threads();
    return many > 1 ? FZ_MEASURE : many;
}

/* Bind arena and scratchpad memories once both are allocated. */
static moda_status inst_bind(fz_inst *in) {
    size_t off = 0;
    for (int i = 0; i < in->n_bufs; i++) {
        in->bufs[i].off = off;
        off += (in->bufs[i].bytes + 63) / 64 * 64;
    }
    in->arena_bytes = off;
    in->arena = aligned_alloc(64, off ? off : 64);
    in->scratch = aligned_alloc(64, in->scratch_bytes ? (in->scratch_bytes + 63) / 64 * 64 : 64);
    if (!in->arena || !in->scratch) return MODA_ERR_NOMEM;
    for (int i = 0; i < in->n_mems; i++) {
        fz_mem *m = &in->mems[i];
        void *h = NULL;
        if (m->bind == BIND_ARENA) h = (char *)in->arena + in->bufs[m->buf].off;
        else if (m->bind == BIND_SCRATCH) h = in->scratch;
        else continue;
        DNNL_TRY(dnnl_memory_set_data_handle(m->mem, h));
    }
    return MODA_OK;
}

static moda_status inst_build(fz_plan *pl, int n, int threads, fz_inst **out) {
    *out = NULL;
    fz_inst *in = calloc(1, sizeof(*in));
    dnnl_memory_t *vmem = calloc((size_t)pl->n_values, sizeof(*vmem));
    if (!in || !vmem) {
        free(in);
        free(vmem);
        return MODA_ERR_NOMEM;
    }
    in->n = n;
    in->threads = threads;
    /* oneDNN sizes its work split for the threads there are at creation. */
    int saved = omp_get_max_threads();
    if (in->threads > 0 && in->threads != saved) omp_set_num_threads(in->threads);
    moda_status s = MODA_OK;
    dnnl_dims_t xd = {n, pl->in_c, pl->in_h, pl->in_w};
    dnnl_memory_desc_t xmd;
    if (dnnl_memory_desc_init_by_tag(&xmd, 4, xd, dnnl_f32, dnnl_nchw) != dnnl_success) s = MODA_ERR_BACKEND;
    if (s == MODA_OK) s = inst_mem(pl, in, &xmd, BIND_IN, -1, &vmem[0]);
    in->in = vmem[0];
    for (int li = 0; s == MODA_OK && li < pl->n_layers; li++) {
        switch (pl->layers[li].kind) {
        case L_CONV: s = build_conv(pl, in, li, vmem); break;
        case L_IP: s = build_ip(pl, in, li, vmem, li == pl->n_layers - 1); break;
        case L_MAXPOOL:
        case L_AVGPOOL: s = build_pool(pl, in, li, vmem); break;
        case L_RELU: s = build_relu(pl, in, li, vmem); break;
        case L_ADD: s = build_add(pl, in, li, vmem); break;
        case L_GATHER: s = build_gather(pl, in, li, vmem); break;
        default: s = MODA_ERR_ARG;
        }
    }
    if (s == MODA_OK && !in->out) s = MODA_ERR_STATE;
    if (s == MODA_OK) s = inst_bind(in);
    if (in->threads > 0 && in->threads != saved) omp_set_num_threads(saved);
    free(vmem);
    if (s != MODA_OK) {
        inst_free(in);
        return s;
    }
    *out = in;
    return MODA_OK;
}

/* Once a batch size is built, the plain weights made at freezing are only
 * a source for layouts no batch size uses yet: drop the ones unused. Later
 * layouts are reordered from the kept blocked copy. */
static void drop_unused_plain(fz_plan *pl) {
    if (pl->plain_dropped) return;
    pl->plain_dropped = true;
    for (int li = 0; li < pl->n_layers; li++) {
        fz_layer *L = &pl->layers[li];
        if (L->n_w < 2 || L->w_used[0]) continue;
        dnnl_memory_destroy(L->w[0]);
        for (int i = 1; i < L->n_w; i++) {
            L->w[i - 1] = L->w[i];
            L->w_used[i - 1] = L->w_used[i];
        }
        L->n_w--;
    }
}

static moda_status inst_run(fz_plan *pl, fz_inst *in, const float *x, float *logits);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e6 * (double)t.tv_sec + 1e-3 * (double)t.tv_nsec;
}

/* Batch size n built twice, on the backend's threads and on one, timed in
 * turns on a zero input (FZ_TUNE_RUNS each, after two warm-up runs); the
 * faster by median is kept. On small tensors an OpenMP fork and join per
 * primitive can cost more than the second thread gains. */
static moda_status inst_build_measured(fz_plan *pl, int n, fz_inst **out) {
    const int many = pl->be->threads > 0 ? pl->be->threads : omp_get_max_threads();
    fz_inst *c[2] = {NULL, NULL};
    MODA_TRY(inst_build(pl, n, many, &c[0]));
    moda_status s = inst_build(pl, n, 1, &c[1]);
    const size_t per = (size_t)pl->in_c * pl->in_h * pl->in_w;
    float *x = calloc((size_t)n * per, sizeof(float)), *z = calloc((size_t)n * pl->classes, sizeof(float));
    double t[2][FZ_TUNE_RUNS];
    if (s == MODA_OK && (!x || !z)) s = MODA_ERR_NOMEM;
    for (int i = 0; s == MODA_OK && i < 2 + FZ_TUNE_RUNS; i++)
        for (int k = 0; s == MODA_OK && k < 2; k++) {
            double t0 = now_us();
            s = inst_run(pl, c[k], x, z);
            if (i >= 2) t[k][i - 2] = now_us() - t0;
        }
    int keep = 0;
    if (s == MODA_OK) {
        qsort(t[0], FZ_TUNE_RUNS, sizeof(double), cmp_double);
        qsort(t[1], FZ_TUNE_RUNS, sizeof(double), cmp_double);
        keep = t[1][FZ_TUNE_RUNS / 2] < t[0][FZ_TUNE_RUNS / 2];
    }
    free(x);
    free(z);
    inst_free(c[!keep]);
    if (s != MODA_OK) {
        inst_free(c[keep]);
        return s;
    }
    *out = c[keep];
    return MODA_OK;
}

static fz_inst *inst_find(const fz_plan *pl, int n) {
    for (int i = 0; i < FZ_MAX_INST; i++)
        if (pl->inst[i] && pl->inst[i]->n == n) return pl->inst[i];
    return NULL;
}

static moda_status plan_instance(fz_plan *pl, int n, fz_inst **out) {
    fz_inst *in = inst_find(pl, n);
    if (!in) {
        int slot = 0;
        for (int i = 0; i < FZ_MAX_INST; i++) {
            if (!pl->inst[i]) {
                slot = i;
                break;
            }
            if (pl->inst[i]->last_use < pl->inst[slot]->last_use) slot = i;
        }
        int threads = inst_threads(pl, n);
        MODA_TRY(threads == FZ_MEASURE ? inst_build_measured(pl, n, &in) : inst_build(pl, n, threads, &in));
        inst_free(pl->inst[slot]);
        pl->inst[slot] = in;
        drop_unused_plain(pl);
    }
    in->last_use = ++pl->clock;
    *out = in;
    return MODA_OK;
}

static moda_status fz_prepare(void *impl, int n) {
    fz_inst *in;
    return plan_instance(impl, n, &in);
}

static moda_status inst_run(fz_plan *pl, fz_inst *in, const float *x, float *logits) {
    DNNL_TRY(dnnl_memory_set_data_handle(in->in, (void *)x));
    DNNL_TRY(dnnl_memory_set_data_handle(in->out, logits));
    int saved = omp_get_max_threads();
    if (in->threads > 0 && in->threads != saved) omp_set_num_threads(in->threads);
    moda_status s = MODA_OK;
    for (int i = 0; s == MODA_OK && i < in->n_steps; i++) {
        const fz_step *st = &in->steps[i];
        if (!st->prim) {
            /* Our own loop reads what the primitives before it wrote. */
            if (dnnl_stream_wait(pl->c->stream) != dnnl_success) s = MODA_ERR_BACKEND;
            if (s == MODA_OK) s = run_gather(st, in->n);
        } else if (dnnl_primitive_execute(st->prim, pl->c->stream, st->n_args, st->args) != dnnl_success) {
            s = MODA_ERR_BACKEND;
        }
    }
    if (s == MODA_OK && dnnl_stream_wait(pl->c->stream) != dnnl_success) s = MODA_ERR_BACKEND;
    if (in->threads > 0 && in->threads != saved) omp_set_num_threads(saved);
    return s;
}

/* A prepared batch size runs as one pass. Any other runs as passes of
 * powers of two (37 = 32 + 4 + 1), each size built on its first use: at
 * most log2(max_batch) + 1 sizes ever exist, and batches of every size
 * soon run on primitives built already. */
static moda_status fz_run(void *impl, const float *x, int n, float *logits) {
    fz_plan *pl = impl;
    fz_inst *in = inst_find(pl, n);
    if (in) {
        in->last_use = ++pl->clock;
        return inst_run(pl, in, x, logits);
    }
    const size_t per = (size_t)pl->in_c * pl->in_h * pl->in_w;
    for (int off = 0; off < n;) {
        int b = 1;
        while (2 * b <= n - off) b *= 2;
        MODA_TRY(plan_instance(pl, b, &in));
        MODA_TRY(inst_run(pl, in, x + (size_t)off * per, logits + (size_t)off * pl->classes));
        off += b;
    }
    return MODA_OK;
}

/* ---- freezing ---------------------------------------------------------- */

static void plan_destroy(void *impl) {
    fz_plan *pl = impl;
    if (!pl) return;
    for (int i = 0; i < FZ_MAX_INST; i++) inst_free(pl->inst[i]);
    for (int li = 0; pl->layers && li < pl->n_layers; li++) {
        for (int i = 0; i < pl->layers[li].n_w; i++) dnnl_memory_destroy(pl->layers[li].w[i]);
        if (pl->layers[li].b) dnnl_memory_destroy(pl->layers[li].b);
        free(pl->layers[li].map);
    }
    free(pl->layers);
    free(pl->values);
    free(pl);
}

/* The one node that reads node i, or -1 when none or several do. */
static int sole_consumer(const graph *g, int i) {
    if (g->nodes[i].n_consumers != 1 || i == g->output) return -1;
    for (int j = i + 1; j < g->n_nodes; j++)
        for (int k = 0; k < g->nodes[j].n_in; k++)
            if (g->nodes[j].in[k] == i) return j;
    return -1;
}

typedef struct fz_group {
    int head, tail;
    int bn;    /* folded batch norm node, -1 none */
    int other; /* node summed in, -1 none */
    bool relu;
    int add;   /* the add absorbed, -1 none */
} fz_group;

/* Whether side `side` of add node i reads its addend's channels as they
 * are: a plain add, or a mapped one whose map is the identity. */
static bool add_side_identity(const graph *g, int i, int side) {
    const graph_node *a = &g->nodes[i];
    if (!graph_add_is_mapped(a)) return true;
    if (g->nodes[a->in[side]].c != a->c) return false;
    const float *m = g->params[a->param[side]].data;
    for (int j = 0; j < a->c; j++)
        if (m[j] != (float)j) return false;
    return true;
}

/* A gather layer reading value in_val through side `side`'s map of add
 * node i; returns its output value. */
static int emit_gather(fz_plan *pl, const graph *g, int i, int side, int in_val) {
    const graph_node *a = &g->nodes[i];
    fz_layer *L = &pl->layers[pl->n_layers];
    L->kind = L_GATHER;
    L->in = in_val;
    L->other = -1;
    L->k = a->c;
    L->out = pl->n_values;
    if (!(L->map = malloc((size_t)a->c * sizeof(int)))) return -1;
    const float *m = g->params[a->param[side]].data;
    for (int j = 0; j < a->c; j++) L->map[j] = m[j] >= 0.0f ? (int)m[j] : -1;
    pl->values[pl->n_values++] = (fz_value){4, a->c, a->h, a->w, -1};
    pl->n_layers++;
    return L->out;
}

static int cmp_tail(const void *a, const void *b) {
    const fz_group *x = a, *y = b;
    return (x->tail > y->tail) - (x->tail < y->tail);
}

/* Plain weights (and bias) of a conv or linear node, with a following
 * batch norm folded in: w' = w * s, b' = (b - mean) * s + beta, s =
 * gamma / sqrt(var + eps), per output channel, in double. */
static moda_status freeze_weights(fz_plan *pl, fz_layer *L, const graph *g, const graph_node *nd, int bn,
                                  const dnnl_memory_desc_t *wmd) {
    const graph_param *wp = &g->params[nd->param[0]];
    const size_t numel = graph_param_numel(wp), rows = (size_t)wp->shape[0], row = numel / rows;
    const float *bias = nd->has_bias ? g->params[nd->param[1]].data : NULL;
    DNNL_TRY(dnnl_memory_create(&L->w[0], wmd, pl->c->engine, DNNL_MEMORY_ALLOCATE));
    L->n_w = 1;
    if (dnnl_memory_desc_get_size(wmd) != numel * sizeof(float)) return MODA_ERR_SHAPE;
    float *w;
    DNNL_TRY(dnnl_memory_get_data_handle(L->w[0], (void **)&w));
    float *b = NULL;
    if (bias || bn >= 0) {
        dnnl_dims_t bd = {(dnnl_dim_t)rows};
        dnnl_memory_desc_t bmd;
        DNNL_TRY(dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_x));
        DNNL_TRY(dnnl_memory_create(&L->b, &bmd, pl->c->engine, DNNL_MEMORY_ALLOCATE));
        DNNL_TRY(dnnl_memory_get_data_handle(L->b, (void **)&b));
    }
    const graph_node *bnn = bn >= 0 ? &g->nodes[bn] : NULL;
    for (size_t k = 0; k < rows; k++) {
        double scale = 1.0, shift = 0.0, b0 = bias ? bias[k] : 0.0;
        if (bnn) {
            double gamma = g->params[bnn->param[0]].data[k], beta = g->params[bnn->param[1]].data[k];
            double mean = g->params[bnn->param[2]].data[k], var = g->params[bnn->param[3]].data[k];
            scale = gamma / sqrt(var + (double)bnn->p.bn.eps);
            shift = beta - mean * scale;
        }
        const float *src = wp->data + k * row;
        float *dst = w + k * row;
        for (size_t i = 0; i < row; i++) dst[i] = (float)(src[i] * scale);
        if (b) b[k] = (float)(b0 * scale + shift);
    }
    return MODA_OK;
}

static moda_status plan_build(fz_plan *pl, const graph *g) {
    const int nn = g->n_nodes;
    fz_group *grp = calloc((size_t)nn, sizeof(*grp));
    bool *absorbed = calloc((size_t)nn, sizeof(*absorbed));
    int *val = malloc((size_t)nn * sizeof(*val));
    /* A mapped add may add two gathers to its own layer. */
    pl->layers = calloc(3 * (size_t)nn, sizeof(*pl->layers));
    pl->values = calloc(3 * (size_t)nn + 1, sizeof(*pl->values));
    moda_status s = MODA_OK;
    if (!grp || !absorbed || !val || !pl->layers || !pl->values) s = MODA_ERR_NOMEM;
    int n_grp = 0;
    /* Pass 1: group the nodes. */
    for (int i = 1; s == MODA_OK && i < nn; i++) {
        if (absorbed[i]) continue;
        const graph_node *nd = &g->nodes[i];
        fz_group G = {i, i, -1, -1, false, -1};
        int c;
        switch (nd->kind) {
        case NODE_CONV2D:
            c = sole_consumer(g, G.tail);
            if (c >= 0 && !absorbed[c] && g->nodes[c].kind == NODE_BATCHNORM2D) {
                G.bn = G.tail = c;
                absorbed[c] = true;
            }
            c = sole_consumer(g, G.tail);
            if (c >= 0 && !absorbed[c] && g->nodes[c].kind == NODE_ADD && g->nodes[c].in[0] != g->nodes[c].in[1] &&
                add_side_identity(g, c, g->nodes[c].in[0] == G.tail ? 0 : 1)) {
                G.other = g->nodes[c].in[0] == G.tail ? g->nodes[c].in[1] : g->nodes[c].in[0];
                G.add = c;
                G.tail = c;
                absorbed[c] = true;
            }
            /* then a ReLU, as after a linear layer */
            /* fall through */
        case NODE_LINEAR:
            c = sole_consumer(g, G.tail);
            if (c >= 0 && !absorbed[c] && g->nodes[c].kind == NODE_RELU) {
                G.relu = true;
                G.tail = c;
                absorbed[c] = true;
            }
            break;
        case NODE_BATCHNORM2D: s = MODA_ERR_UNSUPPORTED; break; /* only folded into a conv */
        case NODE_INPUT: s = MODA_ERR_ARG; break;
        default: break;
        }
        grp[n_grp++] = G;
    }
    /* A group runs where its last node stood. */
    if (s == MODA_OK) qsort(grp, (size_t)n_grp, sizeof(*grp), cmp_tail);
    const graph_node *out = &g->nodes[g->output];
    if (s == MODA_OK && (out->kind != NODE_LINEAR || grp[n_grp - 1].tail != g->output))
        s = MODA_ERR_UNSUPPORTED;
    /* Pass 2: layers and values. */
    if (s == MODA_OK) {
        val[0] = 0;
        pl->values[0] = (fz_value){4, g->in_c, g->in_h, g->in_w, -1};
        pl->n_values = 1;
    }
    for (int gi = 0; s == MODA_OK && gi < n_grp; gi++) {
        const fz_group *G = &grp[gi];
        const graph_node *nd = &g->nodes[G->head], *tl = &g->nodes[G->tail];
        if (nd->kind == NODE_FLATTEN) {
            val[G->head] = val[nd->in[0]];
            continue;
        }
        /* Addends a mapped add reads through a map: gathered first. */
        int other = G->other >= 0 ? val[G->other] : -1, addend[2] = {-1, -1};
        if (G->add >= 0 && graph_add_is_mapped(&g->nodes[G->add])) {
            int side = g->nodes[G->add].in[0] == G->other ? 0 : 1;
            if (g->nodes[G->add].ndim != 4) s = MODA_ERR_UNSUPPORTED;
            else if (!add_side_identity(g, G->add, side) && (other = emit_gather(pl, g, G->add, side, other)) < 0)
                s = MODA_ERR_NOMEM;
        }
        if (nd->kind == NODE_ADD) {
            for (int side = 0; side < 2 && s == MODA_OK; side++) {
                addend[side] = val[nd->in[side]];
                if (add_side_identity(g, G->head, side)) continue;
                if (nd->ndim != 4) s = MODA_ERR_UNSUPPORTED;
                else if ((addend[side] = emit_gather(pl, g, G->head, side, addend[side])) < 0) s = MODA_ERR_NOMEM;
            }
        }
        if (s != MODA_OK) break;
        fz_layer *L = &pl->layers[pl->n_layers];
        L->in = nd->kind == NODE_ADD ? addend[0] : val[nd->in[0]];
        L->other = other;
        L->relu = G->relu;
        L->out = pl->n_values;
        const fz_value *vi = &pl->values[L->in];
        fz_value vo = {4, tl->c, tl->h, tl->w, -1};
        switch (nd->kind) {
        case NODE_CONV2D: {
            L->kind = L_CONV;
            L->conv = nd->p.conv;
            L->k = nd->c;
            if (vi->ndim != 4) {
                s = MODA_ERR_UNSUPPORTED;
                break;
            }
            dnnl_dims_t wd;
            dnnl_memory_desc_t wmd;
            const int gr = nd->p.conv.groups;
            if (gr > 1) {
                wd[0] = gr, wd[1] = nd->c / gr, wd[2] = vi->c / gr, wd[3] = nd->p.conv.kh, wd[4] = nd->p.conv.kw;
                if (dnnl_memory_desc_init_by_tag(&wmd, 5, wd, dnnl_f32, dnnl_goihw) != dnnl_success) s = MODA_ERR_BACKEND;
            } else {
                wd[0] = nd->c, wd[1] = vi->c, wd[2] = nd->p.conv.kh, wd[3] = nd->p.conv.kw;
                if (dnnl_memory_desc_init_by_tag(&wmd, 4, wd, dnnl_f32, dnnl_oihw) != dnnl_success) s = MODA_ERR_BACKEND;
            }
            if (s == MODA_OK) s = freeze_weights(pl, L, g, nd, G->bn, &wmd);
            break;
        }
        case NODE_LINEAR: {
            L->kind = L_IP;
            L->k = nd->c;
            vo = (fz_value){2, nd->c, 1, 1, -1};
            dnnl_dims_t wd = {nd->c, vi->c, vi->h, vi->w};
            dnnl_memory_desc_t wmd;
            if (dnnl_memory_desc_init_by_tag(&wmd, vi->ndim, wd, dnnl_f32, vi->ndim == 4 ? dnnl_oihw : dnnl_oi) !=
                dnnl_success)
                s = MODA_ERR_BACKEND;
            if (s == MODA_OK) s = freeze_weights(pl, L, g, nd, -1, &wmd);
            break;
        }
        case NODE_MAXPOOL2D:
            L->kind = L_MAXPOOL;
            L->pool = nd->p.pool;
            if (vi->ndim != 4) s = MODA_ERR_UNSUPPORTED;
            break;
        case NODE_GLOBAL_AVGPOOL:
            L->kind = L_AVGPOOL;
            vo = (fz_value){4, nd->c, 1, 1, -1}; /* (N, C, 1, 1): stays blocked for the classifier */
            if (vi->ndim != 4) s = MODA_ERR_UNSUPPORTED;
            break;
        case NODE_RELU:
            L->kind = L_RELU;
            vo = *vi;
            vo.last_use = -1;
            break;
        case NODE_ADD:
            L->kind = L_ADD;
            L->other = addend[1];
            vo = *vi;
            vo.c = nd->c;
            vo.last_use = -1;
            break;
        default: s = MODA_ERR_UNSUPPORTED; break;
        }
        if (s != MODA_OK) break;
        pl->values[pl->n_values++] = vo;
        val[G->tail] = L->out;
        pl->n_layers++;
    }
    /* Liveness: each value's last reader; the logits live on. */
    for (int li = 0; s == MODA_OK && li < pl->n_layers; li++) {
        const fz_layer *L = &pl->layers[li];
        if (pl->values[L->in].last_use < li) pl->values[L->in].last_use = li;
        if (L->other >= 0 && pl->values[L->other].last_use < li) pl->values[L->other].last_use = li;
    }
    if (s == MODA_OK) pl->values[pl->layers[pl->n_layers - 1].out].last_use = INT_MAX;
    free(grp);
    free(absorbed);
    free(val);
    return s;
}

static moda_status fz_build(moda_backend *be, const graph *g, int max_batch, void **impl) {
    (void)max_batch; /* batch sizes are built as they come */
    fz_plan *pl = calloc(1, sizeof(*pl));
    if (!pl) return MODA_ERR_NOMEM;
    pl->be = be;
    pl->c = cpu_ctx_of(be);
    pl->in_c = g->in_c;
    pl->in_h = g->in_h;
    pl->in_w = g->in_w;
    pl->classes = g->nodes[g->output].c;
    pl->small_n = 1;
    pl->small_threads = FZ_MEASURE;
    moda_status s = plan_build(pl, g);
    if (s != MODA_OK) {
        plan_destroy(pl);
        return s;
    }
    *impl = pl;
    return MODA_OK;
}

static void fz_set_small(void *impl, int small_n, int threads) {
    fz_plan *pl = impl;
    pl->small_n = small_n;
    pl->small_threads = threads;
}

static size_t fz_bytes(const void *impl) {
    const fz_plan *pl = impl;
    size_t b = sizeof(*pl);
    for (int li = 0; li < pl->n_layers; li++) {
        const fz_layer *L = &pl->layers[li];
        const dnnl_memory_desc_t *md;
        for (int i = 0; i < L->n_w; i++)
            if (dnnl_memory_get_memory_desc(L->w[i], &md) == dnnl_success) b += dnnl_memory_desc_get_size(md);
        if (L->b && dnnl_memory_get_memory_desc(L->b, &md) == dnnl_success) b += dnnl_memory_desc_get_size(md);
    }
    for (int i = 0; i < FZ_MAX_INST; i++)
        if (pl->inst[i]) b += pl->inst[i]->arena_bytes + pl->inst[i]->scratch_bytes;
    return b;
}

static int fz_reorders(const void *impl, int n) {
    const fz_inst *in = inst_find(impl, n);
    return in ? in->reorders : -1;
}

static int fz_threads(const void *impl, int n) {
    const fz_inst *in = inst_find(impl, n);
    return in ? in->threads : -1;
}

static int fz_steps(const void *impl, int n) {
    const fz_inst *in = inst_find(impl, n);
    return in ? in->n_steps : -1;
}

const backend_frozen_ops cpu_frozen_ops = {
    .build = fz_build,
    .destroy = plan_destroy,
    .prepare = fz_prepare,
    .run = fz_run,
    .set_small_batch_threads = fz_set_small,
    .bytes = fz_bytes,
    .reorders = fz_reorders,
    .steps = fz_steps,
    .threads = fz_threads,
};
