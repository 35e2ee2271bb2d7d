/* Replacement and calibration as jobs, through the API (no HTTP): a job
 * from its 202 to the served patched model, whose v2 answers equal those
 * of the model `moda replace --save` writes from the same request; a
 * queue that refuses when full; cancelling, queued and running, writes
 * nothing; the admin token; and each refusal with its status and code. */
#include "test_util.h"

#include <jansson.h>
#include <time.h>

#include "api.h"
#include "api_state.h"
#include "cmd_replace.h"
#include "metrics.h"
#include "tiny_registry.h"

static char root[256], reg[300], data[300];

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/moda-jobs-XXXXXX");
    if (tiny_weak_strong(root, reg, data) != 0) return -1;
    /* The same model with another normalisation: it reads another input. */
    char err[1024];
    registry *r = NULL;
    registry_model m;
    moda_backend *be = backend_cpu_new();
    if (registry_open(reg, NULL, &r, err, sizeof err) || registry_load_model(r, "weak", be, &m, err, sizeof err))
        return -1;
    m.info.mean[0] += 0.25f;
    moda_status s = registry_write_model(reg, "shifted", m.g, &m.info, NULL, m.test_acc, &m.r, &m.stats, err,
                                         sizeof err);
    registry_model_free(&m);
    registry_close(r);
    backend_free(be);
    return s == MODA_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    return synth_remove_tree(root);
}

static api *open_api(int jobs_max, int jobs_queue, const char *token) {
    api_config cfg = {.registry = reg, .cache_bytes = 16u << 20, .workers = 1, .intra_threads = 1, .max_batch = 64,
                      .default_tau = 0.9f, .jobs_max = jobs_max, .jobs_queue = jobs_queue, .admin_token = token};
    char err[1024] = "";
    api *b = NULL;
    if (api_new(&cfg, &b, err, sizeof err)) fail_msg("api_new: %s", err);
    return b;
}

/* One request; the response's JSON (caller frees) and status. */
static json_t *call(api *b, const char *method, const char *path, const char *body, const char *auth, int *status,
                    api_response *keep) {
    api_kv hdr[2];
    int nh = 0;
    hdr[nh++] = (api_kv){"Content-Type", "application/json"};
    if (auth) hdr[nh++] = (api_kv){"Authorization", (char *)auth};
    api_request req = {.method = method, .path = path, .headers = hdr, .n_headers = nh, .body = body,
                       .body_len = body ? strlen(body) : 0};
    api_response r;
    api_handle(b, 0, &req, &r);
    *status = r.status;
    json_t *root_ = json_loadb(r.body, r.body_len, 0, NULL);
    if (!root_) fail_msg("not JSON: %.*s", (int)r.body_len, r.body);
    if (keep) *keep = r;
    else api_response_free(&r);
    return root_;
}

static const char *code_of(json_t *o) { return json_string_value(json_object_get(json_object_get(o, "error"), "code")); }

