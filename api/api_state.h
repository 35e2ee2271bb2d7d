/* The api's state and the steps the v1 handlers share. Private to api/. */
#ifndef MODA_API_STATE_H
#define MODA_API_STATE_H

#include <stdatomic.h>

#include <pthread.h>

#include "api_internal.h"
#include "batcher.h"
#include "compose_cache.h"
#include "jobs.h"
#include "model_store.h"
#include "v2_ext.h"

#define API_CHUNK_MAX 64 /* samples per forward pass: the handles' plan size */

struct api {
    api_config cfg;        /* registry string not kept; metrics not owned */
    model_store store;     /* the registry's models, read-only after api_new */
    compose_cache *cache;  /* owned */
    int slots;             /* cfg.workers, then the batcher's instances */
    moda_backend **be;     /* (slots) one backend per slot, owned */
    batcher *batcher;      /* owned; NULL when batching is off for every model */
    v2_loaded *loaded;     /* composed models pinned by the repository API, owned */
    moda_backend *reload_be; /* composes loaded models again after a reload (under the loaded list's
                              * lock); made on first need, owned */
    atomic_int inline_busy; /* inferences running unbatched on slots that may not wait */
    int chunk;             /* samples per forward pass */
    _Atomic double max_macs;         /* the registry's most expensive model, per sample */
    _Atomic size_t min_sample_bytes; /* its smallest sample as uint8 (raw size, before padding) */
    atomic_bool ready;
    job_queue *jobs;       /* replacement and calibration jobs; owned */
    pthread_mutex_t save_lock; /* jobs write and publish models one at a time */
    char *admin_token;     /* owned copy; NULL: no token asked */
    char *data_dirs;       /* owned copy of cfg.data_dirs, or NULL */
    pthread_t poller;      /* --registry-poll's thread, when started */
    bool polling;
    pthread_mutex_t poll_lock;
    pthread_cond_t poll_stop;
    bool stopping;
};

/* The dynamic batcher's half of api_infer_run (infer_batch.c). */
int api_batching_open(api *a, char *err, size_t errlen); /* a->batcher, when any model batches */
/* Whether worker's inference on e goes through the batcher. */
bool api_batch_wanted(const api *a, int worker, const api_entry *e);
/* Logits of x's n samples through the batcher (merged with concurrent
 * requests of e's id); records the queue time. Still queued at the
 * request's own deadline (deadline_us; 0: none): deadline_exceeded; at the
 * batching timeout, when that comes first: queue_timeout. */
int api_infer_batched(api *a, api_entry *e, const float *x, int n, float *logits, metrics *m, uint64_t deadline_us,
                      api_error *err);
/* Logits of x's n samples on slot `slot`, in chunks; records
 * METRIC_EXEC_COUNT and METRIC_COMPUTE_DURATION_US (infer.c). */
int api_infer_logits(api *a, int slot, api_entry *e, const float *x, int n, float *logits, metrics *m,
                     api_error *err);

/* Take a model just added to the store into the api's per-model bounds
 * (what api_request_is_light weighs). Accepts NULL. */
void api_note_model(api *a, const api_model *m);

/* Whether req may use an admin route: true when no token is configured or
 * it carries "Authorization: Bearer <token>"; otherwise resp gets a 401. */
bool api_admin_check(const api *a, const api_request *req, api_response *resp);

/* Pin the composition of m for classes[0..n) at tau in mode (checked here:
 * distinct, in range, no more than the class limit, tau in [0, 1]) through
 * the cache. The full model is never composed this way. Patched models
 * cannot be composed, and models composed per layer (they hold mapped
 * adds) compose again only per layer: invalid_combination. */
int api_entry_compose(api *a, int worker, const api_model *m, const int *classes, int n, float tau,
                      compose_mode mode, api_entry **out, bool *cached, api_error *e);

/* api_entry_resolve composing, when it must, on be (one thread at a time)
 * instead of a worker's backend. */
int api_entry_resolve_on(api *a, moda_backend *be, const char *name, api_entry **out, api_error *e);

/* Check a class list: 1..limit entries, each in [0, K), no repeats. */
int api_classes_check(const api *a, const api_model *m, const int *classes, int n, api_error *e);

/* Check a threshold: a number in [0, 1]. */
int api_tau_check(double tau, api_error *e);

#endif
