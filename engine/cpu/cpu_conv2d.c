/* 2-D convolution on oneDNN: forward, backward-data and backward-weights
 * (with bias) primitives.
 *
 * The API hands us plain NCHW / (g)oihw tensors. Each primitive is created
 * with format `any` so it picks its fastest layout (nChw8c and blocked
 * weights on AVX2); plain tensors are reordered into and out of buffers in
 * that layout around it. Everything a shape needs (primitives, reorders,
 * blocked buffers, memory objects) is built once into a `conv_plan`, kept in
 * the backend's cache, and a later call with the same shape only rebinds the
 * caller's pointers and executes: no creation, no allocation. */
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

/* Tensors a plan binds to caller memory on each call. */
enum { ROLE_X, ROLE_W, ROLE_B, ROLE_Y, ROLE_DX, ROLE_DW, ROLE_DB, ROLE_DY, N_ROLES };

#define PLAN_MAX_STEPS 16
#define PLAN_MAX_MEMS 16
#define STEP_MAX_ARGS 8

typedef struct conv_step {
    dnnl_primitive_t prim; /* owned */
    dnnl_memory_t scratch; /* owned, NULL when the primitive needs none */
    int n_args;
    dnnl_exec_arg_t args[STEP_MAX_ARGS];
} conv_step;

typedef struct conv_plan {
    conv_step steps[PLAN_MAX_STEPS]; /* executed in order */
    int n_steps;
    conv_step outs[PLAN_MAX_STEPS]; /* output reorders, appended after the compute steps */
    int n_outs;
    dnnl_memory_t user[N_ROLES]; /* plain layout, handle rebound per call; NULL if unused */
    dnnl_memory_t mems[PLAN_MAX_MEMS]; /* library-allocated buffers in primitive layouts */
    int mem_role[PLAN_MAX_MEMS];       /* role a buffer mirrors (-1: private) */
    int n_mems;
    size_t scratch_bytes; /* largest scratchpad of any step */
} conv_plan;

/* Cache key: a tag that no other op uses, then every size that shapes the
 * primitives. All ints, so no padding bytes reach memcmp. */
typedef struct conv_key {
    char tag[8]; /* "conv2dF" or "conv2dB" */
    int n, c, h, w, k, kh, kw, sh, sw, ph, pw, groups;
    int flags;
} conv_key;

enum { F_BIAS = 1, F_DX = 2, F_DW = 4, F_DB = 8 };

static void step_destroy(conv_step *s) {
    if (s->prim) dnnl_primitive_destroy(s->prim);
    if (s->scratch) dnnl_memory_destroy(s->scratch);
}

static void plan_destroy(void *v) {
    conv_plan *pl = v;
    if (!pl) return;
    for (int i = 0; i < pl->n_steps; i++) step_destroy(&pl->steps[i]);
    for (int i = 0; i < pl->n_outs; i++) step_destroy(&pl->outs[i]);
    for (int i = 0; i < N_ROLES; i++)
        if (pl->user[i]) dnnl_memory_destroy(pl->user[i]);
    for (int i = 0; i < pl->n_mems; i++) dnnl_memory_destroy(pl->mems[i]);
    free(pl);
}

/* Append a primitive made from `pd` (which this takes over and destroys) to
 * `list`, with a scratchpad memory if it asks for one. */
static moda_status plan_add_step(cpu_ctx *c, conv_plan *pl, conv_step *list, int *n, dnnl_primitive_desc_t pd,
                                 int n_args, const dnnl_exec_arg_t *args) {
    if (*n == PLAN_MAX_STEPS || n_args > STEP_MAX_ARGS - 1) {
        dnnl_primitive_desc_destroy(pd);
        return MODA_ERR_BACKEND;
    }
    conv_step *s = &list[*n];
    memset(s, 0, sizeof(*s));
    size_t sb = cpu_pd_scratch_bytes(pd);
    dnnl_status_t st = dnnl_primitive_create(&s->prim, pd);
    if (st == dnnl_success && sb > 0)
        st = dnnl_memory_create(&s->scratch, dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0),
                                c->engine, DNNL_MEMORY_NONE);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) {
        step_destroy(s);
        return MODA_ERR_BACKEND;
    }
    memcpy(s->args, args, (size_t)n_args * sizeof(*args));
    s->n_args = n_args;
    if (s->scratch) s->args[s->n_args++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->scratch};
    if (sb > pl->scratch_bytes) pl->scratch_bytes = sb;
    (*n)++;
    return MODA_OK;
}