/* Poll until the job has ended; its final record. */
static json_t *wait_job(api *b, const char *id) {
    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    for (int i = 0; i < 6000; i++) {
        int st;
        json_t *o = call(b, "GET", path, NULL, NULL, &st, NULL);
        assert_int_equal(st, 200);
        const char *s = json_string_value(json_object_get(o, "state"));
        if (strcmp(s, "queued") && strcmp(s, "running")) return o;
        json_decref(o);
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    fail_msg("job %s did not end", id);
    return NULL;
}

static char *submit(api *b, const char *path, const char *body, const char *auth) {
    int st;
    api_response r;
    json_t *o = call(b, "POST", path, body, auth, &st, &r);
    if (st != 202) fail_msg("%s: %d %s", path, st, json_dumps(o, 0));
    char want[96];
    const char *id = json_string_value(json_object_get(o, "id"));
    snprintf(want, sizeof want, "/v1/jobs/%s", id);
    bool located = false;
    for (int i = 0; i < r.n_headers; i++) located |= !strcmp(r.headers[i].key, "Location") && !strcmp(r.headers[i].value, want);
    assert_true(located);
    char *copy = strdup(id);
    api_response_free(&r);
    json_decref(o);
    return copy;
}

/* v2 logits-free answer: the probabilities of n samples of model m. */
static json_t *v2_infer(api *b, const char *model, const float *x, int n) {
    json_t *arr = json_array();
    for (int i = 0; i < n * 16 * 16; i++) json_array_append_new(arr, json_real(x[i]));
    json_t *body = json_pack("{s:[{s:s,s:[i,i,i,i],s:s,s:o}]}", "inputs", "name", "input", "shape", n, 1, 16, 16,
                             "datatype", "FP32", "data", arr);
    char *text = json_dumps(body, 0), path[160];
    json_decref(body);
    snprintf(path, sizeof path, "/v2/models/%s/infer", model);
    int st;
    json_t *o = call(b, "POST", path, text, NULL, &st, NULL);
    free(text);
    if (st != 200) fail_msg("%s: %d %s", path, st, json_dumps(o, 0));
    json_t *out = json_incref(json_object_get(json_array_get(json_object_get(o, "outputs"), 0), "data"));
    json_decref(o);
    return out;
}

static void test_job_to_served_model(void **state) {
    (void)state;
    /* The reference: the CLI on the same request, saved beside. */
    replace_options o = {.reg = reg, .weak = "weak", .strong = "strong", .cls = "v-stripes", .data_dir = data,
                         .tau = 0.8f, .calib = calibration_options_default(), .save = "cli-patched"};
    o.calib.epochs = 2;
    o.calib.seed = 7;
    replace_result rr;
    char err[1024];
    if (replace_cli_run(&o, &rr, err, sizeof err) != MODA_OK) fail_msg("%s", err);
    replace_result_free(&rr);

    api *b = open_api(1, 2, NULL);
    free(b->data_dirs);
    char dirs[400];
    snprintf(dirs, sizeof dirs, "idx=%s", data);
    b->data_dirs = strdup(dirs);
    char *id = submit(b, "/v1/replace",
                      "{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":\"v-stripes\",\"threshold\":0.8,"
                      "\"calibration\":{\"epochs\":2,\"seed\":7},\"name\":\"job-patched\"}",
                      NULL);
    json_t *done = wait_job(b, id);
    assert_string_equal(json_string_value(json_object_get(done, "state")), "succeeded");
    json_t *res = json_object_get(done, "result");
    assert_string_equal(json_string_value(json_object_get(res, "model")), "job-patched");
    assert_string_equal(json_string_value(json_object_get(json_object_get(done, "progress"), "phase")), "done");
    json_decref(done);

    /* Served at once, as a patched model, with answers equal to the CLI's. */
    int st;
    json_t *m = call(b, "GET", "/v1/models/job-patched", NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(m, "kind")), "patched");
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "patched"), "weak")), "weak");
    json_decref(m);
    api *c = open_api(1, 0, NULL); /* a second server sees both on disk */
    rng g;
    rng_seed(&g, 1, 1);
    float *x = tu_randn(&g, 5 * 16 * 16, 1.0f);
    json_t *p1 = v2_infer(b, "job-patched", x, 5), *p2 = v2_infer(c, "cli-patched", x, 5);
    assert_true(json_array_size(p1) == 20 && json_equal(p1, p2));
    json_decref(p1);
    json_decref(p2);

    /* Recalibration of the patched model: another job, another model. */
    free(id);
    id = submit(b, "/v1/calibrate", "{\"model\":\"job-patched\",\"calibration\":{\"epochs\":1,\"optimizer\":\"sgd\","
                                    "\"lr\":0.05}}", NULL);
    done = wait_job(b, id);
    assert_string_equal(json_string_value(json_object_get(done, "state")), "succeeded");
    json_decref(done);
    m = call(b, "GET", "/v1/models/job-patched-recalibrated", NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_object_get(m, "patched"), "calibration"), "optimizer")),
        "sgd");
    json_decref(m);
    m = call(b, "POST", "/v1/calibrate", "{\"model\":\"weak\"}", NULL, &st, NULL);
    assert_int_equal(st, 422);
    assert_string_equal(code_of(m), "not_patched");
    json_decref(m);
    m = call(b, "GET", "/v1/jobs", NULL, NULL, &st, NULL);
    assert_int_equal(json_array_size(json_object_get(m, "jobs")), 2);
    json_decref(m);
    free(id);
    free(x);
    api_free(c);
    api_free(b);
}

