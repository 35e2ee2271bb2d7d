/* Max pooling: forward values and backward scatter against direct loops
 * (padding as -inf), overlapping and asymmetric windows, finite-difference
 * gradients, and argument validation. */
#include "test_util.h"

#include "ops.h"

typedef struct pool_case {
    moda_backend *be;
    tensor x, y;
    void *ws;
    const pool2d_params *p;
    const float *r; /* loss = sum(r .* y) */
} pool_case;

static double pool_loss(void *ctx) {
    pool_case *c = ctx;
    assert_int_equal(maxpool2d_fwd(c->be, &c->y, c->ws, &c->x, c->p), MODA_OK);
    return tu_dot(c->r, c->y.data, tensor_numel(&c->y));
}

/* Direct loops over every window position, padded ones included; the
 * first maximum in row-major order wins, and dx sums dy over windows. */
static void ref_pool(float *y, float *dx, const float *x, const float *dy, int n, int ch, int h, int w,
                     int oh, int ow, const pool2d_params *p) {
    memset(dx, 0, (size_t)n * ch * h * w * sizeof(float));
    for (int i = 0; i < n * ch; i++)
        for (int a = 0; a < oh; a++)
            for (int b = 0; b < ow; b++) {
                float best = -INFINITY;
                int at = -1;
                for (int u = 0; u < p->kh; u++)
                    for (int v = 0; v < p->kw; v++) {
                        int r = a * p->stride_h - p->pad_h + u, c = b * p->stride_w - p->pad_w + v;
                        float val =
                            (r < 0 || r >= h || c < 0 || c >= w) ? -INFINITY : x[((size_t)i * h + r) * w + c];
                        if (val > best) best = val, at = r * w + c;
                    }
                assert_true(at >= 0); /* pad < kernel: some real input in every window */
                size_t o = ((size_t)i * oh + a) * ow + b;
                y[o] = best;
                dx[(size_t)i * h * w + at] += dy[o];
            }
}

static void check_case(moda_backend *be, rng *g, int n, int ch, int h, int w, pool2d_params p) {
    int oh = (h + 2 * p.pad_h - p.kh) / p.stride_h + 1, ow = (w + 2 * p.pad_w - p.kw) / p.stride_w + 1;
    assert_int_equal(conv_out_size(h, p.kh, p.stride_h, p.pad_h), oh);
    assert_int_equal(conv_out_size(w, p.kw, p.stride_w, p.pad_w), ow);
    size_t nx = (size_t)n * ch * h * w, ny = (size_t)n * ch * oh * ow;
    /* Distinct values 0.01 apart (a shuffled ramp, centred): no ties, and a
     * finite-difference step of 4e-3 never changes which input wins. */
    int32_t *perm = calloc(nx, sizeof(int32_t));
    assert_non_null(perm);
    for (size_t i = 0; i < nx; i++) perm[i] = (int32_t)i;
    rng_shuffle_i32(g, perm, (uint32_t)nx);
    float *px = tu_alloc(nx), *py = tu_alloc(ny), *pr = tu_randn(g, ny, 1.0f), *pdx = tu_alloc(nx);
    float *ry = tu_alloc(ny), *rdx = tu_alloc(nx);
    for (size_t i = 0; i < nx; i++) px[i] = 0.01f * (float)(perm[i] - (int32_t)(nx / 2));
    tensor x = tensor_4d(px, n, ch, h, w), y = tensor_4d(py, n, ch, oh, ow);
    tensor dy = tensor_4d(pr, n, ch, oh, ow), dx = tensor_4d(pdx, n, ch, h, w);
    size_t ws_bytes = maxpool2d_ws_bytes(be, &y);
    assert_true(ws_bytes > 0);
    void *ws = malloc(ws_bytes);
    assert_non_null(ws);

    ref_pool(ry, rdx, px, pr, n, ch, h, w, oh, ow, &p);
    /* Forward selects inputs: exact. Backward sums at most kh*kw values per
     * input in the same order as the reference: 1e-6 absolute to allow a
     * different summation order. */
    assert_int_equal(maxpool2d_fwd(be, &y, ws, &x, &p), MODA_OK);
    assert_close(py, ry, ny, 0.0, 0.0);
    for (size_t i = 0; i < nx; i++) pdx[i] = NAN; /* backward must write every element */
    assert_int_equal(maxpool2d_bwd(be, &dx, &dy, ws, &p), MODA_OK);
    assert_close(pdx, rdx, nx, 1e-6, 1e-6);

    /* Piecewise-linear loss, no argmax change within the step: exact up to
     * float rounding of the perturbed input (values up to ~100). */
    pool_case c = {be, x, y, ws, &p, pr};
    tu_fd_check("maxpool dx", px, pdx, nx, pool_loss, &c, 4e-3f, 1e-3, 1e-2, 150);
    free(perm), free(px), free(py), free(pr), free(pdx), free(ry), free(rdx), free(ws);
}