/* A library-allocated buffer of layout `md`, owned by the plan. */
static moda_status plan_new_mem(cpu_ctx *c, conv_plan *pl, int role, const dnnl_memory_desc_t *md,
                                dnnl_memory_t *out) {
    if (pl->n_mems == PLAN_MAX_MEMS) return MODA_ERR_BACKEND;
    if (dnnl_memory_create(out, md, c->engine, DNNL_MEMORY_ALLOCATE) != dnnl_success) return MODA_ERR_BACKEND;
    pl->mems[pl->n_mems] = *out;
    pl->mem_role[pl->n_mems++] = role;
    return MODA_OK;
}

static moda_status plan_reorder(cpu_ctx *c, conv_plan *pl, conv_step *list, int *n, dnnl_memory_t from,
                                dnnl_memory_t to) {
    const dnnl_memory_desc_t *fmd, *tmd;
    DNNL_TRY(dnnl_memory_get_memory_desc(from, &fmd));
    DNNL_TRY(dnnl_memory_get_memory_desc(to, &tmd));
    dnnl_primitive_attr_t attr = cpu_attr_new();
    if (!attr) return MODA_ERR_BACKEND;
    dnnl_primitive_desc_t pd = NULL;
    dnnl_status_t st = dnnl_reorder_primitive_desc_create(&pd, fmd, c->engine, tmd, c->engine, attr);
    dnnl_primitive_attr_destroy(attr);
    if (st != dnnl_success) return MODA_ERR_BACKEND;
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return plan_add_step(c, pl, list, n, pd, 2, args);
}

/* Memory to feed a primitive that wants input `role` in layout `want`: the
 * caller's tensor itself when the layouts agree, else a buffer filled by a
 * reorder step. A buffer already made for the same role and layout (dy for
 * both backward primitives) is shared. */
static moda_status plan_input(cpu_ctx *c, conv_plan *pl, int role, const dnnl_memory_desc_t *want,
                              dnnl_memory_t *out) {
    const dnnl_memory_desc_t *umd;
    DNNL_TRY(dnnl_memory_get_memory_desc(pl->user[role], &umd));
    if (dnnl_memory_desc_equal(umd, want)) {
        *out = pl->user[role];
        return MODA_OK;
    }
    for (int i = 0; i < pl->n_mems; i++) {
        const dnnl_memory_desc_t *md;
        DNNL_TRY(dnnl_memory_get_memory_desc(pl->mems[i], &md));
        if (pl->mem_role[i] == role && dnnl_memory_desc_equal(md, want)) {
            *out = pl->mems[i];
            return MODA_OK;
        }
    }
    MODA_TRY(plan_new_mem(c, pl, role, want, out));
    return plan_reorder(c, pl, pl->steps, &pl->n_steps, pl->user[role], *out);
}

/* Memory for a primitive to write output `role` in layout `want`; when that
 * is not the caller's layout, a reorder back runs after all compute steps. */
static moda_status plan_output(cpu_ctx *c, conv_plan *pl, int role, const dnnl_memory_desc_t *want,
                               dnnl_memory_t *out) {
    const dnnl_memory_desc_t *umd;
    DNNL_TRY(dnnl_memory_get_memory_desc(pl->user[role], &umd));
    if (dnnl_memory_desc_equal(umd, want)) {
        *out = pl->user[role];
        return MODA_OK;
    }
    MODA_TRY(plan_new_mem(c, pl, -1, want, out));
    return plan_reorder(c, pl, pl->outs, &pl->n_outs, *out, pl->user[role]);
}

/* Plain memory descriptors of every tensor the op can touch. */
typedef struct conv_mds {
    dnnl_memory_desc_t x, w, b, y;
    dnnl_memory_desc_t x_any, w_any, y_any;
    dnnl_dims_t strides, pad;
} conv_mds;