/* With one runner and no queue, a second job is refused while the first
 * runs; cancelling the running one writes nothing. The test holds the
 * api's save lock, so the first job cannot finish on its own. */
static void test_full_queue_and_cancel(void **state) {
    (void)state;
    api *b = open_api(1, 1, NULL);
    pthread_mutex_lock(&b->save_lock);
    const char *body = "{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":0,\"name\":\"never\"}";
    char *running = submit(b, "/v1/replace", body, NULL);
    char *queued = submit(b, "/v1/replace", "{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":1,\"name\":\"n2\"}", NULL);
    int st;
    json_t *o = call(b, "POST", "/v1/replace", "{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":2,\"name\":\"n3\"}",
                     NULL, &st, NULL);
    assert_int_equal(st, 429);
    assert_string_equal(code_of(o), "queue_full");
    json_decref(o);

    char path[96];
    snprintf(path, sizeof path, "/v1/jobs/%s", queued);
    o = call(b, "DELETE", path, NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "cancelled");
    json_decref(o);
    o = call(b, "DELETE", path, NULL, NULL, &st, NULL); /* already over */
    assert_int_equal(st, 409);
    assert_string_equal(code_of(o), "job_finished");
    json_decref(o);
    snprintf(path, sizeof path, "/v1/jobs/%s", running);
    o = call(b, "DELETE", path, NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    json_decref(o);
    pthread_mutex_unlock(&b->save_lock);
    o = wait_job(b, running);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "cancelled");
    assert_string_equal(code_of(o), "cancelled");
    json_decref(o);
    o = call(b, "GET", "/v1/models/never", NULL, NULL, &st, NULL);
    assert_int_equal(st, 404);
    json_decref(o);
    registry *r = NULL;
    char err[512];
    assert_int_equal(registry_open(reg, NULL, &r, err, sizeof err), MODA_OK);
    assert_int_equal(registry_find(r, "never"), -1);
    registry_close(r);
    o = call(b, "GET", "/v1/jobs/nope-1", NULL, NULL, &st, NULL);
    assert_int_equal(st, 404);
    assert_string_equal(code_of(o), "unknown_job");
    json_decref(o);
    free(running);
    free(queued);
    api_free(b);
}

static void test_admin_token(void **state) {
    (void)state;
    api *b = open_api(1, 0, "s3cret");
    int st;
    api_response r;
    json_t *o = call(b, "POST", "/v1/replace", "{}", NULL, &st, &r);
    assert_int_equal(st, 401);
    assert_string_equal(code_of(o), "unauthorized");
    assert_true(r.n_headers == 1 && !strcmp(r.headers[0].key, "WWW-Authenticate"));
    api_response_free(&r);
    json_decref(o);
    const char *routes[][2] = {{"POST", "/v1/calibrate"}, {"DELETE", "/v1/jobs/x-1"}, {"DELETE", "/v1/compose/weak~0~0.9"}};
    for (int i = 0; i < 3; i++) {
        o = call(b, routes[i][0], routes[i][1], "{}", "Bearer wrong", &st, NULL);
        assert_int_equal(st, 401);
        json_decref(o);
    }
    o = call(b, "POST", "/v1/replace", "{}", "Bearer s3cret", &st, NULL); /* past the check: a bad body */
    assert_int_equal(st, 400);
    json_decref(o);
    o = call(b, "GET", "/v1/jobs", NULL, NULL, &st, NULL); /* reading needs no token */
    assert_int_equal(st, 200);
    json_decref(o);
    api_free(b);
}

