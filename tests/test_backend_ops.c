/* Every op of the backend interface, forward and backward, on every backend
 * that is built, against the CPU backend, in the manner of ggml's
 * test-backend-ops.
 *
 * Each case names the ops it runs (backend_op), builds its inputs from a
 * fixed seed on the backend under test and on the reference, runs the ops
 * through the validated entry points in ops.h, and compares every output
 * by its normalised mean squared error, sum (a - b)^2 / sum b^2, against
 * NMSE_MAX. A backend may declare an op unsupported (backend_supports_op):
 * the cases that need it are then skipped on that backend. An op that is
 * missing without being declared fails, and so does an op of the list that
 * no case runs, so the ops x backends table stays complete.
 *
 * The CPU backend is the reference; its ops are checked against
 * double-precision loops and finite differences in the test_ops_* tests.
 * For the MODA terms, which the CPU backend leaves to the engine's host
 * code, the reference is that host code (moda_layer_loss). On a machine
 * without a GPU the CUDA backend is skipped, with a message. */
#include "test_util.h"

#include "backend_impl.h" /* only to build backends with an op removed */
#include "moda_loss.h"
#include "ops.h"

/* float32 ops agree with the reference to rounding: NMSE about 1e-12
 * where summation orders differ, 0 where they are exact. */
#define NMSE_MAX 1e-7
#define MAX_BUFS 24
#define MAX_CASE_OPS 3

/* One value array of a case on one backend: dev in its memory; host, for
 * a compared output, read back after the case ran. */
typedef struct buf {
    char name[48];
    float *dev;  /* backend memory, owned; NULL for a host result */
    float *host; /* (n), owned; the values read back (or the host result) */
    size_t n;
    bool compared;
} buf;

/* A case running on one backend. */
typedef struct run {
    moda_backend *be;
    rng r;
    buf bufs[MAX_BUFS];
    int n_bufs;
    moda_status status; /* the first failure */
    const char *failed_call;
} run;

static buf *add_buf(run *c, const char *name, size_t n, bool compared) {
    assert_true(c->n_bufs < MAX_BUFS);
    buf *b = &c->bufs[c->n_bufs++];
    snprintf(b->name, sizeof b->name, "%s", name ? name : "");
    b->n = n;
    b->compared = compared;
    b->host = tu_alloc(n);
    return b;
}

/* n values in backend memory: normal(mean, std), or all `mean` when std is
 * 0. Compared afterwards when name is not NULL (outputs, and parameters
 * updated in place). */
static float *values(run *c, const char *name, size_t n, float mean, float std) {
    buf *b = add_buf(c, name, n, name != NULL);
    if (std > 0)
        rng_fill_normal(&c->r, b->host, n, mean, std);
    else
        for (size_t i = 0; i < n; i++) b->host[i] = mean;
    b->dev = backend_alloc(c->be, (n ? n : 1) * sizeof(float));
    assert_non_null(b->dev);
    assert_int_equal(backend_copy_to_device(c->be, b->dev, b->host, n * sizeof(float)), MODA_OK);
    return b->dev;
}

static float *input(run *c, size_t n, float mean, float std) { return values(c, NULL, n, mean, std); }
static float *output(run *c, const char *name, size_t n) { return values(c, name, n, 0, 0); }

/* A result the op hands to the host (a loss, the MODA sums). */
static void host_result(run *c, const char *name, const double *v, size_t n) {
    buf *b = add_buf(c, name, n, true);
    for (size_t i = 0; i < n; i++) b->host[i] = (float)v[i];
}

#define RUN_OP(c, call)                                                                                    \
    do {                                                                                                   \
        moda_status s_ = (call);                                                                           \
        if (s_ != MODA_OK && (c)->status == MODA_OK) {                                                     \
            (c)->status = s_;                                                                              \
            (c)->failed_call = #call;                                                                      \
        }                                                                                                  \
    } while (0)

/* ---- the cases ----------------------------------------------------------- */

typedef void (*case_fn)(run *c, const void *params);

typedef struct op_case {
    const char *name;
    backend_op ops[MAX_CASE_OPS]; /* the vtable ops it runs */
    int n_ops;
    case_fn fn;
    const void *params;
} op_case;

