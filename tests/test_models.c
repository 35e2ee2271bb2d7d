/* Architectures: parameter counts against the reference models, shapes at
 * other widths and input sizes, configuration errors, the reference
 * initialisation, and a forward pass through each model. */
#include "test_util.h"

#include "backend.h"
#include "graph.h"
#include "models.h"

static moda_backend *be;

static int setup(void **state) { return tu_backend_setup_into(state, &be); }

static graph *build(model_arch a, float width, int in_c, int classes, int size) {
    model_config cfg = model_config_default(a);
    cfg.width = width;
    cfg.in_channels = in_c;
    cfg.num_classes = classes;
    cfg.input_size = size;
    moda_status st = MODA_ERR_STATE;
    graph *g = model_build(be, &cfg, &st);
    if (!g) fail_msg("%s width %g: %s", model_arch_name(a), (double)width, moda_status_string(st));
    assert_int_equal(st, MODA_OK);
    return g;
}

static const graph_param *param(const graph *g, const char *name) {
    int i = graph_find_param(g, name);
    if (i < 0) fail_msg("no parameter %s", name);
    return &g->params[i];
}

static void assert_shape(const graph *g, const char *name, int ndim, int d0, int d1, int d2, int d3) {
    const graph_param *p = param(g, name);
    int want[4] = {d0, d1, d2, d3};
    if (p->ndim != ndim) fail_msg("%s: ndim %d, want %d", name, p->ndim, ndim);
    for (int i = 0; i < ndim; i++)
        if (p->shape[i] != want[i]) fail_msg("%s: dim %d is %d, want %d", name, i, p->shape[i], want[i]);
}

/* Host copy of a parameter's values; caller frees. */
static float *param_values(const graph *g, const char *name, size_t *n) {
    const graph_param *p = param(g, name);
    *n = graph_param_numel(p);
    float *h = tu_alloc(*n);
    assert_int_equal(backend_copy_to_host(be, h, p->data, *n * sizeof *h), MODA_OK);
    return h;
}

static void moments(const float *x, size_t n, double *mean, double *std) {
    double s = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++) ss += (x[i] - *mean) * (x[i] - *mean);
    *std = sqrt(ss / (double)n);
}

static void assert_all_equal(const graph *g, const char *name, float v) {
    size_t n;
    float *x = param_values(g, name, &n);
    for (size_t i = 0; i < n; i++)
        if (x[i] != v) fail_msg("%s[%zu] = %g, want %g", name, i, (double)x[i], (double)v);
    free(x);
}

/* Zero-mean fill with the given std, to `tol` relative. */
static void assert_std(const graph *g, const char *name, double want, double tol) {
    size_t n;
    float *x = param_values(g, name, &n);
    double mean, std;
    moments(x, n, &mean, &std);
    free(x);
    if (fabs(std - want) > tol * want) fail_msg("%s: std %.6g, want %.6g", name, std, want);
    if (fabs(mean) > 4.0 * want / sqrt((double)n)) fail_msg("%s: mean %.3g is not ~0", name, mean);
}

static void test_arch_names(void **state) {
    (void)state;
    model_arch a;
    for (int i = 0; i < MODEL_ARCH_COUNT; i++) {
        assert_int_equal(model_arch_from_name(model_arch_name((model_arch)i), &a), MODA_OK);
        assert_int_equal(a, i);
    }
    assert_int_equal(model_arch_from_name("resnet18", &a), MODA_OK);
    assert_int_equal(a, MODEL_RESNET18);
    assert_int_equal(model_arch_from_name("resnet50", &a), MODA_ERR_NOT_FOUND);
    assert_int_equal(model_arch_from_name("", &a), MODA_ERR_NOT_FOUND);
    assert_int_equal(model_arch_from_name("VGG16", &a), MODA_ERR_NOT_FOUND);
    assert_int_equal(model_arch_from_name(NULL, &a), MODA_ERR_NULL);
    assert_null(model_arch_name(MODEL_ARCH_COUNT));
}