static pool2d_params sq(int k, int s, int pad) {
    return (pool2d_params){k, k, s, s, pad, pad};
}

static void test_maxpool_values_and_grad(void **state) {
    moda_backend *be = *state;
    rng g;
    rng_seed(&g, 7, 1);
    check_case(be, &g, 5, 37, 8, 8, sq(2, 2, 0));
    check_case(be, &g, 1, 37, 9, 9, sq(2, 2, 0)); /* odd size: last row/column unused */
    check_case(be, &g, 1, 3, 7, 7, sq(2, 2, 1));
    check_case(be, &g, 5, 7, 8, 8, sq(2, 2, 1));
    check_case(be, &g, 5, 7, 9, 6, sq(3, 2, 1));
    check_case(be, &g, 2, 3, 10, 11, sq(3, 1, 1)); /* overlapping windows */
    check_case(be, &g, 1, 7, 5, 5, sq(3, 3, 0));
    check_case(be, &g, 5, 3, 7, 9, (pool2d_params){2, 3, 1, 2, 1, 0}); /* asymmetric */
    check_case(be, &g, 5, 3, 4, 4, sq(1, 1, 0));                       /* identity */
    const int chans[] = {3, 7, 37};
    for (int i = 0; i < 4; i++) {
        int k = 1 + (int)rng_below(&g, 3), s = 1 + (int)rng_below(&g, 3),
            pad = (int)rng_below(&g, (uint32_t)k);
        int h = k + (int)rng_below(&g, 8), w = k + (int)rng_below(&g, 8);
        check_case(be, &g, 1 + (int)rng_below(&g, 5), chans[rng_below(&g, 3)], h, w, sq(k, s, pad));
    }
    check_case(be, &g, 5, 37, 32, 32, sq(2, 2, 0)); /* multi-threaded path */
    check_case(be, &g, 5, 37, 17, 17, sq(3, 2, 1));
}

static void test_maxpool_nan_propagates(void **state) {
    moda_backend *be = *state;
    float x[16], y[4];
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    x[5] = NAN;
    tensor tx = tensor_4d(x, 1, 1, 4, 4), ty = tensor_4d(y, 1, 1, 2, 2);
    pool2d_params p = sq(2, 2, 0);
    void *ws = malloc(maxpool2d_ws_bytes(be, &ty));
    assert_non_null(ws);
    assert_int_equal(maxpool2d_fwd(be, &ty, ws, &tx, &p), MODA_OK);
    assert_true(isnan(y[0]));
    assert_true(y[1] == 7.0f && y[2] == 13.0f && y[3] == 15.0f);
    free(ws);
}