static void case_fill(run *c, const void *params) {
    (void)params;
    const size_t n = 3 * 5 * 7 * 6;
    float *y = values(c, "y", n, 0, 1);
    RUN_OP(c, backend_fill(c->be, y, n - 3, 2.5f));
}

static void case_axpy(run *c, const void *params) {
    (void)params;
    const size_t n = 3 * 5 * 7 * 6;
    float *y = values(c, "y", n, 0, 1), *x = input(c, n, 0, 1);
    RUN_OP(c, backend_axpy(c->be, y, x, n, -0.75f));
}

typedef struct conv_shape {
    int n, c, h, w, k, kh, stride, pad, groups, bias;
} conv_shape;

static const conv_shape CONV_SHAPES[] = {
    {2, 3, 9, 9, 4, 3, 1, 1, 1, 1},         /* VGG-like */
    {2, 8, 8, 8, 16, 1, 2, 0, 1, 0},        /* ResNet 1x1 shortcut */
    {3, 8, 8, 8, 8, 3, 2, 1, 8, 0},         /* MobileNet depthwise */
    {2, 1, 12, 12, 6, 5, 1, 0, 1, 1},       /* LeNet5 */
    {2, 6, 7, 5, 4, 3, 2, 1, 2, 1},         /* grouped, odd sizes */
    {16, 8, 32, 32, 8, 3, 1, 1, 8, 0},      /* depthwise at a training batch's size */
    {16, 1, 32, 32, 8, 3, 1, 1, 1, 0},      /* stem at a training batch's size */
    {16, 128, 4, 4, 128, 3, 2, 1, 128, 0},  /* MobileNet's last stages */
    {16, 256, 2, 2, 256, 3, 1, 1, 256, 0},
    {16, 256, 2, 2, 256, 1, 1, 0, 1, 0},
};

static void case_conv2d(run *c, const void *params) {
    const conv_shape *s = params;
    conv2d_params p = {s->kh, s->kh, s->stride, s->stride, s->pad, s->pad, s->groups};
    int oh = conv_out_size(s->h, s->kh, s->stride, s->pad), ow = conv_out_size(s->w, s->kh, s->stride, s->pad);
    int cg = s->c / s->groups;
    size_t nx = (size_t)s->n * s->c * s->h * s->w, nw = (size_t)s->k * cg * s->kh * s->kh;
    size_t ny = (size_t)s->n * s->k * oh * ow;
    tensor x = tensor_4d(input(c, nx, 0, 1), s->n, s->c, s->h, s->w);
    tensor w = tensor_4d(input(c, nw, 0, 0.5f), s->k, cg, s->kh, s->kh);
    tensor b = tensor_1d(input(c, (size_t)s->k, 0, 0.5f), s->k);
    tensor dy = tensor_4d(input(c, ny, 0, 1), s->n, s->k, oh, ow);
    tensor y = tensor_4d(output(c, "y", ny), s->n, s->k, oh, ow);
    tensor dx = tensor_4d(output(c, "dx", nx), s->n, s->c, s->h, s->w);
    tensor dw = tensor_4d(output(c, "dw", nw), s->k, cg, s->kh, s->kh);
    tensor db = tensor_1d(s->bias ? output(c, "db", (size_t)s->k) : NULL, s->k);
    RUN_OP(c, conv2d_fwd(c->be, &y, &x, &w, s->bias ? &b : NULL, &p));
    RUN_OP(c, conv2d_bwd(c->be, &dx, &dw, s->bias ? &db : NULL, &dy, &x, &w, &p));
}