static void test_scale_channels(void **state) {
    (void)state;
    assert_int_equal(model_scale_channels(64, 1.0f), 64);
    assert_int_equal(model_scale_channels(64, 0.5f), 32);
    assert_int_equal(model_scale_channels(6, 0.125f), 1);  /* 0.75 rounds up */
    assert_int_equal(model_scale_channels(16, 0.01f), 1);  /* never 0 */
    assert_int_equal(model_scale_channels(6, 0.75f), 5);   /* 4.5: half away from zero */
    assert_int_equal(model_scale_channels(512, 1.5f), 768);
}

/* The counts of the reference PyTorch models (trainable parameters only). */
static void check_count(model_arch a, size_t want) {
    graph *g = build(a, 1.0f, 3, 10, 32);
    assert_true(g->finalized);
    if (graph_param_count(g) != want)
        fail_msg("%s: %zu parameters, want %zu", model_arch_name(a), graph_param_count(g), want);
    graph_node *out = graph_output(g);
    assert_int_equal(out->ndim, 2);
    assert_int_equal(out->c, 10);
    graph_free(g);
}

static void test_count_vgg16(void **state) {
    (void)state;
    check_count(MODEL_VGG16, 33646666);
}
static void test_count_resnet18(void **state) {
    (void)state;
    check_count(MODEL_RESNET18, 11173962);
}
static void test_count_mobilenet(void **state) {
    (void)state;
    check_count(MODEL_MOBILENET, 3217226);
}
static void test_count_lenet5(void **state) {
    (void)state;
    check_count(MODEL_LENET5, 62006);
}

static void test_param_names(void **state) {
    (void)state;
    graph *g = build(MODEL_VGG16, 0.125f, 3, 10, 32);
    const char *vgg[] = {"features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias",
                         "features.1.running_mean", "features.1.running_var", "features.3.weight",
                         "features.7.weight", "features.40.bias", "features.41.running_var",
                         "classifier.0.weight", "classifier.2.bias", "classifier.4.weight"};
    for (size_t i = 0; i < sizeof vgg / sizeof vgg[0]; i++) param(g, vgg[i]);
    assert_false(param(g, "features.1.running_mean")->trainable);
    assert_true(param(g, "features.1.weight")->trainable);
    assert_int_equal(graph_find_param(g, "features.6.weight"), -1); /* a max pool */
    graph_free(g);

    g = build(MODEL_RESNET18, 0.125f, 3, 10, 32);
    const char *res[] = {"conv1.weight", "bn1.weight", "bn1.running_var", "layer1.0.conv1.weight",
                         "layer1.1.bn2.bias", "layer2.0.shortcut.0.weight", "layer2.0.shortcut.1.weight",
                         "layer4.1.conv2.weight", "linear.weight", "linear.bias"};
    for (size_t i = 0; i < sizeof res / sizeof res[0]; i++) param(g, res[i]);
    assert_int_equal(graph_find_param(g, "conv1.bias"), -1);
    assert_int_equal(graph_find_param(g, "layer1.0.shortcut.0.weight"), -1); /* identity */
    assert_int_equal(graph_find_param(g, "layer2.1.shortcut.0.weight"), -1);
    graph_free(g);

    g = build(MODEL_MOBILENET, 0.125f, 3, 10, 32);
    const char *mob[] = {"conv1.weight", "bn1.bias", "layers.0.conv1.weight", "layers.0.bn1.weight",
                         "layers.0.conv2.weight", "layers.12.bn2.running_mean", "linear.weight"};
    for (size_t i = 0; i < sizeof mob / sizeof mob[0]; i++) param(g, mob[i]);
    assert_int_equal(graph_find_param(g, "layers.13.conv1.weight"), -1);
    graph_free(g);

    g = build(MODEL_LENET5, 1.0f, 3, 10, 32);
    const char *le[] = {"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight",
                        "fc1.bias", "fc2.weight", "fc3.weight", "fc3.bias"};
    for (size_t i = 0; i < sizeof le / sizeof le[0]; i++) param(g, le[i]);
    assert_int_equal(g->n_params, 10);
    graph_free(g);
}

