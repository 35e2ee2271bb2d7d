/* The calibration layer: its map against hand-computed values, its
 * initialisation, its cross-entropy gradient against central differences,
 * and training that must learn a relabelling of the logits it is given. */
#include "test_util.h"

#include "calibration.h"

static void test_apply(void **state) {
    (void)state;
    calibration c;
    assert_int_equal(calibration_init(&c, 2, 0), MODA_OK);
    const float w[4] = {1, 2, -1, 0.5f}, b[2] = {0.5f, -1}, f[4] = {1, 1, 2, -4};
    memcpy(c.w, w, sizeof w);
    memcpy(c.b, b, sizeof b);
    float z[4];
    calibration_apply(&c, f, 2, z);
    /* z[i][o] = b[o] + sum_j w[o][j] f[i][j] */
    const float want[4] = {3.5f, -1.5f, -5.5f, -5.0f};
    for (int i = 0; i < 4; i++) assert_float_equal(z[i], want[i], 1e-6);
    calibration_free(&c);
    assert_null(c.w);
    assert_int_equal(calibration_init(&c, 0, 0), MODA_ERR_ARG);
}

static void test_init(void **state) {
    (void)state;
    calibration a, b;
    assert_int_equal(calibration_init(&a, 64, 7), MODA_OK);
    assert_int_equal(calibration_init(&b, 64, 7), MODA_OK);
    assert_memory_equal(a.w, b.w, 64 * 64 * sizeof(float));
    double sum = 0, sq = 0;
    for (int i = 0; i < 64 * 64; i++) {
        sum += a.w[i];
        sq += (double)a.w[i] * a.w[i];
    }
    double mean = sum / 4096, sd = sqrt(sq / 4096 - mean * mean);
    assert_true(fabs(mean) < 0.001);
    assert_true(sd > 0.0095 && sd < 0.0105);
    for (int i = 0; i < 64; i++) assert_float_equal(a.b[i], 0, 0);
    calibration_free(&a);
    calibration_free(&b);
}

typedef struct fd_ctx {
    calibration *c;
    const float *f;
    const int32_t *y;
    int n;
} fd_ctx;

static double fd_loss(void *p) {
    fd_ctx *x = p;
    return calibration_loss(x->c, x->f, x->y, x->n, NULL, NULL);
}

static void test_gradient(void **state) {
    (void)state;
    const int k = 5, n = 9;
    calibration c;
    assert_int_equal(calibration_init(&c, k, 3), MODA_OK);
    rng r;
    rng_seed(&r, 11, 1);
    rng_fill_normal(&r, c.w, (uint64_t)k * k, 0, 0.5f); /* away from the near-zero start */
    rng_fill_normal(&r, c.b, (uint64_t)k, 0, 0.5f);
    float *f = tu_randn(&r, (size_t)n * k, 2.0f);
    int32_t y[9];
    for (int i = 0; i < n; i++) y[i] = (int32_t)rng_below(&r, (uint32_t)k);
    float gw[25], gb[5];
    double loss = calibration_loss(&c, f, y, n, gw, gb);
    assert_true(loss > 0);
    fd_ctx ctx = {&c, f, y, n};
    tu_fd_check("calibration dW", c.w, gw, (size_t)k * k, fd_loss, &ctx, 1e-2f, 1e-4, 2e-3, 25);
    tu_fd_check("calibration db", c.b, gb, (size_t)k, fd_loss, &ctx, 1e-2f, 1e-4, 2e-3, 5);
    free(f);
    calibration_free(&c);
}

/* Logits whose argmax is the class under a fixed permutation: the layer
 * must learn to undo it, from its near-zero start, in a few epochs. */
