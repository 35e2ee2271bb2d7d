/* MODA losses: hand-computed values, finite-difference gradients of each
 * term, skipped terms, zero activations, and PyTorch golden values for a
 * small net (tests/golden/gen_golden.py, dump_moda). */
#include "test_util.h"

#include "graph.h"
#include "moda_loss.h"
#include "ops.h"
#include "safetensors.h"

static void test_hand_computed(void **state) {
    (void)state;
    moda_scratch sc;
    assert_int_equal(moda_scratch_init(&sc, 8, 8), MODA_OK);
    /* z rows [1,0], [0,1], [1,1]; labels 0,0,1. S01 = 0 (same),
     * S02 = S12 = 1/sqrt2 (different); c = 4/6. */
    float z[6] = {1, 0, 0, 1, 1, 1};
    int32_t y[3] = {0, 0, 1};
    moda_layer_terms t;
    assert_int_equal(moda_layer_loss(&sc, z, 3, 2, 1, y, 0, 0, 0, NULL, &t), MODA_OK);
    assert_true(t.has_same && t.has_diff);
    assert_float_equal(t.aff, 0.0, 1e-7);
    assert_float_equal(t.dis, 1 / sqrt(2.0), 1e-6);
    assert_float_equal(t.com, 4.0 / 6.0, 1e-7);

    /* Conv layer: spatial means of a (2, 1, 2x2) map are 1 and 3, both
     * same label: S = 1, one pair, c = 2, no different-label pair. */
    float a[8] = {0, 1, 2, 1, 3, 3, 3, 3};
    int32_t same[2] = {4, 4};
    float d[8] = {0};
    assert_int_equal(moda_layer_loss(&sc, a, 2, 1, 4, same, 1, 1, 1, d, &t), MODA_OK);
    assert_true(t.has_same && !t.has_diff);
    assert_float_equal(t.aff, 1.0, 1e-6);
    assert_float_equal(t.dis, 0.0, 0);
    assert_float_equal(t.com, 2.0, 1e-6);
    /* Unit vectors in 1-D: affinity has zero gradient, so only the
     * compactness gradient 1/(B*C) spread over 4 pixels remains. */
    for (int i = 0; i < 8; i++) assert_float_equal(d[i], 0.5 / 4, 1e-6);

    assert_int_equal(moda_layer_loss(&sc, z, 9, 2, 1, y, 0, 0, 0, NULL, &t), MODA_ERR_SHAPE);
    assert_int_equal(moda_layer_loss(&sc, NULL, 3, 2, 1, y, 0, 0, 0, NULL, &t), MODA_ERR_NULL);
    assert_int_equal(moda_layer_loss(&sc, z, 0, 2, 1, y, 0, 0, 0, NULL, &t), MODA_ERR_ARG);
    moda_scratch_free(&sc);
    moda_scratch_free(NULL);
}

typedef struct {
    moda_scratch *sc;
    float *act;
    int b, c, hw;
    const int32_t *y;
    int term; /* 0 aff, 1 dis, 2 com */
} term_ctx;

static double term_value(void *vctx) {
    term_ctx *t = vctx;
    moda_layer_terms r;
    assert_int_equal(moda_layer_loss(t->sc, t->act, t->b, t->c, t->hw, t->y, 0, 0, 0, NULL, &r), MODA_OK);
    return t->term == 0 ? r.aff : t->term == 1 ? r.dis : r.com;
}

/* Each term's gradient against central differences, conv (hw 9) and FC. */
static void test_gradients(void **state) {
    (void)state;
    moda_scratch sc;
    assert_int_equal(moda_scratch_init(&sc, 8, 16), MODA_OK);
    rng r;
    rng_seed(&r, 17, 2);
    int32_t y[7] = {0, 1, 0, 2, 1, 1, 2};
    int shapes[2][2] = {{7, 9}, {11, 1}};
    for (int s = 0; s < 2; s++) {
        int c = shapes[s][0], hw = shapes[s][1], b = 7;
        size_t n = (size_t)b * c * hw;
        float *act = tu_alloc(n);
        for (size_t i = 0; i < n; i++) act[i] = fabsf(rng_normal(&r)) * (rng_uniform(&r) < 0.8f);
        for (int term = 0; term < 3; term++) {
            float *g = tu_alloc(n);
            moda_layer_terms t;
            assert_int_equal(moda_layer_loss(&sc, act, b, c, hw, y, term == 0, term == 1, term == 2, g, &t),
                             MODA_OK);
            term_ctx ctx = {&sc, act, b, c, hw, y, term};
            const char *names[3] = {"affinity", "dispersion", "compactness"};
            /* eps 1e-3 on O(1) values; values are averages of cosines */
            tu_fd_check(names[term], act, g, n, term_value, &ctx, 1e-3f, 1e-4, 2e-2, 40);
            free(g);
        }
        free(act);
    }
    moda_scratch_free(&sc);
}

/* A sample whose activations are all zero (dead units) must give finite
 * values and gradients, and a batch of one label skips dispersion. */
