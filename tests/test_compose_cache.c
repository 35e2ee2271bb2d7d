/* The composed-model cache through the API: hits and misses, eviction
 * under a byte budget, pinned entries outliving eviction and DELETE, an
 * entry larger than the budget, single flight under concurrent identical
 * requests, and 4 workers x 100 mixed requests answered correctly. */
#include "test_util.h"

#include <jansson.h>
#include <pthread.h>

#include "api.h"
#include "api_internal.h"
#include "composed_reference.h"
#include "metrics.h"

#define MODEL "fmnist-lenet5"
#define SIZE 32
#define PIXELS (SIZE * SIZE)

static registry *reg;
static registry_model parent;
static moda_backend *be;

static int setup(void **state) {
    (void)state;
    return reference_open(MODEL, &reg, &be, &parent);
}

static int teardown(void **state) {
    (void)state;
    reference_close(reg, be, &parent);
    return 0;
}

typedef struct fixture {
    api *a;
    metrics *m;
} fixture;

static fixture fixture_new(size_t cache_bytes, int workers) {
    fixture f = {.m = metrics_new()};
    char err[512] = "";
    api_config cfg = {.registry = MODA_MODELS_DIR, .cache_bytes = cache_bytes, .workers = workers,
                      .intra_threads = 1, .max_batch = 8, .default_tau = 0.9f, .metrics = f.m};
    if (api_new(&cfg, &f.a, err, sizeof err)) fail_msg("api_new: %s", err);
    return f;
}

static void fixture_free(fixture *f) {
    api_free(f->a);
    metrics_free(f->m);
}

/* One request; the parsed body in *out (caller decrefs), status returned. */
static int request(api *a, int worker, const char *method, const char *path, const char *ctype, const void *body,
                   size_t len, const api_kv *query, int nq, json_t **out, api_response *r) {
    api_kv hdr[1] = {{"Content-Type", (char *)ctype}};
    api_request req = {.method = method, .path = path, .query = query, .n_query = nq, .headers = hdr,
                       .n_headers = ctype ? 1 : 0, .body = body, .body_len = len};
    api_handle(a, worker, &req, r);
    *out = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    return r->status;
}

/* POST /v1/compose; returns "cached" (fails on any error). */
static bool compose(fixture *f, int worker, const char *classes_json, const char *tau, char id_out[API_ID_MAX]) {
    char body[256];
    snprintf(body, sizeof body, "{\"model\":\"%s\",\"classes\":%s%s%s}", MODEL, classes_json, tau ? ",\"threshold\":" : "",
             tau ? tau : "");
    api_response r;
    json_t *root;
    int status = request(f->a, worker, "POST", "/v1/compose", "application/json", body, strlen(body), NULL, 0, &root, &r);
    if (status != 200) fail_msg("compose %s: %d %.*s", body, status, (int)r.body_len, r.body);
    bool cached = json_is_true(json_object_get(root, "cached"));
    if (id_out) snprintf(id_out, API_ID_MAX, "%s", json_string_value(json_object_get(root, "id")));
    json_decref(root);
    api_response_free(&r);
    return cached;
}

static int delete_id(fixture *f, const char *id) {
    char path[256];
    snprintf(path, sizeof path, "/v1/compose/%s", id);
    api_response r;
    json_t *root;
    int status = request(f->a, 0, "DELETE", path, NULL, NULL, 0, NULL, 0, &root, &r);
    if (status == 200) assert_true(json_is_true(json_object_get(root, "deleted")));
    json_decref(root);
    api_response_free(&r);
    return status;
}

/* Bytes the cache counts for a fresh composition: its parameters. */
static size_t composed_bytes(const int *classes, int n, float tau) {
    compose_plan p = {0};
    graph *c = NULL;
    assert_int_equal(compose_plan_make(parent.g, &parent.r, classes, n, tau, &p), MODA_OK);
    assert_int_equal(compose_build(parent.g, &p, be, &c), MODA_OK);
    size_t bytes = graph_param_bytes(c);
    graph_free(c);
    compose_plan_free(&p);
    return bytes;
}

static double metric(fixture *f, metric_id id, const char *model) { return metrics_get(f->m, id, model, NULL); }

/* ---- tests ---------------------------------------------------------------- */

static const int A_CLS[3] = {0, 3, 7}, B_CLS[2] = {1, 8};
#define A_JSON "[0,3,7]"
#define B_JSON "[\"Trouser\",\"Bag\"]"
#define A_ID MODEL "~0-3-7~0.9"
#define B_ID MODEL "~1-8~0.9"

