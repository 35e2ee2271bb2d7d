/* Dynamic batching, with Triton's semantics: concurrent requests for one
 * model queue and merge into one engine call of up to max_batch samples,
 * waiting at most max_delay_us for the batch to fill; the results are split
 * back per request.
 *
 * No thread of its own: the requests' own threads take turns. The first
 * waiter of a queue that finds an engine instance free becomes the queue's
 * collector: it reserves the instance, waits for the batch to fill (or its
 * delay to pass), takes whole requests from the head, runs them as one call
 * and wakes their owners. Instances (engine slots, each used by one thread
 * at a time) are shared by every queue, so their number bounds the engine
 * calls running at once, whatever the number of models.
 *
 * One request's failure does not touch the others: a merged call that fails
 * is run again request by request, so only the request at fault fails; a
 * request still queued at its deadline leaves with queue_timeout. */
#ifndef MODA_API_BATCHER_H
#define MODA_API_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

typedef struct batcher batcher;

/* Runs n samples (x: n * in_size floats) on engine instance `instance`
 * (0 <= instance < instances; one thread per instance at a time), writing
 * n * out_size floats to out. ctx: the first merged request's. 0, or -1
 * with err. */
typedef int (*batch_run_fn)(void *ctx, int instance, const float *x, int n, float *out, api_error *err);

/* After each engine call: its samples and requests, and whether it
 * succeeded; key and ctx as the first merged request's (a merged call's
 * requests share their key). May be NULL. */
typedef void (*batch_observe_fn)(void *observe_ctx, const char *key, void *ctx, int samples, int requests, bool ok);

/* NULL when out of memory or instances < 1. */
batcher *batcher_new(int instances, batch_run_fn run, batch_observe_fn observe, void *observe_ctx);
/* No batcher_run may be in progress. Accepts NULL. */
void batcher_free(batcher *b);

typedef struct batch_request {
    const char *key;       /* requests with equal keys (the model) merge; copied */
    int max_batch;         /* samples per merged call for this key (>= 1) */
    int64_t max_delay_us;  /* how long a collector waits for the batch to fill */
    uint64_t deadline_us;  /* CLOCK_MONOTONIC µs after which it may no longer start; 0: none */
    void *ctx;             /* handed to run (all requests of one key must work with any one's ctx) */
    const float *x;        /* (n, in_size) */
    int n;                 /* samples, >= 1; more than max_batch run alone */
    size_t in_size, out_size; /* floats per sample, equal for every request of a key */
    float *out;            /* (n, out_size), filled on success */
} batch_request;

/* What happened to one request, for metrics. */
typedef struct batch_outcome {
    double queue_us;       /* from submission until its engine call began */
    int batch_samples;     /* samples in the engine call that served it */
} batch_outcome;

/* Run r merged with concurrent requests of its key; blocks until r->out is
 * filled or r failed. Errors: queue_timeout, internal, and run's own. */
int batcher_run(batcher *b, const batch_request *r, batch_outcome *outcome, api_error *err);

/* Requests queued or running in the batcher now (a hint, read without the
 * lock: the light-request rule uses it). */
int batcher_busy(const batcher *b);

/* CLOCK_MONOTONIC in µs, the clock of deadline_us. */
uint64_t batcher_now_us(void);

#endif
