/* ReLU: forward/backward against direct loops, gradient by finite
 * differences, and argument validation. */
#include "test_util.h"

#include "ops.h"

typedef struct relu_case {
    moda_backend *be;
    tensor x, y;
    const float *r; /* loss = sum(r .* y) */
} relu_case;

static double relu_loss(void *ctx) {
    relu_case *c = ctx;
    assert_int_equal(relu_fwd(c->be, &c->y, &c->x), MODA_OK);
    return tu_dot(c->r, c->y.data, tensor_numel(&c->y));
}

static void check_shape(moda_backend *be, rng *g, int ndim, const int *shape) {
    tensor x = tensor_make(NULL, ndim, shape);
    size_t n = tensor_numel(&x);
    float *px = tu_randn(g, n, 1.0f), *py = tu_alloc(n), *pr = tu_randn(g, n, 1.0f);
    float *pdx = tu_alloc(n), *ref = tu_alloc(n);
    /* Keep inputs away from the kink so central differences never cross it. */
    for (size_t i = 0; i < n; i++)
        if (fabsf(px[i]) < 0.05f) px[i] = px[i] < 0 ? -0.05f : 0.05f;
    x.data = px;
    tensor y = tensor_make(py, ndim, shape), dy = tensor_make(pr, ndim, shape),
           dx = tensor_make(pdx, ndim, shape);

    /* Forward and backward are exact selections: tolerance zero. */
    assert_int_equal(relu_fwd(be, &y, &x), MODA_OK);
    for (size_t i = 0; i < n; i++) ref[i] = px[i] > 0 ? px[i] : 0.0f;
    assert_close(py, ref, n, 0.0, 0.0);
    assert_int_equal(relu_bwd(be, &dx, &dy, &y), MODA_OK);
    for (size_t i = 0; i < n; i++) ref[i] = px[i] > 0 ? pr[i] : 0.0f;
    assert_close(pdx, ref, n, 0.0, 0.0);

    /* Gradient of sum(r .* y): the loss is piecewise linear, so central
     * differences are exact up to float rounding of one output. */
    relu_case c = {be, x, y, pr};
    tu_fd_check("relu dx", px, pdx, n, relu_loss, &c, 1e-2f, 1e-3, 1e-3, 200);

    /* In place (y = x, then dx = dy) gives the same values. The check
     * above left y from a perturbed x, so recompute it first. */
    assert_int_equal(relu_fwd(be, &y, &x), MODA_OK);
    float *inplace = tu_alloc(n);
    memcpy(inplace, px, n * sizeof(float));
    tensor t = tensor_make(inplace, ndim, shape);
    assert_int_equal(relu_fwd(be, &t, &t), MODA_OK);
    assert_close(inplace, py, n, 0.0, 0.0);
    memcpy(ref, pr, n * sizeof(float));
    tensor tg = tensor_make(ref, ndim, shape);
    assert_int_equal(relu_bwd(be, &tg, &tg, &y), MODA_OK);
    assert_close(ref, pdx, n, 0.0, 0.0);

    free(inplace);
    free(px), free(py), free(pr), free(pdx), free(ref);
}

static void test_relu_values_and_grad(void **state) {
    moda_backend *be = *state;
    rng g;
    rng_seed(&g, 1, 1);
    const int s4a[] = {5, 37, 7, 9}, s4b[] = {1, 3, 5, 5}, s2[] = {5, 7}, s1[] = {37};
    check_shape(be, &g, 4, s4a);
    check_shape(be, &g, 4, s4b);
    check_shape(be, &g, 2, s2);
    check_shape(be, &g, 1, s1);
    const int chans[] = {3, 7, 37};
    for (int i = 0; i < 3; i++) {
        int s[] = {1 + (int)rng_below(&g, 5), chans[rng_below(&g, 3)], 1 + (int)rng_below(&g, 9),
                   1 + (int)rng_below(&g, 9)};
        check_shape(be, &g, 4, s);
    }
    /* Large enough to take the multi-threaded path. */
    const int big[] = {5, 37, 33, 33};
    check_shape(be, &g, 4, big);
}

static void test_relu_bad_args(void **state) {
    moda_backend *be = *state;
    float a[60] = {0}, b[60] = {0}, c[60] = {0};
    tensor x = tensor_4d(a, 1, 3, 4, 5), y = tensor_4d(b, 1, 3, 4, 5), d = tensor_4d(c, 1, 3, 4, 5);
    tensor other = tensor_4d(b, 1, 3, 5, 4), flat = tensor_2d(b, 3, 20), nodata = tensor_4d(NULL, 1, 3, 4, 5);
    tensor zero_dim = tensor_4d(b, 1, 0, 4, 5), rank5 = x;
    rank5.ndim = 5;
    assert_int_equal(relu_fwd(NULL, &y, &x), MODA_ERR_NULL);
    assert_int_equal(relu_fwd(be, NULL, &x), MODA_ERR_NULL);
    assert_int_equal(relu_fwd(be, &y, NULL), MODA_ERR_NULL);
    assert_int_equal(relu_fwd(be, &nodata, &x), MODA_ERR_NULL);
    assert_int_equal(relu_fwd(be, &other, &x), MODA_ERR_SHAPE);
    assert_int_equal(relu_fwd(be, &flat, &x), MODA_ERR_SHAPE);
    assert_int_equal(relu_fwd(be, &zero_dim, &x), MODA_ERR_SHAPE);
    assert_int_equal(relu_fwd(be, &y, &rank5), MODA_ERR_SHAPE);
    assert_int_equal(relu_bwd(NULL, &d, &x, &y), MODA_ERR_NULL);
    assert_int_equal(relu_bwd(be, NULL, &x, &y), MODA_ERR_NULL);
    assert_int_equal(relu_bwd(be, &d, NULL, &y), MODA_ERR_NULL);
    assert_int_equal(relu_bwd(be, &d, &x, NULL), MODA_ERR_NULL);
    assert_int_equal(relu_bwd(be, &d, &x, &other), MODA_ERR_SHAPE);
    assert_int_equal(relu_bwd(be, &other, &x, &y), MODA_ERR_SHAPE);
    assert_int_equal(relu_bwd(be, &d, &flat, &y), MODA_ERR_SHAPE);
    assert_int_equal(relu_bwd(be, &d, &x, &y), MODA_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu_values_and_grad),
        cmocka_unit_test(test_relu_bad_args),
    };
    return cmocka_run_group_tests(tests, tu_backend_setup, tu_backend_teardown);
}
