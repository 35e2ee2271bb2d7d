/* Triton's extensions through the API (no HTTP): /v2 lists them; a model's
 * configuration (dims without the batch dimension, dynamic_batching only
 * when its requests merge); statistics after inference; the repository
 * index, load (composes and pins, once), unload (drops), and their errors:
 * registry models cannot be unloaded, unknown models, load parameters,
 * bad bodies, methods and paths, and the bound on loaded models. */
#include "test_util.h"

#include <jansson.h>

#include "api.h"
#include "metrics.h"

#define MODEL "fmnist-lenet5"

static api *open_api(int batch_max, metrics *m) {
    api_config cfg = {.registry = MODA_MODELS_DIR, .cache_bytes = 64u << 20, .workers = 1, .intra_threads = 1,
                      .max_batch = 32, .default_tau = 0.9f, .metrics = m,
                      .batching = {.max_batch = batch_max, .max_delay_us = 250, .instances = 1}};
    if (batch_max > 1) {
        snprintf(cfg.batching.overrides[0].model, sizeof cfg.batching.overrides[0].model, "%s", MODEL);
        cfg.batching.overrides[0].max_batch = 6;
        cfg.batching.overrides[0].max_delay_us = 700;
        cfg.batching.n_overrides = 1;
    }
    api *a = NULL;
    char err[512] = "";
    if (api_new(&cfg, &a, err, sizeof err)) fail_msg("api_new: %s", err);
    return a;
}

/* The response to method path [body] as JSON; *status its status. */
static json_t *call(api *a, const char *method, const char *path, const char *body, int *status) {
    api_request req = {.method = method, .path = path, .body = body, .body_len = body ? strlen(body) : 0};
    api_response r;
    api_handle(a, 0, &req, &r);
    *status = r.status;
    json_error_t je;
    json_t *root = json_loadb(r.body, r.body_len, JSON_DECODE_ANY, &je);
    if (!root) fail_msg("%s %s: not JSON: %.*s", method, path, (int)r.body_len, r.body);
    api_response_free(&r);
    return root;
}

static void expect_status(api *a, const char *method, const char *path, const char *body, int want) {
    int status;
    json_t *root = call(a, method, path, body, &status);
    if (status != want) fail_msg("%s %s %s: %d, want %d", method, path, body ? body : "", status, want);
    if (status >= 400) assert_true(json_is_string(json_object_get(root, "error")));
    json_decref(root);
}

static bool indexed(api *a, const char *name) {
    int status;
    json_t *idx = call(a, "POST", "/v2/repository/index", NULL, &status);
    assert_int_equal(status, 200);
    bool found = false;
    size_t i;
    json_t *m;
    json_array_foreach(idx, i, m) {
        assert_string_equal(json_string_value(json_object_get(m, "state")), "READY");
        assert_string_equal(json_string_value(json_object_get(m, "version")), "1");
        if (!strcmp(json_string_value(json_object_get(m, "name")), name)) {
            assert_false(found); /* listed once */
            found = true;
        }
    }
    json_decref(idx);
    return found;
}

static void test_extensions_listed(void **state) {
    (void)state;
    api *a = open_api(1, NULL);
    int status;
    json_t *meta = call(a, "GET", "/v2", NULL, &status);
    const char *want[] = {"binary_tensor_data", "model_configuration", "statistics", "model_repository"};
    for (size_t k = 0; k < 4; k++) {
        bool found = false;
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(meta, "extensions"), i, e) found |= !strcmp(json_string_value(e), want[k]);
        if (!found) fail_msg("extension %s not listed", want[k]);
    }
    json_decref(meta);
    api_free(a);
}

