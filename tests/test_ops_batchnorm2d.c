/* Batch normalisation: train mode (batch statistics, saved mean and biased
 * variance, running-stat update with the unbiased variance), eval mode and
 * backward against double-precision loops; finite-difference gradients for
 * x, gamma and beta; argument validation. */
#include "test_util.h"

#include "ops.h"

typedef struct bn_ref {
    double *mean, *var; /* (C), biased */
} bn_ref;

typedef struct bn_case {
    moda_backend *be;
    tensor x, y, gamma, beta, mean, var, rmean, rvar;
    const batchnorm_params *p;
    const float *r; /* loss = sum(r .* y), train mode */
} bn_case;

static double bn_loss(void *ctx) {
    bn_case *c = ctx;
    assert_int_equal(batchnorm2d_fwd_train(c->be, &c->y, &c->mean, &c->var, &c->rmean, &c->rvar, &c->x,
                                           &c->gamma, &c->beta, c->p),
                     MODA_OK);
    return tu_dot(c->r, c->y.data, tensor_numel(&c->y));
}

static void ref_stats(double *mean, double *var, const float *x, int n, int ch, size_t hw) {
    double cnt = (double)n * (double)hw;
    for (int k = 0; k < ch; k++) {
        double s = 0.0, q = 0.0;
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < hw; j++) s += x[((size_t)i * ch + k) * hw + j];
        mean[k] = s / cnt;
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < hw; j++) {
                double d = x[((size_t)i * ch + k) * hw + j] - mean[k];
                q += d * d;
            }
        var[k] = q / cnt;
    }
}

static void ref_apply(float *y, const float *x, const float *gamma, const float *beta, const double *mean,
                      const double *var, double eps, int n, int ch, size_t hw) {
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ch; k++)
            for (size_t j = 0; j < hw; j++) {
                size_t o = ((size_t)i * ch + k) * hw + j;
                y[o] = (float)(gamma[k] * (x[o] - mean[k]) / sqrt(var[k] + eps) + beta[k]);
            }
}

/* dx = gamma*inv/cnt * (cnt*dy - sum(dy) - xhat*sum(dy*xhat)). */
static void ref_bwd(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                    const float *gamma, const double *mean, const double *var, double eps, int n, int ch,
                    size_t hw) {
    double cnt = (double)n * (double)hw;
    for (int k = 0; k < ch; k++) {
        double inv = 1.0 / sqrt(var[k] + eps), sb = 0.0, sg = 0.0;
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < hw; j++) {
                size_t o = ((size_t)i * ch + k) * hw + j;
                sb += dy[o];
                sg += dy[o] * (x[o] - mean[k]) * inv;
            }
        dgamma[k] = (float)sg;
        dbeta[k] = (float)sb;
        for (int i = 0; i < n; i++)
            for (size_t j = 0; j < hw; j++) {
                size_t o = ((size_t)i * ch + k) * hw + j;
                double xhat = (x[o] - mean[k]) * inv;
                dx[o] = (float)(gamma[k] * inv / cnt * (cnt * dy[o] - sb - xhat * sg));
            }
    }
}

static void to_float(float *dst, const double *src, int n) {
    for (int i = 0; i < n; i++) dst[i] = (float)src[i];
}

