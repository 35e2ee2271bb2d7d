/* Global average pooling: forward/backward against direct loops, gradient
 * by finite differences, and argument validation. */
#include "test_util.h"

#include "ops.h"

typedef struct gap_case {
    moda_backend *be;
    tensor x, y;
    const float *r; /* loss = sum(r .* y) */
} gap_case;

static double gap_loss(void *ctx) {
    gap_case *c = ctx;
    assert_int_equal(global_avgpool_fwd(c->be, &c->y, &c->x), MODA_OK);
    return tu_dot(c->r, c->y.data, tensor_numel(&c->y));
}

static void check_shape(moda_backend *be, rng *g, int n, int ch, int h, int w) {
    size_t nx = (size_t)n * ch * h * w, ny = (size_t)n * ch, hw = (size_t)h * w;
    float *px = tu_randn(g, nx, 1.0f), *py = tu_alloc(ny), *pr = tu_randn(g, ny, 1.0f);
    float *pdx = tu_alloc(nx), *ref_y = tu_alloc(ny), *ref_dx = tu_alloc(nx);
    for (size_t p = 0; p < ny; p++) {
        double s = 0.0;
        for (size_t j = 0; j < hw; j++) s += px[p * hw + j];
        ref_y[p] = (float)(s / (double)hw);
        for (size_t j = 0; j < hw; j++) ref_dx[p * hw + j] = (float)(pr[p] / (double)hw);
    }
    tensor x = tensor_4d(px, n, ch, h, w), y = tensor_2d(py, n, ch);
    tensor dy = tensor_2d(pr, n, ch), dx = tensor_4d(pdx, n, ch, h, w);
    /* Float sums of at most a few thousand N(0,1) values: 1e-5 absolute. */
    assert_int_equal(global_avgpool_fwd(be, &y, &x), MODA_OK);
    assert_close(py, ref_y, ny, 1e-5, 1e-5);
    /* Backward is one float multiply per element. */
    assert_int_equal(global_avgpool_bwd(be, &dx, &dy), MODA_OK);
    assert_close(pdx, ref_dx, nx, 1e-7, 1e-6);
    /* The loss is linear in x: differences agree to float rounding. */
    gap_case c = {be, x, y, pr};
    tu_fd_check("global_avgpool dx", px, pdx, nx, gap_loss, &c, 1e-2f, 1e-4, 1e-3, 200);
    free(px), free(py), free(pr), free(pdx), free(ref_y), free(ref_dx);
}

static void test_gap_values_and_grad(void **state) {
    moda_backend *be = *state;
    rng g;
    rng_seed(&g, 2, 1);
    check_shape(be, &g, 5, 37, 7, 9);
    check_shape(be, &g, 1, 3, 1, 1);
    check_shape(be, &g, 5, 7, 4, 4);
    check_shape(be, &g, 1, 7, 8, 8);
    const int chans[] = {3, 7, 37};
    for (int i = 0; i < 3; i++)
        check_shape(be, &g, 1 + (int)rng_below(&g, 5), chans[rng_below(&g, 3)], 1 + (int)rng_below(&g, 9),
                    1 + (int)rng_below(&g, 9));
    check_shape(be, &g, 5, 37, 32, 32); /* multi-threaded path */
}

static void test_gap_bad_args(void **state) {
    moda_backend *be = *state;
    float a[60] = {0}, b[60] = {0};
    tensor x = tensor_4d(a, 2, 3, 2, 5), y = tensor_2d(b, 2, 3);
    tensor y_wrong_c = tensor_2d(b, 2, 4), y_wrong_n = tensor_2d(b, 1, 3), y_rank4 = tensor_4d(b, 2, 3, 1, 1);
    tensor x_rank2 = tensor_2d(a, 2, 3), nodata = tensor_2d(NULL, 2, 3);
    assert_int_equal(global_avgpool_fwd(NULL, &y, &x), MODA_ERR_NULL);
    assert_int_equal(global_avgpool_fwd(be, NULL, &x), MODA_ERR_NULL);
    assert_int_equal(global_avgpool_fwd(be, &y, NULL), MODA_ERR_NULL);
    assert_int_equal(global_avgpool_fwd(be, &nodata, &x), MODA_ERR_NULL);
    assert_int_equal(global_avgpool_fwd(be, &y_wrong_c, &x), MODA_ERR_SHAPE);
    assert_int_equal(global_avgpool_fwd(be, &y_wrong_n, &x), MODA_ERR_SHAPE);
    assert_int_equal(global_avgpool_fwd(be, &y_rank4, &x), MODA_ERR_SHAPE);
    assert_int_equal(global_avgpool_fwd(be, &y, &x_rank2), MODA_ERR_SHAPE);
    assert_int_equal(global_avgpool_bwd(NULL, &x, &y), MODA_ERR_NULL);
    assert_int_equal(global_avgpool_bwd(be, NULL, &y), MODA_ERR_NULL);
    assert_int_equal(global_avgpool_bwd(be, &x, NULL), MODA_ERR_NULL);
    assert_int_equal(global_avgpool_bwd(be, &x, &y_wrong_c), MODA_ERR_SHAPE);
    assert_int_equal(global_avgpool_bwd(be, &x_rank2, &y), MODA_ERR_SHAPE);
    assert_int_equal(global_avgpool_bwd(be, &x, &y), MODA_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gap_values_and_grad),
        cmocka_unit_test(test_gap_bad_args),
    };
    return cmocka_run_group_tests(tests, tu_backend_setup, tu_backend_teardown);
}