static void test_hits_and_misses(void **state) {
    (void)state;
    fixture f = fixture_new(64u << 20, 1);
    assert_true(metric(&f, METRIC_CACHE_BYTES_LIMIT, NULL) == (double)(64u << 20));
    char id[API_ID_MAX];
    assert_false(compose(&f, 0, A_JSON, NULL, id));
    assert_string_equal(id, A_ID);
    assert_true(compose(&f, 0, A_JSON, "0.9", NULL));
    assert_true(compose(&f, 0, "[\"T-shirt/top\",\"Dress\",\"Sneaker\"]", NULL, NULL));
    assert_true(metric(&f, METRIC_CACHE_MISS, A_ID) == 1);
    assert_true(metric(&f, METRIC_CACHE_HIT, A_ID) == 2);
    assert_true(metric(&f, METRIC_COMPOSE_COUNT, MODEL) == 1);
    assert_true(metric(&f, METRIC_COMPOSE_DURATION_US, MODEL) > 0);
    assert_true(metric(&f, METRIC_CACHE_BYTES_USED, NULL) == (double)composed_bytes(A_CLS, 3, 0.9f));
    /* Another order is another model. */
    assert_false(compose(&f, 0, "[7,3,0]", NULL, id));
    assert_string_equal(id, MODEL "~7-3-0~0.9");
    assert_true(metric(&f, METRIC_COMPOSE_COUNT, MODEL) == 2);
    /* Inference by id hits the cache and adds the handle's activations. */
    float x[PIXELS] = {0};
    api_kv q[2] = {{"id", A_ID}, {"shape", "1,1,32,32"}};
    api_response r;
    json_t *root;
    assert_int_equal(request(f.a, 0, "POST", "/v1/infer", "application/octet-stream", x, sizeof x, q, 2, &root, &r), 200);
    json_decref(root);
    api_response_free(&r);
    assert_true(metric(&f, METRIC_CACHE_HIT, A_ID) == 3);
    assert_true(metric(&f, METRIC_INFERENCE_COUNT, A_ID) == 1);
    assert_true(metric(&f, METRIC_EXEC_COUNT, A_ID) == 1);
    assert_true(metric(&f, METRIC_CACHE_BYTES_USED, NULL) >
                (double)(composed_bytes(A_CLS, 3, 0.9f) + composed_bytes((int[]){7, 3, 0}, 3, 0.9f)));
    fixture_free(&f);
}

/* A budget that holds either entry but not both. */
static size_t budget_for_one(void) {
    size_t a = composed_bytes(A_CLS, 3, 0.9f), b = composed_bytes(B_CLS, 2, 0.9f);
    size_t big = a > b ? a : b, small = a > b ? b : a;
    return big + small / 2;
}

static void test_eviction_by_bytes(void **state) {
    (void)state;
    fixture f = fixture_new(budget_for_one(), 1);
    assert_false(compose(&f, 0, A_JSON, NULL, NULL));
    assert_false(compose(&f, 0, B_JSON, NULL, NULL));
    assert_true(metric(&f, METRIC_CACHE_EVICTION, A_ID) == 1);
    assert_true(metric(&f, METRIC_CACHE_EVICTION, B_ID) == 0);
    assert_true(metric(&f, METRIC_CACHE_BYTES_USED, NULL) == (double)composed_bytes(B_CLS, 2, 0.9f));
    assert_true(compose(&f, 0, B_JSON, NULL, NULL)); /* B stayed */
    assert_false(compose(&f, 0, A_JSON, NULL, NULL)); /* A is composed again, B goes */
    assert_true(metric(&f, METRIC_CACHE_EVICTION, B_ID) == 1);
    assert_true(metric(&f, METRIC_COMPOSE_COUNT, MODEL) == 3);
    fixture_free(&f);
}