static moda_status conv_mds_init(conv_mds *m, const conv_key *k) {
    const int ho = (k->h + 2 * k->ph - k->kh) / k->sh + 1;
    const int wo = (k->w + 2 * k->pw - k->kw) / k->sw + 1;
    const dnnl_dims_t xd = {k->n, k->c, k->h, k->w}, yd = {k->n, k->k, ho, wo}, bd = {k->k};
    dnnl_dims_t wd = {k->k, k->c, k->kh, k->kw};
    int wnd = 4;
    dnnl_format_tag_t wtag = dnnl_oihw;
    if (k->groups > 1) { /* (K, C/g, kh, kw) is goihw with the group split off K */
        const dnnl_dims_t gd = {k->groups, k->k / k->groups, k->c / k->groups, k->kh, k->kw};
        memcpy(wd, gd, sizeof(gd));
        wnd = 5;
        wtag = dnnl_goihw;
    }
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->x, 4, xd, dnnl_f32, dnnl_nchw));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->y, 4, yd, dnnl_f32, dnnl_nchw));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->w, wnd, wd, dnnl_f32, wtag));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->b, 1, bd, dnnl_f32, dnnl_x));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->x_any, 4, xd, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->y_any, 4, yd, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(dnnl_memory_desc_init_by_tag(&m->w_any, wnd, wd, dnnl_f32, dnnl_format_tag_any));
    m->strides[0] = k->sh;
    m->strides[1] = k->sw;
    m->pad[0] = k->ph;
    m->pad[1] = k->pw;
    return MODA_OK;
}

static moda_status plan_user(cpu_ctx *c, conv_plan *pl, int role, const dnnl_memory_desc_t *md) {
    DNNL_TRY(dnnl_memory_create(&pl->user[role], md, c->engine, DNNL_MEMORY_NONE));
    return MODA_OK;
}

/* Primitive descriptor with a user-managed scratchpad; NULL on failure. */
static dnnl_primitive_desc_t pd_create(cpu_ctx *c, const dnnl_convolution_desc_t *cd,
                                       const_dnnl_primitive_desc_t hint) {
    dnnl_primitive_attr_t attr = cpu_attr_new();
    if (!attr) return NULL;
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_desc_create(&pd, cd, attr, c->engine, hint) != dnnl_success) pd = NULL;
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

static dnnl_primitive_desc_t fwd_pd_create(cpu_ctx *c, const conv_mds *m, int bias) {
    dnnl_convolution_desc_t cd;
    if (dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &m->x_any,
                                           &m->w_any, bias ? &m->b : NULL, &m->y_any, m->strides, m->pad,
                                           m->pad) != dnnl_success)
        return NULL;
    return pd_create(c, &cd, NULL);
}

static moda_status plan_build_fwd(cpu_ctx *c, conv_plan *pl, const conv_key *k) {
    conv_mds m;
    MODA_TRY(conv_mds_init(&m, k));
    const int bias = k->flags & F_BIAS;
    MODA_TRY(plan_user(c, pl, ROLE_X, &m.x));
    MODA_TRY(plan_user(c, pl, ROLE_W, &m.w));
    MODA_TRY(plan_user(c, pl, ROLE_Y, &m.y));
    if (bias) MODA_TRY(plan_user(c, pl, ROLE_B, &m.b));

    dnnl_primitive_desc_t pd = fwd_pd_create(c, &m, bias);
    if (!pd) return MODA_ERR_BACKEND;
    dnnl_exec_arg_t args[4];
    int na = 0;
    moda_status s;
    dnnl_memory_t mem;
    if ((s = plan_input(c, pl, ROLE_X, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), &mem))) goto fail;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mem};
    if ((s = plan_input(c, pl, ROLE_W, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &mem))) goto fail;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mem};
    if (bias) {
        if ((s = plan_input(c, pl, ROLE_B, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1), &mem)))
            goto fail;
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mem};
    }
    if ((s = plan_output(c, pl, ROLE_Y, dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), &mem))) goto fail;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mem};
    return plan_add_step(c, pl, pl->steps, &pl->n_steps, pd, na, args);
fail:
    dnnl_primitive_desc_destroy(pd);
    return s;
}