static void test_width_half(void **state) {
    (void)state;
    graph *g = build(MODEL_VGG16, 0.5f, 3, 10, 32);
    assert_shape(g, "features.0.weight", 4, 32, 3, 3, 3);
    assert_shape(g, "features.1.weight", 1, 32, 0, 0, 0);
    assert_shape(g, "features.7.weight", 4, 64, 32, 3, 3);
    assert_shape(g, "features.40.weight", 4, 256, 256, 3, 3);
    assert_shape(g, "classifier.0.weight", 2, 4096, 256, 0, 0); /* hidden size stays 4096 */
    assert_shape(g, "classifier.4.weight", 2, 10, 4096, 0, 0);
    graph_free(g);

    g = build(MODEL_RESNET18, 0.5f, 3, 10, 32);
    assert_shape(g, "conv1.weight", 4, 32, 3, 3, 3);
    assert_shape(g, "layer1.0.conv1.weight", 4, 32, 32, 3, 3);
    assert_shape(g, "layer2.0.conv1.weight", 4, 64, 32, 3, 3);
    assert_shape(g, "layer2.0.shortcut.0.weight", 4, 64, 32, 1, 1);
    assert_shape(g, "layer4.1.conv2.weight", 4, 256, 256, 3, 3);
    assert_shape(g, "linear.weight", 2, 10, 256, 0, 0);
    graph_free(g);

    g = build(MODEL_MOBILENET, 0.5f, 3, 10, 32);
    assert_shape(g, "conv1.weight", 4, 16, 3, 3, 3);
    assert_shape(g, "layers.0.conv1.weight", 4, 16, 1, 3, 3); /* depthwise */
    assert_shape(g, "layers.0.conv2.weight", 4, 32, 16, 1, 1);
    assert_shape(g, "layers.12.conv1.weight", 4, 512, 1, 3, 3);
    assert_shape(g, "layers.12.conv2.weight", 4, 512, 512, 1, 1);
    assert_shape(g, "linear.weight", 2, 10, 512, 0, 0);
    graph_free(g);

    g = build(MODEL_LENET5, 0.5f, 3, 10, 32);
    assert_shape(g, "conv1.weight", 4, 3, 3, 5, 5);
    assert_shape(g, "conv2.weight", 4, 8, 3, 5, 5);
    assert_shape(g, "fc1.weight", 2, 120, 8 * 5 * 5, 0, 0);
    graph_free(g);
}

/* Input channels, class count and input size feed through to the shapes. */
static void test_other_inputs(void **state) {
    (void)state;
    graph *g = build(MODEL_LENET5, 1.0f, 1, 7, 28);
    assert_shape(g, "conv1.weight", 4, 6, 1, 5, 5);
    assert_shape(g, "fc1.weight", 2, 120, 16 * 4 * 4, 0, 0);
    assert_shape(g, "fc3.weight", 2, 7, 84, 0, 0);
    assert_int_equal(graph_output(g)->c, 7);
    graph_free(g);

    g = build(MODEL_VGG16, 0.125f, 1, 100, 64);
    assert_shape(g, "features.0.weight", 4, 8, 1, 3, 3);
    assert_shape(g, "classifier.0.weight", 2, 4096, 64 * 2 * 2, 0, 0); /* 64 / 32 = 2 */
    assert_int_equal(graph_output(g)->c, 100);
    graph_free(g);

    g = build(MODEL_RESNET18, 0.25f, 1, 3, 28);
    assert_shape(g, "conv1.weight", 4, 16, 1, 3, 3);
    assert_int_equal(graph_output(g)->ndim, 2);
    assert_int_equal(graph_output(g)->c, 3);
    graph_free(g);

    g = build(MODEL_MOBILENET, 0.25f, 1, 2, 28);
    assert_int_equal(graph_output(g)->c, 2);
    graph_free(g);
}

