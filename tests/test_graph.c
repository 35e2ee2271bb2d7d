/* Graph builder, whole-graph gradients (fan-in through residual adds), the
 * optimiser, determinism, and a tiny network that learns. */
#include "test_util.h"

#include "graph.h"
#include "ops.h"
#include "optim.h"

static moda_backend *be;

static int setup(void **state) { return tu_backend_setup_into(state, &be); }

/* conv-BN-ReLU, a residual block with a 1x1 shortcut, a depthwise conv,
 * maxpool, global pool and linear: every node kind the engine has. */
static graph *build_small(int classes) {
    graph *g = graph_new(be, 3, 8, 8);
    assert_non_null(g);
    int x = graph_input(g);
    int h = graph_relu(g, graph_batchnorm2d(g, "bn0", graph_conv2d(g, "conv0", x, 6, 3, 1, 1, 1, true)));
    int a = graph_relu(g, graph_batchnorm2d(g, "bn1", graph_conv2d(g, "conv1", h, 8, 3, 2, 1, 1, false)));
    a = graph_batchnorm2d(g, "bn2", graph_conv2d(g, "conv2", a, 8, 3, 1, 1, 1, false));
    int s = graph_batchnorm2d(g, "bns", graph_conv2d(g, "short", h, 8, 1, 2, 0, 1, false));
    int r = graph_relu(g, graph_add(g, a, s));
    int d = graph_relu(g, graph_conv2d(g, "dw", r, 8, 3, 1, 1, 8, true));
    int m = graph_maxpool2d(g, d, 2, 2, 0);
    int p = graph_relu(g, graph_add(g, graph_global_avgpool(g, m), graph_flatten(g, graph_maxpool2d(g, m, 2, 2, 0))));
    graph_linear(g, "fc", p, classes, true);
    assert_int_equal(graph_finalize(g), MODA_OK);
    return g;
}

static void init_params(graph *g, uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 1);
    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        if (!p->trainable) continue;
        size_t n = graph_param_numel(p);
        float fan_in = n / (float)p->shape[0];
        if (p->ndim == 1 && strstr(p->name, "bn") == p->name && strstr(p->name, "weight"))
            rng_fill_uniform(&r, p->data, n, 0.5f, 1.5f);
        else
            rng_fill_normal(&r, p->data, n, 0.0f, p->ndim == 1 ? 0.1f : 1.0f / sqrtf(fan_in));
    }
}

static void test_builder_errors(void **state) {
    (void)state;
    assert_null(graph_new(NULL, 3, 8, 8));
    assert_null(graph_new(be, 0, 8, 8));
    graph *g = graph_new(be, 3, 8, 8);
    assert_int_equal(graph_conv2d(g, "c", 7, 4, 3, 1, 1, 1, true), -1); /* no node 7 */
    assert_int_equal(graph_finalize(g), MODA_ERR_ARG);
    graph_free(g);

    g = graph_new(be, 3, 8, 8);
    assert_int_equal(graph_linear(g, "fc", 0, 4, true), -1); /* linear needs (N, F) */
    assert_int_equal(graph_finalize(g), MODA_ERR_SHAPE);
    graph_free(g);

    g = graph_new(be, 3, 8, 8);
    int c = graph_conv2d(g, "c", 0, 4, 3, 2, 1, 1, true);
    assert_int_equal(graph_add(g, c, 0), -1); /* (4,4,4) + (3,8,8) */
    assert_int_equal(graph_finalize(g), MODA_ERR_SHAPE);
    graph_free(g);

    g = graph_new(be, 3, 8, 8);
    assert_int_equal(graph_conv2d(g, "c", 0, 4, 3, 1, 1, 2, true), -1); /* groups must divide 3 */
    assert_int_equal(graph_conv2d(g, "c", 0, 4, 11, 1, 0, 1, true), -1);
    graph_free(g);

    g = build_small(5);
    float x[3 * 8 * 8] = {0};
    assert_int_equal(graph_forward(g, x, 1, true), MODA_ERR_STATE); /* not planned */
    assert_int_equal(graph_plan(g, 4), MODA_OK);
    assert_int_equal(graph_backward(g, NULL, NULL), MODA_ERR_STATE); /* no forward yet */
    assert_int_equal(graph_forward(g, x, 5, true), MODA_ERR_ARG);
    assert_int_equal(graph_forward(g, NULL, 1, true), MODA_ERR_NULL);
    assert_int_equal(graph_forward(g, x, 1, false), MODA_OK);
    assert_int_equal(graph_backward(g, NULL, NULL), MODA_ERR_STATE); /* eval forward */
    assert_int_equal(graph_conv2d(g, "late", 0, 4, 3, 1, 1, 1, true), -1);
    assert_null(graph_output(NULL));
    assert_int_equal(graph_find_param(g, "nope"), -1);
    assert_true(graph_find_param(g, "bn1.running_var") >= 0);
    graph_free(g);
    graph_free(NULL);
}

