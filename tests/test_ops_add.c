/* Elementwise add: forward against a direct loop, backward copies (with
 * either gradient omitted or aliased), gradient by finite differences, the
 * mapped add of composed models, and argument validation. */
#include "test_util.h"

#include "ops.h"

typedef struct add_case {
    moda_backend *be;
    tensor a, b, y;
    const float *r; /* loss = sum(r .* y) */
} add_case;

static double add_loss(void *ctx) {
    add_case *c = ctx;
    assert_int_equal(add_fwd(c->be, &c->y, &c->a, &c->b), MODA_OK);
    return tu_dot(c->r, c->y.data, tensor_numel(&c->y));
}

static void check_shape(moda_backend *be, rng *g, int n, int ch, int h, int w) {
    size_t sz = (size_t)n * ch * h * w;
    float *pa = tu_randn(g, sz, 1.0f), *pb = tu_randn(g, sz, 1.0f), *py = tu_alloc(sz);
    float *pr = tu_randn(g, sz, 1.0f), *pda = tu_alloc(sz), *pdb = tu_alloc(sz), *ref = tu_alloc(sz);
    tensor a = tensor_4d(pa, n, ch, h, w), b = tensor_4d(pb, n, ch, h, w), y = tensor_4d(py, n, ch, h, w);
    tensor dy = tensor_4d(pr, n, ch, h, w), da = tensor_4d(pda, n, ch, h, w),
           db = tensor_4d(pdb, n, ch, h, w);
    /* One float add per element: exact. */
    assert_int_equal(add_fwd(be, &y, &a, &b), MODA_OK);
    for (size_t i = 0; i < sz; i++) ref[i] = pa[i] + pb[i];
    assert_close(py, ref, sz, 0.0, 0.0);
    /* Backward copies dy: exact. */
    assert_int_equal(add_bwd(be, &da, &db, &dy), MODA_OK);
    assert_close(pda, pr, sz, 0.0, 0.0);
    assert_close(pdb, pr, sz, 0.0, 0.0);
    add_case c = {be, a, b, y, pr};
    tu_fd_check("add da", pa, pda, sz, add_loss, &c, 1e-2f, 1e-4, 1e-3, 100);
    tu_fd_check("add db", pb, pdb, sz, add_loss, &c, 1e-2f, 1e-4, 1e-3, 100);
    /* Either gradient may be omitted. */
    memset(pda, 0, sz * sizeof(float));
    assert_int_equal(add_bwd(be, &da, NULL, &dy), MODA_OK);
    assert_close(pda, pr, sz, 0.0, 0.0);
    memset(pdb, 0, sz * sizeof(float));
    assert_int_equal(add_bwd(be, NULL, &db, &dy), MODA_OK);
    assert_close(pdb, pr, sz, 0.0, 0.0);
    assert_int_equal(add_bwd(be, NULL, NULL, &dy), MODA_OK);
    /* da may be dy itself (the graph passes the gradient through). */
    memcpy(ref, pr, sz * sizeof(float));
    assert_int_equal(add_bwd(be, &dy, &db, &dy), MODA_OK);
    assert_close(pr, ref, sz, 0.0, 0.0);
    assert_close(pdb, ref, sz, 0.0, 0.0);
    /* In place: y = a. */
    for (size_t i = 0; i < sz; i++) ref[i] = pa[i] + pb[i];
    assert_int_equal(add_fwd(be, &a, &a, &b), MODA_OK);
    assert_close(pa, ref, sz, 0.0, 0.0);
    free(pa), free(pb), free(py), free(pr), free(pda), free(pdb), free(ref);
}

static void test_add_values_and_grad(void **state) {
    moda_backend *be = *state;
    rng g;
    rng_seed(&g, 3, 1);
    check_shape(be, &g, 5, 37, 7, 9);
    check_shape(be, &g, 1, 3, 5, 5);
    check_shape(be, &g, 5, 7, 1, 1);
    check_shape(be, &g, 5, 37, 33, 33); /* multi-threaded path */
}

/* Mapped add against a direct loop: channel j of y is a[map_a[j]] +
 * b[map_b[j]], -1 and out-of-range indices reading zero; exact. */