static void case_batchnorm2d(run *c, const void *params) {
    (void)params;
    const int n = 4, ch = 6, h = 5, w = 3;
    const size_t numel = (size_t)n * ch * h * w;
    batchnorm_params p = {1e-5f, 0.1f};
    tensor x = tensor_4d(input(c, numel, 1.0f, 2.0f), n, ch, h, w);
    tensor dy = tensor_4d(input(c, numel, 0, 1), n, ch, h, w);
    tensor gamma = tensor_1d(input(c, ch, 1.0f, 0.3f), ch), beta = tensor_1d(input(c, ch, 0, 0.3f), ch);
    tensor rmean = tensor_1d(values(c, "running mean", ch, 0.1f, 0), ch);
    tensor rvar = tensor_1d(values(c, "running variance", ch, 1.0f, 0), ch);
    tensor y = tensor_4d(output(c, "y", numel), n, ch, h, w), ye = tensor_4d(output(c, "eval y", numel), n, ch, h, w);
    tensor sm = tensor_1d(output(c, "saved mean", ch), ch), sv = tensor_1d(output(c, "saved variance", ch), ch);
    tensor dx = tensor_4d(output(c, "dx", numel), n, ch, h, w);
    tensor dg = tensor_1d(output(c, "dgamma", ch), ch), db = tensor_1d(output(c, "dbeta", ch), ch);
    RUN_OP(c, batchnorm2d_fwd_train(c->be, &y, &sm, &sv, &rmean, &rvar, &x, &gamma, &beta, &p));
    RUN_OP(c, batchnorm2d_bwd(c->be, &dx, &dg, &db, &dy, &x, &gamma, &sm, &sv, &p));
    RUN_OP(c, batchnorm2d_fwd_eval(c->be, &ye, &x, &gamma, &beta, &rmean, &rvar, &p));
}

/* The pointwise and pooling cases share one map size. */
enum { PW_N = 3, PW_C = 5, PW_H = 7, PW_W = 6 };
#define PW_NUMEL ((size_t)PW_N * PW_C * PW_H * PW_W)

static tensor pw_map(float *data) { return tensor_4d(data, PW_N, PW_C, PW_H, PW_W); }

static void case_relu(run *c, const void *params) {
    (void)params;
    tensor x = pw_map(input(c, PW_NUMEL, 0, 1)), dy = pw_map(input(c, PW_NUMEL, 0, 1));
    tensor y = pw_map(output(c, "y", PW_NUMEL)), dx = pw_map(output(c, "dx", PW_NUMEL));
    RUN_OP(c, relu_fwd(c->be, &y, &x));
    RUN_OP(c, relu_bwd(c->be, &dx, &dy, &y));
}

/* add's backward and flatten are copies (no op of their own), checked
 * here with add's forward. */
static void case_add_flatten(run *c, const void *params) {
    (void)params;
    tensor a = pw_map(input(c, PW_NUMEL, 0, 1));
    tensor b = pw_map(input(c, PW_NUMEL, 0, 1));
    tensor y = pw_map(output(c, "a + b", PW_NUMEL));
    tensor da = pw_map(output(c, "da", PW_NUMEL));
    tensor db = pw_map(output(c, "db", PW_NUMEL));
    tensor flat = tensor_2d(output(c, "flatten y", PW_NUMEL), PW_N, PW_C * PW_H * PW_W);
    tensor unflat = pw_map(output(c, "flatten dx", PW_NUMEL));
    RUN_OP(c, add_fwd(c->be, &y, &a, &b));
    RUN_OP(c, add_bwd(c->be, &da, &db, &y));
    RUN_OP(c, flatten_fwd(c->be, &flat, &a));
    RUN_OP(c, flatten_bwd(c->be, &unflat, &flat));
}

/* A residual add of a per-layer composed model: 6 output channels read
 * from addends of 5 and 7 channels through maps with dropped (-1) and
 * out-of-range entries (which read zero). */
static void case_add_mapped(run *c, const void *params) {
    (void)params;
    const float ma[6] = {2, -1, 0, 4, 99, 1}, mb[6] = {6, 3, -1, 0, 5, -1};
    float *map_a = input(c, 6, 0, 0), *map_b = input(c, 6, 0, 0);
    RUN_OP(c, backend_copy_to_device(c->be, map_a, ma, sizeof ma));
    RUN_OP(c, backend_copy_to_device(c->be, map_b, mb, sizeof mb));
    tensor a = tensor_4d(input(c, (size_t)PW_N * 5 * PW_H * PW_W, 0, 1), PW_N, 5, PW_H, PW_W);
    tensor b = tensor_4d(input(c, (size_t)PW_N * 7 * PW_H * PW_W, 0, 1), PW_N, 7, PW_H, PW_W);
    tensor y = tensor_4d(output(c, "mapped a + b", (size_t)PW_N * 6 * PW_H * PW_W), PW_N, 6, PW_H, PW_W);
    tensor ta = tensor_1d(map_a, 6), tb = tensor_1d(map_b, 6);
    RUN_OP(c, add_mapped_fwd(c->be, &y, &a, &b, &ta, &tb));
}

