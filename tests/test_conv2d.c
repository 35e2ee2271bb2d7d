/* conv2d forward and backward on the CPU backend: against a direct-loop
 * reference, finite differences, bad arguments, and primitive-cache reuse.
 *
 * Tolerances: the reference accumulates in double, the backend in float32
 * over up to ~2000 terms of unit scale; the observed error is ~1.3e-5
 * (absolute, at |ref| ~ 1) at worst, so |ours - ref| <= 2e-4 + 2e-4 |ref|
 * leaves a margin of ~15x. */
#include "test_util.h"

#include "cpu/cpu_internal.h"
#include "ops.h"

#define TOL_ABS 2e-4
#define TOL_REL 2e-4

typedef struct conv_case {
    int n, c, h, w, k, kh, kw, stride, pad, groups, bias;
} conv_case;

/* Odd channel counts, strides 1/2, pads 0/1, kernels 1/3/5, dense, grouped
 * and depthwise (incl. channel multiplier 2), batch 1 and 5, +/- bias. */
static const conv_case cases[] = {
    {1, 3, 9, 9, 8, 3, 3, 1, 1, 1, 1},      /* first-layer style, C=3 */
    {5, 7, 8, 7, 5, 3, 3, 2, 1, 1, 0},      /* non-square, stride 2 */
    {5, 37, 6, 6, 37, 3, 3, 1, 1, 37, 1},   /* depthwise */
    {5, 12, 7, 7, 18, 5, 5, 1, 0, 3, 1},    /* groups 3, 5x5, pad 0 */
    {1, 37, 5, 5, 11, 1, 1, 1, 0, 1, 1},    /* 1x1 */
    {5, 16, 10, 10, 16, 3, 3, 2, 0, 4, 0},  /* groups 4, stride 2, pad 0 */
    {1, 8, 11, 11, 8, 5, 5, 2, 1, 8, 0},    /* depthwise 5x5 stride 2 */
    {5, 64, 8, 8, 32, 3, 3, 1, 1, 1, 1},    /* wide enough for blocked kernels */
    {5, 3, 13, 13, 37, 5, 5, 2, 1, 1, 0},   /* C=3 -> 37, 5x5 stride 2 */
    {1, 7, 5, 6, 14, 1, 1, 2, 1, 7, 1},     /* depthwise multiplier 2, 1x1 pad 1 */
    {5, 37, 9, 9, 7, 3, 3, 1, 1, 1, 1},     /* 37 -> 7 */
};

typedef struct conv_bufs {
    conv_case cc;
    conv2d_params p;
    int ho, wo;
    size_t nx, nw, ny;
    float *x, *w, *b, *y, *dy, *dx, *dw, *db;
} conv_bufs;

static void bufs_init(conv_bufs *t, const conv_case *cc, uint64_t seed) {
    memset(t, 0, sizeof(*t));
    t->cc = *cc;
    t->p = (conv2d_params){cc->kh, cc->kw, cc->stride, cc->stride, cc->pad, cc->pad, cc->groups};
    t->ho = conv_out_size(cc->h, cc->kh, cc->stride, cc->pad);
    t->wo = conv_out_size(cc->w, cc->kw, cc->stride, cc->pad);
    assert_true(t->ho > 0 && t->wo > 0);
    t->nx = (size_t)cc->n * cc->c * cc->h * cc->w;
    t->nw = (size_t)cc->k * (cc->c / cc->groups) * cc->kh * cc->kw;
    t->ny = (size_t)cc->n * cc->k * t->ho * t->wo;
    rng r;
    rng_seed(&r, seed, 1);
    t->x = tu_randn(&r, t->nx, 1.0f);
    t->w = tu_randn(&r, t->nw, 1.0f / sqrtf((float)(cc->c / cc->groups * cc->kh * cc->kw)));
    t->b = tu_randn(&r, (size_t)cc->k, 0.5f);
    t->dy = tu_randn(&r, t->ny, 1.0f);
    t->y = tu_alloc(t->ny);
    t->dx = tu_alloc(t->nx);
    t->dw = tu_alloc(t->nw);
    t->db = tu_alloc((size_t)cc->k);
}

