/* The api's state and the steps the v1 handlers share. Private to api/. */
#ifndef MODA_API_STATE_H
#define MODA_API_STATE_H

#include <stdatomic.h>

#include "api_internal.h"
#include "compose_cache.h"
#include "model_store.h"

#define API_CHUNK_MAX 64 /* samples per forward pass: the handles' plan size */

struct api {
    api_config cfg;        /* registry string not kept; metrics not owned */
    model_store store;     /* the registry's models, read-only after api_new */
    compose_cache *cache;  /* owned */
    moda_backend **be;     /* (cfg.workers) one backend per worker, owned */
    int chunk;             /* samples per forward pass */
    double max_macs;       /* the registry's most expensive model, per sample */
    size_t min_sample_bytes; /* its smallest sample as uint8 (raw size, before padding) */
    atomic_bool ready;
};

/* Pin the composition of m for classes[0..n) at tau (checked here:
 * distinct, in range, no more than the class limit, tau in [0, 1]) through
 * the cache. The full model is never composed this way. */
int api_entry_compose(api *a, int worker, const api_model *m, const int *classes, int n, float tau,
                      api_entry **out, bool *cached, api_error *e);

/* Check a class list: 1..limit entries, each in [0, K), no repeats. */
int api_classes_check(const api *a, const api_model *m, const int *classes, int n, api_error *e);

/* Check a threshold: a number in [0, 1]. */
int api_tau_check(double tau, api_error *e);

#endif