static void test_pinned_entry_survives(void **state) {
    (void)state;
    fixture f = fixture_new(budget_for_one(), 1);
    api_entry *pa = NULL;
    api_error err = {0};
    assert_int_equal(api_entry_resolve(f.a, 0, A_ID, &pa, &err), 0);
    /* B needs the room; A is in use, so it stays and B goes on release. */
    assert_false(compose(&f, 0, B_JSON, NULL, NULL));
    assert_true(metric(&f, METRIC_CACHE_EVICTION, A_ID) == 0);
    assert_true(metric(&f, METRIC_CACHE_EVICTION, B_ID) == 1);
    /* A still answers, exactly as the engine does. */
    rng rg;
    rng_seed(&rg, 9, 1);
    float *x = tu_randn(&rg, 2 * PIXELS, 1.0f), logits[2 * 3];
    assert_int_equal(api_infer_run(f.a, 0, pa, x, 2, logits, NULL, api_metrics(f.a), &err), 0);
    float want[2 * 3];
    free(reference_probs_of(&parent, be, A_CLS, 3, 0.9f, x, 2, want));
    assert_close(logits, want, 6, 1e-5, 1e-5);
    /* A lookup of the pinned id is a hit, not a second composition. */
    assert_true(compose(&f, 0, A_JSON, NULL, NULL));
    assert_true(metric(&f, METRIC_CACHE_EVICTION, A_ID) == 0);
    /* Its handle's activations put it over the budget: it goes once released. */
    api_entry_release(f.a, pa);
    assert_true(metric(&f, METRIC_CACHE_EVICTION, A_ID) == 1);
    assert_true(metric(&f, METRIC_CACHE_BYTES_USED, NULL) == 0);
    free(x);
    fixture_free(&f);
}

/* An entry larger than the whole budget serves the request that composed
 * it, then is dropped. */
static void test_entry_larger_than_budget(void **state) {
    (void)state;
    fixture f = fixture_new(1, 1);
    assert_false(compose(&f, 0, A_JSON, NULL, NULL));
    assert_true(metric(&f, METRIC_CACHE_EVICTION, A_ID) == 1);
    assert_true(metric(&f, METRIC_CACHE_BYTES_USED, NULL) == 0);
    float x[PIXELS] = {0};
    api_kv q[3] = {{"model", MODEL}, {"classes", "0,3,7"}, {"shape", "1,1,32,32"}};
    api_response r;
    json_t *root;
    assert_int_equal(request(f.a, 0, "POST", "/v1/infer", "application/octet-stream", x, sizeof x, q, 3, &root, &r), 200);
    assert_int_equal(json_array_size(json_object_get(root, "outputs")), 1);
    json_decref(root);
    api_response_free(&r);
    assert_true(metric(&f, METRIC_COMPOSE_COUNT, MODEL) == 2);
    assert_true(metric(&f, METRIC_CACHE_EVICTION, A_ID) == 2);
    fixture_free(&f);
}

static void test_delete(void **state) {
    (void)state;
    fixture f = fixture_new(64u << 20, 1);
    assert_false(compose(&f, 0, A_JSON, NULL, NULL));
    assert_int_equal(delete_id(&f, A_ID), 200);
    assert_true(metric(&f, METRIC_CACHE_BYTES_USED, NULL) == 0);
    assert_int_equal(delete_id(&f, A_ID), 404);
    assert_false(compose(&f, 0, A_JSON, NULL, NULL));
    /* "0.90" names the same model as "0.9". */
    assert_int_equal(delete_id(&f, MODEL "~0-3-7~0.90"), 200);

    /* Deleted while pinned: it keeps serving its holder; new requests get
     * a fresh composition; the old one goes on its last release. */
    api_entry *pa = NULL;
    api_error err = {0};
    assert_int_equal(api_entry_resolve(f.a, 0, A_ID, &pa, &err), 0);
    size_t one = composed_bytes(A_CLS, 3, 0.9f);
    assert_int_equal(delete_id(&f, A_ID), 200);
    assert_int_equal(delete_id(&f, A_ID), 404);
    assert_true(metric(&f, METRIC_CACHE_BYTES_USED, NULL) == (double)one);
    float x[PIXELS] = {0}, logits[3];
    assert_int_equal(api_infer_run(f.a, 0, pa, x, 1, logits, NULL, api_metrics(f.a), &err), 0);
    assert_false(compose(&f, 0, A_JSON, NULL, NULL));
    api_entry_release(f.a, pa);
    assert_true(metric(&f, METRIC_CACHE_BYTES_USED, NULL) == (double)one);
    assert_true(compose(&f, 0, A_JSON, NULL, NULL));
    fixture_free(&f);
}

/* ---- single flight -------------------------------------------------------- */

#define FLIGHT 8

typedef struct flight {
    fixture *f;
    pthread_barrier_t *start;
    int worker, status;
    bool cached;
    char id[API_ID_MAX];
} flight;