static void test_refusals(void **state) {
    (void)state;
    api *b = open_api(1, 1, NULL);
    const struct {
        const char *body;
        int status;
        const char *code;
    } cases[] = {
        {"{\"weak\":\"nope\",\"strong\":\"strong\",\"class\":0}", 404, "unknown_model"},
        {"{\"weak\":\"weak\",\"strong\":\"nope\",\"class\":0}", 404, "unknown_model"},
        {"{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":\"no-such\"}", 422, "class_not_in_parent"},
        {"{\"weak\":\"weak\",\"strong\":\"shifted\",\"class\":0}", 422, "incompatible_models"},
        {"{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":0,\"name\":\"weak\"}", 409, "model_exists"},
        {"{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":0,\"name\":\"../x\"}", 400, "invalid_name"},
        {"{\"weak\":\"weak\",\"strong\":\"strong\"}", 400, "bad_request"},
        {"{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":0,\"extra\":1}", 400, "bad_request"},
        {"{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":0,\"threshold\":2}", 400, "invalid_threshold"},
        {"{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":0,\"calibration\":{\"epochs\":0}}", 400,
         "invalid_calibration"},
        {"{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":0,\"calibration\":{\"optimizer\":\"x\"}}", 400,
         "invalid_calibration"},
        {"[1]", 400, "invalid_type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int st;
        json_t *o = call(b, "POST", "/v1/replace", cases[i].body, NULL, &st, NULL);
        if (st != cases[i].status || strcmp(code_of(o), cases[i].code))
            fail_msg("%s: %d %s, expected %d %s", cases[i].body, st, code_of(o), cases[i].status, cases[i].code);
        json_decref(o);
    }
    /* Data the server cannot read: 422 naming where it looked. */
    b->data_dirs = strdup("idx=/nonexistent/data");
    int st;
    json_t *o = call(b, "POST", "/v1/replace", "{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":0}", NULL, &st, NULL);
    assert_int_equal(st, 422);
    assert_string_equal(code_of(o), "data_unavailable");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(o, "error"), "message")),
                           "/nonexistent/data"));
    json_decref(o);
    /* A registry served from a URL cannot take a patched model. */
    b->store.remote = true;
    o = call(b, "POST", "/v1/replace", "{\"weak\":\"weak\",\"strong\":\"strong\",\"class\":0}", NULL, &st, NULL);
    assert_int_equal(st, 409);
    assert_string_equal(code_of(o), "read_only_registry");
    json_decref(o);
    b->store.remote = false;
    o = call(b, "PUT", "/v1/jobs/x", NULL, NULL, &st, NULL);
    assert_int_equal(st, 405);
    json_decref(o);
    api_free(b);
}

/* Rewrite index.json without the models named in drop (NULL-terminated). */
static void index_without(const char *const *drop) {
    char path[400];
    snprintf(path, sizeof path, "%s/index.json", reg);
    json_t *idx = json_load_file(path, 0, NULL);
    json_t *models = json_object_get(idx, "models");
    for (size_t i = json_array_size(models); i-- > 0;)
        for (int d = 0; drop[d]; d++)
            if (!strcmp(json_string_value(json_object_get(json_array_get(models, i), "name")), drop[d]))
                json_array_remove(models, i);
    assert_int_equal(json_dump_file(idx, path, 0), 0);
    json_decref(idx);
}

/* An api on the shared registry with one worker, for the reload tests. */
static api *open_reload_api(metrics *mx) {
    api_config cfg = {.registry = reg, .cache_bytes = 16u << 20, .workers = 1, .intra_threads = 1, .max_batch = 64,
                      .default_tau = 0.9f, .jobs_max = 1, .jobs_queue = 0, .metrics = mx};
    char err[1024] = "";
    api *b = NULL;
    if (api_new(&cfg, &b, err, sizeof err)) fail_msg("api_new: %s", err);
    return b;
}

/* Hot reload: a new model appears; a changed parent under patched models
 * is refused whole (the old registry keeps serving); once they are gone
 * the change takes effect, removed models disappear and composed models
 * of the replaced parent are dropped. Counted in the metrics. */
