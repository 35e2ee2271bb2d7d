/* Linear layer y = x w^T + b: forward/backward against direct loops in
 * double, every subset of requested gradients, finite-difference gradients
 * for x, w and b, and argument validation. */
#include "test_util.h"

#include "ops.h"

typedef struct lin_case {
    moda_backend *be;
    tensor x, w, b, y;
    int has_bias;
    const float *r; /* loss = sum(r .* y) */
} lin_case;

static double lin_loss(void *ctx) {
    lin_case *c = ctx;
    assert_int_equal(linear_fwd(c->be, &c->y, &c->x, &c->w, c->has_bias ? &c->b : NULL), MODA_OK);
    return tu_dot(c->r, c->y.data, tensor_numel(&c->y));
}

static void check_shape(moda_backend *be, rng *g, int n, int in, int out, int has_bias) {
    size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
    float *px = tu_randn(g, nx, 1.0f), *pw = tu_randn(g, nw, 0.5f), *pb = tu_randn(g, out, 1.0f);
    float *py = tu_alloc(ny), *pr = tu_randn(g, ny, 1.0f);
    float *pdx = tu_alloc(nx), *pdw = tu_alloc(nw), *pdb = tu_alloc(out);
    float *ry = tu_alloc(ny), *rdx = tu_alloc(nx), *rdw = tu_alloc(nw), *rdb = tu_alloc(out);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = has_bias ? pb[o] : 0.0;
            for (int k = 0; k < in; k++) s += (double)px[(size_t)i * in + k] * pw[(size_t)o * in + k];
            ry[(size_t)i * out + o] = (float)s;
        }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < in; k++) {
            double s = 0.0;
            for (int o = 0; o < out; o++) s += (double)pr[(size_t)i * out + o] * pw[(size_t)o * in + k];
            rdx[(size_t)i * in + k] = (float)s;
        }
    for (int o = 0; o < out; o++) {
        double sb = 0.0;
        for (int i = 0; i < n; i++) sb += pr[(size_t)i * out + o];
        rdb[o] = (float)sb;
        for (int k = 0; k < in; k++) {
            double s = 0.0;
            for (int i = 0; i < n; i++) s += (double)pr[(size_t)i * out + o] * px[(size_t)i * in + k];
            rdw[(size_t)o * in + k] = (float)s;
        }
    }
    tensor x = tensor_2d(px, n, in), w = tensor_2d(pw, out, in), b = tensor_1d(pb, out),
           y = tensor_2d(py, n, out);
    tensor dy = tensor_2d(pr, n, out), dx = tensor_2d(pdx, n, in), dw = tensor_2d(pdw, out, in),
           db = tensor_1d(pdb, out);
    /* Float GEMM over at most a few hundred N(0,1)-scale products against a
     * double reference: 1e-4 absolute + relative. */
    const double atol = 1e-4, rtol = 1e-4;
    assert_int_equal(linear_fwd(be, &y, &x, &w, has_bias ? &b : NULL), MODA_OK);
    assert_close(py, ry, ny, atol, rtol);
    assert_int_equal(linear_bwd(be, &dx, &dw, &db, &dy, &x, &w), MODA_OK);
    assert_close(pdx, rdx, nx, atol, rtol);
    assert_close(pdw, rdw, nw, atol, rtol);
    assert_close(pdb, rdb, out, atol, rtol);
    /* Each gradient alone (others NULL) gives the same values. */
    memset(pdx, 0, nx * sizeof(float));
    assert_int_equal(linear_bwd(be, &dx, NULL, NULL, &dy, &x, &w), MODA_OK);
    assert_close(pdx, rdx, nx, atol, rtol);
    memset(pdw, 0, nw * sizeof(float));
    assert_int_equal(linear_bwd(be, NULL, &dw, NULL, &dy, &x, &w), MODA_OK);
    assert_close(pdw, rdw, nw, atol, rtol);
    memset(pdb, 0, out * sizeof(float));
    assert_int_equal(linear_bwd(be, NULL, NULL, &db, &dy, &x, &w), MODA_OK);
    assert_close(pdb, rdb, out, atol, rtol);
    assert_int_equal(linear_bwd(be, NULL, NULL, NULL, &dy, &x, &w), MODA_OK);
    /* The loss is linear in each argument; with eps = 1e-2 the differences
     * only carry float rounding of y (|loss| up to ~1e3): 2e-3 absolute. */
    lin_case c = {be, x, w, b, y, has_bias, pr};
    tu_fd_check("linear dx", px, pdx, nx, lin_loss, &c, 1e-2f, 2e-3, 1e-3, 60);
    tu_fd_check("linear dw", pw, pdw, nw, lin_loss, &c, 1e-2f, 2e-3, 1e-3, 60);
    if (has_bias) tu_fd_check("linear db", pb, pdb, out, lin_loss, &c, 1e-2f, 2e-3, 1e-3, 60);
    free(px), free(pw), free(pb), free(py), free(pr), free(pdx), free(pdw), free(pdb);
    free(ry), free(rdx), free(rdw), free(rdb);
}

