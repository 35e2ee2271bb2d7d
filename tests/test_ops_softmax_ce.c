/* Softmax cross-entropy: loss, probabilities and gradient against a double
 * reference (also for logits far from zero), finite differences of the
 * loss itself, and argument validation (labels included). */
#include "test_util.h"

#include "ops.h"

typedef struct ce_case {
    moda_backend *be;
    tensor logits, probs;
    const int32_t *labels;
} ce_case;

static double ce_loss(void *ctx) {
    ce_case *c = ctx;
    float loss = 0.0f;
    assert_int_equal(softmax_ce_fwd(c->be, &loss, &c->probs, &c->logits, c->labels), MODA_OK);
    return loss;
}

/* Reference in double: probs, mean loss, and scale*(p - onehot)/N. */
static double ref_ce(float *probs, float *grad, const float *z, const int32_t *labels, int n, int k,
                     float scale) {
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *row = z + (size_t)i * k;
        double m = row[0], s = 0.0;
        for (int j = 1; j < k; j++) m = row[j] > m ? row[j] : m;
        for (int j = 0; j < k; j++) s += exp((double)row[j] - m);
        for (int j = 0; j < k; j++) {
            double p = exp((double)row[j] - m) / s;
            probs[(size_t)i * k + j] = (float)p;
            grad[(size_t)i * k + j] = (float)(scale * (p - (j == labels[i])) / n);
        }
        total += log(s) + m - row[labels[i]];
    }
    return total / n;
}

static void check_shape(moda_backend *be, rng *g, int n, int k, float spread, float offset) {
    size_t sz = (size_t)n * k;
    float *pz = tu_randn(g, sz, spread), *pp = tu_alloc(sz), *pd = tu_alloc(sz);
    float *rp = tu_alloc(sz), *rd = tu_alloc(sz);
    int32_t *labels = calloc((size_t)n, sizeof(int32_t));
    assert_non_null(labels);
    for (size_t i = 0; i < sz; i++) pz[i] += offset;
    for (int i = 0; i < n; i++) labels[i] = (int32_t)rng_below(g, (uint32_t)k);
    tensor z = tensor_2d(pz, n, k), p = tensor_2d(pp, n, k), d = tensor_2d(pd, n, k);

    const float scales[] = {1.0f, 0.5f};
    for (int s = 0; s < 2; s++) {
        double want = ref_ce(rp, rd, pz, labels, n, k, scales[s]);
        float loss = -1.0f;
        assert_int_equal(softmax_ce_fwd(be, &loss, &p, &z, labels), MODA_OK);
        /* float exp/sum against double: 1e-5 relative on the loss, 1e-6
         * absolute on probabilities in [0,1]. */
        assert_true(isfinite(loss));
        if (!(fabs(loss - want) <= 1e-5 * (1.0 + fabs(want)))) fail_msg("loss %.9g vs %.9g", loss, want);
        assert_close(pp, rp, sz, 1e-6, 1e-5);
        assert_int_equal(softmax_ce_bwd(be, &d, &p, labels, scales[s]), MODA_OK);
        assert_close(pd, rd, sz, 1e-6, 1e-5);
    }
    /* probs may overwrite the logits in place. */
    float *inplace = tu_alloc(sz), in_loss = -1.0f, loss = -1.0f;
    memcpy(inplace, pz, sz * sizeof(float));
    tensor zi = tensor_2d(inplace, n, k);
    assert_int_equal(softmax_ce_fwd(be, &loss, &p, &z, labels), MODA_OK);
    assert_int_equal(softmax_ce_fwd(be, &in_loss, &zi, &zi, labels), MODA_OK);
    assert_true(in_loss == loss);
    assert_close(inplace, pp, sz, 0.0, 0.0);
    free(inplace);
    /* Finite differences of the float loss (|loss| ~ a few units, so its
     * rounding is ~1e-6; eps 1e-2 puts the noise near 1e-4 and the curvature
     * term below that). Gradient from the scale-1 backward. */
    if (spread <= 3.0f && offset == 0.0f) {
        assert_int_equal(softmax_ce_fwd(be, &(float){0}, &p, &z, labels), MODA_OK);
        assert_int_equal(softmax_ce_bwd(be, &d, &p, labels, 1.0f), MODA_OK);
        ce_case c = {be, z, p, labels};
        tu_fd_check("softmax_ce dlogits", pz, pd, sz, ce_loss, &c, 1e-2f, 5e-4, 1e-2, 100);
    }
    free(pz), free(pp), free(pd), free(rp), free(rd), free(labels);
}

