/* Dynamic batching through the API: concurrent v2 requests of mixed sizes
 * on a full and two composed models, merged by the batcher, give each
 * sample the logits it gets unbatched, bit for bit (CPU backend); the
 * merged calls show in the batch-size histogram; a malformed request among
 * them fails alone; with a queue timeout shorter than a batch's delay,
 * the requests that time out get 503 queue_timeout and the rest their
 * answers; a request whose own deadline (X-Moda-Timeout-Ms) passes while
 * it waits in the batch queue gets 504 deadline_exceeded and the rest of
 * its batch its answers, while the batching timeout, when it comes first,
 * keeps its 503 queue_timeout. */
#include "test_util.h"

#include <jansson.h>
#include <pthread.h>

#include "api.h"
#include "batcher.h"
#include "metrics.h"

#define SIZE 32
#define PER (SIZE * SIZE)
#define N_REQ 9
#define BATCH_WORKERS 12

static const char *const MODELS[3] = {"fmnist-lenet5", "fmnist-lenet5~0-3-7~0.9", "fmnist-lenet5~2-5~0.5"};
static const int KS[3] = {10, 3, 2};

static api *open_api(int workers, int max_batch, int delay_us, int timeout_us, metrics *m) {
    api_config cfg = {.registry = MODA_MODELS_DIR, .cache_bytes = 64u << 20, .workers = workers,
                      .intra_threads = 1, .max_batch = 64, .default_tau = 0.9f, .metrics = m,
                      .batching = {.max_batch = max_batch, .max_delay_us = delay_us, .instances = 1,
                                   .timeout_us = timeout_us}};
    api *a = NULL;
    char err[512] = "";
    if (api_new(&cfg, &a, err, sizeof err)) fail_msg("api_new: %s", err);
    return a;
}

typedef struct job {
    api *a;
    int worker;
    const char *model;
    int n, k;
    uint64_t deadline_us; /* the request's own deadline; 0: none */
    char *body;           /* owned */
    api_response resp;
    float logits[3 * 10]; /* (n, k) */
} job;

/* A v2 request of n random samples asking for the logits. channels != 1
 * makes it malformed for these models. */
static char *request_body(int n, int channels, uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 5);
    float *x = tu_randn(&r, (size_t)n * channels * PER, 1.0f);
    json_t *data = json_array();
    for (int i = 0; i < n * channels * PER; i++) json_array_append_new(data, json_real(x[i]));
    json_t *root = json_pack("{s:[{s:s,s:[i,i,i,i],s:s,s:o}],s:[{s:s}]}", "inputs", "name", "input", "shape", n,
                             channels, SIZE, SIZE, "datatype", "FP32", "data", data, "outputs", "name", "logits");
    char *text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(root);
    free(x);
    return text;
}

static void *job_main(void *arg) {
    job *j = arg;
    char path[128];
    snprintf(path, sizeof path, "/v2/models/%s/infer", j->model);
    api_kv hdr = {"Content-Type", "application/json"};
    api_request req = {.method = "POST", .path = path, .headers = &hdr, .n_headers = 1, .body = j->body,
                       .body_len = strlen(j->body), .deadline_us = j->deadline_us};
    api_handle(j->a, j->worker, &req, &j->resp);
    return NULL;
}

/* The logits of a 200 response, as the floats they were. */
static void read_logits(job *j) {
    if (j->resp.status != 200) fail_msg("%s: %d %.*s", j->model, j->resp.status, (int)j->resp.body_len, j->resp.body);
    json_error_t je;
    json_t *root = json_loadb(j->resp.body, j->resp.body_len, 0, &je);
    assert_non_null(root);
    const json_t *data = json_object_get(json_array_get(json_object_get(root, "outputs"), 0), "data");
    assert_int_equal(json_array_size(data), (size_t)j->n * j->k);
    for (int i = 0; i < j->n * j->k; i++) j->logits[i] = (float)json_number_value(json_array_get(data, i));
    json_decref(root);
}