static void check_case(moda_backend *be, rng *g, int n, int ch, int h, int w, batchnorm_params p) {
    size_t hw = (size_t)h * w, nx = (size_t)n * ch * hw;
    double cnt = (double)n * (double)hw;
    /* Inputs with a per-channel offset and scale, as after a conv layer. */
    float *px = tu_randn(g, nx, 1.0f);
    for (size_t o = 0; o < nx; o++) {
        int k = (int)(o / hw % (size_t)ch);
        px[o] = px[o] * (0.5f + 0.1f * (float)(k % 5)) + (float)(k % 3) - 1.0f;
    }
    float *py = tu_alloc(nx), *pr = tu_randn(g, nx, 1.0f), *pdx = tu_alloc(nx);
    float *pg = tu_randn(g, ch, 1.0f), *pb = tu_randn(g, ch, 1.0f);
    float *pm = tu_alloc(ch), *pv = tu_alloc(ch), *prm = tu_randn(g, ch, 1.0f), *prv = tu_alloc(ch);
    float *pdg = tu_alloc(ch), *pdb = tu_alloc(ch);
    float *ry = tu_alloc(nx), *rdx = tu_alloc(nx), *rdg = tu_alloc(ch), *rdb = tu_alloc(ch),
          *rf = tu_alloc(ch);
    float *rrm = tu_alloc(ch), *rrv = tu_alloc(ch);
    double *mean = calloc((size_t)ch, sizeof(double)), *var = calloc((size_t)ch, sizeof(double));
    double *rvar_d = calloc((size_t)ch, sizeof(double));
    assert_non_null(mean), assert_non_null(var), assert_non_null(rvar_d);
    for (int k = 0; k < ch; k++) prv[k] = 0.5f + rng_uniform(g);

    tensor x = tensor_4d(px, n, ch, h, w), y = tensor_4d(py, n, ch, h, w);
    tensor dy = tensor_4d(pr, n, ch, h, w), dx = tensor_4d(pdx, n, ch, h, w);
    tensor gamma = tensor_1d(pg, ch), beta = tensor_1d(pb, ch), sm = tensor_1d(pm, ch),
           sv = tensor_1d(pv, ch);
    tensor rm = tensor_1d(prm, ch), rv = tensor_1d(prv, ch), dg = tensor_1d(pdg, ch), db = tensor_1d(pdb, ch);

    /* Train forward. Float statistics over up to ~1e4 values against
     * double: 1e-5 on mean/var, 1e-4 on normalised outputs (|y| ~ 3). */
    ref_stats(mean, var, px, n, ch, hw);
    for (int k = 0; k < ch; k++) {
        double unbiased = var[k] * cnt / (cnt - 1.0);
        rrm[k] = (float)((1.0 - p.momentum) * prm[k] + p.momentum * mean[k]);
        rrv[k] = (float)((1.0 - p.momentum) * prv[k] + p.momentum * unbiased);
    }
    ref_apply(ry, px, pg, pb, mean, var, p.eps, n, ch, hw);
    assert_int_equal(batchnorm2d_fwd_train(be, &y, &sm, &sv, &rm, &rv, &x, &gamma, &beta, &p), MODA_OK);
    to_float(rf, mean, ch);
    assert_close(pm, rf, ch, 1e-5, 1e-5);
    to_float(rf, var, ch);
    assert_close(pv, rf, ch, 1e-5, 1e-5);
    assert_close(prm, rrm, ch, 1e-5, 1e-5);
    assert_close(prv, rrv, ch, 1e-5, 1e-5);
    assert_close(py, ry, nx, 1e-4, 1e-4);

    /* Eval forward with the (just updated) running statistics. */
    for (int k = 0; k < ch; k++) rvar_d[k] = prv[k];
    double *rmean_d = calloc((size_t)ch, sizeof(double));
    assert_non_null(rmean_d);
    for (int k = 0; k < ch; k++) rmean_d[k] = prm[k];
    ref_apply(ry, px, pg, pb, rmean_d, rvar_d, p.eps, n, ch, hw);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y, &x, &gamma, &beta, &rm, &rv, &p), MODA_OK);
    assert_close(py, ry, nx, 1e-5, 1e-5);
    free(rmean_d);

    /* Backward from the saved (float) statistics; reference in double from
     * the same saved values. Sums of up to ~1e4 terms: 1e-4 abs + rel
     * (dgamma/dbeta reach ~1e2 in magnitude). */
    for (int k = 0; k < ch; k++) mean[k] = pm[k], var[k] = pv[k];
    ref_bwd(rdx, rdg, rdb, pr, px, pg, mean, var, p.eps, n, ch, hw);
    assert_int_equal(batchnorm2d_bwd(be, &dx, &dg, &db, &dy, &x, &gamma, &sm, &sv, &p), MODA_OK);
    assert_close(pdx, rdx, nx, 1e-4, 1e-4);
    assert_close(pdg, rdg, ch, 1e-4, 1e-4);
    assert_close(pdb, rdb, ch, 1e-4, 1e-4);
    /* Every subset of requested gradients gives the same values. */
    memset(pdx, 0, nx * sizeof(float));
    assert_int_equal(batchnorm2d_bwd(be, &dx, NULL, NULL, &dy, &x, &gamma, &sm, &sv, &p), MODA_OK);
    assert_close(pdx, rdx, nx, 1e-4, 1e-4);
    memset(pdg, 0, ch * sizeof(float)), memset(pdb, 0, ch * sizeof(float));
    assert_int_equal(batchnorm2d_bwd(be, NULL, &dg, &db, &dy, &x, &gamma, &sm, &sv, &p), MODA_OK);
    assert_close(pdg, rdg, ch, 1e-4, 1e-4);
    assert_close(pdb, rdb, ch, 1e-4, 1e-4);
    memset(pdg, 0, ch * sizeof(float));
    assert_int_equal(batchnorm2d_bwd(be, NULL, &dg, NULL, &dy, &x, &gamma, &sm, &sv, &p), MODA_OK);
    assert_close(pdg, rdg, ch, 1e-4, 1e-4);
    memset(pdb, 0, ch * sizeof(float));
    assert_int_equal(batchnorm2d_bwd(be, NULL, NULL, &db, &dy, &x, &gamma, &sm, &sv, &p), MODA_OK);
    assert_close(pdb, rdb, ch, 1e-4, 1e-4);
    assert_int_equal(batchnorm2d_bwd(be, NULL, NULL, NULL, &dy, &x, &gamma, &sm, &sv, &p), MODA_OK);

    /* Finite differences through the train-mode forward (batch statistics
     * included). The loss sums up to ~1e4 float outputs, so its rounding is
     * ~1e-4; eps 1e-2 keeps that noise near 1e-2 absolute, and the smooth
     * curvature term under 1%. Small cases only, where noise stays small. */
    if (nx <= 2000) {
        assert_int_equal(batchnorm2d_bwd(be, &dx, &dg, &db, &dy, &x, &gamma, &sm, &sv, &p), MODA_OK);
        float *rm_save = tu_alloc(ch), *rv_save = tu_alloc(ch);
        bn_case c = {be, x, y, gamma, beta, sm, sv, tensor_1d(rm_save, ch), tensor_1d(rv_save, ch), &p, pr};
        tu_fd_check("batchnorm dx", px, pdx, nx, bn_loss, &c, 1e-2f, 5e-3, 2e-2, 80);
        tu_fd_check("batchnorm dgamma", pg, pdg, ch, bn_loss, &c, 1e-2f, 5e-3, 2e-2, 40);
        tu_fd_check("batchnorm dbeta", pb, pdb, ch, bn_loss, &c, 1e-2f, 5e-3, 2e-2, 40);
        free(rm_save), free(rv_save);
    }
    free(px), free(py), free(pr), free(pdx), free(pg), free(pb), free(pm), free(pv), free(prm), free(prv);
    free(pdg), free(pdb), free(ry), free(rdx), free(rdg), free(rdb), free(rf), free(rrm), free(rrv);
    free(mean), free(var), free(rvar_d);
}

