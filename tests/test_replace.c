/* moda replace on a tiny registry: a model patched with its own module at
 * tau 0 (every unit kept) must score exactly as the model itself, with
 * and without calibration; a real replacement runs end to end; bad
 * arguments give clear errors and the CLI's exit codes. */
#include "test_util.h"

#include <jansson.h>

#include "cmd_eval.h"
#include "cmd_replace.h"
#include "compose.h"
#include "tiny_registry.h"

static char root[256], reg[300], data[300];

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/moda-replace-XXXXXX");
    if (tiny_weak_strong(root, reg, data) != 0) return -1;
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
    replace_result_free(&r);
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

/* Forward n samples of x through g (planned here), logits into out. */
static void forward(graph *g, const float *x, int n, float *out) {
    assert_int_equal(graph_plan_inference(g, n), MODA_OK);
    assert_int_equal(graph_forward(g, x, n, false), MODA_OK);
    int k = graph_output(g)->c;
    memcpy(out, graph_output(g)->out.data, (size_t)n * k * sizeof(float));
}

/* --save stores a patched model that loads as one graph whose logits are
 * those the run computed: the calibration layer over W's logits with
 * logit t replaced by S's module. Its manifest keeps the run's numbers;
 * eval and inspect take it; a changed or missing parent is named. */