static void test_reload(void **state) {
    (void)state;
    metrics *mx = metrics_new();
    api *b = open_reload_api(mx);
    char err[1024] = "";
    int st;
    const char *compose = "{\"model\":\"weak\",\"classes\":[0,1]}";
    json_t *o = call(b, "POST", "/v1/compose", compose, NULL, &st, NULL);
    assert_int_equal(st, 200);
    json_decref(o);

    /* A new model. */
    registry *r = NULL;
    registry_model m;
    moda_backend *be = backend_cpu_new();
    assert_int_equal(registry_open(reg, NULL, &r, err, sizeof err), MODA_OK);
    assert_int_equal(registry_load_model(r, "weak", be, &m, err, sizeof err), MODA_OK);
    assert_int_equal(registry_write_model(reg, "added", m.g, &m.info, NULL, m.test_acc, &m.r, &m.stats, err,
                                          sizeof err), MODA_OK);
    o = call(b, "POST", "/v1/registry/reload", NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    assert_non_null(strstr(json_string_value(json_object_get(o, "summary")), "1 added, 0 replaced, 0 removed"));
    json_decref(o);
    o = call(b, "GET", "/v1/models/added", NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    json_decref(o);

    /* "weak" changes, but patched models were made from the old one. */
    assert_int_equal(registry_write_model(reg, "weak", m.g, &m.info, NULL, 0.125, &m.r, &m.stats, err, sizeof err),
                     MODA_OK);
    o = call(b, "POST", "/v1/registry/reload", NULL, NULL, &st, NULL);
    assert_int_equal(st, 422);
    assert_string_equal(code_of(o), "reload_failed");
    assert_non_null(strstr(json_string_value(json_object_get(json_object_get(o, "error"), "message")),
                           "weak parent \"weak\" has changed"));
    json_decref(o);
    o = call(b, "GET", "/v1/models/weak", NULL, NULL, &st, NULL);
    assert_true(json_real_value(json_object_get(o, "test_accuracy")) != 0.125); /* the old one serves on */
    json_decref(o);
    o = call(b, "GET", "/v1/models/job-patched", NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    json_decref(o);

    /* Without them, the change takes effect. */
    index_without((const char *const[]){"job-patched", "job-patched-recalibrated", "cli-patched", NULL});
    o = call(b, "POST", "/v1/registry/reload", NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    assert_non_null(strstr(json_string_value(json_object_get(o, "summary")),
                           "0 added, 1 replaced, 3 removed, 3 unchanged; 1 composed model(s) dropped"));
    json_decref(o);
    o = call(b, "GET", "/v1/models/weak", NULL, NULL, &st, NULL);
    assert_float_equal(json_real_value(json_object_get(o, "test_accuracy")), 0.125, 0);
    json_decref(o);
    o = call(b, "GET", "/v1/models/job-patched", NULL, NULL, &st, NULL);
    assert_int_equal(st, 404);
    json_decref(o);
    o = call(b, "GET", "/v1/models", NULL, NULL, &st, NULL);
    assert_int_equal(json_array_size(json_object_get(o, "models")), 4); /* strong, weak, shifted, added */
    json_decref(o);
    o = call(b, "POST", "/v1/compose", compose, NULL, &st, NULL);
    assert_false(json_is_true(json_object_get(o, "cached"))); /* composed again, from the new weak */
    json_decref(o);
    assert_float_equal(metrics_get(mx, METRIC_REGISTRY_RELOAD, NULL, NULL), 2, 0);
    assert_float_equal(metrics_get(mx, METRIC_REGISTRY_RELOAD_FAILURE, NULL, NULL), 1, 0);
    registry_model_free(&m);
    registry_close(r);
    backend_free(be);
    api_free(b);
    metrics_free(mx);
}

/* Logits of two fixed samples through the model `id` names. */
static void logits_of(api *b, const char *id, float out[2 * 4]) {
    api_entry *e = NULL;
    api_error ae = {0};
    if (api_entry_resolve(b, 0, id, &e, &ae)) fail_msg("%s: %s", id, ae.message);
    const api_entry_info *mi = api_entry_info_of(e);
    assert_true(mi->n_classes <= 4);
    size_t per = (size_t)mi->channels * mi->height * mi->width;
    float *x = malloc(2 * per * sizeof(float));
    for (size_t i = 0; i < 2 * per; i++) x[i] = sinf(0.37f * (float)i);
    assert_int_equal(api_infer_run(b, 0, e, x, 2, out, NULL, NULL, &ae), 0);
    api_entry_release(b, e);
    free(x);
}

static bool index_lists(api *b, const char *name) {
    int st;
    json_t *o = call(b, "POST", "/v2/repository/index", NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    bool found = false;
    size_t i;
    json_t *v;
    json_array_foreach(o, i, v) found = found || !strcmp(json_string_value(json_object_get(v, "name")), name);
    json_decref(o);
    return found;
}

/* A model loaded through the repository API stays loaded across a reload
 * that replaces its parent, composed again from the new parent: it
 * answers as the new parent's composition does, from its pin (no
 * composition on use). One whose parent leaves the registry is unloaded. */
static void test_reload_keeps_loaded_models(void **state) {
    (void)state;
    index_without((const char *const[]){"job-patched", "job-patched-recalibrated", "cli-patched", NULL});
    metrics *mx = metrics_new();
    api *b = open_reload_api(mx);
    char err[1024] = "";
    int st;
    const char *id = "weak~0-1~0.9";
    json_decref(call(b, "POST", "/v2/repository/models/weak~0-1~0.9/load", NULL, NULL, &st, NULL));
    assert_int_equal(st, 200);
    json_decref(call(b, "POST", "/v2/repository/models/shifted~1~0.9/load", NULL, NULL, &st, NULL));
    assert_int_equal(st, 200);
    float before[8], after[8], want[8];
    logits_of(b, id, before);

    /* "weak" becomes a copy of "strong"; "shifted" leaves the registry. */
    registry *r = NULL;
    registry_model m;
    moda_backend *be = backend_cpu_new();
    assert_int_equal(registry_open(reg, NULL, &r, err, sizeof err), MODA_OK);
    assert_int_equal(registry_load_model(r, "strong", be, &m, err, sizeof err), MODA_OK);
    assert_int_equal(registry_write_model(reg, "weak", m.g, &m.info, NULL, m.test_acc, &m.r, &m.stats, err,
                                          sizeof err), MODA_OK);
    index_without((const char *const[]){"shifted", NULL});
    json_t *o = call(b, "POST", "/v1/registry/reload", NULL, NULL, &st, NULL);
    assert_int_equal(st, 200);
    const char *summary = json_string_value(json_object_get(o, "summary"));
    if (!strstr(summary, "1 replaced, 1 removed") || !strstr(summary, "1 loaded model(s) composed again, 1 unloaded"))
        fail_msg("summary: %s", summary);
    json_decref(o);
    assert_true(index_lists(b, id));
    assert_false(index_lists(b, "shifted~1~0.9"));

    double misses = metrics_get(mx, METRIC_CACHE_MISS, id, NULL);
    assert_float_equal(misses, 2, 0); /* the load and the reload composed it */
    logits_of(b, id, after);
    assert_float_equal(metrics_get(mx, METRIC_CACHE_MISS, id, NULL), misses, 0);
    logits_of(b, "strong~0-1~0.9", want);
    bool changed = false;
    for (int i = 0; i < 4; i++) {
        assert_float_equal(after[i], want[i], 1e-6 * fmax(1.0, fabs(want[i])));
        changed = changed || fabsf(after[i] - before[i]) > 1e-4f;
    }
    assert_true(changed);
    registry_model_free(&m);
    registry_close(r);
    backend_free(be);
    api_free(b);
    metrics_free(mx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_job_to_served_model),
        cmocka_unit_test(test_full_queue_and_cancel),
        cmocka_unit_test(test_admin_token),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_reload_keeps_loaded_models),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