static void test_maxpool_bad_args(void **state) {
    moda_backend *be = *state;
    float a[2 * 3 * 6 * 6] = {0}, b[2 * 3 * 3 * 3] = {0};
    int32_t ws[2 * 3 * 3 * 3];
    tensor x = tensor_4d(a, 2, 3, 6, 6), y = tensor_4d(b, 2, 3, 3, 3);
    pool2d_params p = sq(2, 2, 0);
    tensor y_h = tensor_4d(b, 2, 3, 2, 3), y_c = tensor_4d(b, 2, 2, 3, 3), y_n = tensor_4d(b, 1, 3, 3, 3);
    tensor x_rank3 = tensor_make(a, 3, (int[]){3, 6, 6}), nodata = tensor_4d(NULL, 2, 3, 3, 3);
    tensor tiny = tensor_4d(a, 2, 3, 2, 2);
    assert_int_equal(maxpool2d_fwd(NULL, &y, ws, &x, &p), MODA_ERR_NULL);
    assert_int_equal(maxpool2d_fwd(be, NULL, ws, &x, &p), MODA_ERR_NULL);
    assert_int_equal(maxpool2d_fwd(be, &y, NULL, &x, &p), MODA_ERR_NULL);
    assert_int_equal(maxpool2d_fwd(be, &y, ws, NULL, &p), MODA_ERR_NULL);
    assert_int_equal(maxpool2d_fwd(be, &y, ws, &x, NULL), MODA_ERR_NULL);
    assert_int_equal(maxpool2d_fwd(be, &nodata, ws, &x, &p), MODA_ERR_NULL);
    assert_int_equal(maxpool2d_fwd(be, &y_h, ws, &x, &p), MODA_ERR_SHAPE);
    assert_int_equal(maxpool2d_fwd(be, &y_c, ws, &x, &p), MODA_ERR_SHAPE);
    assert_int_equal(maxpool2d_fwd(be, &y_n, ws, &x, &p), MODA_ERR_SHAPE);
    assert_int_equal(maxpool2d_fwd(be, &y, ws, &x_rank3, &p), MODA_ERR_SHAPE);
    pool2d_params big = sq(3, 1, 0); /* 3x3 window over a 2x2 input */
    assert_int_equal(maxpool2d_fwd(be, &y, ws, &tiny, &big), MODA_ERR_SHAPE);
    const pool2d_params bad[] = {
        {0, 2, 2, 2, 0, 0},  {2, 0, 2, 2, 0, 0},  {2, 2, 0, 2, 0, 0}, {2, 2, 2, -1, 0, 0},
        {2, 2, 2, 2, -1, 0}, {2, 2, 2, 2, 0, -1}, {2, 2, 2, 2, 2, 0}, {2, 2, 2, 2, 0, 2},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(maxpool2d_fwd(be, &y, ws, &x, &bad[i]), MODA_ERR_ARG);
        assert_int_equal(maxpool2d_bwd(be, &x, &y, ws, &bad[i]), MODA_ERR_ARG);
    }
    assert_int_equal(maxpool2d_fwd(be, &y, ws, &x, &p), MODA_OK);
    assert_int_equal(maxpool2d_bwd(NULL, &x, &y, ws, &p), MODA_ERR_NULL);
    assert_int_equal(maxpool2d_bwd(be, NULL, &y, ws, &p), MODA_ERR_NULL);
    assert_int_equal(maxpool2d_bwd(be, &x, NULL, ws, &p), MODA_ERR_NULL);
    assert_int_equal(maxpool2d_bwd(be, &x, &y, NULL, &p), MODA_ERR_NULL);
    assert_int_equal(maxpool2d_bwd(be, &x, &y, ws, NULL), MODA_ERR_NULL);
    assert_int_equal(maxpool2d_bwd(be, &x, &y_h, ws, &p), MODA_ERR_SHAPE);
    assert_int_equal(maxpool2d_bwd(be, &x_rank3, &y, ws, &p), MODA_ERR_SHAPE);
    assert_int_equal(maxpool2d_bwd(be, &x, &y, ws, &p), MODA_OK);
    assert_int_equal(maxpool2d_ws_bytes(NULL, &y), 0);
    assert_int_equal(maxpool2d_ws_bytes(be, NULL), 0);
    assert_int_equal(maxpool2d_ws_bytes(be, &nodata), 0);
    assert_true(maxpool2d_ws_bytes(be, &y) <= sizeof(ws));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool_values_and_grad),
        cmocka_unit_test(test_maxpool_nan_propagates),
        cmocka_unit_test(test_maxpool_bad_args),
    };
    return cmocka_run_group_tests(tests, tu_backend_setup, tu_backend_teardown);
}