static moda_status plan_build_bwd_data(cpu_ctx *c, conv_plan *pl, const conv_mds *m,
                                       const_dnnl_primitive_desc_t hint) {
    dnnl_convolution_desc_t cd;
    DNNL_TRY(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &m->x_any, &m->w_any,
                                                      &m->y_any, m->strides, m->pad, m->pad));
    dnnl_primitive_desc_t pd = pd_create(c, &cd, hint);
    if (!pd) return MODA_ERR_BACKEND;
    dnnl_exec_arg_t args[3];
    moda_status s;
    dnnl_memory_t mem;
    if ((s = plan_input(c, pl, ROLE_DY, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0), &mem)))
        goto fail;
    args[0] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, mem};
    if ((s = plan_input(c, pl, ROLE_W, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), &mem)))
        goto fail;
    args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mem};
    if ((s = plan_output(c, pl, ROLE_DX, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_src_md, 0), &mem)))
        goto fail;
    args[2] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, mem};
    return plan_add_step(c, pl, pl->steps, &pl->n_steps, pd, 3, args);
fail:
    dnnl_primitive_desc_destroy(pd);
    return s;
}

/* Weight and/or bias gradient. With only db wanted, the weight gradient is
 * still computed, into a private buffer: a rare case, and it keeps one path. */
static moda_status plan_build_bwd_weights(cpu_ctx *c, conv_plan *pl, const conv_mds *m, int want_dw,
                                          int want_db, const_dnnl_primitive_desc_t hint) {
    dnnl_convolution_desc_t cd;
    DNNL_TRY(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &m->x_any, &m->w_any,
                                                         want_db ? &m->b : NULL, &m->y_any, m->strides,
                                                         m->pad, m->pad));
    dnnl_primitive_desc_t pd = pd_create(c, &cd, hint);
    if (!pd) return MODA_ERR_BACKEND;
    dnnl_exec_arg_t args[4];
    int na = 0;
    moda_status s;
    dnnl_memory_t mem;
    if ((s = plan_input(c, pl, ROLE_X, dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), &mem))) goto fail;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mem};
    if ((s = plan_input(c, pl, ROLE_DY, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_dst_md, 0), &mem)))
        goto fail;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, mem};
    const dnnl_memory_desc_t *dwmd = dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 0);
    s = want_dw ? plan_output(c, pl, ROLE_DW, dwmd, &mem) : plan_new_mem(c, pl, -1, dwmd, &mem);
    if (s) goto fail;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, mem};
    if (want_db) {
        if ((s = plan_output(c, pl, ROLE_DB, dnnl_primitive_desc_query_md(pd, dnnl_query_diff_weights_md, 1),
                             &mem)))
            goto fail;
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, mem};
    }
    return plan_add_step(c, pl, pl->steps, &pl->n_steps, pd, na, args);
fail:
    dnnl_primitive_desc_destroy(pd);
    return s;
}

static moda_status plan_build_bwd(cpu_ctx *c, conv_plan *pl, const conv_key *k) {
    conv_mds m;
    MODA_TRY(conv_mds_init(&m, k));
    const int want_dx = k->flags & F_DX, want_dw = k->flags & F_DW, want_db = k->flags & F_DB;
    MODA_TRY(plan_user(c, pl, ROLE_DY, &m.y));
    if (want_dx) {
        MODA_TRY(plan_user(c, pl, ROLE_W, &m.w));
        MODA_TRY(plan_user(c, pl, ROLE_DX, &m.x));
    }
    if (want_dw || want_db) MODA_TRY(plan_user(c, pl, ROLE_X, &m.x));
    if (want_dw) MODA_TRY(plan_user(c, pl, ROLE_DW, &m.w));
    if (want_db) MODA_TRY(plan_user(c, pl, ROLE_DB, &m.b));

    /* Backward primitives are chosen to match a forward one. */
    dnnl_primitive_desc_t hint = fwd_pd_create(c, &m, want_db);
    if (!hint) return MODA_ERR_BACKEND;
    moda_status s = MODA_OK;
    if (want_dx) s = plan_build_bwd_data(c, pl, &m, hint);
    if (s == MODA_OK && (want_dw || want_db)) s = plan_build_bwd_weights(c, pl, &m, want_dw, want_db, hint);
    dnnl_primitive_desc_destroy(hint);
    return s;
}

