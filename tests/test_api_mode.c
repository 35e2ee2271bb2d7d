/* Composition modes through the API, on a registry holding a small
 * ResNet18 (residual adds, so the per-layer mode makes mapped adds): the
 * same classes composed tied and per layer are two cache entries with two
 * ids, the per-layer one no larger; inference on the per-layer id equals
 * the engine's own per-layer composition, and GET /v1/models/{id} reports
 * the mode; /v1/infer with a model and classes composes in the mode it
 * names; ids round-trip with their mode; a bad mode is a 400; and a
 * model composed per layer and stored in the registry composes again per
 * layer only (tied: 422). */
#include "test_util.h"

#include <jansson.h>

#include "api.h"
#include "api_internal.h"
#include "compose.h"
#include "id.h"
#include "models.h"
#include "registry.h"
#include "synthetic_idx.h"

#define K 4
#define SIZE 16
#define IN_C 3
#define TAU 0.9f

static const int CLS[2] = {2, 0};
static char root[] = "/tmp/moda_api_mode_XXXXXX";
static moda_backend *be;
static registry_model parent; /* as the api loads it, for references */
static api *a;

/* ---- fixture -------------------------------------------------------------- */

/* A ResNet18 at width 1/8 with random rates, written as "res" into root. */
static void write_parent(void) {
    model_config cfg = {MODEL_RESNET18, 0.125f, IN_C, K, SIZE};
    moda_status s;
    graph *g = model_build(be, &cfg, &s);
    assert_non_null(g);
    assert_int_equal(model_init(g, &cfg, 7), MODA_OK);
    rng rg;
    rng_seed(&rg, 7, 3);
    for (int i = 0; i < g->n_params; i++) { /* BN statistics and biases off their defaults */
        graph_param *p = &g->params[i];
        if (p->ndim == 1) rng_fill_uniform(&rg, p->data, graph_param_numel(p), 0.5f, 1.5f);
    }
    model_info mi = {.model = cfg, .channels = IN_C, .pad = 0};
    snprintf(mi.dataset, sizeof mi.dataset, "idx");
    for (int c = 0; c < IN_C; c++) {
        mi.mean[c] = 0.5f;
        mi.std[c] = 0.25f;
    }
    const char *names[K] = {"h-stripes", "v-stripes", "fine", "coarse"};
    mi.class_names = calloc(K, sizeof(char *));
    for (int c = 0; c < K; c++) mi.class_names[c] = strdup(names[c]);
    rates r = {0};
    assert_int_equal(rates_alloc(&r, g, K), MODA_OK);
    for (int l = 0; l < r.n_layers; l++)
        for (int j = 0; j < K * r.units[l]; j++) r.rate[l][j] = (float)rng_below(&rg, 33) / 32.0f;
    for (int c = 0; c < K; c++) r.class_count[c] = 50 + c;
    module_stats st = {0};
    assert_int_equal(module_stats_compute(g, &r, TAU, &st), MODA_OK);
    char err[1024] = "";
    if (registry_write_model(root, "res", g, &mi, NULL, 0.8, &r, &st, err, sizeof err) != MODA_OK)
        fail_msg("registry_write_model: %s", err);
    module_stats_free(&st);
    rates_free(&r);
    model_info_free(&mi);
    graph_free(g);
}