static void bufs_free(conv_bufs *t) {
    free(t->x);
    free(t->w);
    free(t->b);
    free(t->y);
    free(t->dy);
    free(t->dx);
    free(t->dw);
    free(t->db);
}

/* Direct loops in double. x (N,C,H,W), w (K,C/g,kh,kw), y (N,K,Ho,Wo). */
static void ref_fwd(const conv_bufs *t, float *y) {
    const conv_case *c = &t->cc;
    const int cg = c->c / c->groups, kg = c->k / c->groups;
    for (int n = 0; n < c->n; n++)
        for (int k = 0; k < c->k; k++)
            for (int oh = 0; oh < t->ho; oh++)
                for (int ow = 0; ow < t->wo; ow++) {
                    double s = c->bias ? t->b[k] : 0.0;
                    for (int ci = 0; ci < cg; ci++) {
                        const int ch = (k / kg) * cg + ci;
                        for (int i = 0; i < c->kh; i++) {
                            const int ih = oh * c->stride - c->pad + i;
                            if (ih < 0 || ih >= c->h) continue;
                            for (int j = 0; j < c->kw; j++) {
                                const int iw = ow * c->stride - c->pad + j;
                                if (iw < 0 || iw >= c->w) continue;
                                s += (double)t->x[(((size_t)n * c->c + ch) * c->h + ih) * c->w + iw] *
                                     t->w[(((size_t)k * cg + ci) * c->kh + i) * c->kw + j];
                            }
                        }
                    }
                    y[(((size_t)n * c->k + k) * t->ho + oh) * t->wo + ow] = (float)s;
                }
}

static void ref_bwd(const conv_bufs *t, float *dx, float *dw, float *db) {
    const conv_case *c = &t->cc;
    const int cg = c->c / c->groups, kg = c->k / c->groups;
    double *ddx = calloc(t->nx, sizeof(double)), *ddw = calloc(t->nw, sizeof(double));
    assert_non_null(ddx);
    assert_non_null(ddw);
    for (int k = 0; k < c->k; k++) {
        double sb = 0.0;
        for (int n = 0; n < c->n; n++)
            for (int oh = 0; oh < t->ho; oh++)
                for (int ow = 0; ow < t->wo; ow++) {
                    const double g = t->dy[(((size_t)n * c->k + k) * t->ho + oh) * t->wo + ow];
                    sb += g;
                    for (int ci = 0; ci < cg; ci++) {
                        const int ch = (k / kg) * cg + ci;
                        for (int i = 0; i < c->kh; i++) {
                            const int ih = oh * c->stride - c->pad + i;
                            if (ih < 0 || ih >= c->h) continue;
                            for (int j = 0; j < c->kw; j++) {
                                const int iw = ow * c->stride - c->pad + j;
                                if (iw < 0 || iw >= c->w) continue;
                                const size_t xi = (((size_t)n * c->c + ch) * c->h + ih) * c->w + iw;
                                const size_t wi = (((size_t)k * cg + ci) * c->kh + i) * c->kw + j;
                                ddx[xi] += g * t->w[wi];
                                ddw[wi] += g * t->x[xi];
                            }
                        }
                    }
                }
        db[k] = (float)sb;
    }
    for (size_t i = 0; i < t->nx; i++) dx[i] = (float)ddx[i];
    for (size_t i = 0; i < t->nw; i++) dw[i] = (float)ddw[i];
    free(ddx);
    free(ddw);
}

typedef struct conv_views {
    tensor x, w, b, y, dy, dx, dw, db;
} conv_views;

static conv_views views(conv_bufs *t) {
    const conv_case *c = &t->cc;
    return (conv_views){
        .x = tensor_4d(t->x, c->n, c->c, c->h, c->w),
        .w = tensor_4d(t->w, c->k, c->c / c->groups, c->kh, c->kw),
        .b = tensor_1d(t->b, c->k),
        .y = tensor_4d(t->y, c->n, c->k, t->ho, t->wo),
        .dy = tensor_4d(t->dy, c->n, c->k, t->ho, t->wo),
        .dx = tensor_4d(t->dx, c->n, c->c, c->h, c->w),
        .dw = tensor_4d(t->dw, c->k, c->c / c->groups, c->kh, c->kw),
        .db = tensor_1d(t->db, c->k),
    };
}

