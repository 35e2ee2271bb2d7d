/* Inference on a pinned entry: each worker runs its own frozen plan of the
 * entry's network, or where the backend has none (CUDA) its own handle on
 * the entry's weights (a graph is single-threaded), created on first use. */
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "api_state.h"

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e6 * (double)t.tv_sec + 1e-3 * (double)t.tv_nsec;
}

/* This worker's handle on e with room for `need` (<= a->chunk) samples per
 * pass. It is planned for the batch at hand and re-planned, doubling up to
 * a->chunk, when a larger one comes: a model served one sample at a time
 * holds one sample's activations per worker, not a whole chunk's. */
static graph *worker_handle(api *a, int worker, api_entry *e, int need) {
    graph *h = e->exec[worker];
    if (h && h->max_batch >= need) return h;
    if (!h && !(h = e->exec[worker] = graph_share(e->g, a->be[worker]))) return NULL;
    int plan = h->max_batch ? 2 * h->max_batch : 1;
    while (plan < need) plan *= 2;
    if (plan > a->chunk) plan = a->chunk;
    size_t before = graph_activation_bytes(h);
    if (graph_plan_inference(h, plan) != MODA_OK) {
        graph_free(h);
        e->exec[worker] = h = NULL;
    }
    compose_cache_resize(a->cache, e, before, graph_activation_bytes(h));
    return h;
}

/* This worker's frozen plan of e (engine/frozen.h), made on first use for
 * passes of up to a->chunk samples; NULL where the backend or the network
 * has none, and the worker runs its graph handle instead. The plan's bytes
 * (weights, and the buffers of each batch size it has built) count
 * against the cache like a handle's activations. */
static frozen *worker_plan(api *a, int worker, api_entry *e) {
    if (e->plans[worker] || e->unfrozen[worker]) return e->plans[worker];
    if (frozen_new(e->g, a->be[worker], a->chunk, &e->plans[worker]) != MODA_OK) {
        e->unfrozen[worker] = true;
        return NULL;
    }
    compose_cache_resize(a->cache, e, 0, frozen_bytes(e->plans[worker]));
    return e->plans[worker];
}

static moda_status run_plan(api *a, api_entry *e, frozen *f, const float *x, int n, float *z, int *execs) {
    const size_t per = (size_t)e->info.channels * e->info.height * e->info.width;
    const int k = e->info.n_classes;
    size_t before = frozen_bytes(f);
    moda_status s = MODA_OK;
    for (int off = 0; s == MODA_OK && off < n; off += a->chunk) {
        int b = n - off < a->chunk ? n - off : a->chunk;
        s = frozen_run(f, x + (size_t)off * per, b, z + (size_t)off * k);
        (*execs)++;
    }
    size_t after = frozen_bytes(f);
    if (after != before) compose_cache_resize(a->cache, e, before, after);
    return s;
}

/* Softmax of each row in double: exact enough for any logit range. */
static void softmax_rows(const float *logits, float *probs, int n, int k) {
    for (int i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * k;
        float *p = probs + (size_t)i * k;
        double mx = z[0], sum = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > mx) mx = z[j];
        for (int j = 0; j < k; j++) sum += exp((double)z[j] - mx);
        for (int j = 0; j < k; j++) p[j] = (float)(exp((double)z[j] - mx) / sum);
    }
}

int api_infer_logits(api *a, int slot, api_entry *e, const float *x, int n, float *logits, metrics *m,
                     api_error *err) {
    const int k = e->info.n_classes;
    const size_t per = (size_t)e->info.channels * e->info.height * e->info.width;
    frozen *f = worker_plan(a, slot, e);
    graph *h = f ? NULL : worker_handle(a, slot, e, n < a->chunk ? n : a->chunk);
    if (!f && !h) return api_error_set(err, "internal", "cannot plan %s for inference", e->id);
    double t0 = now_us();
    moda_status s = MODA_OK;
    int execs = 0;
    if (f) s = run_plan(a, e, f, x, n, logits, &execs);
    for (int off = 0; !f && s == MODA_OK && off < n; off += a->chunk) {
        int b = n - off < a->chunk ? n - off : a->chunk;
        s = graph_forward(h, x + (size_t)off * per, b, false);
        if (s == MODA_OK)
            s = backend_copy_to_host(h->be, logits + (size_t)off * k, graph_output(h)->out.data,
                                     (size_t)b * k * sizeof(float));
        execs++;
    }
    if (s != MODA_OK) return api_error_set(err, "internal", "inference on %s: %s", e->id, moda_status_string(s));
    metrics_add(m, METRIC_EXEC_COUNT, e->id, NULL, execs);
    metrics_add(m, METRIC_COMPUTE_DURATION_US, e->id, NULL, now_us() - t0);
    return 0;
}

/* Inputs are finite (the parsers check), but values near FLT_MAX overflow
 * inside the network: inf and NaN logits would turn into a confident,
 * meaningless answer, so they are refused. */
static int check_finite(const float *z, int n, int k, const api_entry *e, api_error *err) {
    for (size_t i = 0; i < (size_t)n * k; i++)
        if (!isfinite(z[i]))
            return api_error_set(err, "non_finite_output",
                                 "%s gives non-finite outputs for sample %zu: its input values are too large "
                                 "for the model (normalised inputs are within a few units of 0)",
                                 e->id, i / (size_t)k);
    return 0;
}

int api_infer_run(api *a, int worker, api_entry *e, const float *x, int n, float *logits, float *probs,
                  metrics *m, api_error *err) {
    return api_infer_run_until(a, worker, e, x, n, logits, probs, m, 0, err);
}

int api_infer_run_until(api *a, int worker, api_entry *e, const float *x, int n, float *logits, float *probs,
                        metrics *m, uint64_t deadline_us, api_error *err) {
    const int k = e->info.n_classes;
    float *z = logits ? logits : malloc((size_t)n * k * sizeof(float));
    if (!z) return api_error_set(err, "internal", "out of memory");
    int rc;
    if (api_batch_wanted(a, worker, e)) {
        rc = api_infer_batched(a, e, x, n, z, m, deadline_us, err);
    } else {
        /* Counted so that, with batching on, light requests stop running
         * inline while one already does: under load they merge instead. */
        atomic_fetch_add_explicit(&a->inline_busy, 1, memory_order_relaxed);
        rc = api_infer_logits(a, worker, e, x, n, z, m, err);
        atomic_fetch_sub_explicit(&a->inline_busy, 1, memory_order_relaxed);
    }
    if (rc == 0) rc = check_finite(z, n, k, e, err);
    if (rc == 0 && probs) softmax_rows(z, probs, n, k);
    if (z != logits) free(z);
    if (rc == 0) metrics_add(m, METRIC_INFERENCE_COUNT, e->id, NULL, n);
    return rc;
}