static int setup(void **state) {
    (void)state;
    char err[1024] = "";
    if (!mkdtemp(root)) return -1;
    be = backend_cpu_new();
    write_parent();
    registry *reg = NULL;
    if (registry_open(root, NULL, &reg, err, sizeof err) != MODA_OK ||
        registry_load_model(reg, "res", be, &parent, err, sizeof err) != MODA_OK) {
        fprintf(stderr, "registry: %s\n", err);
        return -1;
    }
    registry_close(reg);
    api_config cfg = {.registry = root, .cache_bytes = 64u << 20, .workers = 1, .intra_threads = 1,
                      .max_batch = 8, .default_tau = TAU};
    if (api_new(&cfg, &a, err, sizeof err)) {
        fprintf(stderr, "api_new: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    api_free(a);
    registry_model_free(&parent);
    backend_free(be);
    return synth_remove_tree(root);
}

/* ---- requests ------------------------------------------------------------- */

static json_t *request(api *on, const char *method, const char *path, const char *body, api_response *r) {
    api_kv hdr[1] = {{"Content-Type", "application/json"}};
    api_request req = {.method = method, .path = path, .headers = hdr, .n_headers = body ? 1 : 0, .body = body,
                       .body_len = body ? strlen(body) : 0};
    api_handle(on, 0, &req, r);
    json_error_t je;
    json_t *root_json = json_loadb(r->body, r->body_len, 0, &je);
    if (!root_json) fail_msg("response is not JSON: %.*s", (int)r->body_len, r->body);
    return root_json;
}

static void expect_error(api *on, const char *method, const char *path, const char *body, int status,
                         const char *code, const char *in_message) {
    api_response r;
    json_t *got = request(on, method, path, body, &r);
    const char *c = NULL, *msg = NULL;
    if (r.status != status || json_unpack(got, "{s:{s:s,s:s}}", "error", "code", &c, "message", &msg) ||
        strcmp(c, code) || (in_message && !strstr(msg, in_message)))
        fail_msg("%s %s %s: got %d %.*s, want %d %s", method, path, body ? body : "", r.status, (int)r.body_len,
                 r.body, status, code);
    json_decref(got);
    api_response_free(&r);
}

/* POST /v1/compose of CLS in `mode` (NULL: no mode field); the answer. */
static json_t *compose(const char *mode, api_response *r) {
    char body[200];
    if (mode)
        snprintf(body, sizeof body, "{\"model\":\"res\",\"classes\":[%d,%d],\"mode\":\"%s\"}", CLS[0], CLS[1], mode);
    else
        snprintf(body, sizeof body, "{\"model\":\"res\",\"classes\":[%d,%d]}", CLS[0], CLS[1]);
    json_t *got = request(a, "POST", "/v1/compose", body, r);
    if (r->status != 200) fail_msg("compose %s: %d %.*s", mode ? mode : "-", r->status, (int)r->body_len, r->body);
    return got;
}

static float *inputs(int n, uint64_t seed) {
    rng q;
    rng_seed(&q, seed, 5);
    return tu_randn(&q, (size_t)n * IN_C * SIZE * SIZE, 1.0f);
}

/* Logits (n x 2) of the engine's own composition of CLS in mode. */
static float *reference_logits(compose_mode mode, const float *x, int n, size_t *params) {
    compose_plan p = {0};
    graph *c = NULL;
    assert_int_equal(compose_plan_make_mode(parent.g, &parent.r, CLS, 2, TAU, mode, &p), MODA_OK);
    assert_int_equal(compose_build(parent.g, &p, be, &c), MODA_OK);
    *params = compose_plan_params(parent.g, &p);
    assert_int_equal(graph_plan(c, n), MODA_OK);
    assert_int_equal(graph_forward(c, x, n, false), MODA_OK);
    float *z = tu_alloc((size_t)n * 2);
    memcpy(z, graph_output(c)->out.data, (size_t)n * 2 * sizeof(float));
    graph_free(c);
    compose_plan_free(&p);
    return z;
}

/* ---- tests ---------------------------------------------------------------- */

/* x's n samples as nested JSON, [n][C][H][W]. */
static json_t *nested_inputs(const float *x, int n) {
    json_t *nested = json_array();
    for (int i = 0; i < n; i++) {
        json_t *chans = json_array();
        for (int c = 0; c < IN_C; c++) {
            json_t *rows = json_array();
            for (int y = 0; y < SIZE; y++) {
                json_t *row = json_array();
                for (int xx = 0; xx < SIZE; xx++)
                    json_array_append_new(row, json_real(x[((size_t)(i * IN_C + c) * SIZE + y) * SIZE + xx]));
                json_array_append_new(rows, row);
            }
            json_array_append_new(chans, rows);
        }
        json_array_append_new(nested, chans);
    }
    return nested;
}

/* Both modes of the same classes: two ids, two entries, the per-layer one
 * no larger, each answering as the engine composes it. */
static void test_two_modes(void **state) {
    (void)state;
    api_response rt, rp, rd;
    json_t *tied = compose(NULL, &rt), *per = compose("per-layer", &rp);
    const char *tied_id = json_string_value(json_object_get(tied, "id"));
    const char *per_id = json_string_value(json_object_get(per, "id"));
    assert_string_equal(tied_id, "res~2-0~0.9");
    assert_string_equal(per_id, "res~2-0~0.9~per-layer");
    assert_string_equal(json_string_value(json_object_get(tied, "mode")), "tied");
    assert_string_equal(json_string_value(json_object_get(per, "mode")), "per-layer");
    assert_false(json_is_true(json_object_get(per, "cached"))); /* not the tied entry */
    json_int_t tied_params = json_integer_value(json_object_get(tied, "params"));
    json_int_t per_params = json_integer_value(json_object_get(per, "params"));
    assert_true(per_params > 0 && per_params <= tied_params);

    /* The params answered are the engine's count for each plan, and the
     * per-layer entry infers as the engine's per-layer composition. */
    const int n = 3;
    float *x = inputs(n, 11), got[3 * 2];
    size_t ref_tied_params, ref_per_params;
    float *zt = reference_logits(COMPOSE_TIED, x, n, &ref_tied_params);
    float *zp = reference_logits(COMPOSE_PER_LAYER, x, n, &ref_per_params);
    assert_int_equal((size_t)tied_params, ref_tied_params);
    assert_int_equal((size_t)per_params, ref_per_params);
    api_entry *e = NULL;
    api_error ae = {0};
    assert_int_equal(api_entry_resolve(a, 0, per_id, &e, &ae), 0);
    assert_int_equal(api_entry_info_of(e)->mode, COMPOSE_PER_LAYER);
    assert_int_equal(api_infer_run(a, 0, e, x, n, got, NULL, NULL, &ae), 0);
    assert_close(got, zp, (size_t)n * 2, 1e-5, 1e-5);
    api_entry_release(a, e);
    assert_int_equal(api_entry_resolve(a, 0, tied_id, &e, &ae), 0);
    assert_int_equal(api_entry_info_of(e)->mode, COMPOSE_TIED);
    assert_int_equal(api_infer_run(a, 0, e, x, n, got, NULL, NULL, &ae), 0);
    assert_close(got, zt, (size_t)n * 2, 1e-5, 1e-5);
    api_entry_release(a, e);

    /* POST /v1/infer by the per-layer id names it in the answer. */
    json_t *body = json_pack("{s:s,s:o}", "id", per_id, "inputs", nested_inputs(x, n));
    char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9));
    api_response ri;
    json_t *inf = request(a, "POST", "/v1/infer", text, &ri);
    assert_int_equal(ri.status, 200);
    assert_string_equal(json_string_value(json_object_get(inf, "id")), per_id);
    const json_t *outs = json_object_get(inf, "outputs");
    assert_int_equal(json_array_size(outs), n);
    for (int i = 0; i < n; i++) /* the larger logit wins */
        assert_int_equal(json_integer_value(json_object_get(json_array_get(outs, i), "index")),
                         zp[i * 2 + 1] > zp[i * 2] ? 1 : 0);
    json_decref(inf);
    api_response_free(&ri);
    free(text);
    json_decref(body);

    /* GET /v1/models/{id} describes a composed id with its mode. */
    api_response rg;
    json_t *desc = request(a, "GET", "/v1/models/res~2-0~0.9~per-layer", NULL, &rg);
    assert_int_equal(rg.status, 200);
    assert_string_equal(json_string_value(json_object_get(desc, "id")), per_id);
    assert_string_equal(json_string_value(json_object_get(desc, "mode")), "per-layer");
    assert_true(json_is_true(json_object_get(desc, "cached")));
    assert_int_equal(json_integer_value(json_object_get(desc, "params")), per_params);
    json_decref(desc);
    api_response_free(&rg);
    desc = request(a, "GET", "/v1/models/res~2-0~0.9", NULL, &rg);
    assert_int_equal(rg.status, 200);
    assert_string_equal(json_string_value(json_object_get(desc, "mode")), "tied");
    json_decref(desc);
    api_response_free(&rg);
    expect_error(a, "GET", "/v1/models/res~2-0~0.9~tied", NULL, 404, "unknown_model", NULL);
    expect_error(a, "GET", "/v1/models/nope~2-0~0.9~per-layer", NULL, 404, "unknown_model", NULL);
    expect_error(a, "GET", "/v1/models/res~2-9~0.9~per-layer", NULL, 404, "unknown_class", NULL);

    /* Deleting the per-layer id leaves the tied entry cached. */
    json_t *del = request(a, "DELETE", "/v1/compose/res~2-0~0.9~per-layer", NULL, &rd);
    assert_int_equal(rd.status, 200);
    json_decref(del);
    api_response_free(&rd);
    api_response r2;
    json_t *again = compose("tied", &r2);
    assert_true(json_is_true(json_object_get(again, "cached")));
    assert_string_equal(json_string_value(json_object_get(again, "id")), tied_id);
    json_decref(again);
    api_response_free(&r2);
    expect_error(a, "DELETE", "/v1/compose/res~2-0~0.9~per-layer", NULL, 404, "not_cached", NULL);

    free(zt);
    free(zp);
    free(x);
    json_decref(tied);
    json_decref(per);
    api_response_free(&rt);
    api_response_free(&rp);
}