static void test_add_mapped(void **state) {
    moda_backend *be = *state;
    rng g;
    rng_seed(&g, 4, 1);
    const int n = 3, h = 5, w = 4, ca = 4, cb = 6, c = 5;
    const size_t plane = (size_t)h * w;
    float *pa = tu_randn(&g, n * ca * plane, 1.0f), *pb = tu_randn(&g, n * cb * plane, 1.0f);
    float *py = tu_alloc(n * c * plane), *ref = tu_alloc(n * c * plane);
    float ma[5] = {3, -1, 0, 1, 7}, mb[5] = {5, 0, -1, 2, -1};
    tensor a = tensor_4d(pa, n, ca, h, w), b = tensor_4d(pb, n, cb, h, w), y = tensor_4d(py, n, c, h, w);
    tensor ta = tensor_1d(ma, c), tb = tensor_1d(mb, c);
    assert_int_equal(add_mapped_fwd(be, &y, &a, &b, &ta, &tb), MODA_OK);
    for (int s = 0; s < n; s++)
        for (int j = 0; j < c; j++)
            for (size_t i = 0; i < plane; i++) {
                float va = ma[j] >= 0 && ma[j] < ca ? pa[((size_t)s * ca + (size_t)ma[j]) * plane + i] : 0.0f;
                float vb = mb[j] >= 0 && mb[j] < cb ? pb[((size_t)s * cb + (size_t)mb[j]) * plane + i] : 0.0f;
                ref[((size_t)s * c + j) * plane + i] = va + vb;
            }
    assert_close(py, ref, n * c * plane, 0.0, 0.0);
    /* Channel 4 reads nothing (7 is beyond a's 4 channels, b's is -1). */
    for (size_t i = 0; i < plane; i++) assert_true(py[(size_t)4 * plane + i] == 0.0f);
    /* Shapes: maps of the wrong length, addends of another size. */
    tensor short_map = tensor_1d(ma, 4), other = tensor_4d(pb, n, cb, w, h);
    assert_int_equal(add_mapped_fwd(be, &y, &a, &b, &short_map, &tb), MODA_ERR_SHAPE);
    assert_int_equal(add_mapped_fwd(be, &y, &a, &other, &ta, &tb), MODA_ERR_SHAPE);
    assert_int_equal(add_mapped_fwd(be, &y, &a, &b, &ta, NULL), MODA_ERR_NULL);
    free(pa), free(pb), free(py), free(ref);
}

static void test_add_bad_args(void **state) {
    moda_backend *be = *state;
    float a[60] = {0}, b[60] = {0}, c[60] = {0};
    tensor ta = tensor_4d(a, 1, 3, 4, 5), tb = tensor_4d(b, 1, 3, 4, 5), ty = tensor_4d(c, 1, 3, 4, 5);
    tensor other = tensor_4d(b, 1, 3, 5, 4), flat = tensor_2d(b, 3, 20), nodata = tensor_4d(NULL, 1, 3, 4, 5);
    assert_int_equal(add_fwd(NULL, &ty, &ta, &tb), MODA_ERR_NULL);
    assert_int_equal(add_fwd(be, NULL, &ta, &tb), MODA_ERR_NULL);
    assert_int_equal(add_fwd(be, &ty, NULL, &tb), MODA_ERR_NULL);
    assert_int_equal(add_fwd(be, &ty, &ta, NULL), MODA_ERR_NULL);
    assert_int_equal(add_fwd(be, &ty, &ta, &nodata), MODA_ERR_NULL);
    assert_int_equal(add_fwd(be, &ty, &ta, &other), MODA_ERR_SHAPE);
    assert_int_equal(add_fwd(be, &ty, &other, &tb), MODA_ERR_SHAPE);
    assert_int_equal(add_fwd(be, &flat, &ta, &tb), MODA_ERR_SHAPE);
    assert_int_equal(add_bwd(NULL, &ta, &tb, &ty), MODA_ERR_NULL);
    assert_int_equal(add_bwd(be, &ta, &tb, NULL), MODA_ERR_NULL);
    assert_int_equal(add_bwd(be, &nodata, &tb, &ty), MODA_ERR_NULL);
    assert_int_equal(add_bwd(be, &ta, &other, &ty), MODA_ERR_SHAPE);
    assert_int_equal(add_bwd(be, &flat, NULL, &ty), MODA_ERR_SHAPE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_values_and_grad),
        cmocka_unit_test(test_add_mapped),
        cmocka_unit_test(test_add_bad_args),
    };
    return cmocka_run_group_tests(tests, tu_backend_setup, tu_backend_teardown);
}