static void run_jobs(job *jobs, int n) {
    pthread_t th[N_REQ + 1];
    for (int i = 0; i < n; i++) assert_int_equal(pthread_create(&th[i], NULL, job_main, &jobs[i]), 0);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
}

static void test_batched_equals_unbatched(void **state) {
    (void)state;
    metrics *m = metrics_new();
    api *plain = open_api(1, 1, 0, 0, NULL);
    /* A long delay: every request below arrives before its batch closes
     * (the batch closes early once full). */
    api *batched = open_api(BATCH_WORKERS, 8, 300000, 0, m);
    job ref[N_REQ], got[N_REQ + 1];
    memset(ref, 0, sizeof ref);
    memset(got, 0, sizeof got);
    for (int i = 0; i < N_REQ; i++) {
        int mi = i % 3;
        char *body = request_body(1 + (i * 7) % 3, 1, 100 + (uint64_t)i);
        ref[i] = (job){.a = plain, .worker = 0, .model = MODELS[mi], .n = 1 + (i * 7) % 3, .k = KS[mi], .body = body};
        got[i] = ref[i];
        got[i].a = batched;
        got[i].worker = i;
        got[i].body = strdup(body);
        job_main(&ref[i]);
        read_logits(&ref[i]);
    }
    /* A malformed request (3 channels) among them fails alone. */
    got[N_REQ] = (job){.a = batched, .worker = N_REQ, .model = MODELS[0], .n = 1, .k = 10,
                       .body = request_body(1, 3, 7)};
    run_jobs(got, N_REQ + 1);
    for (int i = 0; i < N_REQ; i++) {
        read_logits(&got[i]);
        for (int s = 0; s < got[i].n * got[i].k; s++)
            if (fabsf(got[i].logits[s] - ref[i].logits[s]) > 1e-6f * fmaxf(1.0f, fabsf(ref[i].logits[s])))
                fail_msg("request %d (%s, %d samples) logit %d: batched %.9g, unbatched %.9g", i, got[i].model,
                         got[i].n, s, got[i].logits[s], ref[i].logits[s]);
    }
    assert_int_equal(got[N_REQ].resp.status, 400);
    assert_string_equal(got[N_REQ].resp.error_code, "invalid_shape");
    /* Merged calls happened: some batch held more than one request's samples. */
    double merged = 0, batches = 0;
    for (int mi = 0; mi < 3; mi++) {
        double all = metrics_histogram_count(m, HISTOGRAM_BATCH_SIZE, MODELS[mi], INFINITY);
        batches += all;
        merged += all - metrics_histogram_count(m, HISTOGRAM_BATCH_SIZE, MODELS[mi], 2);
        assert_true(metrics_histogram_count(m, HISTOGRAM_BATCH_QUEUE_SECONDS, MODELS[mi], INFINITY) == 3);
    }
    assert_true(batches < N_REQ);
    assert_true(merged >= 1);
    for (int i = 0; i <= N_REQ; i++) {
        api_response_free(&got[i].resp);
        free(got[i].body);
    }
    for (int i = 0; i < N_REQ; i++) {
        api_response_free(&ref[i].resp);
        free(ref[i].body);
    }
    api_free(batched);
    api_free(plain);
    metrics_free(m);
}

/* n one-sample requests of the first model (bodies seeded seed, seed + 1,
 * ...): answered by plain into ref, and copied into got for batched, one
 * worker each. */
static void single_sample_jobs(api *plain, api *batched, job *ref, job *got, int n, uint64_t seed) {
    memset(ref, 0, (size_t)n * sizeof *ref);
    for (int i = 0; i < n; i++) {
        ref[i] = (job){.a = plain, .model = MODELS[0], .n = 1, .k = 10, .body = request_body(1, 1, seed + (uint64_t)i)};
        job_main(&ref[i]);
        read_logits(&ref[i]);
        got[i] = ref[i];
        got[i].a = batched;
        got[i].worker = i;
        memset(&got[i].resp, 0, sizeof got[i].resp);
    }
}