static void test_bad_mode(void **state) {
    (void)state;
    expect_error(a, "POST", "/v1/compose", "{\"model\":\"res\",\"classes\":[1],\"mode\":\"layered\"}", 400,
                 "bad_request", "\"mode\" must be \"tied\" or \"per-layer\"");
    expect_error(a, "POST", "/v1/compose", "{\"model\":\"res\",\"classes\":[1],\"mode\":\"\"}", 400, "bad_request",
                 "\"mode\"");
    expect_error(a, "POST", "/v1/compose", "{\"model\":\"res\",\"classes\":[1],\"mode\":1}", 400, "invalid_type",
                 "\"mode\"");
    /* Ids with a suffix other than ~per-layer name no model. */
    expect_error(a, "DELETE", "/v1/compose/res~1~0.9~tied", NULL, 404, "unknown_model", NULL);
    expect_error(a, "DELETE", "/v1/compose/res~1~0.9~per-layer~", NULL, 404, "unknown_model", NULL);
    expect_error(a, "DELETE", "/v1/compose/res~1~0.9~Per-Layer", NULL, 404, "unknown_model", NULL);
    expect_error(a, "DELETE", "/v1/compose/res~1~~per-layer", NULL, 404, "unknown_model", NULL);
}


/* The probabilities a /v1/infer answer gives sample i (2 classes) match
 * the softmax of the reference logits z. */
