/* The API serving from the GPU: the bundled registry loaded on the CUDA
 * backend, its full and composed models answering binary inference
 * requests on several workers, checked against the CPU engine's output for
 * the same models. A small cache budget makes composed models come and go,
 * so freed device memory is reused while others serve. Needs a GPU; exits
 * 77 (skipped) without one. */
#include "test_util.h"

#include <jansson.h>

#include "api.h"
#include "composed_reference.h"

#define MODEL "fmnist-lenet5"
#define K 10
#define SIZE 32
#define WORKERS 2

static api *a;
static registry *reg;
static registry_model parent; /* on the CPU: the reference */
static moda_backend *cpu;

static int setup(void **state) {
    (void)state;
    char err[512] = "";
    /* 256 KiB holds about one composed LeNet5 with its handles: most
     * requests below evict the previous model. */
    api_config cfg = {.registry = MODA_MODELS_DIR, .cache_bytes = 256u << 10, .workers = WORKERS,
                      .intra_threads = 1, .max_batch = 256, .default_tau = 0.9f, .device = "cuda"};
    if (api_new(&cfg, &a, err, sizeof err)) {
        fprintf(stderr, "api_new: %s\n", err);
        return -1;
    }
    return reference_open(MODEL, &reg, &cpu, &parent);
}

static int teardown(void **state) {
    (void)state;
    api_free(a);
    reference_close(reg, cpu, &parent);
    return 0;
}

/* POST /v1/infer with n float32 samples for classes (n_cls 0: the full
 * model) on `worker`; the probabilities must be the CPU engine's. */
static void infer_and_check(int worker, const int *classes, int n_cls, int n, uint64_t seed) {
    rng r;
    rng_seed(&r, seed, 5);
    float *x = tu_randn(&r, (size_t)n * SIZE * SIZE, 1.0f);
    float *want = reference_probs_of(&parent, cpu, classes, n_cls, 0.9f, x, n, NULL);
    char shape[32], cls[64] = "";
    snprintf(shape, sizeof shape, "%d,1,%d,%d", n, SIZE, SIZE);
    for (int j = 0, len = 0; j < n_cls; j++) len += snprintf(cls + len, sizeof cls - (size_t)len, j ? ",%d" : "%d", classes[j]);
    api_kv query[3] = {{"model", MODEL}, {"shape", shape}, {"classes", cls}};
    api_kv hdr[1] = {{"Content-Type", "application/octet-stream"}};
    api_request req = {.method = "POST", .path = "/v1/infer", .query = query, .n_query = n_cls ? 3 : 2,
                       .headers = hdr, .n_headers = 1, .body = (const char *)x,
                       .body_len = (size_t)n * SIZE * SIZE * sizeof(float)};
    api_response resp;
    api_handle(a, worker, &req, &resp);
    if (resp.status != 200) fail_msg("status %d: %.*s", resp.status, (int)resp.body_len, resp.body);
    json_t *root = json_loadb(resp.body, resp.body_len, 0, NULL);
    assert_non_null(root);
    const json_t *outs = json_object_get(root, "outputs");
    int k = n_cls ? n_cls : K;
    assert_int_equal(json_array_size(outs), n);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        const json_t *p = json_object_get(json_array_get(outs, i), "probabilities");
        assert_int_equal(json_array_size(p), k);
        for (int j = 0; j < k; j++) {
            double d = fabs(json_number_value(json_array_get(p, j)) - want[i * k + j]);
            if (d > worst) worst = d;
        }
    }
    if (worst > 1e-5) fail_msg("%d classes, %d samples: probabilities off the CPU's by %.3g", k, n, worst);
    json_decref(root);
    api_response_free(&resp);
    free(want);
    free(x);
}

static void test_device(void **state) {
    (void)state;
    assert_string_equal(api_device(a), "cuda");
}

/* The full model on each worker, at batch 1 and at a batch that runs in
 * several chunks. */
static void test_full_model(void **state) {
    (void)state;
    for (int w = 0; w < WORKERS; w++) {
        infer_and_check(w, NULL, 0, 1, 1 + (uint64_t)w);
        infer_and_check(w, NULL, 0, 200, 3 + (uint64_t)w);
    }
}

/* Composed models one after another on alternating workers, each evicting
 * the last, then the first again (composed anew). */
static void test_composed_models(void **state) {
    (void)state;
    const int sets[6][4] = {{0, 3, 7}, {1, 2}, {9, 8, 5, 4}, {6, 0}, {2, 4, 6, 8}, {3, 5}};
    const int sizes[6] = {3, 2, 4, 2, 4, 2};
    for (int round = 0; round < 2; round++)
        for (int t = 0; t < 6; t++) infer_and_check((t + round) % WORKERS, sets[t], sizes[t], 1 + 64 * (t % 3), 10 + (uint64_t)t);
}

int main(void) {
    if (!backend_cuda_available()) {
        printf("no CUDA device (or a build without CUDA): skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device),
        cmocka_unit_test(test_full_model),
        cmocka_unit_test(test_composed_models),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