static void test_counts(void **state) {
    (void)state;
    graph *g = build_small(5);
    /* conv0 6*3*9+6, bn0 12, conv1 8*6*9, bn1 16, conv2 8*8*9, bn2 16, short 8*6,
     * bns 16, dw 8*9+8, fc 8*5+5 */
    size_t want = 168 + 12 + 432 + 16 + 576 + 16 + 48 + 16 + 80 + 45;
    assert_int_equal(graph_param_count(g), want);
    /* MACs: conv0 6*64*27, conv1 8*16*54, conv2 8*16*72, short 8*16*6, dw 8*16*9, fc 40 */
    double macs = 6 * 64 * 27 + 8 * 16 * 54 + 8 * 16 * 72 + 8 * 16 * 6 + 8 * 16 * 9 + 40;
    assert_true(fabs(graph_macs(g) - macs) < 0.5);
    graph_free(g);
}

typedef struct {
    graph *g;
    float *x;
    int32_t *labels;
    int n;
    float *probs;
} loss_ctx;

static double graph_loss(void *vctx) {
    loss_ctx *c = vctx;
    assert_int_equal(graph_forward(c->g, c->x, c->n, true), MODA_OK);
    float loss = 0;
    tensor probs = tensor_2d(c->probs, c->n, graph_output(c->g)->c);
    assert_int_equal(softmax_ce_fwd(be, &loss, &probs, &graph_output(c->g)->out, c->labels), MODA_OK);
    return loss;
}

/* Every parameter gradient of the whole graph against central differences,
 * which checks the backward wiring: fan-in sums, flatten, skipped input. */
static void test_graph_gradients(void **state) {
    (void)state;
    const int n = 3, k = 5;
    graph *g = build_small(k);
    init_params(g, 7);
    assert_int_equal(graph_plan(g, n), MODA_OK);
    rng r;
    rng_seed(&r, 99, 3);
    loss_ctx c = {g, tu_randn(&r, (size_t)n * 3 * 64, 1.0f), (int32_t[]){0, 3, 4}, n, tu_alloc((size_t)n * k)};
    graph_loss(&c);
    tensor probs = tensor_2d(c.probs, n, k);
    graph_node *out = graph_output(g);
    assert_int_equal(softmax_ce_bwd(be, &out->grad, &probs, c.labels, 1.0f), MODA_OK);
    assert_int_equal(graph_backward(g, NULL, NULL), MODA_OK);
    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        if (!p->trainable) continue;
        size_t numel = graph_param_numel(p);
        float *grad = tu_alloc(numel);
        memcpy(grad, p->grad, numel * sizeof(float));
        /* float32 forward: eps 1e-3 keeps ReLU and max-pool switches out of the
         * step while rounding noise (~1e-4) stays below the tolerance */
        tu_fd_check(p->name, p->data, grad, numel, graph_loss, &c, 1e-3f, 2e-3, 3e-2, 12);
        free(grad);
    }
    free(c.x);
    free(c.probs);
    graph_free(g);
}

/* A hook adding e to a ReLU's gradient must equal adding the term
 * sum(e .* relu_out) to the objective: checked by finite differences. */
typedef struct {
    loss_ctx base;
    int node;
    const float *extra;
    int calls;
} hook_ctx;

static moda_status add_hook(graph *g, int node, void *vctx) {
    hook_ctx *h = vctx;
    h->calls++;
    if (node != h->node) return MODA_OK;
    graph_node *nd = &g->nodes[node];
    return backend_axpy(g->be, nd->grad.data, h->extra, tensor_numel(&nd->grad), 1.0f);
}

static double hooked_loss(void *vctx) {
    hook_ctx *h = vctx;
    double ce = graph_loss(&h->base);
    graph_node *nd = &h->base.g->nodes[h->node];
    return ce + tu_dot(h->extra, nd->out.data, tensor_numel(&nd->out));
}

