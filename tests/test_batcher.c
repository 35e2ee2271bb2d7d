/* The dynamic batcher (api/batcher.c) with a stand-in engine: concurrent
 * requests merge into one call and get their own results back; mixed
 * request sizes and keys; a request over max_batch runs alone; a failing
 * request inside a merged call fails alone; a request that times out in
 * the queue leaves without touching the others. */
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "batcher.h"

#define IN 3  /* floats per sample */
#define OUT 2

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The stand-in engine: out = (sum of the sample, key tag) per sample; a NaN
 * input fails the whole call, as a bad sample would fail a forward pass;
 * a sample of 1000 sleeps a while first (a slow call). */
typedef struct engine {
    atomic_int calls;
    atomic_int max_samples;
    atomic_int mixed_keys;  /* calls whose samples came from different keys */
    atomic_int running;     /* calls at once, to check the instance bound */
    atomic_int max_running;
} engine;

static engine eng;

typedef struct req_ctx {
    float tag; /* the key, as the samples' first value */
} req_ctx;

static int fake_run(void *ctx, int instance, const float *x, int n, float *out, api_error *err) {
    (void)ctx;
    assert_true(instance >= 0);
    int now = atomic_fetch_add(&eng.running, 1) + 1, was = atomic_load(&eng.max_running);
    while (now > was && !atomic_compare_exchange_weak(&eng.max_running, &was, now)) {
    }
    atomic_fetch_add(&eng.calls, 1);
    int m = atomic_load(&eng.max_samples);
    while (n > m && !atomic_compare_exchange_weak(&eng.max_samples, &m, n)) {
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const float *s = x + (size_t)i * IN;
        if (s[0] != x[0]) atomic_fetch_add(&eng.mixed_keys, 1);
        if (s[1] == 1000) sleep_ms(300);
        if (isnan(s[1])) rc = api_error_set(err, "invalid_input", "sample %d is not finite", i);
        out[(size_t)i * OUT] = s[0] + s[1] + s[2];
        out[(size_t)i * OUT + 1] = s[0];
    }
    atomic_fetch_sub(&eng.running, 1);
    return rc;
}

typedef struct observed {
    atomic_int calls, samples, failed;
} observed;

static observed obs;

static void fake_observe(void *octx, const char *key, void *ctx, int samples, int requests, bool ok) {
    (void)octx;
    (void)ctx;
    (void)requests;
    assert_non_null(key);
    atomic_fetch_add(&obs.calls, 1);
    atomic_fetch_add(&obs.samples, samples);
    if (!ok) atomic_fetch_add(&obs.failed, 1);
}

static void reset(void) {
    memset(&eng, 0, sizeof eng);
    memset(&obs, 0, sizeof obs);
}

/* One client request: n samples of key `tag`, values tag, seed + i, -i. */
typedef struct client {
    batcher *b;
    const char *key;
    float tag;
    int n, max_batch;
    int64_t delay_us;
    uint64_t timeout_us;
    float seed;
    int start_ms;          /* sleep before submitting */
    float x[64 * IN], out[64 * OUT];
    int rc;
    api_error err;
    batch_outcome outcome;
} client;

static void *client_main(void *arg) {
    client *c = arg;
    if (c->start_ms) sleep_ms(c->start_ms);
    for (int i = 0; i < c->n; i++) {
        c->x[i * IN] = c->tag;
        c->x[i * IN + 1] = c->seed == 1000 ? 1000 : c->seed + (float)i;
        c->x[i * IN + 2] = -(float)i;
    }
    batch_request r = {.key = c->key, .max_batch = c->max_batch, .max_delay_us = c->delay_us,
                       .deadline_us = c->timeout_us ? batcher_now_us() + c->timeout_us : 0, .x = c->x, .n = c->n,
                       .in_size = IN, .out_size = OUT, .out = c->out};
    c->rc = batcher_run(c->b, &r, &c->outcome, &c->err);
    return NULL;
}

static void run_clients(client *cs, int n) {
    pthread_t th[32];
    assert_true(n <= 32);
    for (int i = 0; i < n; i++) assert_int_equal(pthread_create(&th[i], NULL, client_main, &cs[i]), 0);
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
}

/* Each sample's output is its own: the sum of its inputs and its key. */
static void expect_own_results(const client *c) {
    if (c->rc) fail_msg("request %s/%g failed: %s %s", c->key, c->seed, c->err.code, c->err.message);
    for (int i = 0; i < c->n; i++) {
        assert_float_equal(c->out[i * OUT], c->x[i * IN] + c->x[i * IN + 1] + c->x[i * IN + 2], 0);
        assert_float_equal(c->out[i * OUT + 1], c->tag, 0);
    }
}

/* ---- tests ---------------------------------------------------------------- */

static void test_concurrent_requests_merge(void **state) {
    (void)state;
    reset();
    batcher *b = batcher_new(1, fake_run, fake_observe, NULL);
    assert_non_null(b);
    /* Sizes 1..6 add to 21 = max_batch: the collector waits (up to 5 s)
     * until all have arrived, then runs them as one call. */
    client cs[6];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < 6; i++)
        cs[i] = (client){.b = b, .key = "m", .tag = 7, .n = i + 1, .max_batch = 21, .delay_us = 5000000,
                         .seed = 100.0f * (float)i};
    run_clients(cs, 6);
    for (int i = 0; i < 6; i++) {
        expect_own_results(&cs[i]);
        assert_int_equal(cs[i].outcome.batch_samples, 21);
    }
    assert_int_equal(atomic_load(&eng.calls), 1);
    assert_int_equal(atomic_load(&eng.max_samples), 21);
    assert_int_equal(atomic_load(&obs.samples), 21);
    assert_int_equal(batcher_busy(b), 0);
    batcher_free(b);
}

