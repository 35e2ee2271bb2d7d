/* Golden tensors from PyTorch (tests/golden/gen_golden.py): the engine must
 * reproduce train-mode logits, loss, every parameter gradient, the running
 * statistics update and eval-mode logits of three small nets.
 * Tolerance: |a-b| <= 1e-4 + 1e-3*|b| (float32, different summation order). */
#include "test_util.h"

#include "graph.h"
#include "ops.h"
#include "safetensors.h"

static moda_backend *be;

static int setup(void **state) { return tu_backend_setup_into(state, &be); }

static graph *build_convnet(void) {
    graph *g = graph_new(be, 3, 8, 8);
    int x = graph_relu(g, graph_batchnorm2d(g, "bn0", graph_conv2d(g, "conv0", 0, 5, 3, 1, 1, 1, true)));
    x = graph_flatten(g, graph_maxpool2d(g, x, 2, 2, 0));
    graph_linear(g, "fc", x, 6, true);
    return g;
}

static graph *build_resblock(void) {
    graph *g = graph_new(be, 4, 8, 8);
    int a = graph_relu(g, graph_batchnorm2d(g, "bn1", graph_conv2d(g, "conv1", 0, 6, 3, 2, 1, 1, false)));
    a = graph_batchnorm2d(g, "bn2", graph_conv2d(g, "conv2", a, 6, 3, 1, 1, 1, false));
    int s = graph_batchnorm2d(g, "short_bn", graph_conv2d(g, "short_conv", 0, 6, 1, 2, 0, 1, false));
    int r = graph_relu(g, graph_add(g, a, s));
    graph_linear(g, "fc", graph_global_avgpool(g, r), 3, true);
    return g;
}

static graph *build_depthwise(void) {
    graph *g = graph_new(be, 4, 6, 6);
    int x = graph_relu(g, graph_batchnorm2d(g, "bn1", graph_conv2d(g, "dw", 0, 4, 3, 1, 1, 4, false)));
    x = graph_relu(g, graph_batchnorm2d(g, "bn2", graph_conv2d(g, "pw", x, 8, 1, 1, 0, 1, false)));
    graph_linear(g, "fc", graph_global_avgpool(g, x), 3, true);
    return g;
}

static float *read_tensor(const safetensors_file *f, const char *name, size_t numel) {
    float *p = tu_alloc(numel);
    char err[256];
    moda_status s = safetensors_read_f32(f, name, 0, NULL, p, numel, err, sizeof err);
    if (s != MODA_OK) fail_msg("%s: %s", name, err);
    return p;
}

static void check_tensor(const safetensors_file *f, const char *name, const float *got, size_t numel) {
    float *want = read_tensor(f, name, numel);
    double r = tu_err_ratio(got, want, numel, 1e-4, 1e-3);
    if (!(r <= 1.0)) fail_msg("%s: error %.3g x tolerance", name, r);
    free(want);
}

static void run_golden(const char *file, graph *g) {
    char path[512], err[256], name[160];
    snprintf(path, sizeof path, "%s/%s", MODA_TEST_DATA_DIR, file);
    safetensors_file *f = NULL;
    if (safetensors_open(path, 1 << 24, &f, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(graph_finalize(g), MODA_OK);

    const safetensors_tensor *tx = safetensors_find(f, "x");
    assert_non_null(tx);
    int n = (int)tx->shape[0];
    assert_int_equal(tx->shape[1], g->in_c);
    float *x = read_tensor(f, "x", tx->numel);
    float *labels_f = read_tensor(f, "labels", (size_t)n);
    int32_t *labels = calloc((size_t)n, sizeof(int32_t));
    for (int i = 0; i < n; i++) labels[i] = (int32_t)labels_f[i];

    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        snprintf(name, sizeof name, "init.%s", p->name);
        if (safetensors_read_f32(f, name, p->ndim, p->shape, p->data, graph_param_numel(p), err, sizeof err))
            fail_msg("%s", err);
    }

    assert_int_equal(graph_plan(g, n), MODA_OK);
    assert_int_equal(graph_forward(g, x, n, true), MODA_OK);
    graph_node *out = graph_output(g);
    check_tensor(f, "logits", out->out.data, tensor_numel(&out->out));

    float loss;
    float *probs = tu_alloc(tensor_numel(&out->out));
    tensor tp = tensor_2d(probs, n, out->c);
    assert_int_equal(softmax_ce_fwd(be, &loss, &tp, &out->out, labels), MODA_OK);
    check_tensor(f, "loss", &loss, 1);
    assert_int_equal(softmax_ce_bwd(be, &out->grad, &tp, labels, 1.0f), MODA_OK);
    assert_int_equal(graph_backward(g, NULL, NULL), MODA_OK);

    for (int i = 0; i < g->n_params; i++) {
        graph_param *p = &g->params[i];
        snprintf(name, sizeof name, p->trainable ? "grad.%s" : "after.%s", p->name);
        check_tensor(f, name, p->trainable ? p->grad : p->data, graph_param_numel(p));
    }

    assert_int_equal(graph_forward(g, x, n, false), MODA_OK);
    check_tensor(f, "logits_eval", out->out.data, tensor_numel(&out->out));

    free(probs);
    free(labels);
    free(labels_f);
    free(x);
    safetensors_free(f);
    graph_free(g);
}

static void test_convnet(void **state) {
    (void)state;
    run_golden("golden_convnet.safetensors", build_convnet());
}

static void test_resblock(void **state) {
    (void)state;
    run_golden("golden_resblock.safetensors", build_resblock());
}

static void test_depthwise(void **state) {
    (void)state;
    run_golden("golden_depthwise.safetensors", build_depthwise());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convnet),
        cmocka_unit_test(test_resblock),
        cmocka_unit_test(test_depthwise),
    };
    return cmocka_run_group_tests(tests, setup, tu_backend_teardown);
}