static void test_ce_values_and_grad(void **state) {
    moda_backend *be = *state;
    rng g;
    rng_seed(&g, 6, 1);
    check_shape(be, &g, 5, 10, 1.0f, 0.0f);
    check_shape(be, &g, 1, 3, 2.0f, 0.0f);
    check_shape(be, &g, 5, 37, 1.0f, 0.0f);
    check_shape(be, &g, 5, 7, 1.0f, 1000.0f); /* exp(1000) overflows without the max shift */
    check_shape(be, &g, 5, 7, 1.0f, -1000.0f);
    check_shape(be, &g, 5, 7, 60.0f, 0.0f);    /* probabilities that underflow to 0 */
    check_shape(be, &g, 300, 300, 1.0f, 0.0f); /* multi-threaded path */
}

static void test_ce_bad_args(void **state) {
    moda_backend *be = *state;
    float a[12] = {0}, b[12] = {0}, loss;
    int32_t labels[3] = {0, 3, 2}, bad_hi[3] = {0, 4, 1}, bad_lo[3] = {0, -1, 1};
    tensor z = tensor_2d(a, 3, 4), p = tensor_2d(b, 3, 4), p_wrong = tensor_2d(b, 4, 3);
    tensor z_rank1 = tensor_1d(a, 12), p_rank1 = tensor_1d(b, 12), nodata = tensor_2d(NULL, 3, 4);
    assert_int_equal(softmax_ce_fwd(NULL, &loss, &p, &z, labels), MODA_ERR_NULL);
    assert_int_equal(softmax_ce_fwd(be, NULL, &p, &z, labels), MODA_ERR_NULL);
    assert_int_equal(softmax_ce_fwd(be, &loss, NULL, &z, labels), MODA_ERR_NULL);
    assert_int_equal(softmax_ce_fwd(be, &loss, &p, NULL, labels), MODA_ERR_NULL);
    assert_int_equal(softmax_ce_fwd(be, &loss, &p, &z, NULL), MODA_ERR_NULL);
    assert_int_equal(softmax_ce_fwd(be, &loss, &nodata, &z, labels), MODA_ERR_NULL);
    assert_int_equal(softmax_ce_fwd(be, &loss, &p_wrong, &z, labels), MODA_ERR_SHAPE);
    assert_int_equal(softmax_ce_fwd(be, &loss, &p_rank1, &z_rank1, labels), MODA_ERR_SHAPE);
    assert_int_equal(softmax_ce_fwd(be, &loss, &p, &z, bad_hi), MODA_ERR_ARG);
    assert_int_equal(softmax_ce_fwd(be, &loss, &p, &z, bad_lo), MODA_ERR_ARG);
    assert_int_equal(softmax_ce_fwd(be, &loss, &p, &z, labels), MODA_OK);
    assert_int_equal(softmax_ce_bwd(NULL, &z, &p, labels, 1.0f), MODA_ERR_NULL);
    assert_int_equal(softmax_ce_bwd(be, NULL, &p, labels, 1.0f), MODA_ERR_NULL);
    assert_int_equal(softmax_ce_bwd(be, &z, NULL, labels, 1.0f), MODA_ERR_NULL);
    assert_int_equal(softmax_ce_bwd(be, &z, &p, NULL, 1.0f), MODA_ERR_NULL);
    assert_int_equal(softmax_ce_bwd(be, &p_wrong, &p, labels, 1.0f), MODA_ERR_SHAPE);
    assert_int_equal(softmax_ce_bwd(be, &z_rank1, &p_rank1, labels, 1.0f), MODA_ERR_SHAPE);
    assert_int_equal(softmax_ce_bwd(be, &z, &p, bad_hi, 1.0f), MODA_ERR_ARG);
    assert_int_equal(softmax_ce_bwd(be, &z, &p, bad_lo, 1.0f), MODA_ERR_ARG);
    assert_int_equal(softmax_ce_bwd(be, &z, &p, labels, NAN), MODA_ERR_ARG);
    assert_int_equal(softmax_ce_bwd(be, &z, &p, labels, INFINITY), MODA_ERR_ARG);
    assert_int_equal(softmax_ce_bwd(be, &z, &p, labels, 2.0f), MODA_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ce_values_and_grad),
        cmocka_unit_test(test_ce_bad_args),
    };
    return cmocka_run_group_tests(tests, tu_backend_setup, tu_backend_teardown);
}