static void test_backward_hook(void **state) {
    (void)state;
    const int n = 2, k = 5;
    graph *g = build_small(k);
    init_params(g, 3);
    assert_int_equal(graph_plan(g, n), MODA_OK);
    rng r;
    rng_seed(&r, 5, 5);
    int relu = 3; /* the ReLU after bn0 */
    assert_int_equal(g->nodes[relu].kind, NODE_RELU);
    size_t m = (size_t)n * g->nodes[relu].c * g->nodes[relu].h * g->nodes[relu].w;
    hook_ctx h = {{g, tu_randn(&r, (size_t)n * 3 * 64, 1.0f), (int32_t[]){1, 2}, n, tu_alloc((size_t)n * k)},
                  relu, tu_randn(&r, m, 0.1f), 0};
    /* Only firmly active units carry the extra term, so that no unit crosses
     * the ReLU kink within a finite-difference step. */
    graph_loss(&h.base);
    for (size_t i = 0; i < m; i++)
        if (g->nodes[relu].out.data[i] < 0.5f) ((float *)h.extra)[i] = 0.0f;
    hooked_loss(&h);
    tensor tp = tensor_2d(h.base.probs, n, k);
    assert_int_equal(softmax_ce_bwd(be, &graph_output(g)->grad, &tp, h.base.labels, 1.0f), MODA_OK);
    assert_int_equal(graph_backward(g, add_hook, &h), MODA_OK);
    assert_true(h.calls > 10);
    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        if (!p->trainable || (strncmp(p->name, "conv0", 5) && strncmp(p->name, "bn0", 3))) continue;
        size_t numel = graph_param_numel(p);
        float *grad = tu_alloc(numel);
        memcpy(grad, p->grad, numel * sizeof(float));
        tu_fd_check(p->name, p->data, grad, numel, hooked_loss, &h, 1e-3f, 2e-3, 3e-2, 12);
        free(grad);
    }
    free((void *)h.extra);
    free(h.base.x);
    free(h.base.probs);
    graph_free(g);
}

static void test_sgd_formulas(void **state) {
    (void)state;
    graph *g = graph_new(be, 1, 1, 1);
    int f = graph_flatten(g, 0);
    graph_linear(g, "fc", f, 1, true);
    assert_int_equal(graph_finalize(g), MODA_OK);
    sgd opt;
    assert_int_equal(sgd_init(&opt, g, 0.9f, 0.1f, true), MODA_OK);
    graph_param *w = &g->params[0];
    w->data[0] = 1.0f;
    w->grad[0] = 0.5f;
    /* g' = 0.5 + 0.1*1 = 0.6; v = 0.6; p = 1 - 0.1*(0.6 + 0.9*0.6) = 0.886 */
    assert_int_equal(sgd_step(&opt, g, 0.1f), MODA_OK);
    assert_float_equal(w->data[0], 0.886f, 1e-6);
    /* g' = 0.5 + 0.0886 = 0.5886; v = 0.54 + 0.5886 = 1.1286;
     * p = 0.886 - 0.1*(0.5886 + 0.9*1.1286) = 0.725566 */
    assert_int_equal(sgd_step(&opt, g, 0.1f), MODA_OK);
    assert_float_equal(w->data[0], 0.725566f, 1e-6);
    sgd_free(&opt);

    assert_int_equal(sgd_init(&opt, g, 0.0f, 0.0f, true), MODA_ERR_ARG);
    assert_int_equal(sgd_init(&opt, g, 0.9f, -1.0f, false), MODA_ERR_ARG);
    assert_int_equal(sgd_init(NULL, g, 0.9f, 0.0f, false), MODA_ERR_NULL);
    sgd_free(NULL);

    assert_float_equal(cosine_lr(0.05f, 0, 10), 0.05f, 1e-7);
    assert_float_equal(cosine_lr(0.05f, 5, 10), 0.025f, 1e-7);
    assert_float_equal(cosine_lr(0.05f, 10, 10), 0.0f, 1e-7);
    assert_float_equal(cosine_lr(0.05f, 2, 10), 0.05f * 0.5f * (1 + cosf(0.2f * 3.14159265f)), 1e-6);
    graph_free(g);
}

/* Synthetic separable problem: class c has a bright blob at quadrant c. */
static void make_blobs(rng *r, float *x, int32_t *y, int n) {
    for (int i = 0; i < n; i++) {
        int c = (int)rng_below(r, 4);
        y[i] = c;
        for (int ch = 0; ch < 3; ch++)
            for (int h = 0; h < 8; h++)
                for (int w = 0; w < 8; w++) {
                    int q = (h >= 4) * 2 + (w >= 4);
                    x[((size_t)i * 3 + ch) * 64 + h * 8 + w] = 0.3f * rng_normal(r) + (q == c ? 1.0f : 0.0f);
                }
    }
}