static void test_queue_timeout_spares_the_rest(void **state) {
    (void)state;
    /* Batches wait up to 400 ms to fill; requests time out after 150 ms in
     * the queue. The first batch closes full (4 of the 6); the other two
     * wait for a fifth sample that never comes and time out. Whatever the
     * exact timing, every request answers correctly or gets queue_timeout,
     * and both happen. */
    api *plain = open_api(1, 1, 0, 0, NULL);
    api *batched = open_api(6, 4, 400000, 150000, NULL);
    job ref[6], got[6];
    single_sample_jobs(plain, batched, ref, got, 6, 300);
    run_jobs(got, 6);
    int answered = 0, timed_out = 0;
    for (int i = 0; i < 6; i++) {
        if (got[i].resp.status == 503) {
            assert_string_equal(got[i].resp.error_code, "queue_timeout");
            timed_out++;
            continue;
        }
        read_logits(&got[i]);
        for (int s = 0; s < 10; s++)
            assert_true(fabsf(got[i].logits[s] - ref[i].logits[s]) <= 1e-6f * fmaxf(1.0f, fabsf(ref[i].logits[s])));
        answered++;
    }
    assert_int_equal(answered + timed_out, 6);
    /* At most 4 fit the first batch; the rest wait past 150 ms. */
    assert_true(answered >= 1);
    assert_true(timed_out >= 1);
    for (int i = 0; i < 6; i++) {
        api_response_free(&got[i].resp);
        api_response_free(&ref[i].resp);
        free(ref[i].body);
    }
    api_free(batched);
    api_free(plain);
}

/* Triton's per-request timeout in the batch queue: three requests wait for
 * a batch of 8 that never fills, so it closes after its 600 ms delay; the
 * one whose deadline is 50 ms leaves at its deadline with 504 and the two
 * others get their answers from the batch. */
static void test_request_deadline_in_batch_queue(void **state) {
    (void)state;
    api *plain = open_api(1, 1, 0, 0, NULL);
    api *batched = open_api(3, 8, 600000, 0, NULL);
    job ref[3], got[3];
    single_sample_jobs(plain, batched, ref, got, 3, 500);
    got[1].deadline_us = batcher_now_us() + 50000;
    run_jobs(got, 3);
    assert_int_equal(got[1].resp.status, 504);
    assert_string_equal(got[1].resp.error_code, "deadline_exceeded");
    assert_non_null(strstr(got[1].resp.body, "X-Moda-Timeout-Ms"));
    for (int i = 0; i < 3; i += 2) {
        read_logits(&got[i]);
        for (int s = 0; s < 10; s++)
            assert_true(fabsf(got[i].logits[s] - ref[i].logits[s]) <= 1e-6f * fmaxf(1.0f, fabsf(ref[i].logits[s])));
    }
    for (int i = 0; i < 3; i++) {
        api_response_free(&got[i].resp);
        api_response_free(&ref[i].resp);
    }
    api_free(batched);

    /* The batching timeout (100 ms) before the request's deadline (60 s):
     * the queue's error. The request's deadline (30 ms) before it: 504. */
    batched = open_api(1, 8, 600000, 100000, NULL);
    got[0] = ref[0];
    got[0].a = batched;
    got[0].worker = 0;
    memset(&got[0].resp, 0, sizeof got[0].resp);
    got[0].deadline_us = batcher_now_us() + 60000000;
    job_main(&got[0]);
    assert_int_equal(got[0].resp.status, 503);
    assert_string_equal(got[0].resp.error_code, "queue_timeout");
    api_response_free(&got[0].resp);
    got[0].deadline_us = batcher_now_us() + 30000;
    job_main(&got[0]);
    assert_int_equal(got[0].resp.status, 504);
    assert_string_equal(got[0].resp.error_code, "deadline_exceeded");
    api_response_free(&got[0].resp);
    for (int i = 0; i < 3; i++) free(ref[i].body);
    api_free(batched);
    api_free(plain);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batched_equals_unbatched),
        cmocka_unit_test(test_queue_timeout_spares_the_rest),
        cmocka_unit_test(test_request_deadline_in_batch_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