static void test_linear_values_and_grad(void **state) {
    moda_backend *be = *state;
    rng g;
    rng_seed(&g, 5, 1);
    check_shape(be, &g, 5, 37, 7, 1);
    check_shape(be, &g, 1, 3, 10, 0);
    check_shape(be, &g, 5, 300, 37, 1);
    check_shape(be, &g, 1, 7, 1, 1);
    const int sizes[] = {3, 7, 37};
    for (int i = 0; i < 3; i++)
        check_shape(be, &g, 1 + (int)rng_below(&g, 5), sizes[rng_below(&g, 3)], sizes[rng_below(&g, 3)],
                    (int)rng_below(&g, 2));
}

static void test_linear_bad_args(void **state) {
    moda_backend *be = *state;
    float a[64] = {0}, b[64] = {0}, c[64] = {0}, d[64] = {0};
    tensor x = tensor_2d(a, 2, 4), w = tensor_2d(b, 3, 4), bias = tensor_1d(c, 3), y = tensor_2d(d, 2, 3);
    tensor w_in = tensor_2d(b, 3, 5), bias_len = tensor_1d(c, 4), bias_2d = tensor_2d(c, 1, 3);
    tensor y_out = tensor_2d(d, 2, 4), y_n = tensor_2d(d, 1, 3), x_rank4 = tensor_4d(a, 2, 4, 1, 1);
    tensor nodata = tensor_2d(NULL, 2, 3);
    assert_int_equal(linear_fwd(NULL, &y, &x, &w, &bias), MODA_ERR_NULL);
    assert_int_equal(linear_fwd(be, NULL, &x, &w, &bias), MODA_ERR_NULL);
    assert_int_equal(linear_fwd(be, &y, NULL, &w, &bias), MODA_ERR_NULL);
    assert_int_equal(linear_fwd(be, &y, &x, NULL, &bias), MODA_ERR_NULL);
    assert_int_equal(linear_fwd(be, &nodata, &x, &w, &bias), MODA_ERR_NULL);
    assert_int_equal(linear_fwd(be, &y, &x, &w_in, &bias), MODA_ERR_SHAPE);
    assert_int_equal(linear_fwd(be, &y, &x, &w, &bias_len), MODA_ERR_SHAPE);
    assert_int_equal(linear_fwd(be, &y, &x, &w, &bias_2d), MODA_ERR_SHAPE);
    assert_int_equal(linear_fwd(be, &y_out, &x, &w, &bias), MODA_ERR_SHAPE);
    assert_int_equal(linear_fwd(be, &y_n, &x, &w, &bias), MODA_ERR_SHAPE);
    assert_int_equal(linear_fwd(be, &y, &x_rank4, &w, &bias), MODA_ERR_SHAPE);
    assert_int_equal(linear_fwd(be, &y, &x, &w, NULL), MODA_OK);

    tensor dx = tensor_2d(a, 2, 4), dw = tensor_2d(b, 3, 4), db = tensor_1d(c, 3), dy = tensor_2d(d, 2, 3);
    float e[64] = {0}, f[64] = {0};
    tensor xx = tensor_2d(e, 2, 4), ww = tensor_2d(f, 3, 4);
    assert_int_equal(linear_bwd(NULL, &dx, &dw, &db, &dy, &xx, &ww), MODA_ERR_NULL);
    assert_int_equal(linear_bwd(be, &dx, &dw, &db, NULL, &xx, &ww), MODA_ERR_NULL);
    assert_int_equal(linear_bwd(be, &dx, &dw, &db, &dy, NULL, &ww), MODA_ERR_NULL);
    assert_int_equal(linear_bwd(be, &dx, &dw, &db, &dy, &xx, NULL), MODA_ERR_NULL);
    assert_int_equal(linear_bwd(be, &dx, &dw, &db, &y_out, &xx, &ww), MODA_ERR_SHAPE);
    assert_int_equal(linear_bwd(be, &y, &dw, &db, &dy, &xx, &ww), MODA_ERR_SHAPE);
    assert_int_equal(linear_bwd(be, &dx, &w_in, &db, &dy, &xx, &ww), MODA_ERR_SHAPE);
    assert_int_equal(linear_bwd(be, &dx, &dw, &bias_len, &dy, &xx, &ww), MODA_ERR_SHAPE);
    assert_int_equal(linear_bwd(be, &dx, &dw, &db, &dy, &xx, &w_in), MODA_ERR_SHAPE);
    assert_int_equal(linear_bwd(be, &dx, &dw, &db, &dy, &xx, &ww), MODA_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_values_and_grad),
        cmocka_unit_test(test_linear_bad_args),
    };
    return cmocka_run_group_tests(tests, tu_backend_setup, tu_backend_teardown);
}