static void case_global_avgpool(run *c, const void *params) {
    (void)params;
    tensor x = pw_map(input(c, PW_NUMEL, 0, 1));
    tensor dy = tensor_2d(input(c, (size_t)PW_N * PW_C, 0, 1), PW_N, PW_C);
    tensor y = tensor_2d(output(c, "y", (size_t)PW_N * PW_C), PW_N, PW_C);
    tensor dx = pw_map(output(c, "dx", PW_NUMEL));
    RUN_OP(c, global_avgpool_fwd(c->be, &y, &x));
    RUN_OP(c, global_avgpool_bwd(c->be, &dx, &dy));
}

typedef struct pool_shape {
    int h, w, k, stride, pad;
} pool_shape;

static const pool_shape POOL_SHAPES[] = {{8, 8, 2, 2, 0}, {9, 9, 3, 2, 1}, {7, 5, 3, 1, 1}};

static void case_maxpool2d(run *c, const void *params) {
    const pool_shape *s = params;
    const int n = 2, ch = 3;
    pool2d_params p = {s->k, s->k, s->stride, s->stride, s->pad, s->pad};
    int oh = conv_out_size(s->h, s->k, s->stride, s->pad), ow = conv_out_size(s->w, s->k, s->stride, s->pad);
    size_t nx = (size_t)n * ch * s->h * s->w, ny = (size_t)n * ch * oh * ow;
    tensor x = tensor_4d(input(c, nx, 0, 1), n, ch, s->h, s->w);
    tensor dy = tensor_4d(input(c, ny, 0, 1), n, ch, oh, ow);
    tensor y = tensor_4d(output(c, "y", ny), n, ch, oh, ow);
    tensor dx = tensor_4d(output(c, "dx", nx), n, ch, s->h, s->w);
    void *ws = backend_alloc(c->be, maxpool2d_ws_bytes(c->be, &y));
    assert_non_null(ws);
    RUN_OP(c, maxpool2d_fwd(c->be, &y, ws, &x, &p));
    RUN_OP(c, maxpool2d_bwd(c->be, &dx, &dy, ws, &p));
    RUN_OP(c, backend_sync_for_host(c->be));
    backend_dealloc(c->be, ws);
}

enum { LIN_N = 6, LIN_IN = 37, LIN_OUT = 10 };
static const int32_t LABELS[LIN_N] = {3, 0, 9, 3, 5, 1};

static void case_linear(run *c, const void *params) {
    (void)params;
    tensor x = tensor_2d(input(c, (size_t)LIN_N * LIN_IN, 0, 1), LIN_N, LIN_IN);
    tensor w = tensor_2d(input(c, (size_t)LIN_OUT * LIN_IN, 0, 0.3f), LIN_OUT, LIN_IN);
    tensor b = tensor_1d(input(c, LIN_OUT, 0, 0.3f), LIN_OUT);
    tensor dy = tensor_2d(input(c, (size_t)LIN_N * LIN_OUT, 0, 1), LIN_N, LIN_OUT);
    tensor y = tensor_2d(output(c, "y", (size_t)LIN_N * LIN_OUT), LIN_N, LIN_OUT);
    tensor ynb = tensor_2d(output(c, "y without bias", (size_t)LIN_N * LIN_OUT), LIN_N, LIN_OUT);
    tensor dx = tensor_2d(output(c, "dx", (size_t)LIN_N * LIN_IN), LIN_N, LIN_IN);
    tensor dw = tensor_2d(output(c, "dw", (size_t)LIN_OUT * LIN_IN), LIN_OUT, LIN_IN);
    tensor db = tensor_1d(output(c, "db", LIN_OUT), LIN_OUT);
    RUN_OP(c, linear_fwd(c->be, &y, &x, &w, &b));
    RUN_OP(c, linear_fwd(c->be, &ynb, &x, &w, NULL));
    RUN_OP(c, linear_bwd(c->be, &dx, &dw, &db, &dy, &x, &w));
}