static void fill_garbage(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = 1e3f;
}

static void test_against_reference(void **state) {
    moda_backend *be = *state;
    for (size_t ci = 0; ci < sizeof(cases) / sizeof(cases[0]); ci++) {
        conv_bufs t;
        bufs_init(&t, &cases[ci], 100 + ci);
        conv_views v = views(&t);
        float *ry = tu_alloc(t.ny), *rdx = tu_alloc(t.nx), *rdw = tu_alloc(t.nw), *rdb = tu_alloc(t.cc.k);
        ref_fwd(&t, ry);
        ref_bwd(&t, rdx, rdw, rdb);

        assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &v.w, t.cc.bias ? &v.b : NULL, &t.p), MODA_OK);
        assert_close(t.y, ry, t.ny, TOL_ABS, TOL_REL);

        /* Backward overwrites whatever the gradients held. */
        fill_garbage(t.dx, t.nx);
        fill_garbage(t.dw, t.nw);
        fill_garbage(t.db, t.cc.k);
        assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &v.db, &v.dy, &v.x, &v.w, &t.p), MODA_OK);
        assert_close(t.dx, rdx, t.nx, TOL_ABS, TOL_REL);
        assert_close(t.dw, rdw, t.nw, TOL_ABS, TOL_REL);
        assert_close(t.db, rdb, (size_t)t.cc.k, TOL_ABS, TOL_REL);

        /* Each gradient on its own (other pointers NULL). */
        fill_garbage(t.dx, t.nx);
        assert_int_equal(conv2d_bwd(be, &v.dx, NULL, NULL, &v.dy, &v.x, &v.w, &t.p), MODA_OK);
        assert_close(t.dx, rdx, t.nx, TOL_ABS, TOL_REL);
        fill_garbage(t.dw, t.nw);
        assert_int_equal(conv2d_bwd(be, NULL, &v.dw, NULL, &v.dy, &v.x, &v.w, &t.p), MODA_OK);
        assert_close(t.dw, rdw, t.nw, TOL_ABS, TOL_REL);
        fill_garbage(t.db, t.cc.k);
        assert_int_equal(conv2d_bwd(be, NULL, NULL, &v.db, &v.dy, &v.x, &v.w, &t.p), MODA_OK);
        assert_close(t.db, rdb, (size_t)t.cc.k, TOL_ABS, TOL_REL);
        /* Nothing asked: a no-op. */
        assert_int_equal(conv2d_bwd(be, NULL, NULL, NULL, &v.dy, &v.x, &v.w, &t.p), MODA_OK);

        free(ry);
        free(rdx);
        free(rdw);
        free(rdb);
        bufs_free(&t);
    }
}

/* loss = sum(r .* conv(x, w, b)) for the fixed random r stored in dy. */
typedef struct fd_ctx {
    moda_backend *be;
    conv_bufs *t;
} fd_ctx;

static double fd_loss(void *vctx) {
    fd_ctx *f = vctx;
    conv_views v = views(f->t);
    assert_int_equal(conv2d_fwd(f->be, &v.y, &v.x, &v.w, f->t->cc.bias ? &v.b : NULL, &f->t->p), MODA_OK);
    return tu_dot(f->t->y, f->t->dy, f->t->ny);
}

static void test_finite_differences(void **state) {
    static const conv_case fd_cases[] = {
        {2, 5, 7, 6, 4, 3, 3, 2, 1, 1, 1},  /* dense, stride 2 */
        {2, 6, 6, 6, 9, 3, 3, 1, 1, 3, 1},  /* grouped */
        {1, 4, 5, 5, 4, 5, 5, 1, 2, 4, 1},  /* depthwise 5x5 */
    };
    moda_backend *be = *state;
    for (size_t ci = 0; ci < sizeof(fd_cases) / sizeof(fd_cases[0]); ci++) {
        conv_bufs t;
        bufs_init(&t, &fd_cases[ci], 7 + ci);
        conv_views v = views(&t);
        assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &v.db, &v.dy, &v.x, &v.w, &t.p), MODA_OK);
        fd_ctx f = {be, &t};
        /* The loss is linear in each input, so central differences are exact
         * up to float rounding of the loss (~1e-6 relative). */
        tu_fd_check("dx", t.x, t.dx, t.nx, fd_loss, &f, 1e-2f, 2e-3, 1e-2, 40);
        tu_fd_check("dw", t.w, t.dw, t.nw, fd_loss, &f, 1e-2f, 2e-3, 1e-2, 40);
        tu_fd_check("db", t.b, t.db, (size_t)t.cc.k, fd_loss, &f, 1e-2f, 2e-3, 1e-2, 40);
        bufs_free(&t);
    }
}