/* The cached plan for `key`, built on first use. */
static moda_status plan_get(cpu_ctx *c, const conv_key *key, conv_plan **out) {
    conv_plan *pl = cpu_cache_get(c, key, sizeof(*key));
    if (!pl) {
        pl = calloc(1, sizeof(*pl));
        if (!pl) return MODA_ERR_NOMEM;
        const int fwd = key->tag[6] == 'F'; /* the tag's last letter is the direction */
        moda_status s = fwd ? plan_build_fwd(c, pl, key) : plan_build_bwd(c, pl, key);
        /* Grow the shared scratchpad now so that running never allocates. */
        if (s == MODA_OK && pl->scratch_bytes && !cpu_scratch(c, pl->scratch_bytes)) s = MODA_ERR_NOMEM;
        if (s != MODA_OK) {
            plan_destroy(pl);
            return s;
        }
        MODA_TRY(cpu_cache_put(c, key, sizeof(*key), pl, plan_destroy));
    }
    *out = pl;
    return MODA_OK;
}

static moda_status step_run(cpu_ctx *c, conv_step *s, void *scratch) {
    if (s->scratch) DNNL_TRY(dnnl_memory_set_data_handle(s->scratch, scratch));
    DNNL_TRY(dnnl_primitive_execute(s->prim, c->stream, s->n_args, s->args));
    return MODA_OK;
}

/* Bind the caller's tensors, run every step, and wait for the stream. */
static moda_status plan_run(cpu_ctx *c, conv_plan *pl, void *const ptr[N_ROLES]) {
    for (int r = 0; r < N_ROLES; r++)
        if (pl->user[r]) DNNL_TRY(dnnl_memory_set_data_handle(pl->user[r], ptr[r]));
    /* The scratchpad is shared with other ops and may have moved since the
     * plan was built; it is already large enough, so this does not allocate. */
    void *scratch = pl->scratch_bytes ? cpu_scratch(c, pl->scratch_bytes) : NULL;
    if (pl->scratch_bytes && !scratch) return MODA_ERR_NOMEM;
    for (int i = 0; i < pl->n_steps; i++) MODA_TRY(step_run(c, &pl->steps[i], scratch));
    for (int i = 0; i < pl->n_outs; i++) MODA_TRY(step_run(c, &pl->outs[i], scratch));
    DNNL_TRY(dnnl_stream_wait(c->stream));
    return MODA_OK;
}

static conv_key key_make(char dir, const tensor *x, const tensor *w, const conv2d_params *p, int flags) {
    conv_key k;
    memset(&k, 0, sizeof(k));
    memcpy(k.tag, dir == 'F' ? "conv2dF" : "conv2dB", 8);
    k.n = x->shape[0];
    k.c = x->shape[1];
    k.h = x->shape[2];
    k.w = x->shape[3];
    k.k = w->shape[0];
    k.kh = p->kh;
    k.kw = p->kw;
    k.sh = p->stride_h;
    k.sw = p->stride_w;
    k.ph = p->pad_h;
    k.pw = p->pad_w;
    k.groups = p->groups;
    k.flags = flags;
    return k;
}

moda_status cpu_conv2d_fwd(moda_backend *be, tensor *y, const tensor *x, const tensor *w, const tensor *b,
                           const conv2d_params *p) {
    cpu_ctx *c = cpu_ctx_of(be);
    const conv_key key = key_make('F', x, w, p, b ? F_BIAS : 0);
    conv_plan *pl;
    MODA_TRY(plan_get(c, &key, &pl));
    void *ptr[N_ROLES] = {0};
    ptr[ROLE_X] = x->data;
    ptr[ROLE_W] = w->data;
    ptr[ROLE_B] = b ? b->data : NULL;
    ptr[ROLE_Y] = y->data;
    return plan_run(c, pl, ptr);
}

moda_status cpu_conv2d_bwd(moda_backend *be, tensor *dx, tensor *dw, tensor *db, const tensor *dy,
                           const tensor *x, const tensor *w, const conv2d_params *p) {
    const int flags = (dx ? F_DX : 0) | (dw ? F_DW : 0) | (db ? F_DB : 0);
    if (!flags) return MODA_OK;
    cpu_ctx *c = cpu_ctx_of(be);
    const conv_key key = key_make('B', x, w, p, flags);
    conv_plan *pl;
    MODA_TRY(plan_get(c, &key, &pl));
    void *ptr[N_ROLES] = {0};
    ptr[ROLE_X] = x->data;
    ptr[ROLE_W] = w->data;
    ptr[ROLE_DY] = dy->data;
    ptr[ROLE_DX] = dx ? dx->data : NULL;
    ptr[ROLE_DW] = dw ? dw->data : NULL;
    ptr[ROLE_DB] = db ? db->data : NULL;
    return plan_run(c, pl, ptr);
}
