/* Frozen inference plans: for the four architectures at small widths, and
 * for composed models of them (random keep-masks, so ResNet18's residual
 * ties and MobileNet's depthwise ties are sliced), the frozen plan's logits
 * equal the unfrozen eval-mode graph's within 1e-4 relative, at batch 1,
 * an odd batch and batch 64. Relative: each sample's largest difference
 * over its largest logit magnitude, for random weights with nontrivial BN
 * statistics. Also: activations stay in the blocked layout (no reorder
 * but at the input), the plan does not change after its first run at a
 * batch size, it does not see later weight changes, and what it refuses. */
#include "test_util.h"

#include "compose.h"
#include "decompose.h"
#include "frozen.h"
#include "models.h"

static moda_backend *be;

static int setup(void **state) { return tu_backend_setup_into(state, &be); }

static void randomize(graph *g, uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 3);
    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        size_t n = graph_param_numel(p);
        if (strstr(p->name, "running_var")) rng_fill_uniform(&r, p->data, n, 0.5f, 1.5f);
        else if (strstr(p->name, "running_mean")) rng_fill_uniform(&r, p->data, n, -0.3f, 0.3f);
        else if (p->ndim == 1) rng_fill_uniform(&r, p->data, n, -0.5f, 1.0f);
        else rng_fill_normal(&r, p->data, n, 0.0f, sqrtf(2.0f / (float)(n / p->shape[0])));
    }
}

/* The unfrozen eval-mode logits, through a shared inference handle as the
 * server ran them before plans. */
static float *unfrozen(const graph *g, const float *x, int n) {
    graph *h = graph_share(g, be);
    assert_non_null(h);
    assert_int_equal(graph_plan_inference(h, n), MODA_OK);
    assert_int_equal(graph_forward(h, x, n, false), MODA_OK);
    graph_node *o = graph_output(h);
    float *y = tu_alloc(tensor_numel(&o->out));
    memcpy(y, o->out.data, tensor_numel(&o->out) * sizeof(float));
    graph_free(h);
    return y;
}

static void check_close(const char *what, int n, const float *got, const float *want, int k) {
    for (int i = 0; i < n; i++) {
        double scale = 0, worst = 0;
        for (int j = 0; j < k; j++) {
            double w = fabs(want[i * k + j]), d = fabs((double)got[i * k + j] - want[i * k + j]);
            if (w > scale) scale = w;
            if (!(d <= worst)) worst = d; /* NaN sticks */
        }
        if (!(worst <= 1e-4 * scale))
            fail_msg("%s: sample %d of %d: max |frozen - unfrozen| %.3g, largest logit %.3g", what, i, n, worst,
                     scale);
    }
}

/* The plan against the graph at batches 1, 7 and 64. */
static void check_plan(const char *what, const graph *g, uint64_t seed, int max_reorders) {
    const int k = g->nodes[g->output].c, sizes[3] = {1, 7, 64};
    const size_t per = (size_t)g->in_c * g->in_h * g->in_w;
    frozen *f = NULL;
    assert_int_equal(frozen_new(g, be, 64, &f), MODA_OK);
    assert_int_equal(frozen_classes(f), k);
    rng q;
    rng_seed(&q, seed, 7);
    for (int t = 0; t < 3; t++) {
        const int n = sizes[t];
        float *x = tu_randn(&q, (size_t)n * per, 1.0f);
        float *want = unfrozen(g, x, n);
        float *got = tu_alloc((size_t)n * k);
        assert_int_equal(frozen_reorders(f, n), -1);
        /* Unprepared: 7 runs as 4 + 2 + 1. Then as one pass. */
        assert_int_equal(frozen_run(f, x, n, got), MODA_OK);
        check_close(what, n, got, want, k);
        assert_int_equal(frozen_reorders(f, n) >= 0, (n & (n - 1)) == 0);
        assert_int_equal(frozen_prepare(f, n), MODA_OK);
        assert_int_equal(frozen_run(f, x, n, got), MODA_OK);
        check_close(what, n, got, want, k);
        /* Prepared now: a second run builds nothing and gives the same. */
        size_t bytes = frozen_bytes(f);
        int steps = frozen_steps(f, n), reorders = frozen_reorders(f, n);
        assert_true(steps > 0);
        if (reorders > max_reorders) fail_msg("%s: %d reorders at batch %d", what, reorders, n);
        float *again = tu_alloc((size_t)n * k);
        assert_int_equal(frozen_run(f, x, n, again), MODA_OK);
        assert_memory_equal(again, got, (size_t)n * k * sizeof(float));
        assert_int_equal(frozen_bytes(f), bytes);
        assert_int_equal(frozen_steps(f, n), steps);
        free(again);
        free(got);
        free(want);
        free(x);
    }
    frozen_free(f);
}