static void test_bad_inputs(void **state) {
    moda_backend *be = *state;
    const conv_case cc = {2, 4, 6, 6, 8, 3, 3, 1, 1, 2, 1};
    conv_bufs t;
    bufs_init(&t, &cc, 3);
    conv_views v = views(&t);
    const conv2d_params p = t.p;
    conv2d_params q;

    /* Sanity: the unmodified arguments are fine. */
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &v.w, &v.b, &p), MODA_OK);
    assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &v.db, &v.dy, &v.x, &v.w, &p), MODA_OK);

    /* NULL pointers. */
    assert_int_equal(conv2d_fwd(NULL, &v.y, &v.x, &v.w, &v.b, &p), MODA_ERR_NULL);
    assert_int_equal(conv2d_fwd(be, NULL, &v.x, &v.w, &v.b, &p), MODA_ERR_NULL);
    assert_int_equal(conv2d_fwd(be, &v.y, NULL, &v.w, &v.b, &p), MODA_ERR_NULL);
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, NULL, &v.b, &p), MODA_ERR_NULL);
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &v.w, &v.b, NULL), MODA_ERR_NULL);
    assert_int_equal(conv2d_bwd(NULL, &v.dx, &v.dw, &v.db, &v.dy, &v.x, &v.w, &p), MODA_ERR_NULL);
    assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &v.db, NULL, &v.x, &v.w, &p), MODA_ERR_NULL);
    assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &v.db, &v.dy, NULL, &v.w, &p), MODA_ERR_NULL);
    assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &v.db, &v.dy, &v.x, NULL, &p), MODA_ERR_NULL);
    assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &v.db, &v.dy, &v.x, &v.w, NULL), MODA_ERR_NULL);
    tensor nodata = v.x;
    nodata.data = NULL;
    assert_int_equal(conv2d_fwd(be, &v.y, &nodata, &v.w, &v.b, &p), MODA_ERR_NULL);
    tensor nodx = v.dx;
    nodx.data = NULL;
    assert_int_equal(conv2d_bwd(be, &nodx, &v.dw, &v.db, &v.dy, &v.x, &v.w, &p), MODA_ERR_NULL);

    /* Wrong ranks. */
    tensor x3 = tensor_make(t.x, 3, (int[]){2, 4, 36});
    assert_int_equal(conv2d_fwd(be, &v.y, &x3, &v.w, &v.b, &p), MODA_ERR_SHAPE);
    tensor w2 = tensor_2d(t.w, 8, 18);
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &w2, &v.b, &p), MODA_ERR_SHAPE);
    tensor b2 = tensor_2d(t.b, 8, 1);
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &v.w, &b2, &p), MODA_ERR_SHAPE);
    tensor y2 = tensor_2d(t.y, 2, 8 * 36);
    assert_int_equal(conv2d_fwd(be, &y2, &v.x, &v.w, &v.b, &p), MODA_ERR_SHAPE);
    tensor dy2 = tensor_2d(t.dy, 2, 8 * 36);
    assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &v.db, &dy2, &v.x, &v.w, &p), MODA_ERR_SHAPE);

    /* Mismatched shapes. */
    tensor wbad = tensor_4d(t.w, 8, 4, 3, 3); /* C/groups is 2 */
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &wbad, &v.b, &p), MODA_ERR_SHAPE);
    tensor wk = tensor_4d(t.w, 8, 2, 3, 2); /* kernel disagrees with p */
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &wk, &v.b, &p), MODA_ERR_SHAPE);
    tensor bbad = tensor_1d(t.b, 7);
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &v.w, &bbad, &p), MODA_ERR_SHAPE);
    tensor ybad = tensor_4d(t.y, 2, 8, 6, 5);
    assert_int_equal(conv2d_fwd(be, &ybad, &v.x, &v.w, &v.b, &p), MODA_ERR_SHAPE);
    tensor ybatch = tensor_4d(t.y, 1, 8, 6, 6);
    assert_int_equal(conv2d_fwd(be, &ybatch, &v.x, &v.w, &v.b, &p), MODA_ERR_SHAPE);
    tensor yk = tensor_4d(t.y, 2, 4, 6, 6);
    assert_int_equal(conv2d_fwd(be, &yk, &v.x, &v.w, &v.b, &p), MODA_ERR_SHAPE);
    tensor dxbad = tensor_4d(t.dx, 2, 4, 6, 5);
    assert_int_equal(conv2d_bwd(be, &dxbad, &v.dw, &v.db, &v.dy, &v.x, &v.w, &p), MODA_ERR_SHAPE);
    tensor dwbad = tensor_4d(t.dw, 8, 2, 3, 2);
    assert_int_equal(conv2d_bwd(be, &v.dx, &dwbad, &v.db, &v.dy, &v.x, &v.w, &p), MODA_ERR_SHAPE);
    assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &bbad, &v.dy, &v.x, &v.w, &p), MODA_ERR_SHAPE);
    tensor dybad = tensor_4d(t.dy, 2, 8, 5, 6);
    assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &v.db, &dybad, &v.x, &v.w, &p), MODA_ERR_SHAPE);
    tensor zero = tensor_4d(t.x, 2, 0, 6, 6);
    assert_int_equal(conv2d_fwd(be, &v.y, &zero, &v.w, &v.b, &p), MODA_ERR_SHAPE);

    /* Groups that do not divide C or K, or are not positive. */
    q = p;
    q.groups = 3; /* divides neither C=4 nor K=8 */
    tensor w3 = tensor_4d(t.w, 8, 1, 3, 3);
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &w3, &v.b, &q), MODA_ERR_ARG);
    q.groups = 4; /* divides C and K ... */
    tensor wk6 = tensor_4d(t.w, 6, 1, 3, 3); /* ... but K=6 is not a multiple of 4 */
    tensor b6 = tensor_1d(t.b, 6);
    tensor y6 = tensor_4d(t.y, 2, 6, 6, 6);
    assert_int_equal(conv2d_fwd(be, &y6, &v.x, &wk6, &b6, &q), MODA_ERR_ARG);
    q.groups = 0;
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &v.w, &v.b, &q), MODA_ERR_ARG);
    q.groups = -2;
    assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &v.db, &v.dy, &v.x, &v.w, &q), MODA_ERR_ARG);

    /* Zero or negative stride, negative pad, zero kernel. */
    q = p;
    q.stride_h = 0;
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &v.w, &v.b, &q), MODA_ERR_ARG);
    q = p;
    q.stride_w = -1;
    assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, &v.db, &v.dy, &v.x, &v.w, &q), MODA_ERR_ARG);
    q = p;
    q.pad_w = -1;
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &v.w, &v.b, &q), MODA_ERR_ARG);
    q = p;
    q.kh = 0;
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &v.w, &v.b, &q), MODA_ERR_ARG);

    /* Kernel larger than the padded input: no output. */
    float *big = tu_alloc(8 * 2 * 9 * 9);
    tensor wbig = tensor_4d(big, 8, 2, 9, 9);
    q = p;
    q.kh = q.kw = 9;
    q.pad_h = q.pad_w = 1; /* 6 + 2 < 9 */
    tensor y1 = tensor_4d(t.y, 2, 8, 1, 1);
    assert_int_equal(conv2d_fwd(be, &y1, &v.x, &wbig, &v.b, &q), MODA_ERR_SHAPE);
    assert_int_equal(conv2d_bwd(be, &v.dx, NULL, NULL, &y1, &v.x, &wbig, &q), MODA_ERR_SHAPE);
    free(big);

    /* conv_out_size edge cases. */
    assert_int_equal(conv_out_size(6, 3, 1, 1), 6);
    assert_int_equal(conv_out_size(7, 3, 2, 1), 4);
    assert_int_equal(conv_out_size(2, 3, 1, 0), 0);
    assert_int_equal(conv_out_size(2, 5, 2, 1), 0); /* would truncate to 1 without the guard */
    assert_int_equal(conv_out_size(6, 3, 0, 1), 0);
    assert_int_equal(conv_out_size(6, 0, 1, 1), 0);
    assert_int_equal(conv_out_size(6, 3, 1, -1), 0);
    assert_int_equal(conv_out_size(1, 1, 1, 0x7fffffff), 0); /* overflows int */

    bufs_free(&t);
}