static void *flight_run(void *arg) {
    flight *t = arg;
    const char *body = "{\"model\":\"" MODEL "\",\"classes\":[2,4,6,9],\"threshold\":0.75}";
    api_response r;
    json_t *root;
    pthread_barrier_wait(t->start);
    t->status = request(t->f->a, t->worker, "POST", "/v1/compose", "application/json", body, strlen(body), NULL, 0,
                        &root, &r);
    t->cached = json_is_true(json_object_get(root, "cached"));
    snprintf(t->id, sizeof t->id, "%s", json_string_value(json_object_get(root, "id")));
    json_decref(root);
    api_response_free(&r);
    return NULL;
}

static void test_single_flight(void **state) {
    (void)state;
    fixture f = fixture_new(64u << 20, FLIGHT);
    double before = metric(&f, METRIC_COMPOSE_COUNT, MODEL);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, FLIGHT);
    flight t[FLIGHT];
    pthread_t th[FLIGHT];
    for (int i = 0; i < FLIGHT; i++) {
        t[i] = (flight){.f = &f, .start = &start, .worker = i};
        assert_int_equal(pthread_create(&th[i], NULL, flight_run, &t[i]), 0);
    }
    int fresh = 0;
    for (int i = 0; i < FLIGHT; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].status, 200);
        assert_string_equal(t[i].id, MODEL "~2-4-6-9~0.75");
        fresh += !t[i].cached;
    }
    pthread_barrier_destroy(&start);
    assert_int_equal(fresh, 1);
    assert_true(metric(&f, METRIC_COMPOSE_COUNT, MODEL) == before + 1);
    assert_true(metric(&f, METRIC_CACHE_MISS, MODEL "~2-4-6-9~0.75") == 1);
    assert_true(metric(&f, METRIC_CACHE_HIT, MODEL "~2-4-6-9~0.75") == FLIGHT - 1);
    fixture_free(&f);
}

/* ---- mixed concurrent load ------------------------------------------------ */

#define THREADS 4
#define PER_THREAD 100
#define N_KEYS 6
#define SAMPLES 2

typedef struct key {
    const char *json;   /* classes as a JSON array */
    const char *csv;    /* the same for a query string */
    const char *tau;
    int classes[10];
    int n;
    char id[API_ID_MAX];
    float probs[SAMPLES * 10]; /* the engine's answer for the shared inputs */
} key;

static key keys[N_KEYS] = {
    {"[0,3,7]", "0,3,7", "0.9", {0, 3, 7}, 3, MODEL "~0-3-7~0.9", {0}},
    {"[\"Trouser\",\"Bag\"]", "Trouser,Bag", "0.9", {1, 8}, 2, MODEL "~1-8~0.9", {0}},
    {"[5,7,9]", "5,7,9", "0.5", {5, 7, 9}, 3, MODEL "~5-7-9~0.5", {0}},
    {"[8]", "8", "0.9", {8}, 1, MODEL "~8~0.9", {0}},
    {"[9,8,7,6,5,4,3,2,1,0]", "9,8,7,6,5,4,3,2,1,0", "0.9", {9, 8, 7, 6, 5, 4, 3, 2, 1, 0}, 10,
     MODEL "~9-8-7-6-5-4-3-2-1-0~0.9", {0}},
    {"[2,4,6]", "2,4,6", "0", {2, 4, 6}, 3, MODEL "~2-4-6~0", {0}},
};

static float shared_x[SAMPLES * PIXELS];
static char *shared_json; /* shared_x as a flat JSON array */

typedef struct loader {
    fixture *f;
    int worker, failures, infers;
    char first[512];
} loader;

static void load_fail(loader *l, const char *fmt, ...) {
    if (!l->failures++) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->first, sizeof l->first, fmt, ap);
        va_end(ap);
    }
}

static void check_infer(loader *l, const key *k, const json_t *root) {
    const json_t *outs = json_object_get(root, "outputs");
    if (json_array_size(outs) != SAMPLES || strcmp(json_string_value(json_object_get(root, "id")), k->id)) {
        load_fail(l, "%s: wrong outputs or id", k->id);
        return;
    }
    for (int i = 0; i < SAMPLES; i++) {
        const json_t *p = json_object_get(json_array_get(outs, i), "probabilities");
        for (int j = 0; j < k->n; j++)
            if (fabs(json_number_value(json_array_get(p, j)) - k->probs[i * k->n + j]) > 1e-5) {
                load_fail(l, "%s: sample %d class %d differs from the engine", k->id, i, j);
                return;
            }
    }
    l->infers++;
}