static void case_softmax_ce(run *c, const void *params) {
    (void)params;
    tensor logits = tensor_2d(input(c, (size_t)LIN_N * LIN_OUT, 0, 2), LIN_N, LIN_OUT);
    tensor probs = tensor_2d(output(c, "probs", (size_t)LIN_N * LIN_OUT), LIN_N, LIN_OUT);
    tensor dl = tensor_2d(output(c, "dlogits", (size_t)LIN_N * LIN_OUT), LIN_N, LIN_OUT);
    float loss = 0;
    RUN_OP(c, softmax_ce_fwd(c->be, &loss, &probs, &logits, LABELS));
    RUN_OP(c, softmax_ce_bwd(c->be, &dl, &probs, LABELS, 0.5f));
    double l = loss;
    host_result(c, "loss", &l, 1);
}

static void case_sgd_update(run *c, const void *params) {
    (void)params;
    const size_t n = (size_t)LIN_OUT * LIN_IN;
    float *grad = input(c, n, 0, 1);
    float *w = values(c, "nesterov param", n, 0, 0.3f), *v = values(c, "nesterov velocity", n, 0, 0.1f);
    float *w2 = values(c, "param", n, 0, 0.3f), *v2 = values(c, "velocity", n, 0, 0.1f);
    RUN_OP(c, sgd_update(c->be, w, v, grad, n, 0.05f, 0.9f, 5e-4f, true));
    RUN_OP(c, sgd_update(c->be, w2, v2, grad, n, 0.1f, 0.5f, 0.0f, false));
}

/* Two layers of one batch, the second with an all-zero row (the clamped
 * norm). On a backend that declares the terms unsupported (the CPU), the
 * engine computes them on the host: that is the reference. */
static void case_moda_terms(run *c, const void *params) {
    (void)params;
    enum { B = 12, C1 = 20, C2 = 7 };
    static const int32_t labels[B] = {0, 1, 2, 0, 1, 1, 3, 2, 0, 4, 4, 1};
    float z2_host[B * C2];
    rng_fill_normal(&c->r, z2_host, B * C2, 0.1f, 1);
    for (int k = 0; k < C2; k++) z2_host[3 * C2 + k] = 0;
    float *z1 = input(c, (size_t)B * C1, 0.3f, 1), *z2 = input(c, (size_t)B * C2, 0, 0);
    assert_int_equal(backend_copy_to_device(c->be, z2, z2_host, sizeof z2_host), MODA_OK);
    float *g1 = output(c, "dL/dz", (size_t)B * C1), *g2 = output(c, "dL/dz, clamped row", (size_t)B * C2);
    double sums[3] = {0, 0, 0};
    if (backend_supports_op(c->be, BACKEND_OP_MODA_TERMS)) {
        RUN_OP(c, moda_terms_begin(c->be, labels, B));
        RUN_OP(c, moda_terms_layer(c->be, g1, z1, B, C1, -0.5f, 0.5f, 0.15f));
        RUN_OP(c, moda_terms_layer(c->be, g2, z2, B, C2, -0.5f, 0.5f, 0.15f));
        RUN_OP(c, moda_terms_end(c->be, sums));
    } else {
        assert_true(backend_host_memory(c->be));
        moda_scratch sc;
        moda_layer_terms t1, t2;
        assert_int_equal(moda_scratch_init(&sc, B, C1), MODA_OK);
        RUN_OP(c, moda_layer_loss(&sc, z1, B, C1, 1, labels, -0.5f, 0.5f, 0.15f, g1, &t1));
        RUN_OP(c, moda_layer_loss(&sc, z2, B, C2, 1, labels, -0.5f, 0.5f, 0.15f, g2, &t2));
        moda_scratch_free(&sc);
        sums[0] = t1.aff + t2.aff;
        sums[1] = t1.dis + t2.dis;
        sums[2] = t1.com + t2.com;
    }
    host_result(c, "affinity, dispersion, compactness", sums, 3);
}

#define OPS1(a) {a}, 1
#define OPS2(a, b) {a, b}, 2
#define OPS3(a, b, c) {a, b, c}, 3