static void expect_invalid(model_config cfg, const char *needle) {
    char msg[256];
    assert_int_equal(model_validate(&cfg, msg, sizeof msg), MODA_ERR_ARG);
    if (!strstr(msg, needle)) fail_msg("message \"%s\" does not mention \"%s\"", msg, needle);
    moda_status st = MODA_OK;
    assert_null(model_build(be, &cfg, &st));
    assert_int_equal(st, MODA_ERR_ARG);
}

static void test_errors(void **state) {
    (void)state;
    model_config cfg = model_config_default(MODEL_VGG16);
    char msg[256];
    assert_int_equal(model_validate(&cfg, msg, sizeof msg), MODA_OK);
    assert_string_equal(msg, "");

    cfg.input_size = 28; /* not a multiple of 32 */
    expect_invalid(cfg, "multiple of 32");
    cfg = model_config_default(MODEL_LENET5);
    cfg.input_size = 12;
    expect_invalid(cfg, "lenet5");
    cfg = model_config_default(MODEL_RESNET18);
    cfg.input_size = 4;
    expect_invalid(cfg, "resnet18");
    cfg = model_config_default(MODEL_MOBILENET);
    cfg.input_size = 8;
    expect_invalid(cfg, "mobilenet");
    cfg = model_config_default(MODEL_RESNET18);
    cfg.width = 0.0f;
    expect_invalid(cfg, "width");
    cfg.width = NAN;
    expect_invalid(cfg, "width");
    cfg = model_config_default(MODEL_RESNET18);
    cfg.in_channels = 0;
    expect_invalid(cfg, "channels");
    cfg = model_config_default(MODEL_RESNET18);
    cfg.num_classes = 0;
    expect_invalid(cfg, "class");
    cfg = model_config_default(MODEL_RESNET18);
    cfg.arch = MODEL_ARCH_COUNT;
    expect_invalid(cfg, "architecture");

    moda_status st = MODA_OK;
    cfg = model_config_default(MODEL_LENET5);
    assert_null(model_build(NULL, &cfg, &st));
    assert_int_equal(st, MODA_ERR_NULL);
    assert_null(model_build(be, NULL, NULL)); /* NULL status pointer is allowed */
    assert_int_equal(model_validate(NULL, NULL, 0), MODA_ERR_NULL);
    assert_int_equal(model_init(NULL, &cfg, 1), MODA_ERR_NULL);
}

static void test_init_resnet18(void **state) {
    (void)state;
    model_config cfg = model_config_default(MODEL_RESNET18);
    graph *g = build(MODEL_RESNET18, 1.0f, 3, 10, 32);
    assert_int_equal(model_init(g, &cfg, 42), MODA_OK);
    /* Kaiming normal, fan_out = out_channels * kh * kw. */
    assert_std(g, "layer4.1.conv2.weight", sqrt(2.0 / (512 * 9)), 0.02);
    assert_std(g, "layer3.0.conv1.weight", sqrt(2.0 / (256 * 9)), 0.02);
    assert_std(g, "layer4.0.shortcut.0.weight", sqrt(2.0 / 512), 0.02);
    assert_std(g, "conv1.weight", sqrt(2.0 / (64 * 9)), 0.15); /* only 1728 values */
    assert_all_equal(g, "bn1.weight", 1.0f);
    assert_all_equal(g, "bn1.bias", 0.0f);
    assert_all_equal(g, "layer3.1.bn2.weight", 1.0f);
    assert_all_equal(g, "layer2.0.shortcut.1.running_mean", 0.0f);
    assert_all_equal(g, "layer2.0.shortcut.1.running_var", 1.0f);

    /* nn.Linear default: U(-1/sqrt(512), 1/sqrt(512)) for weight and bias. */
    double bound = 1.0 / sqrt(512.0);
    size_t n;
    float *w = param_values(g, "linear.weight", &n);
    double mean, std;
    moments(w, n, &mean, &std);
    for (size_t i = 0; i < n; i++) assert_true(fabs(w[i]) <= bound);
    assert_true(fabs(std - bound / sqrt(3.0)) < 0.05 * bound / sqrt(3.0));
    free(w);
    float *b = param_values(g, "linear.bias", &n);
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(fabs(b[i]) <= bound);
        nonzero += b[i] != 0.0f;
    }
    assert_true(nonzero > 0);
    free(b);
    graph_free(g);
}

