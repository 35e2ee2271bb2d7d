/* Flatten: a channel-major copy (or nothing when aliased), gradient by
 * finite differences, and argument validation. */
#include "test_util.h"

#include "ops.h"

typedef struct flat_case {
    moda_backend *be;
    tensor x, y;
    const float *r; /* loss = sum(r .* y) */
} flat_case;

static double flat_loss(void *ctx) {
    flat_case *c = ctx;
    assert_int_equal(flatten_fwd(c->be, &c->y, &c->x), MODA_OK);
    return tu_dot(c->r, c->y.data, tensor_numel(&c->y));
}

static void check_shape(moda_backend *be, rng *g, int n, int ch, int h, int w) {
    size_t sz = (size_t)n * ch * h * w;
    int f = ch * h * w;
    float *px = tu_randn(g, sz, 1.0f), *py = tu_alloc(sz), *pr = tu_randn(g, sz, 1.0f), *pdx = tu_alloc(sz);
    tensor x = tensor_4d(px, n, ch, h, w), y = tensor_2d(py, n, f);
    tensor dy = tensor_2d(pr, n, f), dx = tensor_4d(pdx, n, ch, h, w);
    /* y[i, (c*H + h)*W + w] = x[i, c, h, w]: NCHW order is already that. */
    assert_int_equal(flatten_fwd(be, &y, &x), MODA_OK);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ch; k++)
            for (int a = 0; a < h; a++)
                for (int b = 0; b < w; b++)
                    assert_true(py[(size_t)i * f + ((size_t)k * h + a) * w + b] ==
                                px[(((size_t)i * ch + k) * h + a) * w + b]);
    assert_int_equal(flatten_bwd(be, &dx, &dy), MODA_OK);
    assert_close(pdx, pr, sz, 0.0, 0.0);
    flat_case c = {be, x, y, pr};
    tu_fd_check("flatten dx", px, pdx, sz, flat_loss, &c, 1e-2f, 1e-4, 1e-3, 100);
    /* Aliased views: nothing moves and nothing breaks. */
    memcpy(py, px, sz * sizeof(float));
    tensor view = tensor_2d(px, n, f), view_back = tensor_4d(pr, n, ch, h, w);
    assert_int_equal(flatten_fwd(be, &view, &x), MODA_OK);
    assert_int_equal(flatten_bwd(be, &view_back, &dy), MODA_OK);
    assert_close(px, py, sz, 0.0, 0.0);
    free(px), free(py), free(pr), free(pdx);
}

static void test_flatten_values_and_grad(void **state) {
    moda_backend *be = *state;
    rng g;
    rng_seed(&g, 4, 1);
    check_shape(be, &g, 5, 37, 3, 2);
    check_shape(be, &g, 1, 3, 4, 4);
    check_shape(be, &g, 5, 7, 1, 1);
}

static void test_flatten_bad_args(void **state) {
    moda_backend *be = *state;
    float a[120] = {0}, b[120] = {0};
    tensor x = tensor_4d(a, 2, 3, 4, 5), y = tensor_2d(b, 2, 60);
    tensor y_short = tensor_2d(b, 2, 59), y_n = tensor_2d(b, 1, 60), y_rank4 = tensor_4d(b, 2, 60, 1, 1);
    tensor x_rank2 = tensor_2d(a, 2, 60), nodata = tensor_2d(NULL, 2, 60);
    assert_int_equal(flatten_fwd(NULL, &y, &x), MODA_ERR_NULL);
    assert_int_equal(flatten_fwd(be, NULL, &x), MODA_ERR_NULL);
    assert_int_equal(flatten_fwd(be, &y, NULL), MODA_ERR_NULL);
    assert_int_equal(flatten_fwd(be, &nodata, &x), MODA_ERR_NULL);
    assert_int_equal(flatten_fwd(be, &y_short, &x), MODA_ERR_SHAPE);
    assert_int_equal(flatten_fwd(be, &y_n, &x), MODA_ERR_SHAPE);
    assert_int_equal(flatten_fwd(be, &y_rank4, &x), MODA_ERR_SHAPE);
    assert_int_equal(flatten_fwd(be, &y, &x_rank2), MODA_ERR_SHAPE);
    assert_int_equal(flatten_bwd(NULL, &x, &y), MODA_ERR_NULL);
    assert_int_equal(flatten_bwd(be, NULL, &y), MODA_ERR_NULL);
    assert_int_equal(flatten_bwd(be, &x, NULL), MODA_ERR_NULL);
    assert_int_equal(flatten_bwd(be, &x, &y_short), MODA_ERR_SHAPE);
    assert_int_equal(flatten_bwd(be, &x_rank2, &y), MODA_ERR_SHAPE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flatten_values_and_grad),
        cmocka_unit_test(test_flatten_bad_args),
    };
    return cmocka_run_group_tests(tests, tu_backend_setup, tu_backend_teardown);
}