static const op_case CASES[] = {
    {"fill", OPS1(BACKEND_OP_FILL), case_fill, NULL},
    {"axpy", OPS1(BACKEND_OP_AXPY), case_axpy, NULL},
    {"conv2d VGG-like", OPS2(BACKEND_OP_CONV2D_FWD, BACKEND_OP_CONV2D_BWD), case_conv2d, &CONV_SHAPES[0]},
    {"conv2d 1x1 stride 2", OPS2(BACKEND_OP_CONV2D_FWD, BACKEND_OP_CONV2D_BWD), case_conv2d, &CONV_SHAPES[1]},
    {"conv2d depthwise", OPS2(BACKEND_OP_CONV2D_FWD, BACKEND_OP_CONV2D_BWD), case_conv2d, &CONV_SHAPES[2]},
    {"conv2d LeNet5", OPS2(BACKEND_OP_CONV2D_FWD, BACKEND_OP_CONV2D_BWD), case_conv2d, &CONV_SHAPES[3]},
    {"conv2d grouped", OPS2(BACKEND_OP_CONV2D_FWD, BACKEND_OP_CONV2D_BWD), case_conv2d, &CONV_SHAPES[4]},
    {"conv2d depthwise batch 16", OPS2(BACKEND_OP_CONV2D_FWD, BACKEND_OP_CONV2D_BWD), case_conv2d, &CONV_SHAPES[5]},
    {"conv2d stem batch 16", OPS2(BACKEND_OP_CONV2D_FWD, BACKEND_OP_CONV2D_BWD), case_conv2d, &CONV_SHAPES[6]},
    {"conv2d depthwise 128", OPS2(BACKEND_OP_CONV2D_FWD, BACKEND_OP_CONV2D_BWD), case_conv2d, &CONV_SHAPES[7]},
    {"conv2d depthwise 256", OPS2(BACKEND_OP_CONV2D_FWD, BACKEND_OP_CONV2D_BWD), case_conv2d, &CONV_SHAPES[8]},
    {"conv2d 1x1 256", OPS2(BACKEND_OP_CONV2D_FWD, BACKEND_OP_CONV2D_BWD), case_conv2d, &CONV_SHAPES[9]},
    {"batchnorm2d",
     OPS3(BACKEND_OP_BATCHNORM2D_FWD_TRAIN, BACKEND_OP_BATCHNORM2D_BWD, BACKEND_OP_BATCHNORM2D_FWD_EVAL),
     case_batchnorm2d, NULL},
    {"relu", OPS2(BACKEND_OP_RELU_FWD, BACKEND_OP_RELU_BWD), case_relu, NULL},
    {"add, flatten", OPS1(BACKEND_OP_ADD_FWD), case_add_flatten, NULL},
    {"add mapped", OPS1(BACKEND_OP_ADD_MAPPED_FWD), case_add_mapped, NULL},
    {"global_avgpool", OPS2(BACKEND_OP_GLOBAL_AVGPOOL_FWD, BACKEND_OP_GLOBAL_AVGPOOL_BWD), case_global_avgpool,
     NULL},
    {"maxpool2d 2/2", OPS2(BACKEND_OP_MAXPOOL2D_FWD, BACKEND_OP_MAXPOOL2D_BWD), case_maxpool2d, &POOL_SHAPES[0]},
    {"maxpool2d 3/2 padded", OPS2(BACKEND_OP_MAXPOOL2D_FWD, BACKEND_OP_MAXPOOL2D_BWD), case_maxpool2d,
     &POOL_SHAPES[1]},
    {"maxpool2d 3/1 overlapping", OPS2(BACKEND_OP_MAXPOOL2D_FWD, BACKEND_OP_MAXPOOL2D_BWD), case_maxpool2d,
     &POOL_SHAPES[2]},
    {"linear", OPS2(BACKEND_OP_LINEAR_FWD, BACKEND_OP_LINEAR_BWD), case_linear, NULL},
    {"softmax_ce", OPS2(BACKEND_OP_SOFTMAX_CE_FWD, BACKEND_OP_SOFTMAX_CE_BWD), case_softmax_ce, NULL},
    {"sgd_update", OPS1(BACKEND_OP_SGD_UPDATE), case_sgd_update, NULL},
    {"moda_terms", OPS1(BACKEND_OP_MODA_TERMS), case_moda_terms, NULL},
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

/* ---- running and comparing ----------------------------------------------- */

/* Run one case on be from the case's own seed; the compared values end up
 * in c->bufs[i].host. */
static void run_case(run *c, moda_backend *be, size_t case_index) {
    memset(c, 0, sizeof *c);
    c->be = be;
    rng_seed(&c->r, 1000 + case_index, 0);
    CASES[case_index].fn(c, CASES[case_index].params);
    RUN_OP(c, backend_sync_for_host(be));
    for (int i = 0; i < c->n_bufs; i++)
        if (c->bufs[i].compared && c->bufs[i].dev)
            RUN_OP(c, backend_copy_to_host(be, c->bufs[i].host, c->bufs[i].dev, c->bufs[i].n * sizeof(float)));
}

static void run_free(run *c) {
    for (int i = 0; i < c->n_bufs; i++) {
        backend_dealloc(c->be, c->bufs[i].dev);
        free(c->bufs[i].host);
    }
    c->n_bufs = 0;
}

/* sum (a - b)^2 / sum b^2; the plain sum of squares where b is all zero,
 * and infinity for a NaN or an infinity. */
static double nmse(const float *a, const float *b, size_t n) {
    double err = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        err += d * d;
        norm += (double)b[i] * b[i];
    }
    if (!isfinite(err) || !isfinite(norm)) return INFINITY;
    return norm > 0 ? err / norm : err;
}