static void test_bn_values_and_grad(void **state) {
    moda_backend *be = *state;
    rng g;
    rng_seed(&g, 8, 1);
    const batchnorm_params def = {1e-5f, 0.1f}, other = {1e-3f, 0.3f};
    check_case(be, &g, 5, 3, 4, 4, def);
    check_case(be, &g, 1, 7, 5, 3, def);
    check_case(be, &g, 5, 37, 3, 3, other);
    check_case(be, &g, 2, 3, 1, 1, def); /* two values per channel */
    check_case(be, &g, 5, 7, 2, 2, (batchnorm_params){1e-5f, 1.0f});
    check_case(be, &g, 1, 3, 4, 4, (batchnorm_params){1e-5f, 0.0f});
    const int chans[] = {3, 7, 37};
    for (int i = 0; i < 3; i++)
        check_case(be, &g, 1 + (int)rng_below(&g, 5), chans[rng_below(&g, 3)], 2 + (int)rng_below(&g, 8),
                   1 + (int)rng_below(&g, 9), def);
    check_case(be, &g, 5, 37, 32, 32, def); /* multi-threaded, larger sums */
}

static void test_bn_bad_args(void **state) {
    moda_backend *be = *state;
    float a[2 * 3 * 4] = {0}, b[2 * 3 * 4] = {0}, v[6][3];
    for (int i = 0; i < 6; i++) v[i][0] = v[i][1] = v[i][2] = 1.0f;
    tensor x = tensor_4d(a, 2, 3, 2, 2), y = tensor_4d(b, 2, 3, 2, 2);
    tensor t[6];
    for (int i = 0; i < 6; i++) t[i] = tensor_1d(v[i], 3);
    tensor c4 = tensor_1d(v[0], 4), c2d = tensor_2d(v[0], 1, 3), x2d = tensor_2d(a, 2, 12);
    tensor y_other = tensor_4d(b, 2, 3, 4, 1), nodata = tensor_1d(NULL, 3), one = tensor_4d(a, 1, 3, 1, 1);
    tensor y_one = tensor_4d(b, 1, 3, 1, 1);
    batchnorm_params p = {1e-5f, 0.1f};
    const batchnorm_params bad[] = {{0.0f, 0.1f},   {-1e-5f, 0.1f}, {NAN, 0.1f}, {INFINITY, 0.1f},
                                    {1e-5f, -0.1f}, {1e-5f, 1.5f},  {1e-5f, NAN}};
#define TRAIN(yy, xx, g, bb, m, vv, rm, rv, pp) batchnorm2d_fwd_train(be, yy, m, vv, rm, rv, xx, g, bb, pp)
    assert_int_equal(TRAIN(&y, &x, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &p), MODA_OK);
    assert_int_equal(batchnorm2d_fwd_train(NULL, &y, &t[2], &t[3], &t[4], &t[5], &x, &t[0], &t[1], &p),
                     MODA_ERR_NULL);
    assert_int_equal(TRAIN(NULL, &x, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &p), MODA_ERR_NULL);
    assert_int_equal(TRAIN(&y, NULL, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &p), MODA_ERR_NULL);
    assert_int_equal(TRAIN(&y, &x, NULL, &t[1], &t[2], &t[3], &t[4], &t[5], &p), MODA_ERR_NULL);
    assert_int_equal(TRAIN(&y, &x, &t[0], NULL, &t[2], &t[3], &t[4], &t[5], &p), MODA_ERR_NULL);
    assert_int_equal(TRAIN(&y, &x, &t[0], &t[1], NULL, &t[3], &t[4], &t[5], &p), MODA_ERR_NULL);
    assert_int_equal(TRAIN(&y, &x, &t[0], &t[1], &t[2], NULL, &t[4], &t[5], &p), MODA_ERR_NULL);
    assert_int_equal(TRAIN(&y, &x, &t[0], &t[1], &t[2], &t[3], NULL, &t[5], &p), MODA_ERR_NULL);
    assert_int_equal(TRAIN(&y, &x, &t[0], &t[1], &t[2], &t[3], &t[4], NULL, &p), MODA_ERR_NULL);
    assert_int_equal(TRAIN(&y, &x, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], NULL), MODA_ERR_NULL);
    assert_int_equal(TRAIN(&y, &x, &nodata, &t[1], &t[2], &t[3], &t[4], &t[5], &p), MODA_ERR_NULL);
    assert_int_equal(TRAIN(&y_other, &x, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &p), MODA_ERR_SHAPE);
    assert_int_equal(TRAIN(&y, &x2d, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &p), MODA_ERR_SHAPE);
    assert_int_equal(TRAIN(&y, &x, &c4, &t[1], &t[2], &t[3], &t[4], &t[5], &p), MODA_ERR_SHAPE);
    assert_int_equal(TRAIN(&y, &x, &t[0], &c2d, &t[2], &t[3], &t[4], &t[5], &p), MODA_ERR_SHAPE);
    assert_int_equal(TRAIN(&y, &x, &t[0], &t[1], &t[2], &c4, &t[4], &t[5], &p), MODA_ERR_SHAPE);
    assert_int_equal(TRAIN(&y, &x, &t[0], &t[1], &t[2], &t[3], &t[4], &c4, &p), MODA_ERR_SHAPE);
    /* One value per channel: no unbiased variance in train mode. */
    assert_int_equal(TRAIN(&y_one, &one, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &p), MODA_ERR_SHAPE);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(TRAIN(&y, &x, &t[0], &t[1], &t[2], &t[3], &t[4], &t[5], &bad[i]), MODA_ERR_ARG);
        assert_int_equal(batchnorm2d_fwd_eval(be, &y, &x, &t[0], &t[1], &t[2], &t[3], &bad[i]), MODA_ERR_ARG);
        assert_int_equal(batchnorm2d_bwd(be, &y, &t[4], &t[5], &y, &x, &t[0], &t[1], &t[2], &bad[i]),
                         MODA_ERR_ARG);
    }