static void run_all(moda_backend *be, conv_bufs *t) {
    conv_views v = views(t);
    assert_int_equal(conv2d_fwd(be, &v.y, &v.x, &v.w, t->cc.bias ? &v.b : NULL, &t->p), MODA_OK);
    assert_int_equal(conv2d_bwd(be, &v.dx, &v.dw, t->cc.bias ? &v.db : NULL, &v.dy, &v.x, &v.w, &t->p),
                     MODA_OK);
}

typedef struct snapshot {
    float *y, *dx, *dw, *db;
} snapshot;

static snapshot snap(const conv_bufs *t) {
    snapshot s = {tu_alloc(t->ny), tu_alloc(t->nx), tu_alloc(t->nw), tu_alloc((size_t)t->cc.k)};
    memcpy(s.y, t->y, t->ny * sizeof(float));
    memcpy(s.dx, t->dx, t->nx * sizeof(float));
    memcpy(s.dw, t->dw, t->nw * sizeof(float));
    memcpy(s.db, t->db, (size_t)t->cc.k * sizeof(float));
    return s;
}

static void assert_same(const conv_bufs *t, const snapshot *s) {
    assert_memory_equal(t->y, s->y, t->ny * sizeof(float));
    assert_memory_equal(t->dx, s->dx, t->nx * sizeof(float));
    assert_memory_equal(t->dw, s->dw, t->nw * sizeof(float));
    assert_memory_equal(t->db, s->db, (size_t)t->cc.k * sizeof(float));
}