static void test_save_and_load(void **state) {
    (void)state;
    char err[1024] = "";
    replace_options o = options("weak", "strong", "v-stripes", 0.9f);
    o.save = "weak-patched";
    replace_result r;
    if (replace_cli_run(&o, &r, err, sizeof err) != MODA_OK) fail_msg("%s", err);

    moda_backend *be = backend_cpu_new();
    registry *rg = NULL;
    assert_int_equal(registry_open(reg, NULL, &rg, err, sizeof err), MODA_OK);
    registry_model pm, w, sm;
    if (registry_load_model(rg, "weak-patched", be, &pm, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    assert_int_equal(registry_load_model(rg, "weak", be, &w, err, sizeof err), MODA_OK);
    assert_int_equal(registry_load_model(rg, "strong", be, &sm, err, sizeof err), MODA_OK);
    assert_true(pm.patched);
    assert_false(pm.composed);
    assert_int_equal(pm.info.model.num_classes, 4);
    assert_int_equal(pm.patch.weak_class, 1);
    assert_string_equal(pm.patch.class_name, "v-stripes");
    assert_string_equal(pm.patch.weak.manifest_sha256, w.manifest_sha256);
    assert_string_equal(pm.patch.strong.manifest_sha256, sm.manifest_sha256);
    assert_string_equal(pm.patch.optimizer, "adam");
    for (int i = 0; i < REPLACE_ROWS; i++)
        for (int j = 0; j < 2; j++) assert_float_equal(pm.patch.acc[i][j], r.acc[i][j], 1e-9);
    assert_float_equal(pm.test_acc, r.acc[REPLACE_PATCHED_CALIBRATED][0] / 100, 1e-12);

    /* The joined graph against the parts run separately. */
    const int n = 7, k = 4, t = r.cls;
    rng g;
    rng_seed(&g, 3, 3);
    float *x = tu_randn(&g, (size_t)n * 16 * 16, 1.0f), wl[7 * 4], ml[7], f[7 * 4], want[7 * 4], got[7 * 4];
    compose_plan p = {0};
    graph *module = NULL;
    int ts = r.strong_cls;
    assert_int_equal(compose_plan_make(sm.g, &sm.r, &ts, 1, 0.9f, &p), MODA_OK);
    assert_int_equal(compose_build(sm.g, &p, be, &module), MODA_OK);
    forward(w.g, x, n, wl);
    forward(module, x, n, ml);
    for (int i = 0; i < n; i++) {
        memcpy(f + i * k, wl + i * k, k * sizeof(float));
        f[i * k + t] = ml[i];
    }
    calibration_apply(&r.layer, f, n, want);
    forward(pm.g, x, n, got);
    assert_close(got, want, (size_t)n * k, 1e-6, 1e-5);
    graph_free(module);
    compose_plan_free(&p);
    free(x);

    const char *ev[] = {"moda", "eval", "--registry", reg, "--model", "weak-patched", "--data-dir", data, NULL};
    assert_int_equal(tiny_run_cmd(cmd_eval, ev), 0);
    const char *in[] = {"moda", "inspect", reg, "weak-patched", NULL};
    assert_int_equal(tiny_run_cmd(cmd_inspect, in), 0);
    const char *list[] = {"moda", "inspect", reg, NULL};
    assert_int_equal(tiny_run_cmd(cmd_inspect, list), 0);
    registry_model_free(&pm);
    registry_model_free(&w);
    registry_model_free(&sm);
    registry_close(rg);

    /* A strong parent that changed since: the error names it. */
    char copy[400], cmd[900];
    snprintf(copy, sizeof copy, "%s/changed", root);
    snprintf(cmd, sizeof cmd, "cp -r %s %s", reg, copy);
    assert_int_equal(system(cmd), 0);
    const char *redo[] = {"moda", "replace", "--registry", copy, "--weak", "strong", "--strong", "strong", "--class",
                          "0", "--data-dir", data, "--save", "strong", NULL};
    assert_int_equal(tiny_run_cmd(cmd_replace, redo), 2); /* not over a parent of its own */
    snprintf(cmd, sizeof cmd, "%s/runs/strong/checkpoint.safetensors", root);
    const char *again[] = {"moda", "decompose", "--checkpoint", cmd, "--out", copy, "--name", "strong",
                           "--tau", "0.5", "--data-dir", data, NULL};
    assert_int_equal(tiny_run_cmd(cmd_decompose, again), 0);
    assert_int_equal(registry_open(copy, NULL, &rg, err, sizeof err), MODA_OK);
    assert_int_equal(registry_load_model(rg, "weak-patched", be, &pm, err, sizeof err), MODA_ERR_FORMAT);
    assert_non_null(strstr(err, "strong parent \"strong\" has changed"));
    registry_close(rg);

    /* A parent no longer in the registry. */
    snprintf(cmd, sizeof cmd, "%s/index.json", copy);
    json_t *idx = json_load_file(cmd, 0, NULL);
    json_t *models = json_object_get(idx, "models");
    for (size_t i = 0; i < json_array_size(models); i++)
        if (!strcmp(json_string_value(json_object_get(json_array_get(models, i), "name")), "weak"))
            json_array_remove(models, i);
    assert_int_equal(json_dump_file(idx, cmd, 0), 0);
    json_decref(idx);
    assert_int_equal(registry_open(copy, NULL, &rg, err, sizeof err), MODA_OK);
    assert_int_equal(registry_load_model(rg, "weak-patched", be, &pm, err, sizeof err), MODA_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "weak parent \"weak\" is not in the registry"));
    registry_close(rg);
    backend_free(be);
    replace_result_free(&r);
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
    const char *url[] = {"moda", "replace", "--registry", "http://127.0.0.1:9/r", "--weak", "weak", "--strong",
                         "strong", "--class", "0", "--save", "p", NULL};
    assert_int_equal(tiny_run_cmd(cmd_replace, url), 2);
    const char *two[] = {"moda", "replace", "--registry", reg, "--strong-registry", reg, "--weak", "weak",
                         "--strong", "strong", "--class", "0", "--save", "p", NULL};
    assert_int_equal(tiny_run_cmd(cmd_replace, two), 2);
    const char *bad_name[] = {"moda", "replace", "--registry", reg, "--weak", "weak", "--strong", "strong",
                              "--class", "0", "--data-dir", data, "--save", "../x", NULL};
    assert_int_equal(tiny_run_cmd(cmd_replace, bad_name), 2);

    /* Inputs read differently cannot make one graph. */
    model_info a = {.model = {.input_size = 16}, .channels = 1, .mean = {0.5f}, .std = {0.25f}}, b = a;
    char why[256];
    assert_true(model_info_same_input(&a, &b, why, sizeof why));
    b.std[0] = 0.3f;
    assert_false(model_info_same_input(&a, &b, why, sizeof why));
    assert_non_null(strstr(why, "normalised"));
    b = a;
    b.pad = 2;
    assert_false(model_info_same_input(&a, &b, why, sizeof why));
    assert_non_null(strstr(why, "padding"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_module_at_tau_zero_changes_nothing),
        cmocka_unit_test(test_replacement_runs),
        cmocka_unit_test(test_progress_and_cancel),
        cmocka_unit_test(test_save_and_load),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