static void test_degenerate(void **state) {
    (void)state;
    moda_scratch sc;
    assert_int_equal(moda_scratch_init(&sc, 4, 4), MODA_OK);
    float act[12] = {0, 0, 0, 1, 2, 0, 0.5f, 0, 3, 0, 0, 0};
    int32_t y[3] = {1, 1, 1};
    float g[12] = {0};
    moda_layer_terms t;
    assert_int_equal(moda_layer_loss(&sc, act, 3, 4, 1, y, -1, 1, 0.3f, g, &t), MODA_OK);
    assert_false(t.has_diff);
    for (int i = 0; i < 12; i++) assert_true(isfinite(g[i]));
    assert_true(isfinite(t.aff) && isfinite(t.com));
    int32_t one[1] = {0};
    assert_int_equal(moda_layer_loss(&sc, act, 1, 4, 1, one, -1, 1, 0.3f, g, &t), MODA_OK);
    assert_false(t.has_same);
    assert_false(t.has_diff);
    moda_scratch_free(&sc);
}

static float *read_all(const safetensors_file *f, const char *name, size_t n) {
    float *p = tu_alloc(n);
    char err[256];
    if (safetensors_read_f32(f, name, 0, NULL, p, n, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    return p;
}

static void expect_scalar(const safetensors_file *f, const char *name, double got) {
    float *want = read_all(f, name, 1);
    if (!(fabs(got - want[0]) <= 1e-5 + 1e-4 * fabs(want[0]))) fail_msg("%s: %.7g vs %.7g", name, got, want[0]);
    free(want);
}

/* Tolerance for gradients: |a-b| <= 1e-4 + 1e-3|b|, as the other goldens. */
static void test_golden(void **state) {
    moda_backend *be = *state;
    graph *g = graph_new(be, 3, 8, 8);
    int x = graph_relu(g, graph_batchnorm2d(g, "bn0", graph_conv2d(g, "conv0", 0, 5, 3, 1, 1, 1, true)));
    x = graph_relu(g, graph_batchnorm2d(g, "bn1", graph_conv2d(g, "conv1", x, 7, 3, 1, 1, 1, true)));
    x = graph_relu(g, graph_linear(g, "fc0", graph_flatten(g, graph_maxpool2d(g, x, 2, 2, 0)), 9, true));
    graph_linear(g, "fc1", x, 3, true);
    assert_int_equal(graph_finalize(g), MODA_OK);

    char path[512], err[256], name[160];
    snprintf(path, sizeof path, "%s/golden_moda.safetensors", MODA_TEST_DATA_DIR);
    safetensors_file *f = NULL;
    if (safetensors_open(path, 1 << 24, &f, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        snprintf(name, sizeof name, "init.%s", p->name);
        if (safetensors_read_f32(f, name, p->ndim, p->shape, p->data, graph_param_numel(p), err, sizeof err))
            fail_msg("%s", err);
    }
    const int n = 6, k = 3;
    float *xin = read_all(f, "x", (size_t)n * 3 * 64), *yf = read_all(f, "labels", n);
    int32_t y[6];
    for (int i = 0; i < n; i++) y[i] = (int32_t)yf[i];

    moda_loss m;
    assert_int_equal(moda_loss_init(&m, g, n, 1.0f, 1.0f, 0.3f), MODA_OK);
    assert_int_equal(m.n_layers, 3);
    assert_int_equal(graph_plan(g, n), MODA_OK);
    assert_int_equal(graph_forward(g, xin, n, true), MODA_OK);
    float ce, probs[18];
    tensor tp = tensor_2d(probs, n, k);
    assert_int_equal(softmax_ce_fwd(be, &ce, &tp, &graph_output(g)->out, y), MODA_OK);
    assert_int_equal(softmax_ce_bwd(be, &graph_output(g)->grad, &tp, y, 1.0f), MODA_OK);
    moda_loss_begin(&m, y, n);
    assert_int_equal(graph_backward(g, moda_loss_hook, &m), MODA_OK);
    double aff, dis, com, total;
    moda_loss_result(&m, &aff, &dis, &com, &total);
    expect_scalar(f, "ce", ce);
    expect_scalar(f, "aff", aff);
    expect_scalar(f, "dis", dis);
    expect_scalar(f, "com", com);
    expect_scalar(f, "loss", ce + total);
    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        if (!p->trainable) continue;
        snprintf(name, sizeof name, "grad.%s", p->name);
        float *want = read_all(f, name, graph_param_numel(p));
        double r = tu_err_ratio(p->grad, want, graph_param_numel(p), 1e-4, 1e-3);
        if (!(r <= 1.0)) fail_msg("%s: error %.3g x tolerance", name, r);
        free(want);
    }
    moda_loss_free(&m);
    free(xin);
    free(yf);
    safetensors_free(f);
    graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_computed),
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_degenerate),
        cmocka_unit_test(test_golden),
    };
    return cmocka_run_group_tests(tests, tu_backend_setup, tu_backend_teardown);
}