static void test_model_config(void **state) {
    (void)state;
    api *a = open_api(1, NULL);
    int status;
    json_t *cfg = call(a, "GET", "/v2/models/" MODEL "~7-8-9~0.9/config", NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(cfg, "name")), MODEL "~7-8-9~0.9");
    assert_int_equal(json_integer_value(json_object_get(cfg, "max_batch_size")), 32);
    json_t *in = json_array_get(json_object_get(cfg, "input"), 0);
    assert_string_equal(json_string_value(json_object_get(in, "data_type")), "TYPE_FP32");
    json_t *dims = json_object_get(in, "dims");
    assert_int_equal(json_array_size(dims), 3);
    assert_int_equal(json_integer_value(json_array_get(dims, 0)), 1);
    assert_int_equal(json_integer_value(json_array_get(dims, 1)), 32);
    json_t *out = json_object_get(cfg, "output");
    assert_int_equal(json_array_size(out), 3);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(json_array_get(out, 0), "dims"), 0)), 3);
    assert_null(json_object_get(cfg, "dynamic_batching")); /* off */
    json_decref(cfg);
    cfg = call(a, "GET", "/v2/models/" MODEL "/versions/1/config", NULL, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(json_array_get(json_object_get(cfg, "output"), 0),
                                                                       "dims"),
                                                       0)),
                     10);
    json_decref(cfg);
    expect_status(a, "GET", "/v2/models/nope/config", NULL, 404);
    expect_status(a, "GET", "/v2/models/" MODEL "/versions/2/config", NULL, 404);
    expect_status(a, "POST", "/v2/models/" MODEL "/config", NULL, 405);
    api_free(a);

    /* With batching on, the per-model override shows. */
    a = open_api(4, NULL);
    cfg = call(a, "GET", "/v2/models/" MODEL "~1-2~0.9/config", NULL, &status);
    json_t *db = json_object_get(cfg, "dynamic_batching");
    assert_non_null(db);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(db, "preferred_batch_size"), 0)), 6);
    assert_int_equal(json_integer_value(json_object_get(db, "max_queue_delay_microseconds")), 700);
    json_decref(cfg);
    api_free(a);
}

static void test_statistics(void **state) {
    (void)state;
    metrics *m = metrics_new();
    api *a = open_api(1, m);
    /* Two samples through the composed model: counted as the server's
     * metrics count them (the API records inference; the server, requests). */
    float x[2 * 32 * 32] = {0};
    api_kv q[3] = {{"id", MODEL "~7-8-9~0.9"}, {"shape", "2,1,32,32"}, {"dtype", "float32"}};
    api_kv h = {"Content-Type", "application/octet-stream"};
    api_request req = {.method = "POST", .path = "/v1/infer", .query = q, .n_query = 3, .headers = &h, .n_headers = 1,
                       .body = (const char *)x, .body_len = sizeof x};
    api_response r;
    api_handle(a, 0, &req, &r);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    metrics_add(m, METRIC_REQUEST_SUCCESS, MODEL "~7-8-9~0.9", NULL, 1);
    metrics_add(m, METRIC_REQUEST_DURATION_US, MODEL "~7-8-9~0.9", NULL, 1500);
    int status;
    json_t *st = call(a, "GET", "/v2/models/" MODEL "~7-8-9~0.9/stats", NULL, &status);
    assert_int_equal(status, 200);
    json_t *ms = json_object_get(st, "model_stats");
    assert_int_equal(json_array_size(ms), 1);
    json_t *s0 = json_array_get(ms, 0);
    assert_int_equal(json_integer_value(json_object_get(s0, "inference_count")), 2);
    assert_int_equal(json_integer_value(json_object_get(s0, "execution_count")), 1);
    json_t *succ = json_object_get(json_object_get(s0, "inference_stats"), "success");
    assert_int_equal(json_integer_value(json_object_get(succ, "count")), 1);
    assert_int_equal(json_integer_value(json_object_get(succ, "ns")), 1500000);
    assert_true(json_integer_value(json_object_get(json_object_get(json_object_get(s0, "inference_stats"),
                                                                   "compute_infer"),
                                                   "ns")) > 0);
    json_decref(st);
    /* All models: the registry's and the composed one, each once; a made-up
     * name in the metrics (a refused request's) is not a model. */
    metrics_add(m, METRIC_REQUEST_FAILURE, "no-such-model", "overloaded", 1);
    st = call(a, "GET", "/v2/models/stats", NULL, &status);
    assert_int_equal(status, 200);
    ms = json_object_get(st, "model_stats");
    assert_int_equal(json_array_size(ms), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ms, 0), "name")), MODEL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ms, 1), "name")), MODEL "~7-8-9~0.9");
    json_decref(st);
    expect_status(a, "GET", "/v2/models/nope/stats", NULL, 404);
    expect_status(a, "POST", "/v2/models/stats", NULL, 405);
    api_free(a);
    metrics_free(m);
}