static bool case_supported(moda_backend *be, const op_case *oc) {
    for (int i = 0; i < oc->n_ops; i++)
        if (!backend_supports_op(be, oc->ops[i])) return false;
    return true;
}

typedef struct check_result {
    int ran, skipped, failed;
    char first_failure[256];
} check_result;

static void note_failure(check_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_failure(check_result *res, const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    print_message("  FAIL %s\n", line);
    if (!res->failed++) snprintf(res->first_failure, sizeof res->first_failure, "%s", line);
}

/* Every case on be against the reference backend. */
static check_result check_backend(moda_backend *ref, moda_backend *be, const char *label) {
    check_result res = {0};
    for (size_t i = 0; i < N_CASES; i++) {
        const op_case *oc = &CASES[i];
        if (!case_supported(be, oc)) {
            print_message("  %s: %s: declared unsupported, skipped\n", label, oc->name);
            res.skipped++;
            continue;
        }
        run want, got;
        run_case(&want, ref, i);
        assert_int_equal(want.status, MODA_OK); /* the reference runs every case */
        run_case(&got, be, i);
        res.ran++;
        if (got.status == MODA_ERR_UNSUPPORTED) {
            note_failure(&res, "%s: %s: an op is missing without being declared unsupported (%s)", label, oc->name,
                         got.failed_call);
        } else if (got.status != MODA_OK) {
            note_failure(&res, "%s: %s: %s failed: %s", label, oc->name, got.failed_call,
                         moda_status_string(got.status));
        } else {
            assert_int_equal(got.n_bufs, want.n_bufs);
            for (int b = 0; b < want.n_bufs; b++) {
                if (!want.bufs[b].compared) continue;
                double e = nmse(got.bufs[b].host, want.bufs[b].host, want.bufs[b].n);
                if (!(e <= NMSE_MAX))
                    note_failure(&res, "%s: %s: %s: NMSE %.3g > %.0e", label, oc->name, want.bufs[b].name, e,
                                 NMSE_MAX);
            }
        }
        run_free(&want);
        run_free(&got);
    }
    return res;
}

/* ---- tests ----------------------------------------------------------------- */

/* Every op of the interface has a name and at least one case. */
static void test_every_op_has_a_case(void **state) {
    (void)state;
    int missing = 0;
    for (int op = 0; op < BACKEND_OP_COUNT_; op++) {
        assert_string_not_equal(backend_op_name((backend_op)op), "?");
        bool covered = false;
        for (size_t i = 0; i < N_CASES && !covered; i++)
            for (int k = 0; k < CASES[i].n_ops; k++) covered |= CASES[i].ops[k] == (backend_op)op;
        if (!covered) {
            print_message("  no case runs op %s\n", backend_op_name((backend_op)op));
            missing++;
        }
    }
    assert_int_equal(missing, 0);
    assert_string_equal(backend_op_name(BACKEND_OP_COUNT_), "?");
}

/* The reference's own results are real: finite, and not all zero. */
static void test_reference_results_are_nontrivial(void **state) {
    moda_backend *cpu = *state;
    for (size_t i = 0; i < N_CASES; i++) {
        run c;
        run_case(&c, cpu, i);
        assert_int_equal(c.status, MODA_OK);
        for (int b = 0; b < c.n_bufs; b++) {
            if (!c.bufs[b].compared) continue;
            double energy = 0;
            for (size_t k = 0; k < c.bufs[b].n; k++) energy += (double)c.bufs[b].host[k] * c.bufs[b].host[k];
            if (!(isfinite(energy) && energy > 0))
                fail_msg("%s: %s is all zero or not finite", CASES[i].name, c.bufs[b].name);
        }
        run_free(&c);
    }
}

/* A second CPU instance through the same dispatch: the ops are
 * deterministic, so it matches the reference. */
static void test_cpu_backend(void **state) {
    moda_backend *ref = *state, *cpu = backend_cpu_new();
    assert_non_null(cpu);
    check_result r = check_backend(ref, cpu, "cpu");
    backend_free(cpu);
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.ran + r.skipped, (int)N_CASES);
    assert_int_equal(r.skipped, 1); /* the MODA terms, which the engine runs on the host for it */
}