static void test_mixed_keys_never_share_a_call(void **state) {
    (void)state;
    reset();
    batcher *b = batcher_new(2, fake_run, fake_observe, NULL);
    client cs[12];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < 12; i++) {
        bool odd = i % 2;
        cs[i] = (client){.b = b, .key = odd ? "model-a" : "model-b~1-2~0.9", .tag = odd ? 1 : 2, .n = 1 + i % 3,
                         .max_batch = 8, .delay_us = 20000, .seed = 10.0f * (float)i};
    }
    run_clients(cs, 12);
    for (int i = 0; i < 12; i++) expect_own_results(&cs[i]);
    assert_int_equal(atomic_load(&eng.mixed_keys), 0);
    assert_true(atomic_load(&eng.max_samples) <= 8);
    assert_true(atomic_load(&eng.calls) < 12); /* something merged */
    assert_true(atomic_load(&eng.max_running) <= 2);
    batcher_free(b);
}

static void test_request_over_max_runs_alone(void **state) {
    (void)state;
    reset();
    batcher *b = batcher_new(1, fake_run, NULL, NULL);
    client cs[3];
    memset(cs, 0, sizeof cs);
    cs[0] = (client){.b = b, .key = "m", .tag = 3, .n = 40, .max_batch = 4, .delay_us = 100000, .seed = 1};
    cs[1] = (client){.b = b, .key = "m", .tag = 3, .n = 2, .max_batch = 4, .delay_us = 100000, .seed = 2};
    cs[2] = (client){.b = b, .key = "m", .tag = 3, .n = 2, .max_batch = 4, .delay_us = 100000, .seed = 3};
    run_clients(cs, 3);
    for (int i = 0; i < 3; i++) expect_own_results(&cs[i]);
    assert_int_equal(cs[0].outcome.batch_samples, 40);
    assert_true(cs[1].outcome.batch_samples <= 4);
    assert_int_equal(atomic_load(&eng.max_samples), 40);
    batcher_free(b);
}

static void test_failure_stays_with_its_request(void **state) {
    (void)state;
    reset();
    batcher *b = batcher_new(1, fake_run, fake_observe, NULL);
    client cs[4];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < 4; i++)
        cs[i] = (client){.b = b, .key = "m", .tag = 5, .n = 2, .max_batch = 8, .delay_us = 5000000,
                         .seed = i == 2 ? NAN : 10.0f * (float)i};
    run_clients(cs, 4);
    /* One merged call of 8 failed; each request then ran alone. */
    assert_int_equal(atomic_load(&eng.calls), 5);
    assert_int_equal(atomic_load(&obs.failed), 2);
    for (int i = 0; i < 4; i++) {
        if (i == 2) {
            assert_int_equal(cs[i].rc, -1);
            assert_string_equal(cs[i].err.code, "invalid_input");
        } else {
            expect_own_results(&cs[i]);
        }
    }
    batcher_free(b);
}

static void test_timeout_leaves_the_others(void **state) {
    (void)state;
    reset();
    batcher *b = batcher_new(1, fake_run, NULL, NULL);
    client cs[4];
    memset(cs, 0, sizeof cs);
    /* A slow call holds the only instance for 300 ms; meanwhile a request
     * with a 50 ms timeout gives up, and two without one wait it out. */
    cs[0] = (client){.b = b, .key = "slow", .tag = 9, .n = 1, .max_batch = 1, .seed = 1000};
    cs[1] = (client){.b = b, .key = "m", .tag = 4, .n = 1, .max_batch = 8, .timeout_us = 50000, .seed = 1,
                     .start_ms = 50};
    cs[2] = (client){.b = b, .key = "m", .tag = 4, .n = 3, .max_batch = 8, .seed = 2, .start_ms = 50};
    cs[3] = (client){.b = b, .key = "other", .tag = 6, .n = 2, .max_batch = 8, .seed = 3, .start_ms = 60};
    run_clients(cs, 4);
    expect_own_results(&cs[0]);
    assert_int_equal(cs[1].rc, -1);
    assert_string_equal(cs[1].err.code, "queue_timeout");
    expect_own_results(&cs[2]);
    expect_own_results(&cs[3]);
    assert_true(cs[2].outcome.queue_us >= 100000); /* it did wait for the slow call */
    assert_int_equal(batcher_busy(b), 0);
    batcher_free(b);
}

static void test_bad_arguments(void **state) {
    (void)state;
    assert_null(batcher_new(0, fake_run, NULL, NULL));
    assert_null(batcher_new(1, NULL, NULL, NULL));
    batcher *b = batcher_new(1, fake_run, NULL, NULL);
    float x[IN] = {0}, out[OUT];
    api_error err = {0};
    batch_request r = {.key = "m", .max_batch = 4, .x = x, .n = 0, .in_size = IN, .out_size = OUT, .out = out};
    assert_int_equal(batcher_run(b, &r, NULL, &err), -1);
    assert_string_equal(err.code, "internal");
    batcher_free(b);
    batcher_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_requests_merge),
        cmocka_unit_test(test_mixed_keys_never_share_a_call),
        cmocka_unit_test(test_request_over_max_runs_alone),
        cmocka_unit_test(test_failure_stays_with_its_request),
        cmocka_unit_test(test_timeout_leaves_the_others),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