static void *loader_run(void *arg) {
    loader *l = arg;
    char body[64 * 1024], path[256];
    for (int i = 0; i < PER_THREAD; i++) {
        const key *k = &keys[(l->worker * 7 + i * 5) % N_KEYS];
        api_response r;
        json_t *root = NULL;
        int status = 0, kind = (i + l->worker) % 5;
        if (kind == 0) {
            snprintf(body, sizeof body, "{\"model\":\"%s\",\"classes\":%s,\"threshold\":%s}", MODEL, k->json, k->tau);
            status = request(l->f->a, l->worker, "POST", "/v1/compose", "application/json", body, strlen(body), NULL, 0,
                             &root, &r);
            if (status != 200 || strcmp(json_string_value(json_object_get(root, "id")), k->id))
                load_fail(l, "compose %s: %d", k->id, status);
        } else if (kind == 1) {
            snprintf(body, sizeof body, "{\"id\":\"%s\",\"shape\":[%d,1,32,32],\"inputs\":%s}", k->id, SAMPLES,
                     shared_json);
            status = request(l->f->a, l->worker, "POST", "/v1/infer", "application/json", body, strlen(body), NULL, 0,
                             &root, &r);
            if (status == 200) check_infer(l, k, root);
            else load_fail(l, "infer json %s: %d", k->id, status);
        } else if (kind == 2) {
            api_kv q[4] = {{"model", MODEL}, {"classes", (char *)k->csv}, {"threshold", (char *)k->tau},
                           {"shape", "2,1,32,32"}};
            status = request(l->f->a, l->worker, "POST", "/v1/infer", "application/octet-stream", shared_x,
                             sizeof shared_x, q, 4, &root, &r);
            if (status == 200) check_infer(l, k, root);
            else load_fail(l, "infer binary %s: %d", k->id, status);
        } else if (kind == 3) {
            snprintf(path, sizeof path, "/v1/compose/%s", k->id);
            status = request(l->f->a, l->worker, "DELETE", path, NULL, NULL, 0, NULL, 0, &root, &r);
            if (status != 200 && status != 404) load_fail(l, "delete %s: %d", k->id, status);
        } else {
            status = request(l->f->a, l->worker, "GET", "/v1/models", NULL, NULL, 0, NULL, 0, &root, &r);
            if (status != 200 || json_array_size(json_object_get(root, "models")) != 1) load_fail(l, "models: %d", status);
        }
        json_decref(root);
        api_response_free(&r);
    }
    return NULL;
}

static void test_concurrent_mixed(void **state) {
    (void)state;
    rng rg;
    rng_seed(&rg, 21, 3);
    rng_fill_normal(&rg, shared_x, SAMPLES * PIXELS, 0.0f, 1.0f);
    json_t *flat = json_array();
    for (int i = 0; i < SAMPLES * PIXELS; i++) json_array_append_new(flat, json_real(shared_x[i]));
    shared_json = json_dumps(flat, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(flat);
    for (int k = 0; k < N_KEYS; k++) {
        float *probs = reference_probs_of(&parent, be, keys[k].classes, keys[k].n, strtof(keys[k].tau, NULL), shared_x,
                                          SAMPLES, NULL);
        memcpy(keys[k].probs, probs, (size_t)SAMPLES * keys[k].n * sizeof(float));
        free(probs);
    }
    /* Room for a few entries with their handles: evictions happen too. */
    fixture f = fixture_new(256u << 10, THREADS);
    loader l[THREADS];
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++) {
        l[t] = (loader){.f = &f, .worker = t};
        assert_int_equal(pthread_create(&th[t], NULL, loader_run, &l[t]), 0);
    }
    int infers = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        if (l[t].failures) fail_msg("worker %d: %d failures, first: %s", t, l[t].failures, l[t].first);
        infers += l[t].infers;
    }
    double samples = 0, evictions = 0;
    for (int k = 0; k < N_KEYS; k++) {
        samples += metric(&f, METRIC_INFERENCE_COUNT, keys[k].id);
        evictions += metric(&f, METRIC_CACHE_EVICTION, keys[k].id);
    }
    assert_true(infers > 0);
    assert_true(evictions > 0); /* the budget was exercised under load */
    assert_true(samples == (double)infers * SAMPLES);
    assert_true(metric(&f, METRIC_CACHE_BYTES_USED, NULL) <= (double)(2u << 20));
    free(shared_json);
    fixture_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hits_and_misses),
        cmocka_unit_test(test_eviction_by_bytes),
        cmocka_unit_test(test_pinned_entry_survives),
        cmocka_unit_test(test_entry_larger_than_budget),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_concurrent_mixed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