static void expect_probabilities(const json_t *answer, int n, const float *z) {
    const json_t *outs = json_object_get(answer, "outputs");
    assert_int_equal(json_array_size(outs), n);
    for (int i = 0; i < n; i++) {
        const json_t *p = json_object_get(json_array_get(outs, i), "probabilities");
        double e0 = exp((double)z[2 * i]), e1 = exp((double)z[2 * i + 1]);
        assert_float_equal(json_number_value(json_array_get(p, 0)), e0 / (e0 + e1), 1e-5);
        assert_float_equal(json_number_value(json_array_get(p, 1)), e1 / (e0 + e1), 1e-5);
    }
}

/* POST /v1/infer with "model" and "classes" composes in the "mode" given
 * (JSON field, or query parameter for a binary body), tied without one,
 * with POST /v1/compose's validation; an id carries its own mode. */
static void test_infer_with_mode(void **state) {
    (void)state;
    const int n = 2;
    float *x = inputs(n, 23);
    size_t params;
    float *zt = reference_logits(COMPOSE_TIED, x, n, &params);
    float *zp = reference_logits(COMPOSE_PER_LAYER, x, n, &params);
    bool differ = false;
    for (int i = 0; i < 2 * n; i++) differ = differ || fabsf(zt[i] - zp[i]) > 1e-3f;
    assert_true(differ); /* so that the mode shows in the answers */
    const char *modes[3] = {"per-layer", "tied", NULL};
    const char *ids[3] = {"res~2-0~0.9~per-layer", "res~2-0~0.9", "res~2-0~0.9"};
    const float *want[3] = {zp, zt, zt};
    for (int m = 0; m < 3; m++) {
        json_t *body = json_pack("{s:s,s:[i,i],s:o}", "model", "res", "classes", CLS[0], CLS[1], "inputs",
                                 nested_inputs(x, n));
        if (modes[m]) json_object_set_new(body, "mode", json_string(modes[m]));
        char *text = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9));
        api_response r;
        json_t *got = request(a, "POST", "/v1/infer", text, &r);
        if (r.status != 200)
            fail_msg("infer mode %s: %d %.*s", modes[m] ? modes[m] : "-", r.status, (int)r.body_len, r.body);
        assert_string_equal(json_string_value(json_object_get(got, "id")), ids[m]);
        expect_probabilities(got, n, want[m]);
        json_decref(got);
        api_response_free(&r);
        free(text);
        json_decref(body);
    }

    /* A binary body takes the mode from the query. */
    char classes[16];
    snprintf(classes, sizeof classes, "%d,%d", CLS[0], CLS[1]);
    api_kv q[4] = {{"model", "res"}, {"classes", classes}, {"shape", "2,3,16,16"}, {"mode", "per-layer"}};
    api_kv hdr = {"Content-Type", "application/octet-stream"};
    api_request req = {.method = "POST", .path = "/v1/infer", .query = q, .n_query = 4, .headers = &hdr,
                       .n_headers = 1, .body = (const char *)x,
                       .body_len = (size_t)n * IN_C * SIZE * SIZE * sizeof(float)};
    api_response r;
    api_handle(a, 0, &req, &r);
    assert_int_equal(r.status, 200);
    json_t *got = json_loadb(r.body, r.body_len, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(got, "id")), "res~2-0~0.9~per-layer");
    expect_probabilities(got, n, zp);
    json_decref(got);
    api_response_free(&r);
    q[3].value = "layered";
    api_handle(a, 0, &req, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.error_code, "bad_request");
    api_response_free(&r);

    /* The errors of POST /v1/compose, and combinations that make no sense. */
    const char *in = "\"inputs\":[[[[0]]]]";
    char body[200];
    snprintf(body, sizeof body, "{\"model\":\"res\",\"classes\":[1],\"mode\":\"layered\",%s}", in);
    expect_error(a, "POST", "/v1/infer", body, 400, "bad_request", "\"mode\" must be \"tied\" or \"per-layer\"");
    snprintf(body, sizeof body, "{\"model\":\"res\",\"classes\":[1],\"mode\":1,%s}", in);
    expect_error(a, "POST", "/v1/infer", body, 400, "invalid_type", "\"mode\"");
    snprintf(body, sizeof body, "{\"model\":\"res\",\"mode\":\"per-layer\",%s}", in);
    expect_error(a, "POST", "/v1/infer", body, 422, "invalid_combination", "a mode needs classes");
    snprintf(body, sizeof body, "{\"id\":\"res~1~0.9\",\"mode\":\"per-layer\",%s}", in);
    expect_error(a, "POST", "/v1/infer", body, 422, "invalid_combination", "an id names its mode");
    free(zt);
    free(zp);
    free(x);
}

