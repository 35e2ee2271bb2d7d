/* The registry's models, loaded once at start-up and shared read-only by
 * every worker: weights, rates (to compose from) and descriptions. */
#ifndef MODA_API_MODEL_STORE_H
#define MODA_API_MODEL_STORE_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "errors.h"
#include "registry.h"

typedef struct api_entry api_entry;

typedef struct api_model {
    registry_model rm; /* info, stats, weights (rm.g) and rates (rm.r); owned */
    api_entry *full;   /* the model served whole, with all its classes; owned */
    size_t params;     /* graph_param_count(rm.g) */
    double macs;       /* graph_macs(rm.g) */
    atomic_bool retired; /* replaced or removed by a reload: no longer found or listed, still valid */
} api_model;

/* Models are only ever added (model_store_add, model_store_reload), never
 * freed or moved while the store is open: slots are allocated once, with
 * room for MODEL_STORE_SPARE more, and a model is published by
 * incrementing n after its slot is complete, so readers need no lock. A
 * reload that replaces or removes a model marks its slot retired: lookups
 * and listings skip it, and requests that hold it finish on it. */
#define MODEL_STORE_SPARE 256

typedef struct model_store {
    registry *reg;      /* owned; the index as opened (models added later are not in it) */
    moda_backend *be;   /* holds every model's weights; owned */
    api_model *models;  /* (cap) in registry order, then as added; owned */
    _Atomic int n;      /* published models */
    int cap;
    int workers;
    bool remote;        /* the registry is a mirror of a URL: read-only */
    char *root;         /* the registry as given (a directory or URL), owned */
    registry_remote_options remote_opts; /* its strings are the caller's (the environment's) */
    pthread_mutex_t add_lock; /* one model_store_add at a time */
} model_store;

/* Open the registry at root (fetched as remote says, when a URL) and load
 * every model in it onto a backend of `device` created with `backend`,
 * each with its full-model entry for `workers` workers. Returns 0, or -1
 * with a reason. */
int model_store_open(model_store *s, const char *root, const registry_remote_options *remote, int workers,
                     const char *device, const backend_options *backend, char *err, size_t errlen);
void model_store_close(model_store *s); /* accepts NULL; leaves *s zeroed */

api_model *model_store_find(const model_store *s, const char *name); /* NULL if unknown */

/* A model of the store for listings: NULL when slot i is retired. */
static inline api_model *model_store_at(const model_store *s, int i) {
    return atomic_load(&s->models[i].retired) ? NULL : &s->models[i];
}

typedef struct model_store_changes {
    int added, replaced, removed, kept;
    api_model **gone; /* (n_gone) the slots just retired, for the cache to drop; malloc'd, the caller frees */
    int n_gone;
} model_store_changes;

/* Re-read the registry (fetching a URL registry's mirror again), load
 * every model that is new or whose manifest changed, and only when all of
 * them load, publish them and retire what they replace and what is gone.
 * A patched model is reloaded when a parent of it is. -1 with the reason
 * (nothing changed) otherwise. */
int model_store_reload(model_store *s, model_store_changes *out, char *err, size_t errlen);

/* Load model `name` from the registry on disk (re-reading its index,
 * which a writer has just updated) and publish it. -1 with a reason when
 * it is already served, there is no spare slot, or it fails to load. */
int model_store_add(model_store *s, const char *name, char *err, size_t errlen);

/* The class of m that text names: an exact class name, else a decimal
 * index. -1 with unknown_class otherwise. */
int model_store_class(const api_model *m, const char *text, api_error *e);
/* Same for a JSON value: a string as above, or an integer index. -1 with
 * unknown_class, or invalid_type for another JSON type. */
int model_store_class_json(const api_model *m, const json_t *v, api_error *e);

#endif