static graph *model(model_arch arch, float width, uint64_t seed) {
    model_config cfg = model_config_default(arch);
    cfg.width = width;
    moda_status st;
    graph *g = model_build(be, &cfg, &st);
    assert_non_null(g);
    randomize(g, seed);
    return g;
}

static void test_lenet5(void **state) {
    (void)state;
    graph *g = model(MODEL_LENET5, 1.0f, 1);
    check_plan("lenet5", g, 1, 1);
    graph_free(g);
}

static void test_vgg16(void **state) {
    (void)state;
    graph *g = model(MODEL_VGG16, 0.125f, 2);
    check_plan("vgg16", g, 2, 1);
    graph_free(g);
}

static void test_resnet18(void **state) {
    (void)state;
    graph *g = model(MODEL_RESNET18, 0.125f, 3);
    check_plan("resnet18", g, 3, 1);
    graph_free(g);
}

static void test_mobilenet(void **state) {
    (void)state;
    graph *g = model(MODEL_MOBILENET, 0.25f, 4);
    check_plan("mobilenet", g, 4, 1);
    graph_free(g);
}

/* Composed models from random half masks of every tracked layer: sliced
 * residual spaces (ResNet18), sliced depthwise groups (MobileNet), in
 * both modes; per layer, ResNet18's residual adds read through channel
 * maps (gathers in the plan). */
static void composed_case(model_arch arch, float width, uint64_t seed) {
    graph *g = model(arch, width, seed);
    rates r;
    assert_int_equal(rates_alloc(&r, g, graph_output(g)->c), MODA_OK);
    rng q;
    rng_seed(&q, seed, 5);
    for (int trial = 0; trial < 4; trial++) {
        const compose_mode mode = trial < 2 ? COMPOSE_TIED : COMPOSE_PER_LAYER;
        const bool five = trial % 2;
        bool **masks = tu_random_masks(&q, r.n_layers, r.units, 0.5f);
        int cls2[2] = {3, 7}, cls5[5] = {9, 0, 4, 6, 1};
        compose_plan p;
        graph *c = NULL;
        assert_int_equal(compose_plan_from_masks_mode(g, &r, masks, five ? cls5 : cls2, five ? 5 : 2, mode, &p), MODA_OK);
        assert_int_equal(compose_build(g, &p, be, &c), MODA_OK);
        int mapped = 0;
        for (int i = 0; i < c->n_nodes; i++) mapped += graph_add_is_mapped(&c->nodes[i]);
        assert_true(arch == MODEL_RESNET18 && mode == COMPOSE_PER_LAYER ? mapped > 0 : mapped == 0);
        char what[64];
        snprintf(what, sizeof what, "composed %s %s, %d classes", model_arch_name(arch), compose_mode_name(mode),
                 five ? 5 : 2);
        check_plan(what, c, seed + 10 + (uint64_t)trial, 1);
        graph_free(c);
        compose_plan_free(&p);
        tu_masks_free(masks, r.n_layers);
    }
    rates_free(&r);
    graph_free(g);
}

static void test_composed_vgg16(void **state) {
    (void)state;
    composed_case(MODEL_VGG16, 0.125f, 11);
}