static void test_init_vgg_mobilenet(void **state) {
    (void)state;
    model_config cfg = model_config_default(MODEL_VGG16);
    cfg.width = 0.25f;
    graph *g = build(MODEL_VGG16, 0.25f, 3, 10, 32);
    assert_int_equal(model_init(g, &cfg, 7), MODA_OK);
    assert_std(g, "classifier.0.weight", 0.01, 0.02); /* 4096 x 128 */
    assert_all_equal(g, "classifier.0.bias", 0.0f);
    assert_all_equal(g, "classifier.4.bias", 0.0f);
    assert_all_equal(g, "features.0.bias", 0.0f); /* conv bias */
    assert_all_equal(g, "features.1.weight", 1.0f);
    assert_std(g, "features.40.weight", sqrt(2.0 / (128 * 9)), 0.03);
    graph_free(g);

    cfg = model_config_default(MODEL_MOBILENET);
    g = build(MODEL_MOBILENET, 1.0f, 3, 10, 32);
    assert_int_equal(model_init(g, &cfg, 7), MODA_OK);
    /* Depthwise (1024, 1, 3, 3): PyTorch's fan_out ignores groups. */
    assert_std(g, "layers.12.conv1.weight", sqrt(2.0 / (1024 * 9)), 0.05);
    assert_std(g, "layers.12.conv2.weight", sqrt(2.0 / 1024), 0.02);
    assert_std(g, "linear.weight", 0.01, 0.05);
    assert_all_equal(g, "linear.bias", 0.0f);
    assert_all_equal(g, "layers.5.bn2.running_var", 1.0f);
    graph_free(g);
}

static void test_init_lenet5(void **state) {
    (void)state;
    model_config cfg = model_config_default(MODEL_LENET5);
    graph *g = build(MODEL_LENET5, 1.0f, 3, 10, 32);
    assert_int_equal(model_init(g, &cfg, 3), MODA_OK);
    assert_all_equal(g, "conv2.bias", 0.0f);
    assert_std(g, "conv2.weight", sqrt(2.0 / (16 * 25)), 0.1); /* 2400 values */
    const char *fc[] = {"fc1", "fc2", "fc3"};
    const int fan_in[] = {400, 120, 84};
    for (int k = 0; k < 3; k++) {
        char name[64];
        size_t n;
        double bound = 1.0 / sqrt((double)fan_in[k]);
        snprintf(name, sizeof name, "%s.weight", fc[k]);
        float *w = param_values(g, name, &n);
        for (size_t i = 0; i < n; i++) assert_true(fabs(w[i]) <= bound);
        free(w);
        snprintf(name, sizeof name, "%s.bias", fc[k]);
        float *b = param_values(g, name, &n);
        for (size_t i = 0; i < n; i++) assert_true(fabs(b[i]) <= bound);
        free(b);
    }
    assert_std(g, "fc1.weight", 1.0 / sqrt(400.0) / sqrt(3.0), 0.03);
    graph_free(g);
}

/* Compare every parameter of two graphs of the same architecture. */
static bool same_params(const graph *a, const graph *b, bool *conv_differs) {
    assert_int_equal(a->n_params, b->n_params);
    bool all_same = true;
    *conv_differs = false;
    for (int i = 0; i < a->n_params; i++) {
        size_t n;
        float *x = param_values(a, a->params[i].name, &n);
        float *y = param_values(b, b->params[i].name, &n);
        bool same = memcmp(x, y, n * sizeof *x) == 0;
        all_same &= same;
        if (!same && strstr(a->params[i].name, "conv")) *conv_differs = true;
        free(x);
        free(y);
    }
    return all_same;
}