/* Ids parse into their parts, mode included, and format back to
 * themselves; tied ids keep the form they had before modes. */
static void test_id_round_trip(void **state) {
    (void)state;
    const char *ids[] = {"res~2-0~0.9~per-layer", "res~2-0~0.9", "a.b_c~12-3~1e-05~per-layer", "m~0~1"};
    const compose_mode modes[] = {COMPOSE_PER_LAYER, COMPOSE_TIED, COMPOSE_PER_LAYER, COMPOSE_TIED};
    for (int i = 0; i < 4; i++) {
        char model[REGISTRY_NAME_MAX + 1], back[API_ID_MAX];
        int *cls = NULL, n = 0;
        float tau = 0;
        compose_mode mode = COMPOSE_TIED;
        api_error e = {0};
        assert_int_equal(api_id_parse(ids[i], model, &cls, &n, &tau, &mode, &e), 0);
        assert_int_equal(mode, modes[i]);
        assert_true(api_id_format(back, sizeof back, model, cls, n, tau, mode));
        assert_string_equal(back, ids[i]);
        assert_false(api_id_format(back, strlen(ids[i]), model, cls, n, tau, mode)); /* no room for the NUL */
        free(cls);
    }
    char model[REGISTRY_NAME_MAX + 1];
    int *cls = NULL, n = 0;
    float tau = 0;
    compose_mode mode = COMPOSE_PER_LAYER;
    api_error e = {0};
    const char *bad[] = {"m~0~1~tied", "m~0~1~", "m~0~1~per-layer~per-layer", "m~0~x~per-layer", "m~0~1~perlayer"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(api_id_parse(bad[i], model, &cls, &n, &tau, &mode, &e), -1);
        assert_null(cls);
        assert_string_equal(e.code, "unknown_model");
    }
}

/* A per-layer ResNet composition stored in the registry is served whole,
 * says its mode, composes again per layer as the engine composes it, and
 * composing it tied (it holds mapped adds) is refused. */