static void snap_free(snapshot *s) {
    free(s->y);
    free(s->dx);
    free(s->dw);
    free(s->db);
}

static void test_cache_reuse(void **state) {
    moda_backend *be = *state;
    const cpu_ctx *c = cpu_ctx_of(be);
    conv_bufs a, b;
    bufs_init(&a, &cases[7], 11);
    bufs_init(&b, &cases[2], 12);

    run_all(be, &a);
    snapshot sa = snap(&a);
    const int entries = c->n_entries;
    assert_true(entries >= 2); /* one forward, one backward plan */
    run_all(be, &a);
    assert_same(&a, &sa);
    assert_int_equal(c->n_entries, entries); /* nothing new was built */

    run_all(be, &b);
    snapshot sb = snap(&b);
    const int entries2 = c->n_entries;
    for (int i = 0; i < 3; i++) {
        run_all(be, &a);
        assert_same(&a, &sa);
        run_all(be, &b);
        assert_same(&b, &sb);
    }
    assert_int_equal(c->n_entries, entries2);

    /* Same shape, new data: the cached plan binds the new pointers. */
    conv_bufs a2;
    bufs_init(&a2, &cases[7], 99);
    run_all(be, &a2);
    float *ry = tu_alloc(a2.ny);
    ref_fwd(&a2, ry);
    assert_close(a2.y, ry, a2.ny, TOL_ABS, TOL_REL);
    assert_int_equal(c->n_entries, entries2);
    free(ry);

    snap_free(&sa);
    snap_free(&sb);
    bufs_free(&a);
    bufs_free(&a2);
    bufs_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        /* A backend each: the plan cache starts empty in every test. */
        cmocka_unit_test_setup_teardown(test_against_reference, tu_backend_setup, tu_backend_teardown),
        cmocka_unit_test_setup_teardown(test_finite_differences, tu_backend_setup, tu_backend_teardown),
        cmocka_unit_test_setup_teardown(test_bad_inputs, tu_backend_setup, tu_backend_teardown),
        cmocka_unit_test_setup_teardown(test_cache_reuse, tu_backend_setup, tu_backend_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