static void test_repository(void **state) {
    (void)state;
    api *a = open_api(1, NULL);
    assert_true(indexed(a, MODEL));
    assert_false(indexed(a, MODEL "~1-4~0.8"));
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~1-4~0.8/load", "{}", 200);
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~1-4~0.80/load", NULL, 200); /* the same id */
    assert_true(indexed(a, MODEL "~1-4~0.8"));
    expect_status(a, "POST", "/v2/repository/index", "{\"ready\":true}", 200);
    expect_status(a, "POST", "/v2/repository/models/" MODEL "/load", "{}", 200); /* always loaded */
    assert_true(indexed(a, MODEL));
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~1-4~0.8/unload",
                  "{\"parameters\":{\"unload_dependents\":false}}", 200);
    assert_false(indexed(a, MODEL "~1-4~0.8"));
    /* Unloading again, or what was never loaded, is harmless. */
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~1-4~0.8/unload", NULL, 200);

    expect_status(a, "POST", "/v2/repository/models/" MODEL "/unload", NULL, 400);
    expect_status(a, "POST", "/v2/repository/models/nope/load", NULL, 404);
    expect_status(a, "POST", "/v2/repository/models/nope/unload", NULL, 404);
    expect_status(a, "POST", "/v2/repository/models/nope~1~0.9/unload", NULL, 404);
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~1-99~0.9/load", NULL, 404);
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~1-1~0.9/load", NULL, 400); /* duplicate_class */
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~1-2~0.9/load", "{\"parameters\":{\"config\":\"{}\"}}",
                  400);
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~1-2~0.9/load", "[1]", 400);
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~1-2~0.9/load", "{", 400);
    expect_status(a, "POST", "/v2/repository/index", "{\"ready\":\"yes\"}", 400);
    expect_status(a, "POST", "/v2/repository/index", "{\"parameters\":[null]}", 400);
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~1-2~0.9/unload", "{\"parameters\":1}", 400);
    expect_status(a, "GET", "/v2/repository/index", NULL, 405);
    expect_status(a, "POST", "/v2/repository/models/" MODEL "/reload", NULL, 404);
    expect_status(a, "POST", "/v2/repository/models//load", NULL, 404);
    expect_status(a, "POST", "/v2/repository/other", NULL, 404);

    /* At most 64 loaded: 2-class subsets (i, j) of the 10 classes. */
    int loaded = 0;
    char path[128];
    for (int i = 0; i < 10 && loaded < 64; i++)
        for (int j = 0; j < 10 && loaded < 64; j++) {
            if (i == j) continue;
            snprintf(path, sizeof path, "/v2/repository/models/" MODEL "~%d-%d~0.9/load", i, j);
            expect_status(a, "POST", path, NULL, 200);
            loaded++;
        }
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~9-8~0.5/load", NULL, 400);
    snprintf(path, sizeof path, "/v2/repository/models/" MODEL "~0-1~0.9/unload");
    expect_status(a, "POST", path, NULL, 200);
    expect_status(a, "POST", "/v2/repository/models/" MODEL "~9-8~0.5/load", NULL, 200);
    api_free(a); /* releases the pins */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extensions_listed),
        cmocka_unit_test(test_model_config),
        cmocka_unit_test(test_statistics),
        cmocka_unit_test(test_repository),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