static void test_compose_per_layer_registry_model(void **state) {
    (void)state;
    char err[1024] = "";
    compose_plan p = {0}, p2 = {0};
    graph *c = NULL, *c2 = NULL;
    rates r = {0};
    module_stats st = {0};
    model_info mi = {0};
    registry_origin origin = {0};
    assert_int_equal(compose_plan_make_mode(parent.g, &parent.r, CLS, 2, TAU, COMPOSE_PER_LAYER, &p), MODA_OK);
    assert_int_equal(compose_build(parent.g, &p, be, &c), MODA_OK);
    assert_int_equal(compose_rates(parent.g, &parent.r, &p, c, &r), MODA_OK);
    assert_int_equal(module_stats_compute_mode(c, &r, TAU, COMPOSE_PER_LAYER, &st), MODA_OK);
    assert_int_equal(registry_composed_info(&parent, CLS, 2, TAU, &mi, &origin), MODA_OK);
    origin.mode = COMPOSE_PER_LAYER;
    if (registry_write_composed(root, "res-pl", c, &mi, &origin, NULL, 0.8, &r, &st, err, sizeof err) != MODA_OK)
        fail_msg("registry_write_composed: %s", err);

    api *b = NULL;
    api_config cfg = {.registry = root, .cache_bytes = 1u << 20, .workers = 1, .intra_threads = 1, .max_batch = 4,
                      .default_tau = TAU};
    if (api_new(&cfg, &b, err, sizeof err)) fail_msg("api_new: %s", err);
    api_response rg;
    json_t *desc = request(b, "GET", "/v1/models/res-pl", NULL, &rg);
    assert_int_equal(rg.status, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(desc, "origin"), "mode")), "per-layer");
    json_decref(desc);
    api_response_free(&rg);
    desc = request(b, "GET", "/v1/models/res", NULL, &rg);
    assert_int_equal(rg.status, 200);
    assert_null(json_object_get(desc, "origin")); /* trained, not composed */
    json_decref(desc);
    api_response_free(&rg);

    api_entry *e = NULL;
    api_error ae = {0};
    float *x = inputs(2, 5), got[2 * 2];
    assert_int_equal(graph_plan(c, 2), MODA_OK);
    assert_int_equal(graph_forward(c, x, 2, false), MODA_OK);
    assert_int_equal(api_entry_resolve(b, 0, "res-pl", &e, &ae), 0);
    assert_int_equal(api_infer_run(b, 0, e, x, 2, got, NULL, NULL, &ae), 0);
    assert_close(got, graph_output(c)->out.data, 4, 1e-5, 1e-5);
    api_entry_release(b, e);

    /* Tied: refused, by a body's mode or by an id's. */
    expect_error(b, "POST", "/v1/compose", "{\"model\":\"res-pl\",\"classes\":[1]}", 422, "invalid_combination",
                 "composes again only per layer");
    assert_int_equal(api_entry_resolve(b, 0, "res-pl~1~0.9", &e, &ae), -1);
    assert_string_equal(ae.code, "invalid_combination");
    assert_null(e);

    /* Per layer: its class 1 (the parent's class 0) alone, as the engine
     * composes it. */
    const int sub[1] = {1};
    assert_int_equal(compose_plan_make_mode(c, &r, sub, 1, TAU, COMPOSE_PER_LAYER, &p2), MODA_OK);
    assert_int_equal(compose_build(c, &p2, be, &c2), MODA_OK);
    assert_int_equal(graph_plan(c2, 2), MODA_OK);
    assert_int_equal(graph_forward(c2, x, 2, false), MODA_OK);
    desc = request(b, "POST", "/v1/compose", "{\"model\":\"res-pl\",\"classes\":[1],\"mode\":\"per-layer\"}", &rg);
    assert_int_equal(rg.status, 200);
    assert_string_equal(json_string_value(json_object_get(desc, "id")), "res-pl~1~0.9~per-layer");
    assert_int_equal(json_integer_value(json_object_get(desc, "params")), compose_plan_params(c, &p2));
    json_decref(desc);
    api_response_free(&rg);
    assert_int_equal(api_entry_resolve(b, 0, "res-pl~1~0.9~per-layer", &e, &ae), 0);
    assert_int_equal(api_infer_run(b, 0, e, x, 2, got, NULL, NULL, &ae), 0);
    assert_close(got, graph_output(c2)->out.data, 2, 1e-5, 1e-5);
    api_entry_release(b, e);

    api_free(b);
    free(x);
    graph_free(c2);
    compose_plan_free(&p2);
    registry_origin_free(&origin);
    model_info_free(&mi);
    module_stats_free(&st);
    rates_free(&r);
    graph_free(c);
    compose_plan_free(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_modes),
        cmocka_unit_test(test_bad_mode),
        cmocka_unit_test(test_infer_with_mode),
        cmocka_unit_test(test_id_round_trip),
        cmocka_unit_test(test_compose_per_layer_registry_model),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