#undef TRAIN

    assert_int_equal(batchnorm2d_fwd_eval(be, &y, &x, &t[0], &t[1], &t[2], &t[3], &p), MODA_OK);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y_one, &one, &t[0], &t[1], &t[2], &t[3], &p), MODA_OK);
    assert_int_equal(batchnorm2d_fwd_eval(NULL, &y, &x, &t[0], &t[1], &t[2], &t[3], &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_fwd_eval(be, NULL, &x, &t[0], &t[1], &t[2], &t[3], &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y, NULL, &t[0], &t[1], &t[2], &t[3], &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y, &x, NULL, &t[1], &t[2], &t[3], &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y, &x, &t[0], NULL, &t[2], &t[3], &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y, &x, &t[0], &t[1], NULL, &t[3], &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y, &x, &t[0], &t[1], &t[2], NULL, &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y, &x, &t[0], &t[1], &t[2], &t[3], NULL), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y_other, &x, &t[0], &t[1], &t[2], &t[3], &p), MODA_ERR_SHAPE);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y, &x2d, &t[0], &t[1], &t[2], &t[3], &p), MODA_ERR_SHAPE);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y, &x, &t[0], &t[1], &c4, &t[3], &p), MODA_ERR_SHAPE);
    assert_int_equal(batchnorm2d_fwd_eval(be, &y, &x, &t[0], &c2d, &t[2], &t[3], &p), MODA_ERR_SHAPE);

    /* Backward: dx, dgamma, dbeta are optional; everything else is not. */
    tensor *dx = &y, *dg = &t[4], *db = &t[5];
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, db, &y, &x, &t[0], &t[1], &t[2], &p), MODA_OK);
    assert_int_equal(batchnorm2d_bwd(NULL, dx, dg, db, &y, &x, &t[0], &t[1], &t[2], &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, db, NULL, &x, &t[0], &t[1], &t[2], &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, db, &y, NULL, &t[0], &t[1], &t[2], &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, db, &y, &x, NULL, &t[1], &t[2], &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, db, &y, &x, &t[0], NULL, &t[2], &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, db, &y, &x, &t[0], &t[1], NULL, &p), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, db, &y, &x, &t[0], &t[1], &t[2], NULL), MODA_ERR_NULL);
    assert_int_equal(batchnorm2d_bwd(be, &y_other, dg, db, &y, &x, &t[0], &t[1], &t[2], &p), MODA_ERR_SHAPE);
    assert_int_equal(batchnorm2d_bwd(be, dx, &c4, db, &y, &x, &t[0], &t[1], &t[2], &p), MODA_ERR_SHAPE);
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, &c2d, &y, &x, &t[0], &t[1], &t[2], &p), MODA_ERR_SHAPE);
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, db, &y_other, &x, &t[0], &t[1], &t[2], &p), MODA_ERR_SHAPE);
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, db, &y, &x2d, &t[0], &t[1], &t[2], &p), MODA_ERR_SHAPE);
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, db, &y, &x, &c4, &t[1], &t[2], &p), MODA_ERR_SHAPE);
    assert_int_equal(batchnorm2d_bwd(be, dx, dg, db, &y, &x, &t[0], &t[1], &c4, &p), MODA_ERR_SHAPE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_values_and_grad),
        cmocka_unit_test(test_bn_bad_args),
    };
    return cmocka_run_group_tests(tests, tu_backend_setup, tu_backend_teardown);
}