static float train_tiny(uint64_t seed, int steps, float *first_loss, float **weights_out) {
    const int n = 16, k = 4;
    graph *g = build_small(k);
    init_params(g, seed);
    assert_int_equal(graph_plan(g, n), MODA_OK);
    sgd opt;
    assert_int_equal(sgd_init(&opt, g, 0.9f, 0.0f, true), MODA_OK);
    rng r;
    rng_seed(&r, seed, 11);
    float *x = tu_alloc((size_t)n * 3 * 64), *probs = tu_alloc((size_t)n * k);
    int32_t y[16];
    float loss = 0, avg = 0;
    for (int step = 0; step < steps; step++) {
        make_blobs(&r, x, y, n);
        assert_int_equal(graph_forward(g, x, n, true), MODA_OK);
        tensor tp = tensor_2d(probs, n, k);
        assert_int_equal(softmax_ce_fwd(be, &loss, &tp, &graph_output(g)->out, y), MODA_OK);
        if (step == 0) *first_loss = loss;
        if (step >= steps - 10) avg += loss / 10;
        assert_int_equal(softmax_ce_bwd(be, &graph_output(g)->grad, &tp, y, 1.0f), MODA_OK);
        assert_int_equal(graph_backward(g, NULL, NULL), MODA_OK);
        assert_int_equal(sgd_step(&opt, g, cosine_lr(0.05f, step, steps)), MODA_OK);
    }
    if (weights_out) {
        int w = graph_find_param(g, "fc.weight");
        *weights_out = tu_alloc(graph_param_numel(&g->params[w]));
        memcpy(*weights_out, g->params[w].data, graph_param_numel(&g->params[w]) * sizeof(float));
    }
    free(x);
    free(probs);
    sgd_free(&opt);
    graph_free(g);
    return avg;
}

static void test_tiny_network_learns(void **state) {
    (void)state;
    float first;
    float final = train_tiny(1, 150, &first, NULL);
    /* Chance is ln 4 = 1.386; the blobs are easy, so the mean loss over the
     * last 10 steps must fall well below it. */
    assert_true(first > 1.0f);
    if (!(final < 0.15f)) fail_msg("final loss %.4f (first %.4f)", final, first);
}

static void test_deterministic(void **state) {
    (void)state;
    float first, *w1, *w2, *w3;
    train_tiny(42, 20, &first, &w1);
    train_tiny(42, 20, &first, &w2);
    train_tiny(43, 20, &first, &w3);
    assert_memory_equal(w1, w2, 8 * 4 * sizeof(float));
    assert_memory_not_equal(w1, w3, 8 * 4 * sizeof(float));
    free(w1);
    free(w2);
    free(w3);
}

/* A shared handle on another backend computes the same eval logits as the
 * owner, planned without gradients, and refuses training. */
static void test_share_and_inference_plan(void **state) {
    (void)state;
    graph *g = build_small(5);
    init_params(g, 11);
    rng r;
    rng_seed(&r, 3, 1);
    float *x = tu_randn(&r, 4 * 3 * 8 * 8, 1.0f);
    assert_int_equal(graph_plan(g, 4), MODA_OK);
    assert_int_equal(graph_forward(g, x, 4, false), MODA_OK);
    float want[20];
    memcpy(want, graph_output(g)->out.data, sizeof(want));

    moda_backend *be2 = tu_backend_open(); /* a second one */
    assert_non_null(be2);
    graph *s = graph_share(g, be2);
    assert_non_null(s);
    assert_int_equal(graph_forward(s, x, 4, false), MODA_ERR_STATE); /* not planned */
    assert_int_equal(graph_plan_inference(s, 2), MODA_OK);
    assert_true(graph_activation_bytes(s) > 0);
    assert_int_equal(graph_param_bytes(s), 0);
    assert_true(graph_activation_bytes(s) < graph_activation_bytes(g)); /* half the batch, no grads */
    /* Two chunks of the planned 2; oneDNN may pick another kernel for a
     * smaller batch, so equal up to rounding. */
    for (int off = 0; off < 4; off += 2) {
        assert_int_equal(graph_forward(s, x + off * 3 * 8 * 8, 2, false), MODA_OK);
        assert_true(tu_err_ratio(graph_output(s)->out.data, want + off * 5, 10, 1e-6, 1e-5) <= 1.0);
    }
    assert_int_equal(graph_forward(s, x, 3, false), MODA_ERR_ARG); /* over the plan */
    assert_int_equal(graph_forward(s, x, 2, true), MODA_ERR_STATE);
    assert_int_equal(graph_alloc_grads(s), MODA_ERR_STATE);
    assert_int_equal(graph_plan(s, 2), MODA_ERR_STATE);
    assert_null(graph_share(NULL, be2));
    graph_free(s);

    /* The owner planned for inference cannot run backward. */
    assert_int_equal(graph_plan_inference(g, 4), MODA_OK);
    assert_int_equal(graph_forward(g, x, 4, true), MODA_OK);
    assert_int_equal(graph_backward(g, NULL, NULL), MODA_ERR_STATE);
    tu_backend_close(be2);
    graph_free(g);
    free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builder_errors), cmocka_unit_test(test_counts),
        cmocka_unit_test(test_graph_gradients), cmocka_unit_test(test_backward_hook),
        cmocka_unit_test(test_sgd_formulas),    cmocka_unit_test(test_tiny_network_learns),
        cmocka_unit_test(test_deterministic),   cmocka_unit_test(test_share_and_inference_plan),
    };
    return cmocka_run_group_tests(tests, setup, tu_backend_teardown);
}