static void test_init_seeded(void **state) {
    (void)state;
    model_config cfg = model_config_default(MODEL_RESNET18);
    cfg.width = 0.25f;
    graph *a = build(MODEL_RESNET18, 0.25f, 3, 10, 32);
    graph *b = build(MODEL_RESNET18, 0.25f, 3, 10, 32);
    assert_int_equal(model_init(a, &cfg, 123), MODA_OK);
    assert_int_equal(model_init(b, &cfg, 123), MODA_OK);
    bool conv_differs;
    assert_true(same_params(a, b, &conv_differs));
    assert_int_equal(model_init(b, &cfg, 124), MODA_OK);
    assert_false(same_params(a, b, &conv_differs));
    assert_true(conv_differs);
    /* Re-initialising restores the values exactly. */
    assert_int_equal(model_init(b, &cfg, 123), MODA_OK);
    assert_true(same_params(a, b, &conv_differs));
    graph_free(a);
    graph_free(b);
}

/* Small-width forward pass in eval and train mode: finite (n, K) logits. */
static void check_forward(model_arch a, int in_c, int size) {
    const int n = 3, classes = 10;
    model_config cfg = model_config_default(a);
    cfg.width = 0.125f;
    cfg.in_channels = in_c;
    cfg.input_size = size;
    graph *g = build(a, cfg.width, in_c, classes, size);
    assert_int_equal(model_init(g, &cfg, 5), MODA_OK);
    assert_int_equal(graph_plan(g, n), MODA_OK);

    rng r;
    rng_seed(&r, 99, 1);
    size_t in_n = (size_t)n * in_c * size * size;
    float *host = tu_randn(&r, in_n, 1.0f);
    float *x = backend_alloc(be, in_n * sizeof *x);
    assert_non_null(x);
    assert_int_equal(backend_copy_to_device(be, x, host, in_n * sizeof *x), MODA_OK);

    float *logits = tu_alloc((size_t)n * classes);
    for (int train = 0; train < 2; train++) {
        moda_status st = graph_forward(g, x, n, train != 0);
        if (st != MODA_OK) fail_msg("%s forward: %s", model_arch_name(a), moda_status_string(st));
        graph_node *out = graph_output(g);
        assert_int_equal(out->out.ndim, 2);
        assert_int_equal(out->out.shape[0], n);
        assert_int_equal(out->out.shape[1], classes);
        assert_int_equal(backend_copy_to_host(be, logits, out->out.data, (size_t)n * classes * sizeof *logits),
                                              MODA_OK);
        double mag = 0.0;
        for (int i = 0; i < n * classes; i++) {
            if (!isfinite(logits[i])) fail_msg("%s: logit %d is %g", model_arch_name(a), i, (double)logits[i]);
            mag += fabs(logits[i]);
        }
        assert_true(mag > 0.0);
    }
    free(logits);
    backend_dealloc(be, x);
    free(host);
    graph_free(g);
}

static void test_forward_vgg16(void **state) {
    (void)state;
    check_forward(MODEL_VGG16, 3, 32);
}
static void test_forward_resnet18(void **state) {
    (void)state;
    check_forward(MODEL_RESNET18, 3, 32);
}
static void test_forward_mobilenet(void **state) {
    (void)state;
    check_forward(MODEL_MOBILENET, 3, 32);
}
static void test_forward_lenet5(void **state) {
    (void)state;
    check_forward(MODEL_LENET5, 1, 28);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arch_names),
        cmocka_unit_test(test_scale_channels),
        cmocka_unit_test(test_count_vgg16),
        cmocka_unit_test(test_count_resnet18),
        cmocka_unit_test(test_count_mobilenet),
        cmocka_unit_test(test_count_lenet5),
        cmocka_unit_test(test_param_names),
        cmocka_unit_test(test_width_half),
        cmocka_unit_test(test_other_inputs),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_init_resnet18),
        cmocka_unit_test(test_init_vgg_mobilenet),
        cmocka_unit_test(test_init_lenet5),
        cmocka_unit_test(test_init_seeded),
        cmocka_unit_test(test_forward_vgg16),
        cmocka_unit_test(test_forward_resnet18),
        cmocka_unit_test(test_forward_mobilenet),
        cmocka_unit_test(test_forward_lenet5),
    };
    return cmocka_run_group_tests(tests, setup, tu_backend_teardown);
}