static void test_composed_resnet18(void **state) {
    (void)state;
    composed_case(MODEL_RESNET18, 0.125f, 12);
}

static void test_composed_mobilenet(void **state) {
    (void)state;
    composed_case(MODEL_MOBILENET, 0.25f, 13);
}

static void test_composed_lenet5(void **state) {
    (void)state;
    composed_case(MODEL_LENET5, 1.0f, 14);
}

/* The plan holds the weights it was frozen with. */
static void test_weights_copied(void **state) {
    (void)state;
    graph *g = model(MODEL_RESNET18, 0.125f, 5);
    frozen *f = NULL;
    assert_int_equal(frozen_new(g, be, 4, &f), MODA_OK);
    rng q;
    rng_seed(&q, 5, 1);
    float *x = tu_randn(&q, 2 * 3 * 32 * 32, 1.0f);
    float *want = unfrozen(g, x, 2), got[20];
    for (int i = 0; i < g->n_params; i++) memset(g->params[i].data, 0, graph_param_numel(&g->params[i]) * sizeof(float));
    assert_int_equal(frozen_run(f, x, 2, got), MODA_OK);
    check_close("after the graph's weights were zeroed", 2, got, want, 10);
    frozen_free(f);
    graph_free(g);
    free(x);
    free(want);
}

/* Many batch sizes, split into powers of two or prepared: older prepared
 * ones are released and rebuilt on return. */
static void test_many_batch_sizes(void **state) {
    (void)state;
    graph *g = model(MODEL_MOBILENET, 0.125f, 6);
    frozen *f = NULL;
    assert_int_equal(frozen_new(g, be, 16, &f), MODA_OK);
    rng q;
    rng_seed(&q, 6, 1);
    float *x = tu_randn(&q, 16 * 3 * 32 * 32, 1.0f), *got = tu_alloc(16 * 10);
    for (int round = 0; round < 2; round++)
        for (int n = 1; n <= 16; n += 3) {
            float *want = unfrozen(g, x, n);
            assert_int_equal(frozen_run(f, x, n, got), MODA_OK);
            check_close("mobilenet, varying batch", n, got, want, 10);
            assert_int_equal(frozen_prepare(f, n), MODA_OK);
            assert_int_equal(frozen_run(f, x, n, got), MODA_OK);
            check_close("mobilenet, varying batch, prepared", n, got, want, 10);
            free(want);
        }
    frozen_free(f);
    graph_free(g);
    free(x);
    free(got);
    /* Every power of two to 64 on one plan: each batch size may want its
     * own weight layouts (the classifier's above all), and the plan keeps
     * a bounded number of them. */
    g = model(MODEL_VGG16, 0.125f, 9);
    assert_int_equal(frozen_new(g, be, 64, &f), MODA_OK);
    x = tu_randn(&q, 64 * 3 * 32 * 32, 1.0f);
    got = tu_alloc(64 * 10);
    static const int sizes[] = {64, 1, 2, 4, 8, 16, 32, 3, 63};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        float *want = unfrozen(g, x, sizes[i]);
        assert_int_equal(frozen_run(f, x, sizes[i], got), MODA_OK);
        check_close("vgg16, every power of two", sizes[i], got, want, 10);
        free(want);
    }
    frozen_free(f);
    graph_free(g);
    free(x);
    free(got);
}

/* Batch 1 on a two-thread backend is timed on one thread and on two, and
 * runs on the faster; fixed counts are kept as given. */
