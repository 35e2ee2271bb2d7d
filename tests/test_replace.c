/* moda replace on a tiny registry: a model patched with its own module at
 * tau 0 (every unit kept) must score exactly as the model itself, with
 * and without calibration; a real replacement runs end to end; bad
 * arguments give clear errors and the CLI's exit codes. */
#include "test_util.h"

#include "cmd_replace.h"
#include "tiny_registry.h"

static char root[256], reg[300], data[300];

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/moda-replace-XXXXXX");
    if (!mkdtemp(root) || synth_make_data(root, 256, 80) != 0) return -1;
    snprintf(reg, sizeof reg, "%s/registry", root);
    snprintf(data, sizeof data, "%s/data", root);
    tiny_train_into_registry(root, "strong", true, 3, 5);
    tiny_train_into_registry(root, "weak", false, 1, 5);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    return synth_remove_tree(root);
}

static replace_options options(const char *weak, const char *strong, const char *cls, float tau) {
    replace_options o = {.reg = reg, .weak = weak, .strong = strong, .cls = cls, .data_dir = data, .tau = tau,
                         .calib = calibration_options_default()};
    return o;
}

static void test_own_module_at_tau_zero_changes_nothing(void **state) {
    (void)state;
    char err[1024] = "";
    replace_options o = options("strong", "strong", "fine-check", 0.0f);
    replace_result r;
    if (replace_cli_run(&o, &r, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(r.cls, 2);
    assert_string_equal(r.class_name, "fine-check");
    assert_float_equal(r.module_params, 1.0 - 3 * 85.0 / 15116, 1e-9); /* only the other classes' logit rows go */
    for (int j = 0; j < 2; j++) {
        assert_float_equal(r.acc[REPLACE_PATCHED][j], r.acc[REPLACE_WEAK][j], 0);
        assert_float_equal(r.acc[REPLACE_PATCHED_CALIBRATED][j], r.acc[REPLACE_WEAK_CALIBRATED][j], 0);
    }
    assert_float_equal(r.loss[0], r.loss[1], 1e-5); /* the module's logit may differ in rounding */
    assert_true(r.acc[REPLACE_WEAK][0] > 25.0); /* better than chance over 4 classes */
}

static void test_replacement_runs(void **state) {
    (void)state;
    char err[1024] = "";
    replace_options o = options("weak", "strong", "V-STRIPES", 0.9f); /* case is forgiven */
    replace_result r;
    if (replace_cli_run(&o, &r, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(r.cls, 1);
    assert_int_equal(r.k, 4);
    assert_int_equal(r.train_n, 256);
    assert_true(r.module_params > 0 && r.module_params < 1);
    for (int i = 0; i < REPLACE_ROWS; i++)
        for (int j = 0; j < 2; j++) assert_true(r.acc[i][j] >= 0 && r.acc[i][j] <= 100);
    assert_true(isfinite(r.loss[0]) && isfinite(r.loss[1]));
    assert_int_equal(r.layer.k, 4); /* the patched model's layer is handed back */
    replace_result_free(&r);
    const char *argv[] = {"moda", "replace", "--registry", reg, "--weak", "weak", "--strong", "strong", "--class", "3",
                          "--epochs", "2", "--data-dir", data, NULL};
    assert_int_equal(tiny_run_cmd(cmd_replace, argv), 0);
}

static bool cancel_in_calibration(void *ctx, const replace_progress *p) {
    int *seen = ctx;
    if (p->phase == REPLACE_PHASE_FORWARD) {
        assert_true(p->done > 0 && p->done <= p->total);
        seen[0]++;
    }
    if (p->phase == REPLACE_PHASE_CALIBRATE) seen[1]++;
    return p->phase != REPLACE_PHASE_CALIBRATE;
}

/* Progress reaches the callback, and returning false stops the run. */
static void test_progress_and_cancel(void **state) {
    (void)state;
    char err[1024] = "";
    replace_options o = options("weak", "strong", "0", 0.9f);
    int seen[2] = {0, 0};
    o.progress = cancel_in_calibration;
    o.ctx = seen;
    replace_result r;
    assert_int_equal(replace_cli_run(&o, &r, err, sizeof err), MODA_ERR_CANCELLED);
    assert_string_equal(err, "cancelled");
    assert_int_equal(seen[0], 4); /* one batch per split per model */
    assert_int_equal(seen[1], 1);
    assert_null(r.layer.w);
}

static void test_errors(void **state) {
    (void)state;
    char err[1024] = "";
    replace_result r;
    replace_options o = options("weak", "strong", "no-such-class", 0.9f);
    assert_int_equal(replace_cli_run(&o, &r, err, sizeof err), MODA_ERR_ARG);
    assert_non_null(strstr(err, "unknown class \"no-such-class\""));
    assert_non_null(strstr(err, "h-stripes")); /* the classes are listed */
    o = options("weak", "nope", "0", 0.9f);
    assert_int_equal(replace_cli_run(&o, &r, err, sizeof err), MODA_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "nope"));
    o = options("weak", "strong", "9", 0.9f);
    assert_int_equal(replace_cli_run(&o, &r, err, sizeof err), MODA_ERR_ARG);
    assert_non_null(strstr(err, "out of range"));

    const char *missing[] = {"moda", "replace", "--registry", reg, "--weak", "weak", NULL};
    assert_int_equal(tiny_run_cmd(cmd_replace, missing), 2);
    const char *bad_tau[] = {"moda", "replace", "--registry", reg, "--weak", "weak", "--strong", "strong",
                             "--class", "0", "--tau", "1.5", NULL};
    assert_int_equal(tiny_run_cmd(cmd_replace, bad_tau), 2);
    const char *help[] = {"moda", "replace", "--help", NULL};
    assert_int_equal(tiny_run_cmd(cmd_replace, help), 0);
    const char *unknown[] = {"moda", "replace", "--registry", reg, "--weak", "weak", "--strong", "strong",
                             "--class", "nope", "--data-dir", data, NULL};
    assert_int_equal(tiny_run_cmd(cmd_replace, unknown), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_module_at_tau_zero_changes_nothing),
        cmocka_unit_test(test_replacement_runs),
        cmocka_unit_test(test_progress_and_cancel),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