static void test_learns_a_relabelling(void **state) {
    (void)state;
    const int k = 6, n = 3000, perm[6] = {3, 0, 5, 1, 4, 2};
    rng r;
    rng_seed(&r, 5, 2);
    float *f = tu_randn(&r, (size_t)n * k, 1.0f);
    int32_t *y = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        int c = (int)rng_below(&r, (uint32_t)k);
        f[(size_t)i * k + c] += 4.0f; /* a confident logit for class c */
        y[i] = perm[c];
    }
    calibration a, b;
    assert_int_equal(calibration_init(&a, k, 1), MODA_OK);
    assert_int_equal(calibration_init(&b, k, 1), MODA_OK);
    double before = calibration_loss(&a, f, y, n, NULL, NULL), after = 0, again = 0;
    calibration_options o = calibration_options_default();
    assert_int_equal(calibration_train(&a, f, y, n, &o, &after), MODA_OK);
    assert_int_equal(calibration_train(&b, f, y, n, &o, &again), MODA_OK);
    assert_memory_equal(a.w, b.w, (size_t)k * k * sizeof(float)); /* seeded: the same run twice */
    assert_true(before > log(k) - 0.05);
    assert_true(after < 0.2 * before);
    float *z = malloc((size_t)n * k * sizeof(float));
    calibration_apply(&a, f, n, z);
    int right = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int j = 1; j < k; j++)
            if (z[(size_t)i * k + j] > z[(size_t)i * k + best]) best = j;
        right += best == y[i];
    }
    assert_true(right > 0.97 * n);

    /* Bad input. */
    y[7] = k;
    assert_int_equal(calibration_train(&a, f, y, n, &o, NULL), MODA_ERR_ARG);
    y[7] = 0;
    o.epochs = 0;
    assert_int_equal(calibration_train(&a, f, y, n, &o, NULL), MODA_ERR_ARG);
    o = calibration_options_default();
    f[0] = NAN;
    assert_int_equal(calibration_train(&a, f, y, n, &o, NULL), MODA_ERR_ARG);
    free(z);
    free(y);
    free(f);
    calibration_free(&a);
    calibration_free(&b);
}

/* One SGD step by hand: a single batch, one epoch (the cosine's first
 * epoch is the full rate), so w' = w - lr (g + 0.9 v) with v = g. */
static void test_sgd_step(void **state) {
    (void)state;
    const int k = 3, n = 4;
    const float f[12] = {1, -2, 0.5f, 0, 3, -1, 2, 2, 2, -1, 0, 1};
    const int32_t y[4] = {0, 1, 2, 1};
    calibration c;
    assert_int_equal(calibration_init(&c, k, 9), MODA_OK);
    float w0[9], b0[3], gw[9] = {0}, gb[3] = {0};
    memcpy(w0, c.w, sizeof w0);
    memcpy(b0, c.b, sizeof b0);
    calibration_loss(&c, f, y, n, gw, gb);
    calibration_options o = calibration_options_default();
    o.optimizer = CALIBRATION_SGD;
    o.lr = 0.05f;
    o.epochs = 1;
    o.batch = n;
    assert_int_equal(calibration_train(&c, f, y, n, &o, NULL), MODA_OK);
    for (int j = 0; j < 9; j++) assert_float_equal(c.w[j], w0[j] - 0.05 * 1.9 * gw[j], 1e-6);
    for (int j = 0; j < 3; j++) assert_float_equal(c.b[j], b0[j] - 0.05 * 1.9 * gb[j], 1e-6);
    calibration_optimizer opt;
    assert_true(calibration_optimizer_parse("sgd", &opt) && opt == CALIBRATION_SGD);
    assert_true(calibration_optimizer_parse("adam", &opt) && opt == CALIBRATION_ADAM);
    assert_false(calibration_optimizer_parse("Adam", &opt));
    calibration_free(&c);
}

static bool stop_after_two(void *ctx, int epoch, double loss) {
    int *calls = ctx;
    assert_int_equal(epoch, *calls);
    assert_true(isfinite(loss));
    return ++*calls < 2;
}

/* SGD (Nesterov, cosine) learns the relabelling too; the epoch callback
 * sees every epoch and can stop the run. */
static void test_sgd_learns_and_stops(void **state) {
    (void)state;
    const int k = 4, n = 2000;
    rng r;
    rng_seed(&r, 8, 1);
    float *f = tu_randn(&r, (size_t)n * k, 1.0f);
    int32_t *y = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        int c = (int)rng_below(&r, (uint32_t)k);
        f[(size_t)i * k + c] += 4.0f;
        y[i] = (c + 1) % k;
    }
    calibration c;
    assert_int_equal(calibration_init(&c, k, 1), MODA_OK);
    double before = calibration_loss(&c, f, y, n, NULL, NULL), after = 0;
    calibration_options o = calibration_options_default();
    o.optimizer = CALIBRATION_SGD;
    o.lr = 0.05f;
    o.epochs = 5;
    assert_int_equal(calibration_train(&c, f, y, n, &o, &after), MODA_OK);
    assert_true(after < 0.2 * before);
    int calls = 0;
    o.on_epoch = stop_after_two;
    o.ctx = &calls;
    assert_int_equal(calibration_train(&c, f, y, n, &o, NULL), MODA_ERR_CANCELLED);
    assert_int_equal(calls, 2);
    free(y);
    free(f);
    calibration_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_learns_a_relabelling),
        cmocka_unit_test(test_sgd_step),
        cmocka_unit_test(test_sgd_learns_and_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
