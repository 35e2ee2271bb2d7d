/* Inference through the dynamic batcher: which requests queue, the engine
 * call the batcher makes, and its metrics. Requests merge by entry (the
 * pinned network itself, not its name), so requests that resolved a model
 * before a reload replaced it never run on the new one's weights, or the
 * reverse. */
#include <stdio.h>
#include <string.h>

#include "api_state.h"
#include "entry.h"

/* The batch settings of registry model `model`: its override, else the
 * defaults. */
static void batch_settings(const api *a, const char *model, int *max_batch, int *max_delay_us) {
    const api_batching *b = &a->cfg.batching;
    *max_batch = b->max_batch;
    *max_delay_us = b->max_delay_us;
    for (int i = 0; i < b->n_overrides; i++)
        if (!strcmp(b->overrides[i].model, model)) {
            *max_batch = b->overrides[i].max_batch;
            *max_delay_us = b->overrides[i].max_delay_us;
        }
}

bool api_batch_wanted(const api *a, int worker, const api_entry *e) {
    if (!a->batcher) return false;
    const api_batching *b = &a->cfg.batching;
    if (b->wait_slots > 0 && worker >= b->wait_slots) return false;
    int max_batch, delay;
    batch_settings(a, e->info.model, &max_batch, &delay);
    return max_batch > 1;
}

/* A queued request's context: lives on its owner's stack, which waits
 * until the request is done. */
typedef struct batch_ctx {
    api *a;
    api_entry *e;
} batch_ctx;

/* The batcher's engine call: on the instance's own slot, after the
 * workers'. */
static int batch_run(void *ctx, int instance, const float *x, int n, float *out, api_error *err) {
    const batch_ctx *c = ctx;
    return api_infer_logits(c->a, c->a->cfg.workers + instance, c->e, x, n, out, c->a->cfg.metrics, err);
}

static void batch_observe(void *observe_ctx, const char *key, void *ctx, int samples, int requests, bool ok) {
    (void)key;
    (void)requests;
    api *a = observe_ctx;
    const batch_ctx *c = ctx;
    if (ok) metrics_observe(a->cfg.metrics, HISTOGRAM_BATCH_SIZE, c->e->id, samples);
}

int api_batching_open(api *a, char *err, size_t errlen) {
    const api_batching *b = &a->cfg.batching;
    bool any = b->max_batch > 1;
    for (int i = 0; i < b->n_overrides; i++) any = any || b->overrides[i].max_batch > 1;
    if (!any) return 0;
    if (!(a->batcher = batcher_new(b->instances > 0 ? b->instances : 1, batch_run, batch_observe, a))) {
        snprintf(err, errlen, "out of memory creating the batcher");
        return -1;
    }
    return 0;
}

int api_infer_batched(api *a, api_entry *e, const float *x, int n, float *logits, metrics *m, uint64_t deadline_us,
                      api_error *err) {
    int max_batch, delay;
    batch_settings(a, e->info.model, &max_batch, &delay);
    batch_ctx ctx = {a, e};
    const api_batching *b = &a->cfg.batching;
    /* The queue lets the request go at the earlier of the batching timeout
     * and its own deadline; which one it was decides the error. */
    uint64_t queue_deadline = b->timeout_us > 0 ? batcher_now_us() + (uint64_t)b->timeout_us : 0;
    bool own = deadline_us && (!queue_deadline || deadline_us <= queue_deadline);
    if (own) queue_deadline = deadline_us;
    char key[32];
    snprintf(key, sizeof key, "%p", (void *)e); /* alive while any request of it waits */
    batch_request r = {
        .key = key,
        .max_batch = max_batch,
        .max_delay_us = delay,
        .deadline_us = queue_deadline,
        .ctx = &ctx,
        .x = x,
        .n = n,
        .in_size = (size_t)e->info.channels * e->info.height * e->info.width,
        .out_size = (size_t)e->info.n_classes,
        .out = logits,
    };
    batch_outcome outcome;
    int rc = batcher_run(a->batcher, &r, &outcome, err);
    if (rc && own && err && err->code && !strcmp(err->code, "queue_timeout"))
        api_error_set(err, "deadline_exceeded", "the request waited in its batch queue past its X-Moda-Timeout-Ms");
    if (rc == 0) {
        metrics_observe(m, HISTOGRAM_BATCH_QUEUE_SECONDS, e->id, outcome.queue_us * 1e-6);
        metrics_add(m, METRIC_QUEUE_DURATION_US, e->id, NULL, outcome.queue_us);
    }
    return rc;
}