static void test_threads(void **state) {
    (void)state;
    moda_backend *two = backend_cpu_new();
    assert_non_null(two);
    backend_set_threads(two, 2);
    graph *g = model(MODEL_LENET5, 1.0f, 8);
    frozen *f = NULL;
    assert_int_equal(frozen_new(g, two, 8, &f), MODA_OK);
    assert_int_equal(frozen_prepare(f, 1), MODA_OK);
    int t1 = frozen_threads(f, 1);
    assert_true(t1 == 1 || t1 == 2);
    assert_int_equal(frozen_prepare(f, 2), MODA_OK);
    assert_int_equal(frozen_threads(f, 2), 2); /* beyond the small batches: the backend's */
    frozen_free(f);
    assert_int_equal(frozen_new(g, two, 8, &f), MODA_OK);
    frozen_set_small_batch_threads(f, 4, 1);
    assert_int_equal(frozen_prepare(f, 3), MODA_OK);
    assert_int_equal(frozen_threads(f, 3), 1);
    assert_int_equal(frozen_prepare(f, 5), MODA_OK);
    assert_int_equal(frozen_threads(f, 5), 2);
    assert_int_equal(frozen_threads(f, 6), -1);
    /* Whatever the count, the same logits. */
    rng q;
    rng_seed(&q, 8, 1);
    float *x = tu_randn(&q, 3 * 3 * 32 * 32, 1.0f), got[30];
    float *want = unfrozen(g, x, 3);
    assert_int_equal(frozen_run(f, x, 3, got), MODA_OK);
    check_close("lenet5 on one thread", 3, got, want, 10);
    frozen_free(f);
    free(want);
    free(x);
    graph_free(g);
    backend_free(two);
}

static void test_refusals(void **state) {
    (void)state;
    frozen *f = (frozen *)1;
    assert_int_equal(frozen_new(NULL, be, 1, &f), MODA_ERR_NULL);
    assert_null(f);
    /* A batch norm that follows no conv is not frozen: the caller runs
     * the graph. */
    graph *g = graph_new(be, 3, 4, 4);
    int x = graph_batchnorm2d(g, "bn", graph_input(g));
    x = graph_flatten(g, x);
    graph_linear(g, "fc", x, 2, true);
    assert_int_equal(graph_finalize(g), MODA_OK);
    assert_int_equal(frozen_new(g, be, 4, &f), MODA_ERR_UNSUPPORTED);
    assert_null(f);
    graph_free(g);
    /* Nor is a network whose output is not a linear layer. */
    g = graph_new(be, 3, 4, 4);
    graph_conv2d(g, "c", graph_input(g), 2, 3, 1, 1, 1, true);
    assert_int_equal(graph_finalize(g), MODA_OK);
    assert_int_equal(frozen_new(g, be, 4, &f), MODA_ERR_UNSUPPORTED);
    graph_free(g);

    g = model(MODEL_LENET5, 1.0f, 7);
    assert_int_equal(frozen_new(g, be, 0, &f), MODA_ERR_ARG);
    assert_int_equal(frozen_new(g, be, 2, &f), MODA_OK);
    float in[3 * 3 * 32 * 32] = {0}, out[30];
    assert_int_equal(frozen_run(f, in, 3, out), MODA_ERR_ARG);
    assert_int_equal(frozen_run(f, in, 0, out), MODA_ERR_ARG);
    assert_int_equal(frozen_run(f, NULL, 1, out), MODA_ERR_NULL);
    assert_int_equal(frozen_prepare(f, 3), MODA_ERR_ARG);
    assert_int_equal(frozen_reorders(f, 2), -1);
    assert_int_equal(frozen_prepare(f, 2), MODA_OK);
    assert_true(frozen_reorders(f, 2) >= 0);
    assert_int_equal(frozen_max_batch(f), 2);
    frozen_free(f);
    frozen_free(NULL);
    graph_free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenet5),
        cmocka_unit_test(test_vgg16),
        cmocka_unit_test(test_resnet18),
        cmocka_unit_test(test_mobilenet),
        cmocka_unit_test(test_composed_lenet5),
        cmocka_unit_test(test_composed_vgg16),
        cmocka_unit_test(test_composed_resnet18),
        cmocka_unit_test(test_composed_mobilenet),
        cmocka_unit_test(test_weights_copied),
        cmocka_unit_test(test_many_batch_sizes),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, tu_backend_teardown);
}