static void test_cuda_backend(void **state) {
#ifdef MODA_HAVE_CUDA
    if (!backend_cuda_available()) {
        print_message("  cuda: built, but no GPU is present: skipped\n");
        skip();
    }
    moda_backend *gpu = backend_cuda_new(0, NULL);
    assert_non_null(gpu);
    check_result r = check_backend(*state, gpu, "cuda");
    backend_free(gpu);
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.ran, (int)N_CASES);
#else
    (void)state;
    print_message("  cuda: not built (-DMODA_CUDA=OFF or no toolkit): skipped\n");
    skip();
#endif
}

/* The checks themselves: a backend with an op removed and not declared
 * fails; the same backend declaring it unsupported passes, the cases that
 * need it skipped. */
static bool all_but_relu_bwd(moda_backend *be, backend_op op) {
    (void)be;
    return op != BACKEND_OP_RELU_BWD && op != BACKEND_OP_MODA_TERMS;
}

static void test_missing_op_fails_unless_declared(void **state) {
    moda_backend *ref = *state;
    moda_backend broken = *ref; /* shares the reference's context: same thread, never destroyed */
    broken.relu_bwd = NULL;
    check_result r = check_backend(ref, &broken, "cpu without relu_bwd");
    assert_int_equal(r.failed, 1);
    assert_non_null(strstr(r.first_failure, "relu"));
    assert_non_null(strstr(r.first_failure, "without being declared unsupported"));

    broken.supports_op = all_but_relu_bwd;
    r = check_backend(ref, &broken, "cpu declaring relu_bwd unsupported");
    assert_int_equal(r.failed, 0);
    assert_int_equal(r.skipped, 2);
}

/* A wrong result is caught by the NMSE bound. */
static moda_status relu_fwd_off_by_a_little(moda_backend *be, tensor *y, const tensor *x) {
    (void)be;
    size_t n = tensor_numel(x);
    for (size_t i = 0; i < n; i++) y->data[i] = x->data[i] > 0 ? x->data[i] * 1.001f : 0;
    return MODA_OK;
}

static void test_wrong_result_fails(void **state) {
    moda_backend *ref = *state;
    moda_backend broken = *ref;
    broken.relu_fwd = relu_fwd_off_by_a_little;
    check_result r = check_backend(ref, &broken, "cpu with a wrong relu_fwd");
    assert_int_equal(r.failed, 1);
    assert_non_null(strstr(r.first_failure, "relu: y: NMSE"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_op_has_a_case),
        cmocka_unit_test(test_reference_results_are_nontrivial),
        cmocka_unit_test(test_cpu_backend),
        cmocka_unit_test(test_missing_op_fails_unless_declared),
        cmocka_unit_test(test_wrong_result_fails),
        cmocka_unit_test(test_cuda_backend),
    };
    return cmocka_run_group_tests(tests, tu_backend_setup, tu_backend_teardown);
}
