/* A servable model: a registry model served whole (permanent) or a
 * composed model owned by the cache. Private to the api. */
#ifndef MODA_API_ENTRY_H
#define MODA_API_ENTRY_H

#include <stdbool.h>

#include "api_internal.h"
#include "frozen.h"
#include "model_store.h"

struct api_entry {
    api_entry_info info;     /* what callers see; points into the fields below */
    char id[API_ID_MAX];
    const api_model *parent; /* the registry model; not owned */
    graph *g;                /* the network: composed (owned) or the parent's (not owned) */
    bool owns_graph;
    int *classes;            /* (K') parent class of each output, owned */
    const char **names;      /* (K') the parent's names (not owned); the array is owned */
    int workers;
    graph **exec;            /* (workers) per-worker inference handles on g, created lazily; owned */
    frozen **plans;          /* (workers) per-worker frozen plans of g, created lazily; owned */
    bool *unfrozen;          /* (workers) no plan (backend or network): the worker runs exec */
    double compose_ms;       /* time the composition took */

    /* Cache state, guarded by the cache's lock. */
    bool permanent;          /* a full model: never in the LRU, never freed before the api */
    bool ready;              /* composed (or failed: fail.code set) */
    api_error fail;          /* why the composition failed */
    bool linked;             /* in the LRU list (findable) */
    bool doomed;             /* deleted while pinned: freed on last release */
    int refs;                /* pins */
    size_t bytes;            /* counted against the budget: params + handle activations */
    api_entry *prev, *next;  /* LRU list, most recent first */
};

/* An entry for (parent, classes[0..n), tau, mode) without its graph yet;
 * id and info filled. NULL when out of memory. */
api_entry *entry_new(const api_model *parent, const int *classes, int n, float tau, compose_mode mode,
                     int workers);
/* The full-model entry of m (all classes, m's own graph). */
api_entry *entry_new_full(const api_model *m, int workers);
/* Attach the network (owned or not) and fill params/macs. */
void entry_set_graph(api_entry *e, graph *g, bool owns);
void entry_free(api_entry *e); /* accepts NULL */

#endif
